package block

import (
	"errors"
	"fmt"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrReadOnly: a write or discard on a read-only device.
	ErrReadOnly = errors.New("block: device is read-only")
	// ErrNotSupported: the device does not implement the operation
	// (Discard without Info.CanDiscard).
	ErrNotSupported = errors.New("block: operation not supported")
	// ErrRemoved: the device is gone (rescinded or hot-removed).
	ErrRemoved = errors.New("block: device removed")
	// ErrOutOfRange: the range does not lie inside the device.
	ErrOutOfRange = errors.New("block: range outside the device")
	// ErrUnaligned: an offset or length is not a multiple of the sector
	// size.
	ErrUnaligned = errors.New("block: offset or length not sector-aligned")
)

// IOError is a failed operation on a device: which operation, where, and
// why. Err is a sentinel above or the driver's own error.
type IOError struct {
	Op  Op
	Off int64
	Err error
}

func (e *IOError) Error() string {
	return fmt.Sprintf("block: %v at offset %d: %v", e.Op, e.Off, e.Err)
}

// Unwrap returns the cause.
func (e *IOError) Unwrap() error { return e.Err }
