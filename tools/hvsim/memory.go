package hvsim

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gohv/gohv/hv"
)

// ErrOutOfMemory is returned by AllocPages when the arena has no run of the
// requested length.
var ErrOutOfMemory = errors.New("hvsim: guest arena exhausted")

// arena is the guest-physical memory of the partition. It starts at a
// non-zero PFN so that a guest which passes PFN 0 is caught.
type arena struct {
	mem     []byte // 8-byte aligned: backed by a []uint64
	basePFN uint64
	pages   int

	mu   sync.Mutex
	used []bool
}

func newArena(bytes int, basePFN uint64) *arena {
	pages := bytes / hv.PageSize
	words := make([]uint64, pages*hv.PageSize/8)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)
	return &arena{mem: mem, basePFN: basePFN, pages: pages, used: make([]bool, pages)}
}

// AllocPages implements hv.Memory with a first-fit search.
func (a *arena) AllocPages(n int) (hv.Pages, error) {
	if n <= 0 {
		return hv.Pages{}, fmt.Errorf("hvsim: AllocPages(%d): %w", n, hv.StatusInvalidParameter)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	run := 0
	for i := 0; i < a.pages; i++ {
		if a.used[i] {
			run = 0
			continue
		}
		run++
		if run == n {
			first := i - n + 1
			for j := first; j <= i; j++ {
				a.used[j] = true
			}
			mem := a.mem[first*hv.PageSize : (i+1)*hv.PageSize : (i+1)*hv.PageSize]
			clear(mem)
			return hv.Pages{Mem: mem, PFN: a.basePFN + uint64(first)}, nil
		}
	}
	return hv.Pages{}, fmt.Errorf("hvsim: AllocPages(%d): %w", n, ErrOutOfMemory)
}

// FreePages implements hv.Memory. Freeing pages that were not allocated is a
// guest bug and is ignored here (the caller records nothing: the seam has no
// error return).
func (a *arena) FreePages(p hv.Pages) {
	a.mu.Lock()
	defer a.mu.Unlock()
	first := int(p.PFN - a.basePFN)
	for i := 0; i < p.Count(); i++ {
		if first+i >= 0 && first+i < a.pages {
			a.used[first+i] = false
		}
	}
}

// PhysAddr implements hv.PhysTranslator: b is host-visible and contiguous
// exactly when it lies inside the arena.
func (a *arena) PhysAddr(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(a.mem)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if p < base || p-base > uintptr(len(a.mem)) || uintptr(len(a.mem))-(p-base) < uintptr(len(b)) {
		return 0, false
	}
	return a.basePFN<<hv.PageShift + uint64(p-base), true
}

// contains reports whether pfn lies inside the arena.
func (a *arena) contains(pfn uint64) bool {
	return pfn >= a.basePFN && pfn < a.basePFN+uint64(a.pages)
}

// page returns the 4 KiB page at pfn, or nil when pfn is outside the arena.
func (a *arena) page(pfn uint64) []byte {
	if !a.contains(pfn) {
		return nil
	}
	off := int(pfn-a.basePFN) * hv.PageSize
	return a.mem[off : off+hv.PageSize : off+hv.PageSize]
}

// Shared-memory accessors: the guest touches these words concurrently, so
// every access is atomic (style: race detector stays clean).

func load32(b []byte, off int) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&b[off])))
}

func store32(b []byte, off int, v uint32) {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&b[off])), v)
}

func or32(b []byte, off int, v uint32) {
	atomic.OrUint32((*uint32)(unsafe.Pointer(&b[off])), v)
}

func or64(b []byte, off int, v uint64) {
	atomic.OrUint64((*uint64)(unsafe.Pointer(&b[off])), v)
}

func and64(b []byte, off int, v uint64) uint64 {
	return atomic.AndUint64((*uint64)(unsafe.Pointer(&b[off])), v)
}
