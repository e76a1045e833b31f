package kimage

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
)

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

// twoSegELF looks like a small TamaGo kernel: text at 0x10010000, data and
// bss higher up.
func twoSegELF(class elf.Class, width int) testELF {
	return testELF{
		class: class,
		notes: [][]byte{
			note("GNU", 3, 0xdead, 4), // unrelated note first
			xenNote(xenNotePhys32Ent, 0x10010040, width),
		},
		segs: []testSeg{
			{paddr: 0x10010000, data: pattern(1000, 0x11), memsz: 1000},
			{paddr: 0x10020000, data: pattern(600, 0x22), memsz: 0x3000},
		},
	}
}

// TestHeaderLayout checks every header byte against the table of
// docs/boot.md ("The gohv kernel image (GKI)"), not against this package's
// own constants.
func TestHeaderLayout(t *testing.T) {
	gki, err := Build(twoSegELF(elf.ELFCLASS64, 8).bytes())
	if err != nil {
		t.Fatal(err)
	}
	// Segment 0: 1000 bytes at 512 -> next at 512+1024 = 1536, 600 bytes
	// -> total 1536+1024 = 2560.
	if len(gki) != 2560 {
		t.Fatalf("image size %d, want 2560", len(gki))
	}
	want := make([]byte, 512)
	copy(want[0:], "GOHVKIMG")
	want[8] = 1                                                     // version
	want[12], want[13] = 0x00, 0x02                                 // header size 512
	want[16], want[17], want[18], want[19] = 0x40, 0x00, 0x01, 0x10 // entry
	want[20] = 2                                                    // segment count
	want[24], want[25] = 0x00, 0x0a                                 // total 2560
	crc := crc32.ChecksumIEEE(gki[512:2560])
	binary.LittleEndian.PutUint32(want[28:], crc)
	seg0 := []byte{
		0x00, 0x00, 0x01, 0x10, 0, 0, 0, 0, // paddr
		0x00, 0x02, 0, 0, // file offset 512
		0xe8, 0x03, 0, 0, // file size 1000
		0xe8, 0x03, 0, 0, 0, 0, 0, 0, // mem size 1000
	}
	seg1 := []byte{
		0x00, 0x00, 0x02, 0x10, 0, 0, 0, 0,
		0x00, 0x06, 0, 0, // 1536
		0x58, 0x02, 0, 0, // 600
		0x00, 0x30, 0, 0, 0, 0, 0, 0, // 0x3000
	}
	copy(want[32:], seg0)
	copy(want[56:], seg1)
	if !bytes.Equal(gki[:512], want) {
		t.Fatalf("header\n got %x\nwant %x", gki[:80], want[:80])
	}
	if !bytes.Equal(gki[512:1512], pattern(1000, 0x11)) || !bytes.Equal(gki[1536:2136], pattern(600, 0x22)) {
		t.Fatal("segment data not at its file offset")
	}
	for _, r := range [][2]int{{1512, 1536}, {2136, 2560}} {
		if !bytes.Equal(gki[r[0]:r[1]], make([]byte, r[1]-r[0])) {
			t.Fatalf("padding %v not zero", r)
		}
	}
}

func TestBuildVariants(t *testing.T) {
	tests := []struct {
		name string
		elf  testELF
	}{
		{"elf64 8-byte note", twoSegELF(elf.ELFCLASS64, 8)},
		{"elf64 4-byte note", twoSegELF(elf.ELFCLASS64, 4)},
		{"elf32 4-byte note", twoSegELF(elf.ELFCLASS32, 4)},
		{"elf32 section note", func() testELF { e := twoSegELF(elf.ELFCLASS32, 4); e.noteAsSec = true; return e }()},
		{"elf64 section note", func() testELF { e := twoSegELF(elf.ELFCLASS64, 8); e.noteAsSec = true; return e }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gki, err := Build(tt.elf.bytes())
			if err != nil {
				t.Fatal(err)
			}
			im, err := Parse(gki)
			if err != nil {
				t.Fatal(err)
			}
			if im.Entry != 0x10010040 || len(im.Segments) != 2 {
				t.Fatalf("entry %#x, %d segments", im.Entry, len(im.Segments))
			}
			for i, s := range tt.elf.segs {
				got := im.Segments[i]
				if got.Paddr != s.paddr || got.MemSize != s.memsz || !bytes.Equal(im.Data(i), s.data) {
					t.Errorf("segment %d = %+v", i, got)
				}
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	withSegs := func(segs ...testSeg) testELF {
		e := twoSegELF(elf.ELFCLASS64, 8)
		e.segs = segs
		return e
	}
	text := testSeg{paddr: 0x10010000, data: pattern(100, 1), memsz: 100}
	many := []testSeg{text}
	for i := 1; i <= MaxSegments; i++ {
		many = append(many, testSeg{paddr: 0x10010000 + uint64(i)*0x1000, data: []byte{1}, memsz: 1})
	}
	noNote := twoSegELF(elf.ELFCLASS64, 8)
	noNote.notes = [][]byte{note("GNU", 3, 1, 4)}
	wrongType := twoSegELF(elf.ELFCLASS64, 8)
	wrongType.notes = [][]byte{xenNote(17, 0x10010040, 8)}
	badWidth := twoSegELF(elf.ELFCLASS64, 8)
	badWidth.notes = [][]byte{xenNote(xenNotePhys32Ent, 0x10010040, 2)}
	arm := twoSegELF(elf.ELFCLASS64, 8)
	arm.machine = elf.EM_AARCH64
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrNotELF},
		{"text", []byte("#!/bin/sh\necho hello\n"), ErrNotELF},
		{"arm", arm.bytes(), ErrNotELF},
		{"truncated segment", func() []byte { b := twoSegELF(elf.ELFCLASS64, 8).bytes(); return b[:len(b)-400] }(), ErrNotELF},
		{"no pvh note", noNote.bytes(), ErrNoPVHEntry},
		{"wrong note type", wrongType.bytes(), ErrNoPVHEntry},
		{"bad note width", badWidth.bytes(), ErrNoPVHEntry},
		{"no segments", withSegs().bytes(), ErrNoSegments},
		{"overlap", withSegs(text, testSeg{paddr: 0x10010010, data: []byte{1}, memsz: 1}).bytes(), ErrSegmentOverlap},
		{"bss overlap", withSegs(testSeg{paddr: 0x10010000, data: pattern(100, 1), memsz: 0x2000}, testSeg{paddr: 0x10011000, data: []byte{1}, memsz: 1}).bytes(), ErrSegmentOverlap},
		{"below 1 MiB", withSegs(text, testSeg{paddr: 0xF0000, data: []byte{1}, memsz: 0x10000}).bytes(), ErrSegmentLow},
		{"above 4 GiB", withSegs(text, testSeg{paddr: 0x1_0000_0000, data: []byte{1}, memsz: 1}).bytes(), ErrSegmentHigh},
		{"crosses 4 GiB", withSegs(text, testSeg{paddr: 0xFFFF_F000, data: []byte{1}, memsz: 0x2000}).bytes(), ErrSegmentHigh},
		{"too many", withSegs(many...).bytes(), ErrTooManySegments},
		{"entry outside", withSegs(testSeg{paddr: 0x10020000, data: []byte{1}, memsz: 1}).bytes(), ErrBadEntry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Build = %v, want %v", err, tt.want)
			}
		})
	}
	_, err := Build(noNote.bytes())
	if want := "build it with tamago's amd64 linker or add the note"; err == nil || !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Errorf("no-note error %q does not tell the user what to do", err)
	}
}

func TestParseErrors(t *testing.T) {
	good, err := Build(twoSegELF(elf.ELFCLASS64, 8).bytes())
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	mut := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	// fixCRC recomputes the checksum so a test reaches the check it means.
	fixCRC := func(b []byte) { le.PutUint32(b[28:], crc32.ChecksumIEEE(b[le.Uint32(b[12:]):le.Uint32(b[24:])])) }
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"short", good[:31], ErrFormat},
		{"magic", mut(func(b []byte) { b[0] = 'X' }), ErrFormat},
		{"version", mut(func(b []byte) { b[8] = 2 }), ErrFormat},
		{"count 0", mut(func(b []byte) { b[20] = 0 }), ErrNoSegments},
		{"count 17", mut(func(b []byte) { b[20] = 17 }), ErrTooManySegments},
		{"header unaligned", mut(func(b []byte) { le.PutUint32(b[12:], 513) }), ErrFormat},
		{"header 0", mut(func(b []byte) { le.PutUint32(b[12:], 0) }), ErrFormat},
		{"header beyond total", mut(func(b []byte) { le.PutUint32(b[12:], 4096) }), ErrFormat},
		{"total beyond buffer", mut(func(b []byte) { le.PutUint32(b[24:], 4096) }), ErrFormat},
		{"truncated", good[:2048], ErrFormat},
		{"padding", mut(func(b []byte) { b[500] = 1 }), ErrFormat},
		{"seg offset unaligned", mut(func(b []byte) { le.PutUint32(b[32+8:], 513) }), ErrFormat},
		{"seg offset in header", mut(func(b []byte) { le.PutUint32(b[32+8:], 0) }), ErrFormat},
		{"seg past end", mut(func(b []byte) { le.PutUint32(b[56+12:], 0x10000) }), ErrFormat},
		{"seg size wraps", mut(func(b []byte) { le.PutUint32(b[56+12:], 0xFFFFFE00) }), ErrFormat},
		{"memsz < filesz", mut(func(b []byte) { le.PutUint64(b[32+16:], 10); fixCRC(b) }), ErrFormat},
		{"low", mut(func(b []byte) { le.PutUint64(b[56:], 0x8000); fixCRC(b) }), ErrSegmentLow},
		{"high", mut(func(b []byte) { le.PutUint64(b[56:], 0xFFFFF000); fixCRC(b) }), ErrSegmentHigh},
		{"memsz huge", mut(func(b []byte) { le.PutUint64(b[56+16:], 1<<63); fixCRC(b) }), ErrSegmentHigh},
		{"overlap", mut(func(b []byte) { le.PutUint64(b[56:], 0x10010100); fixCRC(b) }), ErrSegmentOverlap},
		{"entry", mut(func(b []byte) { le.PutUint32(b[16:], 0x10020400) /* in bss */ }), ErrBadEntry},
		{"crc field", mut(func(b []byte) { b[28] ^= 1 }), ErrChecksum},
		{"data flip", mut(func(b []byte) { b[1000] ^= 0x80 }), ErrChecksum},
		{"padding flip", mut(func(b []byte) { b[2559] ^= 1 }), ErrChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse(tt.in); !errors.Is(err, tt.want) {
				t.Fatalf("Parse = %v, want %v", err, tt.want)
			}
		})
	}
	// Trailing bytes (a partition, a padded PE section) are allowed.
	im, err := Parse(append(bytes.Clone(good), make([]byte, 4096)...))
	if err != nil || im.TotalSize != 2560 {
		t.Fatalf("Parse with trailer = %v, %v", im, err)
	}
}

func FuzzParse(f *testing.F) {
	for _, e := range []testELF{twoSegELF(elf.ELFCLASS64, 8), twoSegELF(elf.ELFCLASS32, 4)} {
		gki, err := Build(e.bytes())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(gki)
		f.Add(gki[:512])
	}
	f.Add([]byte("GOHVKIMG\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		im, err := Parse(b)
		if err != nil {
			if im != nil {
				t.Fatal("image returned with error")
			}
			return
		}
		if im.TotalSize%SectorSize != 0 || im.HeaderSize%SectorSize != 0 || uint64(im.TotalSize) > uint64(len(b)) {
			t.Fatalf("bad sizes %+v", im)
		}
		if crc32.ChecksumIEEE(b[im.HeaderSize:im.TotalSize]) != im.CRC {
			t.Fatal("CRC not verified")
		}
		entryOK := false
		for i, s := range im.Segments {
			if s.Paddr < MinPaddr || s.End() > MaxPaddr || s.End() <= s.Paddr || uint64(s.FileSize) > s.MemSize {
				t.Fatalf("segment %d escapes the window: %+v", i, s)
			}
			if len(im.Data(i)) != int(s.FileSize) || s.FileOffset < im.HeaderSize {
				t.Fatalf("segment %d data range wrong", i)
			}
			for j, o := range im.Segments[:i] {
				if s.Paddr < o.End() && o.Paddr < s.End() {
					t.Fatalf("segments %d and %d overlap", i, j)
				}
			}
			if uint64(im.Entry) >= s.Paddr && uint64(im.Entry) < s.Paddr+uint64(s.FileSize) {
				entryOK = true
			}
		}
		if !entryOK {
			t.Fatal("entry not in loaded bytes")
		}
	})
}

// FuzzBuild feeds arbitrary files to Build: it must return an error or an
// image that Parse accepts, never panic.
func FuzzBuild(f *testing.F) {
	f.Add(twoSegELF(elf.ELFCLASS64, 8).bytes())
	f.Add(twoSegELF(elf.ELFCLASS32, 4).bytes())
	sec := twoSegELF(elf.ELFCLASS64, 4)
	sec.noteAsSec = true
	f.Add(sec.bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		gki, err := Build(b)
		if err != nil {
			return
		}
		if _, err := Parse(gki); err != nil {
			t.Fatalf("Build produced an image Parse rejects: %v", err)
		}
	})
}
