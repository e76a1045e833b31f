package boot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/gohv/gohv/boot/pvh"
)

// e820 packs entries the way a loader writes them (docs/boot.md, "One hand-off protocol: PVH": addr u64,
// size u64, type u32, reserved u32).
func e820(rs ...pvh.Region) []byte {
	b := make([]byte, 0, len(rs)*24)
	for _, r := range rs {
		b = binary.LittleEndian.AppendUint64(b, r.Addr)
		b = binary.LittleEndian.AppendUint64(b, r.Size)
		b = binary.LittleEndian.AppendUint32(b, r.Type)
		b = binary.LittleEndian.AppendUint32(b, 0)
	}
	return b
}

func ram(a, b uint64) pvh.Region  { return pvh.Region{Addr: a, Size: b - a, Type: pvh.TypeRAM} }
func resv(a, b uint64) pvh.Region { return pvh.Region{Addr: a, Size: b - a, Type: pvh.TypeReserved} }

// Maps shaped like the ones the three boot paths hand over.
var (
	// SeaBIOS under QEMU -m 1G (E820 as QEMU 7.2 reports it).
	mapQEMU1G = []pvh.Region{
		ram(0, 0x9fc00), resv(0x9fc00, 0xa0000), resv(0xf0000, 0x100000),
		ram(0x100000, 0x3ffe0000), resv(0x3ffe0000, 0x40000000),
		resv(0xfeffc000, 0xff000000), resv(0xfffc0000, 0x100000000),
	}
	// A Hyper-V-like 6 GiB guest: RAM to 0xF0000000 (deliberately past
	// 3 GiB), MMIO gap, the rest above 4 GiB; entries out of order.
	mapHV6G = []pvh.Region{
		ram(0x100000000, 0x190000000),
		ram(0, 0xa0000),
		ram(0x100000, 0xf0000000),
		resv(0xfc000000, 0x100000000),
		{Addr: 0x3f000000, Size: 0x100000, Type: pvh.TypeACPIReclaim},
	}
	// OVMF-converted map with an empty entry and touching RAM entries.
	mapOVMF = []pvh.Region{
		ram(0, 0x80000), {Addr: 0x80000, Size: 0, Type: pvh.TypeRAM},
		ram(0x100000, 0x800000), ram(0x800000, 0x1f000000),
		{Addr: 0x1f000000, Size: 0x100000, Type: pvh.TypeACPINVS},
		ram(0x1f100000, 0x20000000),
	}
)

func TestMemMapDecodeMatchesPVH(t *testing.T) {
	for name, m := range map[string][]pvh.Region{"qemu1g": mapQEMU1G, "hv6g": mapHV6G, "ovmf": mapOVMF, "empty": nil} {
		t.Run(name, func(t *testing.T) {
			raw := e820(m...)
			want, err := pvh.ParseMemmap(raw)
			if err != nil {
				t.Fatal(err)
			}
			var mm memMap
			if e := mm.Decode(raw); e != bootOK {
				t.Fatalf("Decode: %v", e)
			}
			if !slices.Equal(mm.Entries(), want) {
				t.Errorf("Decode = %v\npvh.ParseMemmap = %v", mm.Entries(), want)
			}
		})
	}
}

func TestMemMapDecodeErrors(t *testing.T) {
	var mm memMap
	if e := mm.Decode(make([]byte, 25)); e != errMemmapShort {
		t.Errorf("25 bytes: %v, want errMemmapShort", e)
	}
	wrap := e820(ram(0x1000, 0x2000), pvh.Region{Addr: 1 << 63, Size: 1 << 63, Type: 1})
	if e := mm.Decode(wrap); e != errMemmapWraps || mm.N != 0 {
		t.Errorf("wrapping entry: %v, N=%d; want errMemmapWraps, 0", e, mm.N)
	}
	var many []pvh.Region
	for i := maxMemEntries + 5; i > 0; i-- {
		many = append(many, ram(uint64(i)<<20, uint64(i)<<20+4096))
	}
	if e := mm.Decode(e820(many...)); e != errMemmapTruncated || mm.N != maxMemEntries || mm.Dropped != 5 {
		t.Errorf("too many: %v N=%d dropped=%d", e, mm.N, mm.Dropped)
	}
	if !slices.IsSortedFunc(mm.Entries(), func(a, b pvh.Region) int { return int(a.Addr>>12) - int(b.Addr>>12) }) {
		t.Error("truncated map not sorted")
	}
}

// physMem is a sparse physical memory for pvh.Parse.
type physMem map[uint64][]byte

func (p physMem) ReadPhys(addr uint64, dst []byte) error {
	for base, b := range p {
		if addr >= base && addr+uint64(len(dst)) <= base+uint64(len(b)) {
			copy(dst, b[addr-base:])
			return nil
		}
	}
	return fmt.Errorf("no memory at %#x", addr)
}

func startInfo(version uint32, rsdp, memmap uint64, n uint32) []byte {
	b := make([]byte, pvh.StartInfoSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], pvh.StartInfoMagic)
	le.PutUint32(b[4:], version)
	le.PutUint32(b[8:], 0x5)
	le.PutUint64(b[32:], rsdp)
	le.PutUint64(b[40:], memmap)
	le.PutUint32(b[48:], n)
	return b
}

func TestDecodeStartInfoMatchesPVH(t *testing.T) {
	raw := e820(mapQEMU1G...)
	si := startInfo(1, 0xf5a40, 0x1040, uint32(len(mapQEMU1G)))
	mem := physMem{0x1000: si, 0x1040: raw}
	want, err := pvh.Parse(mem, 0x1000)
	if err != nil {
		t.Fatal(err)
	}
	h, e := decodeStartInfo(si)
	if e != bootOK {
		t.Fatal(e)
	}
	if h.RSDP != want.RSDP || h.Flags != want.Flags || h.Version != want.Version || h.MemmapPaddr != 0x1040 || h.MemmapBytes() != len(raw) {
		t.Errorf("header %+v, pvh %+v", h, want)
	}
	var mm memMap
	if e := mm.Decode(raw[:h.MemmapBytes()]); e != bootOK || !slices.Equal(mm.Entries(), want.Memory) {
		t.Errorf("memmap %v (%v), want %v", mm.Entries(), e, want.Memory)
	}
}

func TestDecodeStartInfoErrors(t *testing.T) {
	bad := startInfo(1, 0, 0x1040, 3)
	bad[0] ^= 1
	cases := []struct {
		name string
		b    []byte
		want bootError
	}{
		{"short", make([]byte, 55), errStartInfoAddr},
		{"magic", bad, errStartInfoMagic},
		{"v0", startInfo(0, 0, 0, 0), errStartInfoVersion},
		{"huge count", startInfo(1, 0, 0x1040, 1025), errMemmapTooBig},
		{"map at 0", startInfo(1, 0, 0, 2), errMemmapAddr},
		{"no map", startInfo(1, 0, 0, 0), bootOK},
	}
	for _, c := range cases {
		if _, e := decodeStartInfo(c.b); e != c.want {
			t.Errorf("%s: %v, want %v", c.name, e, c.want)
		}
	}
}

func TestBootErrorText(t *testing.T) {
	for e := bootOK; e < bootErrorCount; e++ {
		if bootErrorText[e] == "" {
			t.Errorf("bootError %d has no text", e)
		}
	}
	var err error = errKernelNotInRAM
	if !errors.Is(err, errKernelNotInRAM) || err.Error() != "gohv boot: kernel image is not inside usable RAM" {
		t.Errorf("error value %q", err)
	}
	if bootError(200).Error() != "gohv boot: unknown error" {
		t.Error("out-of-range bootError")
	}
}

func TestPhysWindow(t *testing.T) {
	w := physWindow{Low: 4096, High: 4 << 30}
	for _, c := range []struct {
		a    uint64
		n    int
		want bool
	}{{0, 56, false}, {4096, 56, true}, {4<<30 - 56, 56, true}, {4<<30 - 55, 56, false}, {^uint64(0) - 4, 56, false}, {8192, -1, false}} {
		if got := w.Contains(c.a, c.n); got != c.want {
			t.Errorf("Contains(%#x, %d) = %v", c.a, c.n, got)
		}
	}
}

// The walker runs before the Go runtime exists: it must not allocate.
func TestPreRuntimePathsDoNotAllocate(t *testing.T) {
	raw := e820(mapHV6G...)
	si := startInfo(1, 0, 0x1040, uint32(len(mapHV6G)))
	var mm memMap
	allocs := testing.AllocsPerRun(50, func() {
		if _, e := decodeStartInfo(si); e != bootOK {
			panic(e)
		}
		if e := mm.Decode(raw); e != bootOK {
			panic(e)
		}
		if _, e := planLayout(&mm, defaultLayoutConfig(imgStart, imgEnd)); e != bootOK {
			panic(e)
		}
		_ = planPages(&mm, false, 16)
	})
	if allocs != 0 {
		t.Errorf("pre-runtime path allocates %.1f times", allocs)
	}
}

func FuzzMemMapDecode(f *testing.F) {
	f.Add(e820(mapQEMU1G...))
	f.Add(e820(mapHV6G...))
	f.Add(e820(mapOVMF...))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, raw []byte) {
		var mm memMap
		e := mm.Decode(raw)
		want, err := pvh.ParseMemmap(raw)
		if (err == nil) != (e == bootOK || e == errMemmapTruncated) {
			t.Fatalf("Decode %v, ParseMemmap %v", e, err)
		}
		if mm.N < 0 || mm.N > maxMemEntries {
			t.Fatalf("N = %d", mm.N)
		}
		if e == bootOK && !sameRegions(mm.Entries(), want) {
			t.Fatalf("Decode %v, ParseMemmap %v", mm.Entries(), want)
		}
		// Whatever was kept must be usable by the planners without panic.
		_, _ = planLayout(&mm, defaultLayoutConfig(imgStart, imgEnd))
		_ = planPages(&mm, false, 4)
	})
}

// sameRegions compares as sorted multisets: pvh sorts with an unstable sort,
// so entries at the same address may come in either order.
func sameRegions(a, b []pvh.Region) bool {
	cmp := func(x, y pvh.Region) int {
		switch {
		case x.Addr != y.Addr:
			return compare(x.Addr, y.Addr)
		case x.Size != y.Size:
			return compare(x.Size, y.Size)
		}
		return compare(uint64(x.Type), uint64(y.Type))
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, cmp)
	slices.SortFunc(b, cmp)
	return slices.Equal(a, b)
}

func compare(x, y uint64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func TestFormatUint(t *testing.T) {
	var buf [20]byte
	for _, v := range []uint64{0, 7, 96, 1 << 63, ^uint64(0)} {
		if got, want := formatUint(buf[:], v), strconv.FormatUint(v, 10); got != want {
			t.Errorf("formatUint(%d) = %q", v, got)
		}
	}
	if n := testing.AllocsPerRun(10, func() { formatUint(buf[:], 12345) }); n != 0 {
		t.Errorf("formatUint allocates %v times", n)
	}
}

// TestStartInfoInPageZero: QEMU's PVH option ROM hands over a start_info
// whose E820 table sits at 0x5a8, inside page 0, which cpuinit leaves
// unmapped. The pre-runtime reader must accept it (early maps page 0
// while it reads) and decode the map, where the first window refused it.
func TestStartInfoInPageZero(t *testing.T) {
	const memmapAt, entries = 0x5a8, 7
	si := make([]byte, 56)
	binary.LittleEndian.PutUint32(si[0:], pvh.StartInfoMagic)
	binary.LittleEndian.PutUint32(si[4:], 1)
	binary.LittleEndian.PutUint64(si[40:], memmapAt)
	binary.LittleEndian.PutUint32(si[48:], entries)
	h, e := decodeStartInfo(si)
	if e != bootOK {
		t.Fatal(e)
	}
	if earlyWindow.Contains(h.MemmapPaddr, h.MemmapBytes()) {
		t.Error("the early window (page 0 unmapped) claims to hold the map at 0x5a8")
	}
	if !bootReadWindow.Contains(h.MemmapPaddr, h.MemmapBytes()) {
		t.Fatalf("the boot read window refuses the map at %#x (%d bytes)", h.MemmapPaddr, h.MemmapBytes())
	}
	// The map QEMU -m 1024 puts there, decoded from "physical memory".
	phys := make([]byte, 0x1000)
	copy(phys[memmapAt:], e820(mapQEMU1G...))
	var mm memMap
	if e := mm.Decode(phys[h.MemmapPaddr : h.MemmapPaddr+uint64(h.MemmapBytes())]); e != bootOK || mm.N != entries {
		t.Fatalf("decoded %d entries (%v), want %d", mm.N, e, entries)
	}
}
