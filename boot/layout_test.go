package boot

import (
	"testing"

	"github.com/gohv/gohv/boot/pvh"
)

const (
	imgStart = 0x02010000 // -T 0x02010000 (Makefile TEXT_START)
	imgEnd   = 0x02800000
	ramStart = 0x02000000
)

func memmap(t testing.TB, rs ...pvh.Region) *memMap {
	t.Helper()
	var mm memMap
	if e := mm.Decode(e820(rs...)); e != bootOK {
		t.Fatal(e)
	}
	return &mm
}

// inOneRegion reports whether [a, b) lies inside one of the regions.
func inOneRegion(rs []pvh.Region, a, b uint64) bool {
	for _, r := range rs {
		if r.Addr <= a && b <= r.End() {
			return true
		}
	}
	return false
}

// covered reports whether the union of the regions covers [a, b).
func covered(rs []pvh.Region, a, b uint64) bool {
	for a < b {
		next := a
		for _, r := range rs {
			if r.Addr <= a && a < r.End() {
				next = max(next, r.End())
			}
		}
		if next == a {
			return false
		}
		a = next
	}
	return true
}

func TestPlanLayout(t *testing.T) {
	const below = 30 * mib // [2 MiB, 32 MiB): the DMA region under the image
	cases := []struct {
		name     string
		m        []pvh.Region
		want     bootError
		winEnd   uint64
		dmaStart uint64
		dmaSize  uint64
	}{
		{"qemu 1G", mapQEMU1G, bootOK, 0x3ffe0000, 2 * mib, below},
		// RAM to 0xF0000000 but the ACPI table at 0x3f000000 cuts the
		// window: the part above the image cannot grow past it.
		{"hyper-v 6G", mapHV6G, bootOK, 0x3f000000, 2 * mib, below},
		{"ovmf 512M", mapOVMF, bootOK, 0x1f000000, 2 * mib, below},
		// QEMU -m 64 (E820 RAM to 64 MiB less 128 KiB): 23.9 MiB of heap.
		{"64M", []pvh.Region{ram(0x100000, 0x3fe0000)}, bootOK, 0x3fe0000, 2 * mib, below},
		// OVMF keeps ACPI NVS at 8–9 MiB: the DMA region starts above it.
		{"ovmf NVS below", []pvh.Region{ram(0x100000, 0x806000), {Addr: 0x806000, Size: 0xfa000, Type: pvh.TypeACPINVS}, ram(0x900000, 0x8000000)},
			bootOK, 0x8000000, 10 * mib, 22 * mib},
		// No 8 MiB below the image: the DMA region comes from the top,
		// an eighth of the room above the image, 2 MiB aligned.
		{"nothing below", []pvh.Region{ram(0x1f00000, 0x40000000)}, bootOK, 0x40000000, 0x38600000, 0x7a00000},
		{"48M: no heap", []pvh.Region{ram(0x100000, 0x3000000)}, errRAMTooSmall, 0, 0, 0},
		{"32M: kernel above RAM", []pvh.Region{ram(0x100000, 0x2000000)}, errKernelNotInRAM, 0, 0, 0},
		{"36M: RAM ends inside the image", []pvh.Region{ram(0x100000, 0x2400000)}, errRAMTooSmall, 0, 0, 0},
		{"reserved over image", []pvh.Region{ram(0x100000, 0x40000000), resv(0x2200000, 0x2300000)}, errKernelNotInRAM, 0, 0, 0},
		{"window capped at 4 GiB", []pvh.Region{ram(0x100000, 0x120000000)}, bootOK, 4 * gib, 2 * mib, below},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mm := memmap(t, c.m...)
			l, e := planLayout(mm, defaultLayoutConfig(imgStart, imgEnd))
			if e != c.want {
				t.Fatalf("planLayout: %v, want %v (%+v)", e, c.want, l)
			}
			if e != bootOK {
				return
			}
			if l.WindowEnd != c.winEnd || l.DMAStart != c.dmaStart || l.DMASize != c.dmaSize {
				t.Errorf("window end %#x DMA [%#x,+%#x), want %#x [%#x,+%#x)", l.WindowEnd, l.DMAStart, l.DMASize, c.winEnd, c.dmaStart, c.dmaSize)
			}
			// Cross-check against pvh's own (allocating) planner.
			usable := pvh.Usable(mm.Entries())
			if !inOneRegion(usable, l.RamStart, l.RamStart+l.RamSize) {
				t.Errorf("runtime range [%#x,+%#x) not in usable RAM %v", l.RamStart, l.RamSize, usable)
			}
			if !inOneRegion(usable, l.DMAStart, l.DMAStart+l.DMASize) {
				t.Errorf("DMA [%#x,+%#x) not in usable RAM %v", l.DMAStart, l.DMASize, usable)
			}
			if l.RamStart != ramStart || l.DMAStart%dmaAlign != 0 || l.DMASize%dmaAlign != 0 {
				t.Errorf("layout %+v", l)
			}
			if l.DMAStart < l.RamStart+l.RamSize && l.RamStart < l.DMAStart+l.DMASize {
				t.Errorf("DMA [%#x,+%#x) overlaps the runtime range [%#x,+%#x)", l.DMAStart, l.DMASize, l.RamStart, l.RamSize)
			}
			if heap := l.RamStart + l.RamSize - imgEnd; heap != l.Heap || heap < 16*mib+mib {
				t.Errorf("heap %d MiB (layout says %d)", heap>>20, l.Heap>>20)
			}
		})
	}
}

func TestMinRAM(t *testing.T) {
	c := defaultLayoutConfig(imgStart, imgEnd)
	floor := c.MinRAM()
	if _, e := planLayout(memmap(t, ram(0, 0x9fc00), ram(0x100000, floor)), c); e != bootOK {
		t.Errorf("RAM to the floor %#x: %v", floor, e)
	}
	if _, e := planLayout(memmap(t, ram(0, 0x9fc00), ram(0x100000, floor-4096)), c); e != errRAMTooSmall {
		t.Errorf("a page below the floor: %v, want %v", e, errRAMTooSmall)
	}
}

func FuzzPlanLayout(f *testing.F) {
	f.Add(e820(mapQEMU1G...), uint64(imgStart), uint64(0x800000))
	f.Add(e820(mapHV6G...), uint64(imgStart), uint64(0x10000))
	f.Fuzz(func(t *testing.T, raw []byte, start, size uint64) {
		var mm memMap
		if mm.Decode(raw) != bootOK {
			return
		}
		end := start + size
		if end < start {
			return
		}
		c := defaultLayoutConfig(start, end)
		l, e := planLayout(&mm, c)
		if e != bootOK {
			return
		}
		// pvh.Usable rounds each entry to pages before merging; the board
		// merges touching entries first, so check against the raw map:
		// covered by RAM entries, touching no other entry.
		var ramOnly []pvh.Region
		for _, r := range mm.Entries() {
			if r.Type == pvh.TypeRAM {
				ramOnly = append(ramOnly, r)
			} else if r.Addr < l.WindowEnd && l.WindowStart < r.End() {
				t.Fatalf("window [%#x,%#x) meets non-RAM entry %+v", l.WindowStart, l.WindowEnd, r)
			}
		}
		if l.DMASize == 0 || !covered(ramOnly, l.DMAStart, l.DMAStart+l.DMASize) || !covered(ramOnly, l.RamStart, l.RamStart+l.RamSize) {
			t.Fatalf("bad DMA in %+v for map %v", l, mm.Entries())
		}
		if l.DMAStart < l.RamStart+l.RamSize && l.RamStart < l.DMAStart+l.DMASize {
			t.Fatalf("DMA overlaps the runtime range: %+v", l)
		}
		if l.RamStart > start || l.RamStart+l.RamSize < end || l.DMAStart+l.DMASize > 4*gib {
			t.Fatalf("bad layout %+v", l)
		}
	})
}
