package storvsc

import (
	"errors"
	"fmt"

	"github.com/gohv/gohv/drivers/scsi"
)

// Sentinel errors; branch on them with errors.Is.
var (
	// ErrNoVersion: the host rejected every VSTOR protocol version.
	ErrNoVersion = errors.New("storvsc: no protocol version accepted by the host")
	// ErrProtocol is matched by *ProtocolError: the host sent bytes that
	// violate the protocol.
	ErrProtocol = errors.New("storvsc: protocol violation by the host")
	// ErrTimeout: a request did not complete within Config.Timeout, even
	// after RESET_LUN and RESET_BUS.
	ErrTimeout = errors.New("storvsc: request timed out")
	// ErrClosed: the controller was closed.
	ErrClosed = errors.New("storvsc: controller closed")
	// ErrSCSI is matched by *SCSIError.
	ErrSCSI = errors.New("storvsc: SCSI command failed")
	// ErrHostStatus is matched by *StatusError.
	ErrHostStatus = errors.New("storvsc: host returned a failure status")
)

// ProtocolError describes a malformed host packet.
type ProtocolError struct {
	Reason string
	Len    int
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("storvsc: bad host packet (%d bytes): %s", e.Len, e.Reason)
}

// Unwrap makes errors.Is(err, ErrProtocol) true.
func (e *ProtocolError) Unwrap() error { return ErrProtocol }

// StatusError is a non-zero vstor_packet status (NTSTATUS, §6.5) for a
// control operation.
type StatusError struct {
	Op     Operation
	Status uint32
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("storvsc: %v failed: host status %#x", e.Op, e.Status)
}

// Unwrap makes errors.Is(err, ErrHostStatus) true.
func (e *StatusError) Unwrap() error { return ErrHostStatus }

// SCSIError is a failed EXECUTE_SRB: the SRB status (§6.5), the SCSI status
// and, when the host supplied it, the decoded sense data.
type SCSIError struct {
	Op         byte // CDB operation code
	SRBStatus  uint8
	SCSIStatus scsi.Status
	HasSense   bool
	Sense      scsi.Sense
}

func (e *SCSIError) Error() string {
	s := fmt.Sprintf("storvsc: SCSI op %#02x: SRB status %#02x, %v", e.Op, e.SRBStatus, e.SCSIStatus)
	if e.HasSense {
		s += fmt.Sprintf(", sense %v %#02x/%#02x", e.Sense.Key, e.Sense.ASC, e.Sense.ASCQ)
	}
	return s
}

// Unwrap makes errors.Is(err, ErrSCSI) true.
func (e *SCSIError) Unwrap() error { return ErrSCSI }
