package kimage

import (
	"encoding/binary"
	"hash/crc32"
)

// GKI header layout (docs/boot.md, "The gohv kernel image (GKI)").
// All fields are little-endian.
const (
	offMagic      = 0  // [8]byte "GOHVKIMG"
	offVersion    = 8  // u32
	offHeaderSize = 12 // u32, multiple of 512
	offEntry      = 16 // u32, PVH 32-bit physical entry
	offCount      = 20 // u32, 1..16
	offTotalSize  = 24 // u32, header + data, multiple of 512
	offCRC        = 28 // u32, CRC-32 (IEEE) of [header size, total size)
	offSegments   = 32 // segment table

	// Segment entry layout, relative to the entry start.
	segOffPaddr    = 0  // u64
	segOffFileOff  = 8  // u32, from image start, multiple of 512
	segOffFileSize = 12 // u32
	segOffMemSize  = 16 // u64, >= file size
	segEntrySize   = 24
)

const (
	// Magic opens every GKI.
	Magic = "GOHVKIMG"
	// Version is the only GKI version this package reads and writes.
	Version = 1
	// SectorSize is the alignment of the header size, the segment file
	// offsets and the total size: the loaders read whole disk sectors.
	SectorSize = 512
	// MaxSegments bounds the segment table so the header fits one sector.
	MaxSegments = 16
	// MinPaddr is the lowest address a segment may occupy: the first MiB
	// belongs to the firmware and the loader (start_info, memmap, stack).
	MinPaddr = 1 << 20
	// MaxPaddr is the end of the 32-bit physical space: the loader copies
	// segments in 32-bit protected mode.
	MaxPaddr = 1 << 32
)

func alignUp(n, a uint64) uint64 { return (n + a - 1) &^ (a - 1) }

// headerSizeFor is the smallest sector-aligned header holding n segments.
func headerSizeFor(n int) uint32 {
	return uint32(alignUp(uint64(offSegments+segEntrySize*n), SectorSize))
}

func checksum(data []byte) uint32 { return crc32.ChecksumIEEE(data) }

func putSegment(b []byte, s Segment) {
	le := binary.LittleEndian
	le.PutUint64(b[segOffPaddr:], s.Paddr)
	le.PutUint32(b[segOffFileOff:], s.FileOffset)
	le.PutUint32(b[segOffFileSize:], s.FileSize)
	le.PutUint64(b[segOffMemSize:], s.MemSize)
}

func getSegment(b []byte) Segment {
	le := binary.LittleEndian
	return Segment{
		Paddr:      le.Uint64(b[segOffPaddr:]),
		FileOffset: le.Uint32(b[segOffFileOff:]),
		FileSize:   le.Uint32(b[segOffFileSize:]),
		MemSize:    le.Uint64(b[segOffMemSize:]),
	}
}
