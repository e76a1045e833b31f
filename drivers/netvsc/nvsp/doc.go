// Package nvsp is the wire format of NVSP, the Network Virtual Service
// Protocol that a Hyper-V synthetic NIC speaks over its VMBus channels
// (docs/hyperv-protocol.md §7.1–7.5). The VMBus packet headers NetVSC
// uses (transfer pages, GPA direct, §4.5) are package vmbus/ring's.
//
// It owns constants, message layouts and pure encode/decode functions with
// named offsets. It holds no state, waits for nothing and never touches a
// channel: the state machine is drivers/netvsc's. Everything a decoder
// reads comes from the host and is validated against the bytes actually
// given; a decoder returns an error, never panics. Encoders write into a
// caller-provided buffer and allocate nothing.
package nvsp
