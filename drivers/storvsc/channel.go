package storvsc

import (
	"fmt"

	"github.com/gohv/gohv/hv"
)

// bounceBuffer is one page-aligned, physically contiguous I/O buffer the
// host may see. It mirrors dma.Buffer (BRIEF, package hv/dma).
type bounceBuffer struct {
	pages hv.Pages
}

// Bytes returns the buffer's memory.
func (b *bounceBuffer) Bytes() []byte { return b.pages.Mem }

// PFN returns the page frame number of page i.
func (b *bounceBuffer) PFN(i int) uint64 { return b.pages.PFNAt(i) }

// bouncePool is the driver's stand-in for dma.Pool (BRIEF, hv/dma) until
// that package is merged: count buffers of bufSize bytes allocated once
// from mem. The driver takes every buffer at set-up (one per request
// slot) and returns them at Close, so nothing is allocated per I/O.
type bouncePool struct {
	mem  hv.Memory
	free []*bounceBuffer
	all  []*bounceBuffer
}

func newBouncePool(mem hv.Memory, bufSize, count int) (*bouncePool, error) {
	if bufSize <= 0 || bufSize%hv.PageSize != 0 || count < 0 {
		return nil, fmt.Errorf("storvsc: bad bounce pool geometry %d × %d", count, bufSize)
	}
	p := &bouncePool{mem: mem}
	for range count {
		pg, err := mem.AllocPages(bufSize / hv.PageSize)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("storvsc: bounce buffers: %w", err)
		}
		b := &bounceBuffer{pages: pg}
		p.all = append(p.all, b)
		p.free = append(p.free, b)
	}
	return p, nil
}

// TryGet takes a buffer if one is free.
func (p *bouncePool) TryGet() (*bounceBuffer, bool) {
	if len(p.free) == 0 {
		return nil, false
	}
	b := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	return b, true
}

// Put returns a buffer.
func (p *bouncePool) Put(b *bounceBuffer) { p.free = append(p.free, b) }

// Close frees every buffer; the host must no longer use them.
func (p *bouncePool) Close() error {
	for _, b := range p.all {
		p.mem.FreePages(b.pages)
	}
	p.all, p.free = nil, nil
	return nil
}
