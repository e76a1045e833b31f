package hvsim

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// gpaHeader builds a GPA-direct type-specific header from the offsets of
// docs/hyperv-protocol.md §4.5 (relative to packet byte 16): @0 reserved, @4 range count,
// then per range byte_count, byte_offset, PFNs.
func gpaHeader(count uint32, ranges ...[]uint64) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint32(b[4:], count)
	for _, r := range ranges {
		// r[0] = byte count, r[1] = byte offset, r[2:] = PFNs
		var w [8]byte
		binary.LittleEndian.PutUint32(w[0:], uint32(r[0]))
		binary.LittleEndian.PutUint32(w[4:], uint32(r[1]))
		b = append(b, w[:]...)
		for _, p := range r[2:] {
			binary.LittleEndian.PutUint64(w[:], p)
			b = append(b, w[:]...)
		}
	}
	return b
}

func TestParseGPADirect(t *testing.T) {
	// One multipage range as storvsc sends it: 8192 bytes at offset 0x200
	// need three PFNs. Written out byte by byte.
	one := []byte{
		0, 0, 0, 0, // reserved
		1, 0, 0, 0, // range count
		0x00, 0x20, 0, 0, // byte count 8192
		0x00, 0x02, 0, 0, // byte offset 0x200
		0x34, 0x12, 0, 0, 0, 0, 0, 0, // PFN 0x1234
		0x40, 0x12, 0, 0, 0, 0, 0, 0, // PFN 0x1240
		0x01, 0, 0, 0, 0, 0, 0, 0x80, // PFN 0x8000000000000001
	}
	got, err := ParseGPADirect(one)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ByteCount != 8192 || got[0].ByteOffset != 0x200 ||
		len(got[0].PFNs) != 3 || got[0].PFNs[0] != 0x1234 || got[0].PFNs[1] != 0x1240 || got[0].PFNs[2] != 0x8000000000000001 {
		t.Fatalf("got %+v", got)
	}
	// Page-buffer style: two one-page ranges.
	two := gpaHeader(2, []uint64{100, 4000, 7, 8}, []uint64{4096, 0, 9})
	got, err = ParseGPADirect(two)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Len() != 100 || len(got[0].PFNs) != 2 || got[1].PFNs[0] != 9 || got[1].ByteOffset != 0 {
		t.Fatalf("got %+v", got)
	}

	bad := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short", make([]byte, 7)},
		{"zero ranges", gpaHeader(0)},
		{"count beyond header", gpaHeader(2, []uint64{1, 0, 5})},
		{"huge count", gpaHeader(0xFFFFFFFF, []uint64{1, 0, 5})},
		{"zero byte count", gpaHeader(1, []uint64{0, 0, 5})},
		{"offset 4096", gpaHeader(1, []uint64{1, 4096, 5, 6})},
		{"missing PFN", gpaHeader(1, []uint64{4097, 0, 5})},
		{"offset pushes to second page", gpaHeader(1, []uint64{4096, 1, 5})},
		{"trailing PFN", gpaHeader(1, []uint64{4096, 0, 5, 6})},
		{"truncated range", one[:12]},
		{"max count overflow", gpaHeader(1, []uint64{0xFFFFFFFF, 0xFFF, 1})},
	}
	for _, c := range bad {
		if r, err := ParseGPADirect(c.b); !errors.Is(err, ErrGPADirect) {
			t.Errorf("%s: %+v, %v; want ErrGPADirect", c.name, r, err)
		}
	}
}

func TestParseGPADirectIntoNoAlloc(t *testing.T) {
	h := gpaHeader(2, []uint64{8192, 0, 1, 2}, []uint64{512, 100, 3})
	ranges := make([]PageRange, 0, 4)
	pfns := make([]uint64, 0, 16)
	allocs := testing.AllocsPerRun(100, func() {
		r, err := ParseGPADirectInto(ranges, pfns, h)
		if err != nil || len(r) != 2 || r[1].PFNs[0] != 3 {
			t.Fatalf("%+v %v", r, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per parse", allocs)
	}
}

func FuzzParseGPADirect(f *testing.F) {
	f.Add(gpaHeader(1, []uint64{8192, 0x200, 1, 2, 3}))
	f.Add(gpaHeader(2, []uint64{100, 4000, 7, 8}, []uint64{4096, 0, 9}))
	f.Add(gpaHeader(0))
	f.Add(gpaHeader(3, []uint64{1, 0, 1}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseGPADirect(b)
		if err != nil {
			return
		}
		// Re-encode: an accepted header is exactly its ranges.
		size := 8
		for _, x := range r {
			if x.ByteCount == 0 || x.ByteOffset >= 4096 {
				t.Fatalf("accepted %+v", x)
			}
			if want := (int(x.ByteOffset) + int(x.ByteCount) + 4095) / 4096; len(x.PFNs) != want {
				t.Fatalf("range %+v has %d PFNs, needs %d", x, len(x.PFNs), want)
			}
			size += 8 + 8*len(x.PFNs)
		}
		if size != len(b) || len(r) != int(binary.LittleEndian.Uint32(b[4:])) {
			t.Fatalf("%d ranges of %d bytes from a %d-byte header", len(r), size, len(b))
		}
	})
}

func TestGuestReadWrite(t *testing.T) {
	h, err := New(Config{MemoryBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	base := uint64(0x100) << 12
	end := base + 1<<20
	// Across a page boundary.
	if err := h.GuestWrite(base+4090, []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	if got := string(h.ArenaPage(0x100)[4090:]) + string(h.ArenaPage(0x101)[:4]); got != "0123456789" {
		t.Fatalf("arena holds %q", got)
	}
	buf := make([]byte, 10)
	if err := h.GuestRead(base+4090, buf); err != nil || string(buf) != "0123456789" {
		t.Fatalf("%q %v", buf, err)
	}
	// The last byte is inside, one more is not.
	if err := h.GuestWrite(end-1, []byte{1}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		gpa uint64
		n   int
	}{{base - 1, 1}, {end - 1, 2}, {end, 1}, {0, 1}, {^uint64(0), 1}, {base, 1<<20 + 1}} {
		if err := h.GuestWrite(c.gpa, make([]byte, c.n)); !errors.Is(err, ErrGuestAddress) {
			t.Errorf("write %#x+%d: %v", c.gpa, c.n, err)
		}
		if err := h.GuestRead(c.gpa, make([]byte, c.n)); !errors.Is(err, ErrGuestAddress) {
			t.Errorf("read %#x+%d: %v", c.gpa, c.n, err)
		}
	}
	if h.ArenaPage(0x100)[4089] != 0 {
		t.Fatal("write spilled")
	}
}

func TestPageRangeCopy(t *testing.T) {
	h, err := New(Config{MemoryBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// Two non-adjacent pages, reversed: 5000 bytes starting at 3000.
	r := PageRange{ByteCount: 5000, ByteOffset: 3000, PFNs: []uint64{0x110, 0x105}}
	src := bytes.Repeat([]byte("abcdefgh"), 625)
	if err := h.WritePageRange(r, 0, src); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.ArenaPage(0x110)[3000:], src[:1096]) || !bytes.Equal(h.ArenaPage(0x105)[:3904], src[1096:]) {
		t.Fatal("pages do not hold the range")
	}
	dst := make([]byte, 100)
	if err := h.ReadPageRange(r, 1050, dst); err != nil || !bytes.Equal(dst, src[1050:1150]) {
		t.Fatalf("%v", err)
	}
	if err := h.ReadPageRange(r, 4901, dst); !errors.Is(err, ErrRangeBounds) {
		t.Errorf("past the end: %v", err)
	}
	if err := h.ReadPageRange(r, -1, dst); !errors.Is(err, ErrRangeBounds) {
		t.Errorf("negative: %v", err)
	}
	out := PageRange{ByteCount: 4096, PFNs: []uint64{0x50}}
	if err := h.WritePageRange(out, 0, []byte{1}); !errors.Is(err, ErrGuestAddress) {
		t.Errorf("outside arena: %v", err)
	}
	short := PageRange{ByteCount: 5000, PFNs: []uint64{0x110}} // not from the parser
	if err := h.ReadPageRange(short, 4000, dst); !errors.Is(err, ErrRangeBounds) {
		t.Errorf("PFN list too short: %v", err)
	}
	// Partly outside: nothing written.
	part := PageRange{ByteCount: 8192, PFNs: []uint64{0x120, 0x50}}
	if err := h.WritePageRange(part, 4000, bytes.Repeat([]byte{9}, 200)); !errors.Is(err, ErrGuestAddress) {
		t.Errorf("partly outside: %v", err)
	}
	if h.ArenaPage(0x120)[4000] != 0 {
		t.Error("partial write happened")
	}
}

func TestChannelGPADLView(t *testing.T) {
	oc := setupChannel(t, Config{}, 8, 4)
	g := oc.g
	// Three separate allocations so the GPADL's pages are not in order.
	var pfns []uint64
	var mems [][]byte
	for i := 0; i < 3; i++ {
		p, err := g.p.AllocPages(1)
		if err != nil {
			t.Fatal(err)
		}
		pfns = append([]uint64{p.PFN}, pfns...)
		mems = append([][]byte{p.Mem}, mems...)
	}
	// GPADL_HEADER with byte offset 100 and byte count 9000 (three pages),
	// docs/hyperv-protocol.md §3.9.
	m := make([]byte, 28+8*3)
	put32(m, 0, 8)
	put32(m, 8, oc.relid)
	put32(m, 12, 0x77)
	binary.LittleEndian.PutUint16(m[16:], 8+8*3)
	binary.LittleEndian.PutUint16(m[18:], 1)
	put32(m, 20, 9000)
	put32(m, 24, 100)
	for i, p := range pfns {
		put64(m, 28+8*i, p)
	}
	g.mustPost(m)
	if r := g.expect(10, 20); get32(r, 16) != 0 {
		t.Fatalf("GPADL_CREATED % x", r)
	}
	v, err := oc.ch.GPADL(0x77)
	if err != nil {
		t.Fatal(err)
	}
	if v.Len() != 9000 || v.ID() != 0x77 {
		t.Fatalf("len %d id %#x", v.Len(), v.ID())
	}
	// Guest writes across the first page boundary; host reads it.
	copy(mems[0][4090:], "ABCDEF")
	copy(mems[1][:4], "GHIJ")
	buf := make([]byte, 10)
	if n, err := v.ReadAt(buf, 3990); n != 10 || err != nil || string(buf) != "ABCDEFGHIJ" {
		t.Fatalf("ReadAt %d %v %q", n, err, buf)
	}
	// Host writes the last bytes; they land in the third page.
	if n, err := v.WriteAt([]byte("xyz"), 8997); n != 3 || err != nil {
		t.Fatalf("WriteAt %d %v", n, err)
	}
	if off := 100 + 8997 - 2*4096; string(mems[2][off:off+3]) != "xyz" {
		t.Fatalf("third page holds % x", mems[2][off:off+3])
	}
	if n, err := v.ReadAt(buf, 8995); n != 5 || err != io.EOF {
		t.Fatalf("ReadAt past end: %d %v", n, err)
	}
	if _, err := v.WriteAt(buf, 8995); !errors.Is(err, ErrRangeBounds) {
		t.Fatalf("WriteAt past end: %v", err)
	}
	if _, err := v.ReadAt(buf, -1); !errors.Is(err, ErrRangeBounds) {
		t.Fatalf("negative offset: %v", err)
	}
	if _, err := oc.ch.GPADL(0x78); !errors.Is(err, ErrUnknownGPADL) {
		t.Fatalf("unknown GPADL: %v", err)
	}
	noViolations(t, g.h)
}

func TestChannelGPADLOtherDevice(t *testing.T) {
	a := newRecDevice("57164f39-9115-4e78-ab55-382f3bd5422d")
	b := newRecDevice("0e0b6031-5213-4934-818b-38d90ced39db")
	g := newGuest(t, Config{}, a, b)
	g.connect()
	offers := g.requestOffers()
	if len(offers) != 2 {
		t.Fatalf("%d offers", len(offers))
	}
	pages, err := g.p.AllocPages(8)
	if err != nil {
		t.Fatal(err)
	}
	if st := g.createGPADL(offers[0].relid, 1, pfnList(pages)); st != 0 {
		t.Fatal(st)
	}
	if st := g.open(offers[0].relid, 1, 1, 0, 4); st != 0 {
		t.Fatal(st)
	}
	ch := recvCh(t, a.opened)
	extra, _ := g.p.AllocPages(1)
	if st := g.createGPADL(offers[1].relid, 2, pfnList(extra)); st != 0 {
		t.Fatal(st)
	}
	if _, err := ch.GPADL(2); !errors.Is(err, ErrUnknownGPADL) {
		t.Fatalf("GPADL of another device: %v", err)
	}
	// A sub-channel sees its primary's GPADLs.
	subs, err := g.h.AddSubChannels(offers[0].relid, 1)
	if err != nil {
		t.Fatal(err)
	}
	off := g.expect(1, 196)
	if get32(off, 184) != subs[0] {
		t.Fatalf("sub-channel offer % x", off)
	}
	sp, _ := g.p.AllocPages(4)
	if st := g.createGPADL(subs[0], 3, pfnList(sp)); st != 0 {
		t.Fatal(st)
	}
	if st := g.open(subs[0], 3, 3, 0, 2); st != 0 {
		t.Fatal(st)
	}
	sub := recvCh(t, a.opened)
	if v, err := sub.GPADL(1); err != nil || v.Len() != 8*4096 {
		t.Fatalf("primary's GPADL from the sub-channel: %v", err)
	}
	if ch.Host() != g.h {
		t.Fatal("Host()")
	}
	noViolations(t, g.h)
}

func TestRecordViolation(t *testing.T) {
	var seen []error
	h, err := New(Config{MemoryBytes: 1 << 20, OnViolation: func(e error) { seen = append(seen, e) }})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	mine := errors.New("device rule")
	h.RecordViolation(mine)
	if h.ViolationCount() != 1 || len(seen) != 1 || !errors.Is(h.Violations()[0], mine) {
		t.Fatalf("count %d seen %v", h.ViolationCount(), seen)
	}
}

// PageRangeBytes aliases guest memory for spans on consecutive pages, says
// "copy instead" for spans crossing non-consecutive pages, and refuses what
// Read/WritePageRange refuse.
func TestPageRangeBytes(t *testing.T) {
	h, err := New(Config{MemoryBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// 9000 bytes from offset 100 of PFN 0x110: pages 0x110, 0x111, then
	// 0x105 (not consecutive).
	r := PageRange{ByteCount: 9000, ByteOffset: 100, PFNs: []uint64{0x110, 0x111, 0x105}}
	b, ok, err := h.PageRangeBytes(r, 50, 6000) // 0x110+150 .. 0x111+2054
	if err != nil || !ok || len(b) != 6000 || cap(b) != 6000 {
		t.Fatalf("consecutive span: len %d cap %d ok %v err %v", len(b), cap(b), ok, err)
	}
	b[0], b[5999] = 0xA1, 0xA2
	if h.ArenaPage(0x110)[150] != 0xA1 || h.ArenaPage(0x111)[2053] != 0xA2 {
		t.Fatal("slice is not the guest's memory at the range offset")
	}
	if _, ok, err := h.PageRangeBytes(r, 8100, 900); err != nil || !ok {
		t.Fatalf("span inside the last page: ok %v err %v", ok, err)
	}
	if b, ok, err := h.PageRangeBytes(r, 4000, 5000); err != nil || ok || b != nil {
		t.Fatalf("span over a non-consecutive page: %d bytes ok %v err %v", len(b), ok, err)
	}
	for _, c := range []struct {
		off, n int
		want   error
	}{{-1, 10, ErrRangeBounds}, {8991, 10, ErrRangeBounds}, {0, -1, ErrRangeBounds}, {0, 9001, ErrRangeBounds}} {
		if _, ok, err := h.PageRangeBytes(r, c.off, c.n); !errors.Is(err, c.want) || ok {
			t.Errorf("%d bytes at %d: ok %v err %v, want %v", c.n, c.off, ok, err, c.want)
		}
	}
	out := PageRange{ByteCount: 8192, PFNs: []uint64{0x120, 0x50}}
	if _, ok, err := h.PageRangeBytes(out, 4000, 200); !errors.Is(err, ErrGuestAddress) || ok {
		t.Errorf("partly outside guest memory: ok %v err %v", ok, err)
	}
	short := PageRange{ByteCount: 5000, PFNs: []uint64{0x110}}
	if _, ok, err := h.PageRangeBytes(short, 4000, 100); !errors.Is(err, ErrRangeBounds) || ok {
		t.Errorf("PFN list too short: ok %v err %v", ok, err)
	}
}
