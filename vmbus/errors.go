package vmbus

import (
	"errors"
	"fmt"

	"github.com/gohv/gohv/vmbus/ring"
)

// Sentinel errors; branch on them with errors.Is.
var (
	// ErrRingFull: the packet does not fit in the outbound ring now.
	ErrRingFull = ring.ErrFull
	// ErrEmpty: no packet to read. Not a failure.
	ErrEmpty = ring.ErrEmpty
	// ErrRescinded: the host rescinded the channel's offer.
	ErrRescinded = errors.New("vmbus: channel rescinded")
	// ErrClosed: the channel is not open, or the bus is closed.
	ErrClosed = errors.New("vmbus: closed")
	// ErrAlreadyOpen: Open on a channel that is open or opening.
	ErrAlreadyOpen = errors.New("vmbus: channel already open")
	// ErrNoVersion: the host rejected every offered protocol version.
	ErrNoVersion = errors.New("vmbus: no protocol version accepted by the host")
	// ErrConnection: the host accepted a version but reported a failed
	// connection state, or returned an unusable connection id.
	ErrConnection = errors.New("vmbus: host refused the connection")
	// ErrBadConfig: invalid Config or OpenConfig.
	ErrBadConfig = errors.New("vmbus: bad configuration")
	// ErrGPADLTooLarge: a buffer whose PFN list does not fit one GPADL
	// range (range buffer length is 16 bits, docs/hyperv-protocol.md §3.9).
	ErrGPADLTooLarge = errors.New("vmbus: buffer too large for one GPADL")
	// ErrUnknownGPADL: TeardownGPADL of a GPADL this channel does not own.
	ErrUnknownGPADL = errors.New("vmbus: unknown GPADL")
	// ErrHostStatus is matched by *OpenError, *GPADLError and
	// *ModifyError.
	ErrHostStatus = errors.New("vmbus: host returned a failure status")
)

// OpenError is a non-zero OPENCHANNEL_RESULT status (docs/hyperv-protocol.md §3.8).
type OpenError struct {
	RelID  uint32
	Status uint32
}

func (e *OpenError) Error() string {
	return fmt.Sprintf("vmbus: open of relid %d failed: host status %#x", e.RelID, e.Status)
}

// Unwrap makes errors.Is(err, ErrHostStatus) true.
func (e *OpenError) Unwrap() error { return ErrHostStatus }

// GPADLError is a non-zero GPADL_CREATED status (docs/hyperv-protocol.md §3.9).
type GPADLError struct {
	RelID, GPADL, Status uint32
}

func (e *GPADLError) Error() string {
	return fmt.Sprintf("vmbus: GPADL %#x on relid %d failed: host status %#x", e.GPADL, e.RelID, e.Status)
}

// Unwrap makes errors.Is(err, ErrHostStatus) true.
func (e *GPADLError) Unwrap() error { return ErrHostStatus }

// ModifyError is a non-zero MODIFYCHANNEL_RESPONSE status (docs/hyperv-protocol.md §3.10).
type ModifyError struct {
	RelID, Status uint32
}

func (e *ModifyError) Error() string {
	return fmt.Sprintf("vmbus: modify of relid %d failed: host status %#x", e.RelID, e.Status)
}

// Unwrap makes errors.Is(err, ErrHostStatus) true.
func (e *ModifyError) Unwrap() error { return ErrHostStatus }
