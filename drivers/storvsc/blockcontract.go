package storvsc

// This file mirrors the block-layer contract of package
// github.com/gohv/gohv/drivers/block (BRIEF, "Block-layer contract") until
// that package is merged. At merge, replace each declaration here by an
// alias (type Info = block.Info, …, var ErrRemoved = block.ErrRemoved) or
// delete the file and import drivers/block: the driver uses exactly these
// names and signatures.

import (
	"context"
	"errors"
	"fmt"
)

// Info describes a block device.
type Info struct {
	Name        string
	SectorSize  int
	Sectors     uint64
	ReadOnly    bool
	WriteCache  bool
	CanDiscard  bool
	MaxTransfer int
	Queues      int
}

// Device is a block device.
type Device interface {
	Info() Info
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
	WriteAt(ctx context.Context, p []byte, off int64) (int, error)
	Flush(ctx context.Context) error
	Discard(ctx context.Context, off, n int64) error
}

// Op is a block request's operation.
type Op uint8

// Operations.
const (
	OpRead Op = iota
	OpWrite
	OpFlush
	OpDiscard
)

func (o Op) String() string {
	switch o {
	case OpRead:
		return "read"
	case OpWrite:
		return "write"
	case OpFlush:
		return "flush"
	case OpDiscard:
		return "discard"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Request is an asynchronous block request, owned by the caller and
// reusable: submitting it allocates nothing.
type Request struct {
	Op    Op
	Off   int64
	Buf   []byte
	Len   int64 // discard length
	Queue int
	Done  func(*Request)
	Err   error
	N     int
}

// Submitter is a Device that also takes asynchronous requests. Done runs
// on the device's completion goroutine and must not block.
type Submitter interface {
	Device
	Submit(r *Request) error
}

// Block-layer errors.
var (
	ErrReadOnly     = errors.New("block: device is read-only")
	ErrNotSupported = errors.New("block: operation not supported")
	ErrRemoved      = errors.New("block: device removed")
	ErrOutOfRange   = errors.New("block: access beyond the end of the device")
	ErrUnaligned    = errors.New("block: offset or length not a multiple of the sector size")
)

// IOError is a failed request.
type IOError struct {
	Op  Op
	Off int64
	Err error
}

func (e *IOError) Error() string { return fmt.Sprintf("block: %v at %d: %v", e.Op, e.Off, e.Err) }

// Unwrap returns the cause.
func (e *IOError) Unwrap() error { return e.Err }
