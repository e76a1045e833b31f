package boot

import (
	"testing"

	"github.com/gohv/gohv/boot/pvh"
)

// Entry encodings against Intel SDM Vol. 3A tables 4-15..4-19: P bit 0,
// R/W bit 1, PWT bit 3, PCD bit 4, PS bit 7, address in bits 51:12.
func TestEntryEncodings(t *testing.T) {
	cases := []struct {
		name string
		got  uint64
		want uint64
	}{
		{"table", tableEntry(0x1234_5000), 0x1234_5003},
		{"table drops low bits", tableEntry(0x1234_5fff), 0x1234_5003},
		{"2M cached", largePageEntry(0x40_0000, false), 0x40_0083},
		{"2M uncached", largePageEntry(0xfee0_0000, true), 0xfee0_009b},
		{"1G cached above 4G", largePageEntry(5<<30, false), 0x1_4000_0083},
		{"4K page", pageEntry(0x1000), 0x1003},
		{"address bits 51:12 only", pageEntry(1<<63 | 1<<52 | 0x2000), 0x2003},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s: %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

func TestPlanPages(t *testing.T) {
	t.Run("qemu 1G", func(t *testing.T) {
		p := planPages(memmap(t, mapQEMU1G...), false, 8)
		if p.NHigh != 0 || p.Truncated || p.End != 4*gib {
			t.Errorf("plan %+v", p)
		}
		for i := 0; i < 512; i++ {
			if p.Cached(i) {
				t.Fatalf("2 MiB page %d above 3 GiB cached, but no RAM is there", i)
			}
		}
	})
	t.Run("hyper-v 6G, 2M pages", func(t *testing.T) {
		p := planPages(memmap(t, mapHV6G...), false, 8)
		// RAM to 0xF0000000: pages 0..383 above 3 GiB are RAM.
		for i := 0; i < 512; i++ {
			if want := i < 384; p.Cached(i) != want {
				t.Fatalf("page %d (%#x) cached=%v", i, uncachedBase+uint64(i)*2*mib, !want)
			}
		}
		// RAM 0x1_0000_0000..0x1_9000_0000 touches GiB slots 4, 5 and 6.
		if p.NHigh != 3 || p.High[0] != 4 || p.High[2] != 6 || p.End != 7*gib || p.Truncated {
			t.Errorf("plan high %v (%d) end %#x truncated %v", p.High[:p.NHigh], p.NHigh, p.End, p.Truncated)
		}
	})
	t.Run("too few tables", func(t *testing.T) {
		p := planPages(memmap(t, mapHV6G...), false, 2)
		if p.NHigh != 2 || !p.Truncated || p.End != 6*gib {
			t.Errorf("plan %v truncated %v end %#x", p.High[:p.NHigh], p.Truncated, p.End)
		}
		if h := planPages(memmap(t, mapHV6G...), true, 0); h.NHigh != 3 || h.Truncated {
			t.Errorf("1 GiB pages need no tables: %+v", h.High[:h.NHigh])
		}
	})
	t.Run("reserved wins and partial pages stay uncached", func(t *testing.T) {
		p := planPages(memmap(t, ram(0x100000, 0xd0000000), resv(0xc0100000, 0xc0101000), ram(0xd0000000, 0xd0100000)), false, 0)
		if p.Cached(0) {
			t.Error("page with a reserved hole cached")
		}
		if !p.Cached(1) || !p.Cached(127) {
			t.Error("RAM pages uncached")
		}
		if p.Cached(128) {
			t.Error("page only 1 MiB RAM cached")
		}
	})
	t.Run("RAM past 512 GiB", func(t *testing.T) {
		p := planPages(memmap(t, ram(600*gib, 601*gib)), true, 0)
		if !p.Truncated || p.NHigh != 0 {
			t.Errorf("plan %+v", p.High[:p.NHigh])
		}
	})
	if (&pagePlan{}).Cached(-1) || (&pagePlan{}).Cached(512) {
		t.Error("Cached out of range")
	}
	_ = pvh.TypeRAM
}

func TestHighDMA(t *testing.T) {
	for _, c := range []struct {
		name        string
		m           []pvh.Region
		huge        bool
		start, size uint64
	}{
		{"no RAM above 4 GiB", mapQEMU1G, true, 0, 0},
		// Hyper-V 6 GiB: [4 GiB, 6.25 GiB) above the hole.
		{"hyper-v 6G", mapHV6G, true, 4 * gib, 0x190000000 - 4*gib},
		// Without 1 GiB pages only what the table pool maps counts.
		{"pool-limited", []pvh.Region{ram(0x100000, 0x80000000), ram(4*gib, 40*gib)}, false, 4 * gib, 32 * gib},
		// An entry with a reserved hole in it is passed over (conservative).
		{"hole", []pvh.Region{ram(4*gib, 8*gib), resv(5*gib, 5*gib+4096)}, true, 0, 0},
		{"two entries", []pvh.Region{ram(4*gib, 5*gib), ram(6*gib+3*mib, 9*gib)}, true, 6*gib + 4*mib, 3*gib - 4*mib},
	} {
		t.Run(c.name, func(t *testing.T) {
			mm := memmap(t, c.m...)
			p := planPages(mm, c.huge, highPDPool)
			start, size := highDMA(mm, &p)
			if start != c.start || size != c.size {
				t.Errorf("highDMA = [%#x,+%#x), want [%#x,+%#x)", start, size, c.start, c.size)
			}
			if size != 0 && (start%(2*mib) != 0 || size%(2*mib) != 0 || start+size > p.End) {
				t.Errorf("range [%#x,+%#x) unaligned or past the mapped end %#x", start, size, p.End)
			}
		})
	}
}
