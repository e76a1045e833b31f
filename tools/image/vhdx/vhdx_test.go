package vhdx

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/gohv/gohv/tools/image"
)

// fixedRand makes GUIDs reproducible.
type fixedRand byte

func (r fixedRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r) + byte(i)
	}
	return len(p), nil
}

func writeTemp(t *testing.T, src image.Source, opts Options) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "d.vhdx")
	if opts.Rand == nil {
		opts.Rand = fixedRand(7)
	}
	if err := Write(path, src, opts); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKnownGUIDBytes(t *testing.T) {
	// MS-VHDX §2.2.3.1 gives the BAT region as 2DC27766-F623-4200-9D64-115E9BFD4A08;
	// on disk the first three groups are little-endian.
	want := []byte{0x66, 0x77, 0xC2, 0x2D, 0x23, 0xF6, 0x00, 0x42, 0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08}
	if !bytes.Equal(batRegionGUID[:], want) {
		t.Errorf("BAT GUID bytes % X, want % X", batRegionGUID[:], want)
	}
	if s := batRegionGUID.String(); s != "2DC27766-F623-4200-9D64-115E9BFD4A08" {
		t.Errorf("String() = %s", s)
	}
}

// crc32c recomputes a checksum independently of checksum(): zero the field
// in a copy and run the standard library's Castagnoli CRC over it.
func crc32c(b []byte, field int) uint32 {
	c := bytes.Clone(b)
	binary.LittleEndian.PutUint32(c[field:], 0)
	return crc32.Checksum(c, crc32.MakeTable(crc32.Castagnoli))
}

func TestWireLayoutBytes(t *testing.T) {
	const size = 8 << 20
	d, _ := image.NewMemDisk(size)
	if _, err := d.WriteAt([]byte{0xAB}, 5<<20); err != nil {
		t.Fatal(err)
	}
	b := writeTemp(t, d, Options{})
	le := binary.LittleEndian

	if string(b[0:8]) != "vhdxfile" {
		t.Errorf("file type identifier: %q", b[0:8])
	}
	if got := string([]byte{b[8], b[10], b[12], b[14]}); got != "gohv" || b[9] != 0 {
		t.Errorf("creator is not UTF-16LE \"gohv...\": % X", b[8:16])
	}
	for i, off := range []int{64 << 10, 128 << 10} {
		h := b[off : off+4096]
		if string(h[0:4]) != "head" {
			t.Errorf("header %d signature %q", i+1, h[0:4])
		}
		if got, want := le.Uint32(h[4:]), crc32c(h, 4); got != want {
			t.Errorf("header %d checksum %#x, want %#x", i+1, got, want)
		}
		if seq := le.Uint64(h[8:]); seq != uint64(i+1) {
			t.Errorf("header %d sequence %d", i+1, seq)
		}
		if !image.IsZero(h[48:64]) {
			t.Errorf("header %d log GUID not zero", i+1)
		}
		if le.Uint16(h[64:]) != 0 || le.Uint16(h[66:]) != 1 {
			t.Errorf("header %d log version/version = %d/%d", i+1, le.Uint16(h[64:]), le.Uint16(h[66:]))
		}
		if le.Uint32(h[68:]) != 1<<20 || le.Uint64(h[72:]) != 1<<20 {
			t.Errorf("header %d log length/offset = %d/%d", i+1, le.Uint32(h[68:]), le.Uint64(h[72:]))
		}
		if image.IsZero(h[16:32]) || image.IsZero(h[32:48]) {
			t.Errorf("header %d write GUIDs zero", i+1)
		}
	}
	var batOff, metaOff int64
	for _, off := range []int{192 << 10, 256 << 10} {
		r := b[off : off+64<<10]
		if string(r[0:4]) != "regi" {
			t.Fatalf("region table signature %q", r[0:4])
		}
		if got, want := le.Uint32(r[4:]), crc32c(r, 4); got != want {
			t.Errorf("region table checksum %#x, want %#x", got, want)
		}
		if n := le.Uint32(r[8:]); n != 2 {
			t.Fatalf("region entries %d", n)
		}
		for i := range 2 {
			e := r[16+32*i:]
			switch GUID(e[0:16]) {
			case batRegionGUID:
				batOff = int64(le.Uint64(e[16:]))
				if le.Uint32(e[24:]) != 1<<20 {
					t.Errorf("BAT length %d", le.Uint32(e[24:]))
				}
			case metadataRegionGUID:
				metaOff = int64(le.Uint64(e[16:]))
				if le.Uint32(e[24:]) != 1<<20 {
					t.Errorf("metadata length %d", le.Uint32(e[24:]))
				}
			default:
				t.Errorf("unknown region %x", e[0:16])
			}
			if le.Uint32(e[28:]) != 1 {
				t.Errorf("region %d not required", i)
			}
		}
	}
	if batOff != 3<<20 || metaOff != 2<<20 {
		t.Fatalf("BAT at %d, metadata at %d", batOff, metaOff)
	}
	m := b[metaOff:]
	if string(m[0:8]) != "metadata" || le.Uint16(m[10:]) != 5 {
		t.Fatalf("metadata header % X", m[0:32])
	}
	want := map[string]struct {
		flags uint32
		value []byte
	}{
		"CAA16737-FA36-4D43-B3B6-33F0AA44E76B": {4, []byte{0, 0, 0x10, 0, 0, 0, 0, 0}}, // 1 MiB blocks, no flags
		"2FA54224-CD1B-4876-B211-5DBED83BF4B8": {6, []byte{0, 0, 0x80, 0, 0, 0, 0, 0}}, // 8 MiB
		"8141BF1D-A96F-4709-BA47-F233A8FAAB5F": {6, []byte{0, 2, 0, 0}},                // 512
		"CDA348C7-445D-4471-9CC9-E9885251C556": {6, []byte{0, 0x10, 0, 0}},             // 4096
		"BECA12AB-B2E6-4523-93EF-C309E000C746": {6, nil},                               // random
	}
	for i := range 5 {
		e := m[32+32*i:]
		g := GUID(e[0:16]).String()
		w, ok := want[g]
		if !ok {
			t.Errorf("unexpected metadata item %s", g)
			continue
		}
		off, n := le.Uint32(e[16:]), le.Uint32(e[20:])
		if off < 64<<10 {
			t.Errorf("item %s at %d inside the table", g, off)
		}
		if le.Uint32(e[24:]) != w.flags {
			t.Errorf("item %s flags %#x, want %#x", g, le.Uint32(e[24:]), w.flags)
		}
		if w.value != nil && !bytes.Equal(m[off:off+n], w.value) {
			t.Errorf("item %s = % X, want % X", g, m[off:off+n], w.value)
		}
		if w.value == nil && (n != 16 || image.IsZero(m[off:off+n])) {
			t.Errorf("page 83 item length %d value % X", n, m[off:off+n])
		}
	}
	// BAT: 8 blocks of 1 MiB, only block 5 holds data. It is stored at the
	// first payload offset, 4 MiB, state 6 in bits 0-2, MiB offset in 20-63.
	for i := range 8 {
		e := le.Uint64(b[batOff+int64(8*i):])
		if i == 5 {
			if e != 6|4<<20 {
				t.Errorf("BAT[5] = %#x, want %#x", e, uint64(6|4<<20))
			}
		} else if e != 0 {
			t.Errorf("BAT[%d] = %#x, want 0 (not present)", i, e)
		}
	}
	if len(b) != 5<<20 {
		t.Errorf("file is %d bytes, want 5 MiB (4 MiB of structures + one block)", len(b))
	}
	if b[4<<20] != 0xAB {
		t.Errorf("payload byte %#x", b[4<<20])
	}
}

func TestFixedMarksEveryBlock(t *testing.T) {
	d, _ := image.NewMemDisk(3 << 20)
	b := writeTemp(t, d, Options{Fixed: true})
	le := binary.LittleEndian
	for i := range 3 {
		if e := le.Uint64(b[3<<20+8*i:]); e != uint64(6|(4+i)<<20) {
			t.Errorf("BAT[%d] = %#x", i, e)
		}
	}
	if le.Uint32(b[2<<20+64<<10+4:]) != 1 {
		t.Error("fixed file lacks LeaveBlocksAllocated")
	}
	if len(b) != 7<<20 {
		t.Errorf("file is %d bytes, want 7 MiB", len(b))
	}
}

func TestSectorBitmapEntriesInterleaved(t *testing.T) {
	// 1 MiB blocks: chunk ratio 2^23*512/2^20 = 4096 payload blocks per
	// bitmap entry, so block 4096 sits at BAT index 4097.
	if r := chunkRatio(1 << 20); r != 4096 {
		t.Fatalf("chunk ratio %d", r)
	}
	if r := chunkRatio(32 << 20); r != 128 {
		t.Fatalf("chunk ratio (32 MiB) %d", r)
	}
	if got := batIndex(4096, 1<<20); got != 4097 {
		t.Errorf("batIndex(4096) = %d", got)
	}
	blocks, entries := batEntries(4097<<20, 1<<20)
	if blocks != 4097 || entries != 4098 {
		t.Errorf("batEntries = %d, %d", blocks, entries)
	}
	// A disk larger than one chunk round-trips through our reader.
	const size = 4097 << 20
	d, _ := image.NewMemDisk(size)
	if _, err := d.WriteAt([]byte("last block"), size-1024); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "big.vhdx")
	if err := Write(path, d, Options{}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	v, err := Open(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := v.ReadAt(buf, size-1024); err != nil || string(buf) != "last block" {
		t.Errorf("read back %q, %v", buf, err)
	}
	if v.PresentBlocks != 1 || v.BlockState(4096) != PayloadFullyPresent {
		t.Errorf("present %d, state %d", v.PresentBlocks, v.BlockState(4096))
	}
	batRaw := make([]byte, 8)
	if _, err := f.ReadAt(batRaw, 3<<20+4096*8); err != nil {
		t.Fatal(err)
	}
	if binary.LittleEndian.Uint64(batRaw) != 0 {
		t.Errorf("sector bitmap entry %#x, want 0", batRaw)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, fixed := range []bool{false, true} {
		d, _ := image.NewMemDisk(5<<20 + 512)
		for _, off := range []int64{0, 1<<20 - 3, 5 << 20} {
			if _, err := d.WriteAt([]byte("gohv!"), off); err != nil {
				t.Fatal(err)
			}
		}
		b := writeTemp(t, d, Options{Fixed: fixed, Creator: "test ✓"})
		v, err := Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		if v.Creator != "test ✓" || v.LeaveBlocksAllocated != fixed || v.Size() != d.Size() {
			t.Errorf("info %+v", v.Info)
		}
		got, want := make([]byte, d.Size()), make([]byte, d.Size())
		if _, err := v.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := d.ReadAt(want, 0); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("fixed=%v: contents differ", fixed)
		}
	}
}

func TestBadSizesAndBlockSizes(t *testing.T) {
	for _, tc := range []struct {
		size  int64
		block uint32
	}{{0, 0}, {1000, 0}, {MaxSize + 512, 0}, {1 << 20, 3 << 20}, {1 << 20, 512 << 10}, {1 << 20, 512 << 20}} {
		if _, err := NewLayout(tc.size, tc.block); err == nil {
			t.Errorf("NewLayout(%d, %d) accepted", tc.size, tc.block)
		}
	}
	if _, err := NewLayout(MaxSize, 0); err != nil {
		t.Errorf("64 TiB refused: %v", err)
	}
}

type failingSource struct{ size int64 }

func (f failingSource) Size() int64                       { return f.size }
func (f failingSource) ReadAt([]byte, int64) (int, error) { return 0, errors.New("disk on fire") }

func TestFailedWriteLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.vhdx")
	err := Write(path, failingSource{4 << 20}, Options{})
	if err == nil {
		t.Fatal("no error")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Errorf("left behind %v", ents)
	}
}

func FuzzOpen(f *testing.F) {
	d, _ := image.NewMemDisk(2 << 20)
	_, _ = d.WriteAt([]byte("x"), 1<<20)
	for _, fixed := range []bool{false, true} {
		path := filepath.Join(f.TempDir(), "seed.vhdx")
		if err := Write(path, d, Options{Fixed: fixed, Rand: fixedRand(1)}); err != nil {
			f.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		// Seeds are the structures only: the fuzzer mutates a compact
		// description that expand() turns back into a file.
		c := compact(b)
		if _, err := Open(expand(c)); err != nil {
			f.Fatalf("seed (fixed=%v) rejected: %v", fixed, err)
		}
		f.Add(c)
	}
	f.Add([]byte("vhdxfile"))
	f.Fuzz(func(t *testing.T, c []byte) {
		v, err := Open(expand(c))
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, io.EOF) {
				t.Fatalf("error not classified: %v", err)
			}
			return
		}
		// Invariants of an accepted file: every block readable, size sane.
		if v.Size() <= 0 || v.Size() > MaxSize {
			t.Fatalf("size %d", v.Size())
		}
		p := make([]byte, 4096)
		for i := int64(0); i < min(v.Layout.DataBlocks, 64); i++ {
			if _, err := v.ReadAt(p, i*int64(v.Layout.BlockSize)); err != nil && err != io.EOF {
				t.Fatalf("read block %d: %v", i, err)
			}
		}
	})
}

// The fuzz corpus stores the five structures (file id, two headers, two
// region tables: the first 4 KiB of each) and the first 4 KiB of the
// metadata table, metadata items and BAT, in 8 × 4 KiB, placed back at their offsets by
// expand into a file of 7 MiB.
var fuzzParts = []int64{0, 64 << 10, 128 << 10, 192 << 10, 256 << 10, 2 << 20, 2<<20 + 64<<10, 3 << 20}

func compact(b []byte) []byte {
	var c []byte
	for _, off := range fuzzParts {
		c = append(c, b[off:off+4096]...)
	}
	return c
}

// expand places the parts of c back at their offsets in a 7 MiB file
// that reads as zero elsewhere (a MemDisk, so no 7 MiB allocation per run).
func expand(c []byte) (io.ReaderAt, int64) {
	d, _ := image.NewMemDisk(7 << 20)
	for i, off := range fuzzParts {
		if len(c) <= i*4096 {
			break
		}
		_, _ = d.WriteAt(c[i*4096:min(len(c), (i+1)*4096)], off)
	}
	return d, d.Size()
}
