package netvsc

import (
	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/hv/dma"
)

// Bounce buffers: a dma.Pool of host-visible, physically contiguous
// buffers a large frame is copied into when its own memory is not
// host-visible (hv.PhysTranslator says no). Allocated once at Open.
const (
	bounceHeadroom = 256 // RNDIS header and per-packet info before the frame
	bounceSize     = 64<<10 + hv.PageSize
)

type bouncePool struct{ pool *dma.Pool }

func (b *bouncePool) alloc(mem hv.Memory, count, size int) error {
	p, err := dma.NewPool(mem, size, count)
	if err != nil {
		return err
	}
	b.pool = p
	return nil
}

func (b *bouncePool) get() *dma.Buffer {
	if b.pool == nil {
		return nil
	}
	buf, ok := b.pool.TryGet()
	if !ok {
		return nil
	}
	return buf
}

func (b *bouncePool) put(buf *dma.Buffer) { b.pool.Put(buf) }

// close frees the pool once every buffer is back (the channels are closed
// and teardown gave back those of sends never completed).
func (b *bouncePool) close() error {
	if b.pool == nil {
		return nil
	}
	return b.pool.Close()
}
