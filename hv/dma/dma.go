// Package dma is host-visible I/O memory for drivers: a Pool of
// equal-sized, page-aligned, physically contiguous buffers taken from an
// hv.Memory once, at set-up, and handed out and back without allocating,
// for data that cannot go GPA-direct from the caller's own buffer (see
// hv.PhysTranslator) and must be bounced.
//
// Ownership: a Buffer has one owner at a time. Get or TryGet makes the
// caller its owner; the owner may give it to the host (describe its pages
// in a GPA-direct packet or a GPADL) and must have it back (the host's
// completion arrived, or the GPADL was torn down) before Put. Put gives it
// back to the pool; the Buffer must not be touched afterwards.
//
// dma owns only the pages it allocated. It creates no GPADL and talks to
// no host; it imports only hv.
package dma

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/gohv/gohv/hv"
)

// Errors.
var (
	// ErrClosed: Get on a closed pool.
	ErrClosed = errors.New("dma: pool closed")
	// ErrInUse: Close while buffers are still out.
	ErrInUse = errors.New("dma: buffers still in use")
	// ErrBadSize: NewPool with a size or count that is not positive.
	ErrBadSize = errors.New("dma: bad buffer size or count")
)

// Buffer is one buffer of a Pool.
type Buffer struct {
	pool  *Pool
	pages hv.Pages
	size  int
	index int
	out   bool // under pool.mu: owned by a caller
}

// Bytes returns the buffer's memory: the pool's buffer size, starting
// page-aligned.
func (b *Buffer) Bytes() []byte { return b.pages.Mem[:b.size:b.size] }

// PFN returns the page frame number of page i of the buffer.
func (b *Buffer) PFN(i int) uint64 { return b.pages.PFNAt(i) }

// Pages returns the buffer's whole pages (the last may extend beyond
// Bytes).
func (b *Buffer) Pages() hv.Pages { return b.pages }

// Index returns the buffer's number in its pool, 0 ≤ Index < count: a
// stable key, e.g. for the transaction id of the I/O that uses it.
func (b *Buffer) Index() int { return b.index }

// Pool is a fixed set of Buffers. Its methods are safe for concurrent use;
// Get, TryGet and Put do not allocate.
type Pool struct {
	mem  hv.Memory
	bufs []Buffer
	free chan *Buffer // capacity len(bufs): Put never blocks

	mu     sync.Mutex // guards the fields below and Buffer.out
	out    int
	closed bool
	done   chan struct{} // closed by Close: wakes Get
}

// NewPool allocates count buffers of bufSize bytes, each rounded up to
// whole pages and physically contiguous, from mem.
func NewPool(mem hv.Memory, bufSize, count int) (*Pool, error) {
	if bufSize <= 0 || count <= 0 || bufSize > 1<<30 {
		return nil, fmt.Errorf("%w: %d buffers of %d bytes", ErrBadSize, count, bufSize)
	}
	pages := (bufSize + hv.PageSize - 1) / hv.PageSize
	p := &Pool{mem: mem, bufs: make([]Buffer, count), free: make(chan *Buffer, count), done: make(chan struct{})}
	for i := range p.bufs {
		pg, err := mem.AllocPages(pages)
		if err != nil {
			for _, b := range p.bufs[:i] {
				mem.FreePages(b.pages)
			}
			return nil, fmt.Errorf("dma: buffer %d of %d (%d pages): %w", i, count, pages, err)
		}
		p.bufs[i] = Buffer{pool: p, pages: pg, size: bufSize, index: i}
		p.free <- &p.bufs[i]
	}
	return p, nil
}

// Len returns the number of buffers of the pool.
func (p *Pool) Len() int { return len(p.bufs) }

// Get returns a free buffer, waiting until one is Put back, ctx ends
// (ctx.Err()) or the pool is closed (ErrClosed).
func (p *Pool) Get(ctx context.Context) (*Buffer, error) {
	if b, ok := p.TryGet(); ok {
		return b, nil
	}
	for {
		select {
		case b := <-p.free:
			if p.take(b) {
				return b, nil
			}
			return nil, ErrClosed
		case <-p.done:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// TryGet returns a free buffer, or false if none is free now or the pool
// is closed.
func (p *Pool) TryGet() (*Buffer, bool) {
	select {
	case b := <-p.free:
		if p.take(b) {
			return b, true
		}
	default:
	}
	return nil, false
}

// take hands b, just taken from the free list, to the caller unless the
// pool is closed, in which case b goes back.
func (p *Pool) take(b *Buffer) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		p.free <- b
		return false
	}
	b.out = true
	p.out++
	return true
}

// Put gives b back to the pool. b must come from this pool's Get or TryGet
// and not have been Put since: anything else is a programming error and
// panics (it would hand one buffer to two owners).
func (p *Pool) Put(b *Buffer) {
	if b == nil || b.pool != p {
		panic("dma: Put of a buffer from another pool")
	}
	p.mu.Lock()
	if !b.out {
		p.mu.Unlock()
		panic("dma: Put of a buffer that is not out")
	}
	b.out = false
	p.out--
	p.mu.Unlock()
	p.free <- b
}

// Close frees the pool's pages once every buffer is back: the caller
// must be sure the host no longer uses them (completions in, GPADLs torn
// down). With buffers still out it returns ErrInUse and frees nothing;
// Get fails from the first Close on. A second successful Close is a no-op.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		close(p.done)
	}
	if p.out != 0 {
		return fmt.Errorf("%w: %d of %d", ErrInUse, p.out, len(p.bufs))
	}
	if p.mem == nil {
		return nil
	}
	for i := range p.bufs {
		p.mem.FreePages(p.bufs[i].pages)
	}
	p.mem = nil
	return nil
}
