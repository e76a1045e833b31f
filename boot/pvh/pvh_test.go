package pvh

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

type physMem map[uint64][]byte

func (m physMem) ReadPhys(addr uint64, dst []byte) error {
	for base, b := range m {
		if addr >= base && addr+uint64(len(dst)) <= base+uint64(len(b)) {
			copy(dst, b[addr-base:])
			return nil
		}
	}
	return fmt.Errorf("unmapped %#x+%d", addr, len(dst))
}

// startInfo builds the bytes a loader writes, field by field at the offsets
// of Xen's start_info.h (not with this package's constants).
func startInfo(version uint32, cmdline, rsdp, memmap uint64, entries uint32) []byte {
	b := make([]byte, 56)
	binary.LittleEndian.PutUint32(b[0:], 0x336ec578)
	binary.LittleEndian.PutUint32(b[4:], version)
	binary.LittleEndian.PutUint64(b[24:], cmdline)
	binary.LittleEndian.PutUint64(b[32:], rsdp)
	binary.LittleEndian.PutUint64(b[40:], memmap)
	binary.LittleEndian.PutUint32(b[48:], entries)
	return b
}

func entry(addr, size uint64, typ uint32) []byte {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint64(b[0:], addr)
	binary.LittleEndian.PutUint64(b[8:], size)
	binary.LittleEndian.PutUint32(b[16:], typ)
	return b
}

// qemuMap is the E820 map SeaBIOS reports for -m 512.
func qemuMap() []byte {
	var m []byte
	m = append(m, entry(0, 0x9fc00, 1)...)
	m = append(m, entry(0x9fc00, 0x400, 2)...)
	m = append(m, entry(0xf0000, 0x10000, 2)...)
	m = append(m, entry(0x100000, 0x1fee0000, 1)...)
	m = append(m, entry(0x1ffe0000, 0x20000, 2)...)
	m = append(m, entry(0xfffc0000, 0x40000, 2)...)
	return m
}

func TestParse(t *testing.T) {
	mem := physMem{
		0x6000: startInfo(1, 0x7000, 0xf59d0, 0x8000, 6),
		0x7000: append([]byte("console=ttyS0"), 0),
		0x8000: qemuMap(),
	}
	si, err := Parse(mem, 0x6000)
	if err != nil {
		t.Fatal(err)
	}
	if si.Cmdline != "console=ttyS0" || si.RSDP != 0xf59d0 || len(si.Memory) != 6 {
		t.Fatalf("start info = %+v", si)
	}
	u := Usable(si.Memory)
	want := []Region{{0, 0x9f000, 1}, {0x100000, 0x1fee0000, 1}}
	if fmt.Sprint(u) != fmt.Sprint(want) {
		t.Fatalf("usable = %x, want %x", u, want)
	}
	// A gohv kernel loaded at 0x10000000 with 16 MiB of image: the DMA
	// region must land in RAM above it, not at a constant address.
	u = Exclude(Exclude(u, 0, 1<<20), 0x10000000, 0x11000000)
	at, err := Place(u, 64<<20, 1<<21, 0)
	if err != nil {
		t.Fatal(err)
	}
	if at != 0x1be00000 || at+64<<20 > 0x1ffe0000 {
		t.Fatalf("DMA at %#x", at)
	}
	if _, err := Place(u, 1<<30, 4096, 0); !errors.Is(err, ErrNoRoom) {
		t.Fatalf("1 GiB in 512 MiB: %v", err)
	}
}

func TestBadStartInfo(t *testing.T) {
	for _, tc := range []struct {
		name string
		mem  physMem
	}{
		{"bad magic", physMem{0x6000: make([]byte, 56)}},
		{"too many entries", physMem{0x6000: startInfo(1, 0, 0, 0x8000, 5000)}},
		{"entries at zero", physMem{0x6000: startInfo(1, 0, 0, 0, 3)}},
		{"wrapping entry", physMem{0x6000: startInfo(1, 0, 0, 0x8000, 1), 0x8000: entry(^uint64(0)-10, 100, 1)}},
		{"unterminated cmdline", physMem{0x6000: startInfo(1, 0x7000, 0, 0, 0), 0x7000: make([]byte, 5000)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.mem[0x7000] = append(tc.mem[0x7000], []byte{}...)
			if tc.name == "unterminated cmdline" {
				for i := range tc.mem[0x7000] {
					tc.mem[0x7000][i] = 'a'
				}
			}
			if _, err := Parse(tc.mem, 0x6000); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestOverlappingReservedWins(t *testing.T) {
	regions := []Region{{0x100000, 0x1000000, TypeRAM}, {0x800000, 0x1000, TypeReserved}, {0x800800, 0x2000, TypeRAM}}
	u := Usable(regions)
	for _, r := range u {
		if r.Addr < 0x801000 && r.End() > 0x800000 {
			t.Fatalf("reserved page handed out: %x", u)
		}
	}
	if Total(u) != 0x1000000-0x1000 {
		t.Fatalf("total %#x", Total(u))
	}
}

func FuzzParseMemmap(f *testing.F) {
	f.Add(qemuMap())
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := ParseMemmap(raw)
		if err != nil {
			return
		}
		u := Usable(r)
		for i, x := range u {
			if x.Size == 0 || x.Addr%4096 != 0 || (i > 0 && x.Addr < u[i-1].End()) {
				t.Fatalf("bad usable list %x", u)
			}
		}
		if at, err := Place(u, 8192, 4096, 0); err == nil && at%4096 != 0 {
			t.Fatalf("unaligned placement %#x", at)
		}
	})
}
