package block

import (
	"context"
	"fmt"
)

// Info describes a device. It does not change while the device exists,
// except that a driver may report ReadOnly after the host makes the disk
// read-only.
type Info struct {
	Name        string // e.g. "storvsc0:0:1" or "mem0"; for messages
	SectorSize  int    // logical sector size in bytes: 512 or 4096
	Sectors     uint64 // capacity in sectors
	ReadOnly    bool
	WriteCache  bool // writes may be volatile until Flush
	CanDiscard  bool
	MaxTransfer int // largest single transfer in bytes; 0 means no limit
	Queues      int // independent submission queues (at least 1)
}

// Size is the capacity in bytes.
func (i Info) Size() int64 { return int64(i.Sectors) * int64(i.SectorSize) }

// Device is a disk. Methods are safe for concurrent use; ReadAt and WriteAt
// may run concurrently with each other, and the order of overlapping
// concurrent writes is unspecified (as on real disks).
type Device interface {
	Info() Info
	// ReadAt reads len(p) bytes at byte offset off. off and len(p) are
	// multiples of SectorSize.
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
	// WriteAt writes p at off with the same rules as ReadAt.
	WriteAt(ctx context.Context, p []byte, off int64) (int, error)
	// Flush returns once every write completed before the call is durable.
	Flush(ctx context.Context) error
	// Discard tells the device that [off, off+n) is no longer needed.
	// ErrNotSupported when !Info().CanDiscard.
	Discard(ctx context.Context, off, n int64) error
}

// Op is a request's operation.
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

// Request is one asynchronous I/O. The caller owns it: it fills the
// inputs, submits, and must not touch the Request or Buf until Done runs;
// then it may reuse both.
type Request struct {
	// Inputs.
	Op    Op
	Off   int64  // byte offset (read, write, discard)
	Buf   []byte // data (read, write)
	Len   int64  // byte count (discard)
	Queue int    // submission queue, taken modulo Info().Queues
	Done  func(*Request)

	// Results, set before Done runs.
	Err error // nil, or an *IOError (or ErrRemoved etc. wrapped)
	N   int   // bytes transferred (read, write)
}

// Submitter is a Device that also takes asynchronous requests. Submit
// either accepts r (and Done will run exactly once, on the device's
// completion goroutine, which Done must not block) or returns an error
// and Done does not run.
type Submitter interface {
	Device
	Submit(r *Request) error
}

// Check validates an operation against a device's Info: alignment of off
// and n, the range inside the device, and writability for writes and
// discards. Drivers call it before touching the hardware; the error is an
// *IOError wrapping ErrUnaligned, ErrOutOfRange or ErrReadOnly. It
// allocates only when it fails.
func Check(info Info, op Op, off, n int64) error {
	var err error
	ss := int64(info.SectorSize)
	switch {
	case op == OpFlush:
		return nil
	case ss <= 0 || off%ss != 0 || n%ss != 0:
		err = ErrUnaligned
	case off < 0 || n < 0 || off > info.Size() || n > info.Size()-off:
		err = ErrOutOfRange
	case info.ReadOnly && (op == OpWrite || op == OpDiscard):
		err = ErrReadOnly
	default:
		return nil
	}
	return &IOError{Op: op, Off: off, Err: err}
}

// Do executes r synchronously on dev (without calling Done) and sets
// r.Err and r.N. Queue workers and simple drivers use it.
func Do(ctx context.Context, dev Device, r *Request) {
	r.N, r.Err = 0, nil
	switch r.Op {
	case OpRead:
		r.N, r.Err = dev.ReadAt(ctx, r.Buf, r.Off)
	case OpWrite:
		r.N, r.Err = dev.WriteAt(ctx, r.Buf, r.Off)
	case OpFlush:
		r.Err = dev.Flush(ctx)
	case OpDiscard:
		r.Err = dev.Discard(ctx, r.Off, r.Len)
	default:
		r.Err = &IOError{Op: r.Op, Off: r.Off, Err: ErrNotSupported}
	}
}
