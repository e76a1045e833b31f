// Package kimage owns the gohv kernel image (GKI): a flat, loader-friendly
// form of the kernel ELF that the Gen1 (BIOS) and Gen2 (UEFI) loaders read
// with nothing but sector reads and copies (docs/boot.md, "The gohv kernel
// image (GKI)").
//
// Build flattens an ELF into a GKI; Parse validates one. The package is pure
// Go and runs on the host (image builder) and in tests; it must not touch
// machine state, the disk layout (tools/image) or the loaders (boot/gen1,
// boot/gen2).
package kimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// Errors callers may branch on. Every error returned by Build and Parse
// wraps one of them.
var (
	ErrNotELF          = errors.New("kimage: not an ELF kernel")
	ErrNoPVHEntry      = errors.New("kimage: kernel has no PVH entry note; build it with tamago's amd64 linker or add the note")
	ErrNoSegments      = errors.New("kimage: no loadable segments")
	ErrTooManySegments = errors.New("kimage: too many loadable segments")
	ErrSegmentOverlap  = errors.New("kimage: segments overlap")
	ErrSegmentLow      = errors.New("kimage: segment below 1 MiB")
	ErrSegmentHigh     = errors.New("kimage: segment above 4 GiB")
	ErrBadEntry        = errors.New("kimage: entry point outside the loaded segments")
	ErrFormat          = errors.New("kimage: malformed image")
	ErrChecksum        = errors.New("kimage: CRC-32 mismatch")
)

// Segment is one loadable range of the kernel.
type Segment struct {
	// Paddr is the physical load address.
	Paddr uint64
	// FileOffset is where the segment's bytes start, from the image start.
	FileOffset uint32
	// FileSize is the number of bytes stored in the image.
	FileSize uint32
	// MemSize is the size in memory; bytes past FileSize are zeroed.
	MemSize uint64
}

// End is the first physical address after the segment in memory.
func (s Segment) End() uint64 { return s.Paddr + s.MemSize }

// Image is a validated GKI.
type Image struct {
	// Entry is the PVH 32-bit entry point.
	Entry uint32
	// HeaderSize is the size of the header, a multiple of 512.
	HeaderSize uint32
	// TotalSize is the size of header plus data, a multiple of 512.
	TotalSize uint32
	// CRC is the CRC-32 (IEEE) of the data part.
	CRC uint32
	// Segments are in image order.
	Segments []Segment

	raw []byte // the image, TotalSize bytes, owned by the caller of Parse
}

// Data returns the file bytes of segment i (a sub-slice of the parsed
// buffer; FileSize bytes long).
func (im *Image) Data(i int) []byte {
	s := im.Segments[i]
	return im.raw[s.FileOffset : s.FileOffset+s.FileSize]
}

// Parse validates a GKI and returns its description. b may be longer than
// the image (a partition, a padded PE section); bytes past TotalSize are
// ignored. Parse copies nothing: Image.Data returns sub-slices of b.
func Parse(b []byte) (*Image, error) {
	if len(b) < offSegments {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the header", ErrFormat, len(b))
	}
	le := binary.LittleEndian
	if !bytes.Equal(b[offMagic:offMagic+8], []byte(Magic)) {
		return nil, fmt.Errorf("%w: bad magic %q", ErrFormat, b[offMagic:offMagic+8])
	}
	if v := le.Uint32(b[offVersion:]); v != Version {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrFormat, v, Version)
	}
	im := &Image{
		HeaderSize: le.Uint32(b[offHeaderSize:]),
		Entry:      le.Uint32(b[offEntry:]),
		TotalSize:  le.Uint32(b[offTotalSize:]),
		CRC:        le.Uint32(b[offCRC:]),
	}
	n := le.Uint32(b[offCount:])
	switch {
	case n == 0:
		return nil, fmt.Errorf("%w: segment count 0", ErrNoSegments)
	case n > MaxSegments:
		return nil, fmt.Errorf("%w: %d segments, at most %d", ErrTooManySegments, n, MaxSegments)
	}
	hs, ts := uint64(im.HeaderSize), uint64(im.TotalSize)
	switch {
	case hs%SectorSize != 0 || ts%SectorSize != 0:
		return nil, fmt.Errorf("%w: header size %d or total size %d not a multiple of %d", ErrFormat, hs, ts, SectorSize)
	case hs < uint64(offSegments+segEntrySize*int(n)):
		return nil, fmt.Errorf("%w: header size %d too small for %d segments", ErrFormat, hs, n)
	case hs > ts:
		return nil, fmt.Errorf("%w: header size %d beyond total size %d", ErrFormat, hs, ts)
	case ts > uint64(len(b)):
		return nil, fmt.Errorf("%w: total size %d, only %d bytes present", ErrFormat, ts, len(b))
	}
	tableEnd := offSegments + segEntrySize*int(n)
	for _, c := range b[tableEnd:hs] {
		if c != 0 {
			return nil, fmt.Errorf("%w: non-zero header padding", ErrFormat)
		}
	}
	im.Segments = make([]Segment, n)
	for i := range im.Segments {
		s := getSegment(b[offSegments+segEntrySize*i:])
		im.Segments[i] = s
		fo, fs := uint64(s.FileOffset), uint64(s.FileSize)
		switch {
		case fo%SectorSize != 0:
			return nil, fmt.Errorf("%w: segment %d file offset %#x not sector aligned", ErrFormat, i, fo)
		case fo < hs || fo+fs > ts:
			return nil, fmt.Errorf("%w: segment %d file range [%#x,%#x) outside data [%#x,%#x)", ErrFormat, i, fo, fo+fs, hs, ts)
		}
	}
	if err := checkLayout(im.Segments, im.Entry); err != nil {
		return nil, err
	}
	im.raw = b[:ts]
	if got := checksum(im.raw[hs:]); got != im.CRC {
		return nil, fmt.Errorf("%w: computed %#08x, header says %#08x", ErrChecksum, got, im.CRC)
	}
	return im, nil
}

// checkLayout enforces the memory-side invariants shared by Build and
// Parse: sizes, the [1 MiB, 4 GiB) window, no overlap, entry inside loaded
// bytes.
func checkLayout(segs []Segment, entry uint32) error {
	switch {
	case len(segs) == 0:
		return ErrNoSegments
	case len(segs) > MaxSegments:
		return fmt.Errorf("%w: %d segments, at most %d", ErrTooManySegments, len(segs), MaxSegments)
	}
	for i, s := range segs {
		switch {
		case s.MemSize == 0:
			return fmt.Errorf("%w: segment %d is empty", ErrFormat, i)
		case s.MemSize < uint64(s.FileSize):
			return fmt.Errorf("%w: segment %d memory size %#x below file size %#x", ErrFormat, i, s.MemSize, s.FileSize)
		case s.Paddr < MinPaddr:
			return fmt.Errorf("%w: segment %d at %#x", ErrSegmentLow, i, s.Paddr)
		case s.Paddr >= MaxPaddr || s.MemSize > MaxPaddr-s.Paddr:
			return fmt.Errorf("%w: segment %d at %#x size %#x", ErrSegmentHigh, i, s.Paddr, s.MemSize)
		}
	}
	sorted := append([]Segment(nil), segs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Paddr < sorted[j].Paddr })
	for i := 1; i < len(sorted); i++ {
		if a, b := sorted[i-1], sorted[i]; a.End() > b.Paddr {
			return fmt.Errorf("%w: [%#x,%#x) and [%#x,%#x)", ErrSegmentOverlap, a.Paddr, a.End(), b.Paddr, b.End())
		}
	}
	for _, s := range segs {
		if e := uint64(entry); e >= s.Paddr && e < s.Paddr+uint64(s.FileSize) {
			return nil
		}
	}
	return fmt.Errorf("%w: %#x", ErrBadEntry, entry)
}
