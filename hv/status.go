package hv

import "fmt"

// Status is a hypercall result code, bits 15:0 of RAX after a hypercall
// (TLFS "Hypercall Status Codes"; docs/hyperv-protocol.md §1.8). A non-success Status is
// returned as an error; callers branch on it with errors.Is or errors.As.
type Status uint16

// Hypercall status codes (docs/hyperv-protocol.md §1.8).
const (
	StatusSuccess               Status = 0x0000
	StatusInvalidHypercallCode  Status = 0x0002
	StatusInvalidHypercallInput Status = 0x0003
	StatusInvalidAlignment      Status = 0x0004
	StatusInvalidParameter      Status = 0x0005
	StatusAccessDenied          Status = 0x0006
	StatusInsufficientMemory    Status = 0x000B
	StatusInvalidPortID         Status = 0x0011
	StatusInvalidConnectionID   Status = 0x0012
	StatusInsufficientBuffers   Status = 0x0013
	StatusNotAcknowledged       Status = 0x0014
	StatusTimeout               Status = 0x0078
)

var statusNames = map[Status]string{
	StatusSuccess:               "HV_STATUS_SUCCESS",
	StatusInvalidHypercallCode:  "HV_STATUS_INVALID_HYPERCALL_CODE",
	StatusInvalidHypercallInput: "HV_STATUS_INVALID_HYPERCALL_INPUT",
	StatusInvalidAlignment:      "HV_STATUS_INVALID_ALIGNMENT",
	StatusInvalidParameter:      "HV_STATUS_INVALID_PARAMETER",
	StatusAccessDenied:          "HV_STATUS_ACCESS_DENIED",
	StatusInsufficientMemory:    "HV_STATUS_INSUFFICIENT_MEMORY",
	StatusInvalidPortID:         "HV_STATUS_INVALID_PORT_ID",
	StatusInvalidConnectionID:   "HV_STATUS_INVALID_CONNECTION_ID",
	StatusInsufficientBuffers:   "HV_STATUS_INSUFFICIENT_BUFFERS",
	StatusNotAcknowledged:       "HV_STATUS_NOT_ACKNOWLEDGED",
	StatusTimeout:               "HV_STATUS_TIMEOUT",
}

// Error implements error.
func (s Status) Error() string {
	if n, ok := statusNames[s]; ok {
		return fmt.Sprintf("hypercall failed: %s (%#04x)", n, uint16(s))
	}
	return fmt.Sprintf("hypercall failed: status %#04x", uint16(s))
}

// Transient reports whether the call may succeed if retried with back-off
// (docs/hyperv-protocol.md §1.8: Linux retries INSUFFICIENT_MEMORY and
// INSUFFICIENT_BUFFERS).
func (s Status) Transient() bool {
	return s == StatusInsufficientMemory || s == StatusInsufficientBuffers
}

// Err returns nil for StatusSuccess and s otherwise.
func (s Status) Err() error {
	if s == StatusSuccess {
		return nil
	}
	return s
}
