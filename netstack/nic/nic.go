// Package nic is the contract between a network driver (drivers/netvsc) and
// the TCP/IP stack (package netstack): the NIC interface and the per-frame
// metadata types, with no dependencies, so that a driver can implement it
// without importing gVisor.
//
// A driver satisfies NIC either directly, by declaring its types as aliases
// (type Offloads = nic.Offloads, var ErrBusy = nic.ErrBusy, ...), or through
// a thin adapter that converts its own types field by field.
//
// Package nic owns only these definitions; it holds no state.
package nic

import (
	"context"
	"errors"
)

// ErrBusy is returned (possibly wrapped) by NIC.Send when the queue's ring or
// send buffer is full. The frame was not sent; the caller waits with
// NIC.WaitWritable and sends it again.
var ErrBusy = errors.New("nic: transmit queue busy")

// Offloads lists what the NIC does in hardware (or, for a synthetic NIC, what
// the host does for it).
type Offloads struct {
	// Transmit checksum offload, per protocol.
	TxCsumIPv4, TxCsumTCP4, TxCsumUDP4, TxCsumTCP6, TxCsumUDP6 bool
	// RxCsum: the NIC reports per frame whether it verified checksums
	// (RxInfo.CsumChecked).
	RxCsum bool
	// Large send offload for TCP over IPv4 / IPv6: the NIC segments a TCP
	// segment larger than the MTU into MSS-sized segments.
	LSOv4, LSOv6 bool
	// LSOMaxSize is the largest frame payload (IP packet) accepted with
	// TxInfo.GSO set.
	LSOMaxSize int
}

// RxInfo is per-frame receive metadata.
type RxInfo struct {
	// CsumChecked: the NIC verified the checksums below. When false, the
	// stack verifies them itself.
	CsumChecked bool
	// IPCsumOK, L4CsumOK: results of the verification, meaningful only
	// when CsumChecked.
	IPCsumOK, L4CsumOK bool
	// VLAN is the 802.1Q tag the NIC stripped, 0 for none.
	VLAN uint16
}

// TxInfo is per-frame transmit metadata.
//
// Checksum fields the NIC is asked to fill (CsumTCP, CsumUDP) hold the
// one's-complement sum of the pseudo-header including the L4 length when
// GSO is false, and of the pseudo-header without the length (as NDIS large
// send offload v2 requires) when GSO is true. The IPv4 header checksum is
// always filled in by the stack.
type TxInfo struct {
	// CsumIPv4: compute the IPv4 header checksum.
	CsumIPv4 bool
	// CsumTCP, CsumUDP: compute the L4 checksum of this protocol.
	CsumTCP, CsumUDP bool
	// IsIPv6: the L3 header is IPv6 (else IPv4).
	IsIPv6 bool
	// L3Offset, L4Offset: offsets in the frame of the IP and L4 headers.
	L3Offset, L4Offset int
	// GSO: the frame is one TCP segment larger than the MTU, to be cut
	// into segments of at most MSS payload bytes each.
	GSO bool
	MSS int
}

// NIC is what the stack needs from a network interface. Methods are safe for
// concurrent use; Send and WaitWritable are called for one queue by one
// goroutine at a time.
type NIC interface {
	MAC() [6]byte
	// MTU is the largest IP packet (Ethernet payload) without GSO.
	MTU() int
	// Queues is the number of transmit/receive queues, at least 1.
	Queues() int
	LinkUp() bool
	Offloads() Offloads
	// SetReceiver installs fn, which receives every frame. fn runs on the
	// queue's own goroutine; frame is valid only during the call; fn must
	// not block.
	SetReceiver(fn func(queue int, frame []byte, info RxInfo))
	// Send transmits one Ethernet frame given as parts. It returns an error
	// matching ErrBusy when the queue is full. The parts belong to the
	// caller again when Send returns: a driver that sends GPA-direct from
	// them must wait for the host's completion before returning, or copy.
	Send(queue int, frame [][]byte, tx TxInfo) error
	// WaitWritable waits until Send on queue may succeed again.
	WaitWritable(ctx context.Context, queue int) error
	// SetLinkHandler installs fn for media connect (true) / disconnect
	// (false) indications; fn runs on a driver goroutine.
	SetLinkHandler(fn func(up bool))
	// SetNetworkChangeHandler installs fn for "the network changed, renew
	// your address" indications; fn runs on a driver goroutine.
	SetNetworkChangeHandler(fn func())
}
