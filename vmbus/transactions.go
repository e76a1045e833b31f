package vmbus

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// Errors of Transactions.
var (
	// ErrNoTransactions: every slot is in use.
	ErrNoTransactions = errors.New("vmbus: no free transaction slot")
	// ErrUnknownTransaction: a completion (or Wait) for an id that is not
	// outstanding: never issued, already completed, or abandoned.
	ErrUnknownTransaction = errors.New("vmbus: unknown or stale transaction id")
)

// Transactions matches completions to requests by transaction id for a
// driver. The table is fixed-size and preallocated: Begin, Complete and
// Wait do not allocate.
//
// Ownership: Begin hands the id to the caller, who sends the request and
// then calls Wait (or Cancel) exactly once for it. Complete is called by
// whoever reads the completion packet (typically OnInterrupt) and copies
// the payload into the slot, so the caller's packet buffer may be reused
// at once. Wait copies the payload into dst and frees the slot. An id
// whose Wait gave up (ctx done) is freed; a late completion for it is
// rejected with ErrUnknownTransaction, since ids are never reused within
// 2^32 generations of a slot.
type Transactions struct {
	mu         sync.Mutex
	slots      []txSlot
	free       []uint32
	maxPayload int
	unknown    atomic.Uint64
}

type txSlot struct {
	gen   uint32
	state uint8
	done  chan struct{} // capacity 1
	buf   []byte
	n     int
}

const (
	txFree uint8 = iota
	txPending
	txDone
)

// NewTransactions returns a table of n slots whose completions carry at
// most maxPayload bytes (longer ones are truncated and reported by Wait).
func NewTransactions(n, maxPayload int) *Transactions {
	t := &Transactions{slots: make([]txSlot, n), free: make([]uint32, n), maxPayload: maxPayload}
	for i := range t.slots {
		t.slots[i] = txSlot{done: make(chan struct{}, 1), buf: make([]byte, maxPayload)}
		t.free[i] = uint32(n - 1 - i)
	}
	return t
}

// id layout: generation in the high 32 bits (never 0), slot index low.
func txID(gen, idx uint32) uint64 { return uint64(gen)<<32 | uint64(idx) }

// Begin reserves a slot and returns its transaction id (never 0).
func (t *Transactions) Begin() (uint64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.free) == 0 {
		return 0, ErrNoTransactions
	}
	idx := t.free[len(t.free)-1]
	t.free = t.free[:len(t.free)-1]
	s := &t.slots[idx]
	s.gen++
	if s.gen == 0 {
		s.gen = 1
	}
	s.state, s.n = txPending, 0
	select {
	case <-s.done: // a stale wake-up
	default:
	}
	return txID(s.gen, idx), nil
}

// slot returns the slot of id if id is current; called with mu held.
func (t *Transactions) slot(id uint64) *txSlot {
	idx := uint32(id)
	if int(idx) >= len(t.slots) {
		return nil
	}
	s := &t.slots[idx]
	if s.gen != uint32(id>>32) || s.state == txFree {
		return nil
	}
	return s
}

// Complete records the completion payload of id and wakes its Wait. An
// unknown, stale or already completed id gives ErrUnknownTransaction and
// is counted.
func (t *Transactions) Complete(id uint64, payload []byte) error {
	t.mu.Lock()
	s := t.slot(id)
	if s == nil || s.state != txPending {
		t.mu.Unlock()
		t.unknown.Add(1)
		return ErrUnknownTransaction
	}
	copy(s.buf, payload)
	s.n = len(payload)
	s.state = txDone
	s.done <- struct{}{} // never blocks: one token per pending id
	t.mu.Unlock()
	return nil
}

// Wait waits for id's completion, copies its payload into dst and frees
// the slot. It returns the payload length; io.ErrShortBuffer if dst (or
// the table's maxPayload) was too small, with the truncated copy made.
func (t *Transactions) Wait(ctx context.Context, id uint64, dst []byte) (int, error) {
	t.mu.Lock()
	s := t.slot(id)
	t.mu.Unlock()
	if s == nil {
		return 0, ErrUnknownTransaction
	}
	select {
	case <-s.done:
	case <-ctx.Done():
		t.mu.Lock()
		defer t.mu.Unlock()
		if s.state == txDone { // completed meanwhile; its wake-up is left in done
			return t.finish(s, id, dst)
		}
		t.release(s, uint32(id))
		return 0, ctx.Err()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.finish(s, id, dst)
}

func (t *Transactions) finish(s *txSlot, id uint64, dst []byte) (int, error) {
	n := s.n
	copy(dst, s.buf[:min(n, t.maxPayload)])
	t.release(s, uint32(id))
	if n > len(dst) || n > t.maxPayload {
		return n, io.ErrShortBuffer
	}
	return n, nil
}

func (t *Transactions) release(s *txSlot, idx uint32) {
	s.state = txFree
	t.free = append(t.free, idx)
}

// Cancel frees id's slot without waiting (e.g. the request could not be
// sent). A later completion for it is rejected.
func (t *Transactions) Cancel(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.slot(id); s != nil {
		t.release(s, uint32(id))
	}
}

// Outstanding returns the number of slots in use.
func (t *Transactions) Outstanding() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.slots) - len(t.free)
}

// Unknown returns how many completions named an unknown or stale id.
func (t *Transactions) Unknown() uint64 { return t.unknown.Load() }
