package boot

import "github.com/gohv/gohv/boot/pvh"

// RAM layout: where the Go runtime's memory and the DMA region go, decided
// from the real memory map before the runtime starts (allocation-free).
//
// TamaGo gives the runtime one contiguous range [RamStart, RamStart+RamSize)
// that holds the kernel image, the heap (growing up from the image end) and
// the boot stack (RamStackOffset below the top; the heap may grow up to the
// stack). The DMA region must lie outside that range (tamago's dma.Init
// refuses otherwise). The kernel is linked at 32 MiB (docs/boot.md, "Where
// the kernel lives"), so the RAM below it is normally free: the DMA region
// goes there, [DMA][image ... heap ... stack], and every byte above the
// image is heap. Only when the window has too little room below the image
// does the DMA region come from its top: [image ... heap ... stack][DMA].

const (
	mib = 1 << 20
	gib = 1 << 30

	// dmaAlign keeps the DMA region on 2 MiB boundaries (whole large pages).
	dmaAlign = 2 * mib
)

// layoutConfig are the fixed inputs of planLayout.
type layoutConfig struct {
	// ImageStart and ImageEnd bound the kernel image in memory (text to
	// the end of bss).
	ImageStart, ImageEnd uint64
	// RamStart is where the runtime's range begins (at or below
	// ImageStart: the linker's -T 0x02010000 -R 0x1000 puts text at
	// 0x02010000, and RamStart is the MiB below).
	RamStart uint64
	// Limit is the first address not identity-mapped; the window is cut
	// there (0: no limit).
	Limit uint64
	// StackOffset is tamago's RamStackOffset (the boot stack sits that far
	// below RamStart+RamSize).
	StackOffset uint64
	// MinHeap is the least heap the runtime must get.
	MinHeap uint64
	// DMAMin and DMAMax bound the DMA region; it gets 1/8 of the window
	// between them.
	DMAMin, DMAMax uint64
}

// defaultLayoutConfig returns the board's configuration for an image at
// [imageStart, imageEnd).
func defaultLayoutConfig(imageStart, imageEnd uint64) layoutConfig {
	return layoutConfig{
		ImageStart:  imageStart,
		ImageEnd:    imageEnd,
		RamStart:    imageStart &^ (mib - 1),
		Limit:       4 * gib,
		StackOffset: 1 * mib, // tamago amd64 RamStackOffset
		MinHeap:     16 * mib,
		DMAMin:      8 * mib,
		DMAMax:      256 * mib,
	}
}

// MinRAM is the least RAM, counted from address 0, with which planLayout
// succeeds for c when nothing but RAM lies above 1 MiB: the room below the
// image for the DMA region, the image, and the least heap and stack.
func (c layoutConfig) MinRAM() uint64 {
	return c.ImageEnd + c.MinHeap + c.StackOffset
}

// Layout is the decision.
type Layout struct {
	// WindowStart and WindowEnd bound the usable RAM around the image.
	WindowStart, WindowEnd uint64
	RamStart, RamSize      uint64
	DMAStart, DMASize      uint64
	// Heap is the room between the image end and the DMA region (heap and
	// boot stack).
	Heap uint64
}

// planLayout finds the usable RAM window holding the kernel image (RAM
// entries merged, every non-RAM entry cut out: reserved wins, as in
// pvh.Usable) and splits it into runtime memory and, at its top, the DMA
// region. It allocates nothing.
func planLayout(m *memMap, c layoutConfig) (Layout, bootError) {
	const page = 4096
	entries := m.E[:m.N]
	lo, hi := uint64(0), uint64(0)
	found := false
	for _, r := range entries {
		if r.Type == pvh.TypeRAM && r.Addr <= c.ImageStart && c.ImageEnd <= r.End() {
			lo, hi, found = r.Addr, r.End(), true
			break
		}
	}
	if !found {
		// The image may straddle two touching RAM entries: grow from the
		// entry holding its start.
		for _, r := range entries {
			if r.Type == pvh.TypeRAM && r.Addr <= c.ImageStart && c.ImageStart < r.End() {
				lo, hi, found = r.Addr, r.End(), true
				break
			}
		}
	}
	if !found {
		return Layout{}, errKernelNotInRAM
	}
	// Merge touching or overlapping RAM entries into the window until it
	// stops growing (n is small; quadratic is fine).
	for grown := true; grown; {
		grown = false
		for _, r := range entries {
			if r.Type != pvh.TypeRAM {
				continue
			}
			if r.Addr <= hi && r.End() > hi {
				hi, grown = r.End(), true
			}
			if r.End() >= lo && r.Addr < lo {
				lo, grown = r.Addr, true
			}
		}
	}
	// Reserved wins: cut every non-RAM range out, keeping the side that
	// holds the image.
	for _, r := range entries {
		if r.Type == pvh.TypeRAM || r.End() <= lo || r.Addr >= hi {
			continue
		}
		if r.Addr < c.ImageEnd && r.End() > c.RamStart {
			return Layout{}, errKernelNotInRAM
		}
		if r.Addr >= c.ImageEnd {
			hi = min(hi, r.Addr)
		} else {
			lo = max(lo, r.End())
		}
	}
	lo = (lo + page - 1) &^ (page - 1)
	hi &^= page - 1
	if c.Limit != 0 && hi > c.Limit {
		hi = c.Limit
	}
	if lo > c.RamStart {
		return Layout{}, errKernelNotInRAM
	}
	if hi < c.ImageEnd {
		// The image starts in RAM but RAM ends inside it: the VM is
		// smaller than the kernel, which is a size problem, not a
		// placement one.
		return Layout{}, errRAMTooSmall
	}
	// Below the image: the highest DMAMax (at most) of [lo, RamStart).
	if below := c.RamStart &^ (dmaAlign - 1); below > lo {
		dmaLo := (lo + dmaAlign - 1) &^ (dmaAlign - 1)
		if below >= dmaLo+c.DMAMin {
			dmaStart := dmaLo
			if below-dmaLo > c.DMAMax {
				dmaStart = below - c.DMAMax
			}
			if hi-c.ImageEnd < c.MinHeap+c.StackOffset {
				return Layout{}, errRAMTooSmall
			}
			return Layout{
				WindowStart: lo,
				WindowEnd:   hi,
				RamStart:    c.RamStart,
				RamSize:     hi - c.RamStart,
				DMAStart:    dmaStart,
				DMASize:     below - dmaStart,
				Heap:        hi - c.ImageEnd,
			}, bootOK
		}
	}
	avail := hi - c.ImageEnd
	dma := (avail / 8) &^ (dmaAlign - 1)
	if dma < c.DMAMin {
		dma = c.DMAMin
	}
	if dma > c.DMAMax {
		dma = c.DMAMax
	}
	dmaStart := (hi - dma) &^ (dmaAlign - 1)
	if hi < dma || dmaStart < c.ImageEnd || dmaStart-c.ImageEnd < c.MinHeap+c.StackOffset {
		return Layout{}, errRAMTooSmall
	}
	return Layout{
		WindowStart: lo,
		WindowEnd:   hi,
		RamStart:    c.RamStart,
		RamSize:     dmaStart - c.RamStart,
		DMAStart:    dmaStart,
		DMASize:     hi - dmaStart,
		Heap:        dmaStart - c.ImageEnd,
	}, bootOK
}
