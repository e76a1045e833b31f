package boot

import (
	"testing"

	"github.com/gohv/gohv/boot/pvh"
)

const (
	imgStart = 0x10010000 // -T 0x10010000
	imgEnd   = 0x10800000
)

func memmap(t testing.TB, rs ...pvh.Region) *MemMap {
	t.Helper()
	var mm MemMap
	if e := mm.Decode(e820(rs...)); e != BootOK {
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

func TestPlanLayout(t *testing.T) {
	cases := []struct {
		name    string
		m       []pvh.Region
		want    BootError
		winEnd  uint64
		dmaSize uint64
	}{
		// 0x3ffe0000 rounded down to a page; avail/8 ≈ 95 MiB → 94 MiB
		// after 2 MiB alignment, then the start is aligned down too.
		{"qemu 1G", mapQEMU1G, BootOK, 0x3ffe0000, 0x3ffe0000 - 0x3a000000},
		// RAM to 0xF0000000 but the ACPI table at 0x3f000000 cuts the
		// window: the part below the image cannot grow past it.
		{"hyper-v 6G", mapHV6G, BootOK, 0x3f000000, 92 * mib},
		{"ovmf 512M", mapOVMF, BootOK, 0x1f000000, 28 * mib},
		{"256M: kernel above RAM", []pvh.Region{ram(0x100000, 0x10000000)}, ErrKernelNotInRAM, 0, 0},
		{"300M: no room", []pvh.Region{ram(0x100000, 300*mib)}, ErrRAMTooSmall, 0, 0},
		{"reserved over image", []pvh.Region{ram(0x100000, 0x40000000), resv(0x10200000, 0x10300000)}, ErrKernelNotInRAM, 0, 0},
		{"huge window capped", []pvh.Region{ram(0x100000, 0xf0000000)}, BootOK, 0xf0000000, 256 * mib},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mm := memmap(t, c.m...)
			l, e := PlanLayout(mm, DefaultLayoutConfig(imgStart, imgEnd))
			if e != c.want {
				t.Fatalf("PlanLayout: %v, want %v (%+v)", e, c.want, l)
			}
			if e != BootOK {
				return
			}
			if l.WindowEnd != c.winEnd || l.DMASize != c.dmaSize {
				t.Errorf("window end %#x DMA size %#x, want %#x %#x", l.WindowEnd, l.DMASize, c.winEnd, c.dmaSize)
			}
			// Cross-check against pvh's own (allocating) planner.
			usable := pvh.Usable(mm.Entries())
			if !inOneRegion(usable, l.RamStart, l.RamStart+l.RamSize) {
				t.Errorf("runtime range [%#x,+%#x) not in usable RAM %v", l.RamStart, l.RamSize, usable)
			}
			if !inOneRegion(usable, l.DMAStart, l.DMAStart+l.DMASize) {
				t.Errorf("DMA [%#x,+%#x) not in usable RAM %v", l.DMAStart, l.DMASize, usable)
			}
			if l.RamStart != 0x10000000 || l.RamStart+l.RamSize != l.DMAStart || l.DMAStart%dmaAlign != 0 {
				t.Errorf("layout %+v", l)
			}
			if heap := l.DMAStart - imgEnd; heap != l.Heap || heap < 32*mib+mib {
				t.Errorf("heap %d MiB", heap>>20)
			}
			// The DMA region is what pvh.Place would pick for that size
			// (the highest fit) in the window once the image is excluded.
			var window []pvh.Region
			for _, r := range usable {
				lo, hi := max(r.Addr, l.WindowStart), min(r.End(), l.WindowEnd)
				if lo < hi {
					window = append(window, pvh.Region{Addr: lo, Size: hi - lo, Type: pvh.TypeRAM})
				}
			}
			at, err := pvh.Place(pvh.Exclude(window, l.RamStart, imgEnd), l.DMASize, dmaAlign, 4*gib)
			if err != nil || at != l.DMAStart {
				t.Errorf("pvh.Place = %#x, %v; PlanLayout DMA at %#x", at, err, l.DMAStart)
			}
		})
	}
}

func FuzzPlanLayout(f *testing.F) {
	f.Add(e820(mapQEMU1G...), uint64(imgStart), uint64(0x800000))
	f.Add(e820(mapHV6G...), uint64(imgStart), uint64(0x10000))
	f.Fuzz(func(t *testing.T, raw []byte, start, size uint64) {
		var mm MemMap
		if mm.Decode(raw) != BootOK {
			return
		}
		end := start + size
		if end < start {
			return
		}
		c := DefaultLayoutConfig(start, end)
		l, e := PlanLayout(&mm, c)
		if e != BootOK {
			return
		}
		usable := pvh.Usable(mm.Entries())
		if l.DMASize == 0 || l.DMAStart < end || !inOneRegion(usable, l.DMAStart, l.DMAStart+l.DMASize) {
			t.Fatalf("bad DMA in %+v for map %v", l, mm.Entries())
		}
		if l.RamStart > start || l.RamStart+l.RamSize != l.DMAStart || l.DMAStart+l.DMASize > 4*gib {
			t.Fatalf("bad layout %+v", l)
		}
	})
}
