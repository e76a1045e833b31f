package netvsc

import (
	"errors"
	"fmt"

	"github.com/gohv/gohv/netstack/nic"
)

// Sentinel errors; branch on them with errors.Is.
var (
	// ErrBusy: the channel's ring, the send buffer or the send slots are
	// full now. Retry after WaitWritable; nothing was sent.
	// It is the NIC contract's nic.ErrBusy.
	ErrBusy = nic.ErrBusy
	// ErrRemoved: the host rescinded the NIC.
	ErrRemoved = errors.New("netvsc: NIC removed by the host")
	// ErrClosed: the NIC was closed.
	ErrClosed = errors.New("netvsc: NIC closed")
	// ErrNoVersion: the host accepted none of the NVSP versions.
	ErrNoVersion = errors.New("netvsc: no NVSP version accepted by the host")
	// ErrBadConfig: invalid Config.
	ErrBadConfig = errors.New("netvsc: bad configuration")
	// ErrFrame: a frame or TxInfo the NIC cannot send (too large, bad
	// offsets, queue out of range).
	ErrFrame = errors.New("netvsc: bad frame")
	// ErrHostStatus is matched by *HostError.
	ErrHostStatus = errors.New("netvsc: host returned a failure status")
	// ErrProtocol: the host sent a malformed or unexpected message.
	ErrProtocol = errors.New("netvsc: host protocol violation")
)

// HostError is a failure status from the host for one operation: an NVSP
// status (§7.2) or an RNDIS status (§7.6).
type HostError struct {
	Op     string // e.g. "SEND_RECEIVE_BUFFER", "QUERY 0x10106"
	Status uint32
}

func (e *HostError) Error() string {
	return fmt.Sprintf("netvsc: %s: host status %#x", e.Op, e.Status)
}

// Unwrap makes errors.Is(err, ErrHostStatus) true.
func (e *HostError) Unwrap() error { return ErrHostStatus }
