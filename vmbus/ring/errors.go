package ring

import (
	"errors"
	"strconv"
)

// Sentinel errors; callers branch on them with errors.Is.
var (
	// ErrEmpty: the ring holds no packet. Not a failure.
	ErrEmpty = errors.New("ring: empty")
	// ErrFull: the packet does not fit now; nothing was written. Retry
	// after the consumer frees space (see Writer.SetPendingSend).
	ErrFull = errors.New("ring: full")
	// ErrTooLarge: the packet can never fit in this ring, or its length
	// does not fit the descriptor's 16-bit len8.
	ErrTooLarge = errors.New("ring: packet too large for ring")
	// ErrBufferTooSmall is matched by *BufferTooSmallError.
	ErrBufferTooSmall = errors.New("ring: buffer too small for packet")
	// ErrCorrupt is matched by *CorruptError: the other side broke the
	// ring protocol.
	ErrCorrupt = errors.New("ring: corrupt")
	// ErrUnalignedHeader: a type-specific header whose length is not a
	// multiple of 8 cannot be described by offset8 (docs/hyperv-protocol.md §4.3).
	ErrUnalignedHeader = errors.New("ring: type-specific header length not a multiple of 8")
	// ErrBatchClosed: Batch.Add after Commit or Abort.
	ErrBatchClosed = errors.New("ring: batch not open")
	// ErrBatchOpen: TryWrite while a Batch is open on the same Writer.
	ErrBatchOpen = errors.New("ring: batch open on writer")
	// ErrMemory: the memory handed to NewWriter/NewReader has the wrong
	// size or alignment, or holds invalid indices.
	ErrMemory = errors.New("ring: bad ring memory")
)

// BufferTooSmallError is returned by Reader.Read when the next packet does
// not fit the caller's buffer. The packet is not consumed: retry with a
// buffer of at least Need bytes.
type BufferTooSmallError struct {
	Need int
}

func (e *BufferTooSmallError) Error() string {
	return "ring: buffer too small for packet: need " + strconv.Itoa(e.Need) + " bytes"
}

// Unwrap makes errors.Is(err, ErrBufferTooSmall) true.
func (e *BufferTooSmallError) Unwrap() error { return ErrBufferTooSmall }

// CorruptError reports data from the other side that breaks the ring
// protocol: an invalid index, or a descriptor or type-specific header that
// does not fit. Reason is a constant string; Value is the offending value.
type CorruptError struct {
	Reason string
	Value  uint64
}

func (e *CorruptError) Error() string {
	return "ring: corrupt: " + e.Reason + " (value " + strconv.FormatUint(e.Value, 10) + ")"
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }
