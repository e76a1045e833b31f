package boot

import "github.com/gohv/gohv/boot/pvh"

// Identity-map planning (Intel SDM Vol. 3A §4.5, 4-level paging).
//
// cpuinit cannot plan: it runs before anything but a few registers exist.
// It maps a fixed first window, [0, 4 GiB) with 2 MiB pages (the first
// 2 MiB with 4 KiB pages so that page 0 stays unmapped and nil
// dereferences fault), everything from 0xC0000000 up uncached. Before the
// runtime starts, the board applies a pagePlan computed here from the
// memory map: RAM that firmware put above 3 GiB becomes cached again, and
// RAM above 4 GiB is mapped (1 GiB pages when the CPU has them, else 2 MiB
// pages from a fixed pool of tables).

// Page-table entry bits.
const (
	ptePresent  = 1 << 0
	pteWrite    = 1 << 1
	ptePWT      = 1 << 3 // write-through
	ptePCD      = 1 << 4 // cache disable
	ptePageSize = 1 << 7 // PS: 2 MiB page in a PD, 1 GiB page in a PDPT
	pteAddrMask = 0x000F_FFFF_FFFF_F000

	// uncachedBase is the start of the MMIO window mapped uncached (LAPIC,
	// IOAPIC, VMBus MMIO, firmware) unless the memory map says it is RAM.
	uncachedBase = 3 * gib
	// lowMapEnd is the end of cpuinit's first window.
	lowMapEnd = 4 * gib
	// maxHighSlots is how many 1 GiB slots above 4 GiB PML4 entry 0's
	// PDPT can hold (entries 4..511).
	maxHighSlots = 512 - 4
)

// tableEntry returns a PML4/PDPT/PD entry pointing at the next-level table
// at addr (present, writable).
func tableEntry(addr uint64) uint64 { return addr&pteAddrMask | pteWrite | ptePresent }

// largePageEntry returns a PD entry mapping the 2 MiB page at addr, or a
// PDPT entry mapping the 1 GiB page at addr: present, writable, PS, and
// PCD|PWT (strong uncacheable with the default PAT) when uncached.
func largePageEntry(addr uint64, uncached bool) uint64 {
	e := addr&pteAddrMask | ptePageSize | pteWrite | ptePresent
	if uncached {
		e |= ptePCD | ptePWT
	}
	return e
}

// pageEntry returns a PT entry mapping the 4 KiB page at addr.
func pageEntry(addr uint64) uint64 { return addr&pteAddrMask | pteWrite | ptePresent }

// pagePlan is what the board changes in cpuinit's tables.
type pagePlan struct {
	// CachedAbove3G has bit i set when the 2 MiB page at 3 GiB + i×2 MiB
	// is entirely RAM: it is mapped cached instead of uncached.
	CachedAbove3G [8]uint64
	// High lists the 1 GiB slots (address >> 30, each ≥ 4) holding RAM,
	// ascending; NHigh of them are valid.
	High  [maxHighSlots]uint16
	NHigh int
	// Huge says High is mapped with 1 GiB pages; otherwise each slot takes
	// one page-directory table from the pool.
	Huge bool
	// Truncated is set when RAM lies beyond what could be mapped (past
	// 512 GiB, or more slots than tables); End is then the first address
	// not mapped.
	Truncated bool
	End       uint64
}

// Cached reports whether the 2 MiB page at 3 GiB + i×2 MiB is cached.
func (p *pagePlan) Cached(i int) bool {
	return i >= 0 && i < 512 && p.CachedAbove3G[i/64]&(1<<(i%64)) != 0
}

// planPages computes the plan for memory map m. huge says the CPU supports
// 1 GiB pages (CPUID 0x80000001 EDX bit 26); tables is the number of spare
// page-directory pages for 2 MiB mappings above 4 GiB. It allocates
// nothing.
func planPages(m *memMap, huge bool, tables int) pagePlan {
	p := pagePlan{Huge: huge, End: lowMapEnd}
	entries := m.E[:m.N]
	for i := 0; i < 512; i++ {
		a := uint64(uncachedBase) + uint64(i)*2*mib
		if allRAM(entries, a, a+2*mib) {
			p.CachedAbove3G[i/64] |= 1 << (i % 64)
		}
	}
	limit := maxHighSlots
	if !huge && tables < limit {
		limit = max(tables, 0)
	}
	for slot := uint64(4); slot < 512; slot++ {
		a := slot << 30
		if !anyRAM(entries, a, a+gib) {
			continue
		}
		if p.NHigh == limit {
			p.Truncated = true
			break
		}
		p.High[p.NHigh] = uint16(slot)
		p.NHigh++
		p.End = a + gib
	}
	for _, r := range entries {
		if r.Type == pvh.TypeRAM && r.End() > 512*gib {
			p.Truncated = true
		}
	}
	return p
}

// allRAM reports whether [a, b) is covered by RAM entries and touched by no
// other entry (reserved wins, as in pvh.Usable).
func allRAM(entries []pvh.Region, a, b uint64) bool {
	for _, r := range entries {
		if r.Type != pvh.TypeRAM && r.Addr < b && r.End() > a {
			return false
		}
	}
	pos := a
	for progress := true; progress && pos < b; {
		progress = false
		for _, r := range entries {
			if r.Type == pvh.TypeRAM && r.Addr <= pos && r.End() > pos {
				pos, progress = r.End(), true
			}
		}
	}
	return pos >= b
}

// anyRAM reports whether a RAM entry intersects [a, b).
func anyRAM(entries []pvh.Region, a, b uint64) bool {
	for _, r := range entries {
		if r.Type == pvh.TypeRAM && r.Addr < b && r.End() > a {
			return true
		}
	}
	return false
}

// highDMA picks the RAM the board gives to a second DMA region: the
// largest RAM entry above 4 GiB, within what the plan maps, free of any
// non-RAM entry, 2 MiB aligned. The Go heap cannot use it (TamaGo's runtime
// memory is one range around the kernel, below 4 GiB); host-visible buffers
// (rings, GPADL buffers, bounce buffers) can, since VMBus takes 64-bit page
// numbers. size is 0 when there is none. It allocates nothing.
func highDMA(m *memMap, p *pagePlan) (start, size uint64) {
	entries := m.E[:m.N]
	for _, r := range entries {
		if r.Type != pvh.TypeRAM {
			continue
		}
		a, b := max(r.Addr, lowMapEnd), min(r.End(), p.End)
		a = (a + 2*mib - 1) &^ (2*mib - 1)
		b &^= 2*mib - 1
		if b <= a || b-a <= size || !allRAM(entries, a, b) {
			continue
		}
		start, size = a, b-a
	}
	return start, size
}
