// Package rndis is the wire format of the RNDIS messages a Hyper-V
// synthetic NIC exchanges inside NVSP (docs/hyperv-protocol.md §7.6–7.9):
// message layouts, OIDs, status indications, per-packet info, the NDIS
// objects carried by OID requests (offload capabilities and parameters,
// RSS capabilities and parameters) and the packet filter bits.
//
// It owns constants and pure encode/decode functions with named offsets;
// it holds no state and never touches a channel or shared memory (the
// caller copies a message out of the receive buffer first). Every decoder
// validates lengths and offsets against the bytes given and returns an
// error rather than panicking. Encoders write into caller-provided
// buffers and allocate nothing.
package rndis
