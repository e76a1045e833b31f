package netvsc

import (
	"fmt"
	"sync"

	"github.com/gohv/gohv/hv"
)

// Bounce buffers: host-visible, physically contiguous buffers a large
// frame is copied into when its own memory is not host-visible. They are
// allocated once at Open from Config.Memory (until package hv/dma is
// merged, this is the NIC's own small pool) and never per packet.
const (
	bounceHeadroom = 256 // RNDIS header and per-packet info before the frame
	bounceSize     = 64<<10 + hv.PageSize
)

type bouncePool struct {
	mu    sync.Mutex
	bufs  []hv.Pages
	avail []int32 // stack of indices into bufs
}

func (b *bouncePool) alloc(mem hv.Memory, count, size int) error {
	b.bufs = make([]hv.Pages, 0, count)
	b.avail = make([]int32, 0, count)
	for i := range count {
		p, err := mem.AllocPages(size / hv.PageSize)
		if err != nil {
			return fmt.Errorf("netvsc: bounce buffer %d: %w", i, err)
		}
		b.bufs = append(b.bufs, p)
		b.avail = append(b.avail, int32(i))
	}
	return nil
}

func (b *bouncePool) get() int32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.avail) == 0 {
		return -1
	}
	i := b.avail[len(b.avail)-1]
	b.avail = b.avail[:len(b.avail)-1]
	return i
}

func (b *bouncePool) put(i int32) {
	b.mu.Lock()
	b.avail = append(b.avail, i)
	b.mu.Unlock()
}

// free returns the buffers to mem; the host no longer uses them once the
// channels are closed.
func (b *bouncePool) free(mem hv.Memory) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.bufs {
		mem.FreePages(p)
	}
	b.bufs, b.avail = nil, nil
}
