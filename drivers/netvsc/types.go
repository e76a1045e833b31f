package netvsc

import (
	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/netstack/nic"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// The per-frame types are the NIC contract's (package netstack/nic), so
// that *NIC is a nic.NIC without an adapter.
type (
	// Offloads are the offloads the host granted (OID_TCP_OFFLOAD_HARDWARE_
	// CAPABILITIES, then OID_TCP_OFFLOAD_PARAMETERS, §7.7).
	Offloads = nic.Offloads
	// RxInfo is what the host said about a received frame (per-packet
	// info, §7.8).
	RxInfo = nic.RxInfo
	// TxInfo asks for offloads on one frame (§7.8).
	TxInfo = nic.TxInfo
)

var _ nic.NIC = (*NIC)(nil)

// Stats are a NIC's counters, summed over its queues.
type Stats struct {
	TxPackets, TxBytes uint64
	TxCopied           uint64 // sent through a send-buffer section
	TxDirect           uint64 // sent GPA-direct from the caller's memory
	TxBounced          uint64 // sent GPA-direct through a bounce buffer
	TxBusy             uint64 // Send returned ErrBusy
	TxErrors           uint64 // host completed a send with a failure status
	RxPackets, RxBytes uint64
	RxDropped          uint64 // no receiver, too large, RSC fragment
	RxBadPackets       uint64 // malformed host packets or RNDIS messages (dropped)
	RxCompletionsLate  uint64 // receive completions deferred for ring space
	ControlMessages    uint64 // RNDIS control messages received
	Keepalives         uint64 // host KEEPALIVEs answered
	LinkChanges        uint64
	NetworkChanges     uint64
	LinkSpeed          uint64 // bits per second, 0 if unknown
	SendTableUpdates   uint64
}

// Defaults (docs/hyperv-protocol.md §4.6, §7.4).
const (
	DefaultMTU               = 1500
	MaxMTU                   = 9000
	MinMTU                   = 576
	DefaultRingSize          = 128 * hv.PageSize // per direction, as Linux
	DefaultReceiveBufferSize = 16 << 20
	DefaultSendBufferSize    = 1 << 20
	DefaultTxSlots           = 256
	DefaultBounceBuffers     = 8
	DefaultControlSlots      = 4
	maxQueues                = 64
	ethHeaderLen             = 14
	vlanTagLen               = 4
)

// Config configures Open. The zero value of every field but Memory is a
// usable default.
type Config struct {
	// Memory provides host-visible memory for the receive and send
	// buffers, GPA-direct headers and bounce buffers. Required. If it
	// implements hv.PhysTranslator, large frames in host-visible memory
	// go GPA-direct without a copy.
	Memory hv.Memory
	// MTU requested from the host (NDIS config); the host's
	// OID_GEN_MAXIMUM_FRAME_SIZE may lower it. 0 means DefaultMTU.
	MTU int
	// Queues is the number of queues wanted (typically the CPU count);
	// vRSS sub-channels are requested for Queues−1, up to what the host
	// offers. 0 means 1.
	Queues int
	// SubChannels yields the offered sub-channels; nil disables vRSS.
	SubChannels SubChannels
	// RingSize is the size of each ring of every channel, bytes. 0 means
	// DefaultRingSize.
	RingSize int
	// ReceiveBufferSize and SendBufferSize are the shared buffers'
	// sizes, bytes (multiples of the page size). 0 means the defaults;
	// the receive buffer is capped at the host's limit for the NVSP
	// version.
	ReceiveBufferSize, SendBufferSize int
	// TxSlots is the number of sends in flight per queue. 0 means
	// DefaultTxSlots.
	TxSlots int
	// BounceBuffers is the number of LSO-sized bounce buffers shared by
	// the queues, used for large frames not in host-visible memory. 0
	// means DefaultBounceBuffers.
	BounceBuffers int
	// VMBusVersion is the bus's negotiated version: below 4.0 the buffer
	// GPADLs are torn down before CLOSECHANNEL, from 4.0 after it (§7.4
	// step 8). 0 means ≥ 4.0.
	VMBusVersion chanmsg.Version
	// RSSKey is the Toeplitz key sent to the host and used to spread
	// sends; nil means DefaultRSSKey.
	RSSKey *[40]byte
}
