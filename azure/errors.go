package azure

import (
	"errors"
	"fmt"
)

// Sentinel errors; branch on them with errors.Is.
var (
	// ErrTooLarge: a response body exceeded the package's size limit.
	ErrTooLarge = errors.New("azure: response body too large")
	// ErrBadResponse: a response that does not parse or whose fields fail
	// validation.
	ErrBadResponse = errors.New("azure: malformed response")
	// ErrBadOption: a DHCP option 245 value that is not a usable IPv4
	// address.
	ErrBadOption = errors.New("azure: bad DHCP option 245")
	// ErrAlreadyRun: Run was called twice on one Provisioner.
	ErrAlreadyRun = errors.New("azure: provisioner already run")
	// ErrHTTPStatus is matched by *StatusError.
	ErrHTTPStatus = errors.New("azure: unexpected HTTP status")
)

// StatusError is a non-success HTTP status from the WireServer or IMDS.
type StatusError struct {
	Op   string // "goal state", "health", "instance metadata", "user data"
	Code int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("azure: %s: HTTP status %d", e.Op, e.Code)
}

// Is makes errors.Is(err, ErrHTTPStatus) true.
func (e *StatusError) Is(target error) bool { return target == ErrHTTPStatus }

// retryable reports whether a failed request is worth repeating: network
// errors, 408, 410 (IMDS answers 410 while it starts), 429 and 5xx.
func retryable(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code == 408 || se.Code == 410 || se.Code == 429 || se.Code >= 500
	}
	// Malformed or oversized answers are retried too: a WireServer that is
	// still assembling the goal state may answer with a partial document.
	return true
}
