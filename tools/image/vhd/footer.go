package vhd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Footer layout (spec "Hard Disk Footer Format"): 512 bytes, big-endian.
const (
	FooterSize = 512

	offCookie         = 0
	offFeatures       = 8
	offVersion        = 12
	offDataOffset     = 16
	offTimestamp      = 24
	offCreatorApp     = 28
	offCreatorVersion = 32
	offCreatorHostOS  = 36
	offOriginalSize   = 40
	offCurrentSize    = 48
	offDiskGeometry   = 56
	offDiskType       = 60
	offChecksum       = 64
	offUniqueID       = 68
	offSavedState     = 84

	cookie          = "conectix"
	featureReserved = 2          // "always set" bit
	fileFormatVer   = 0x00010000 // 1.0
	fixedDataOffset = ^uint64(0) // fixed disks have no dynamic header
	// CreatorApp "win " is what Hyper-V writes. QEMU's vpc driver takes the
	// disk size from Current Size (not from the CHS geometry, which cannot
	// express most sizes) only for creators it knows to do the same, and
	// Hyper-V's is one of them.
	creatorApp     = "win "
	creatorVersion = 0x000A0000 // Hyper-V's creator version
	creatorHostOS  = 0x5769326B // "Wi2k"

	DiskTypeFixed = 2
)

// vhdEpoch is the zero of the footer's timestamp: 2000-01-01 00:00:00 UTC.
var vhdEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Geometry is a CHS disk geometry as the footer stores it.
type Geometry struct {
	Cylinders uint16
	Heads     uint8
	Sectors   uint8 // per track
}

// CHS computes the geometry for a disk of totalSectors 512-byte sectors
// with the algorithm in the spec's appendix ("CHS Calculation").
func CHS(totalSectors int64) Geometry {
	const maxSectors = 65535 * 16 * 255
	if totalSectors > maxSectors {
		totalSectors = maxSectors
	}
	var spt, heads, cth int64
	if totalSectors >= 65535*16*63 {
		spt, heads = 255, 16
		cth = totalSectors / spt
	} else {
		spt = 17
		cth = totalSectors / spt
		heads = (cth + 1023) / 1024
		if heads < 4 {
			heads = 4
		}
		if cth >= heads*1024 || heads > 16 {
			spt, heads = 31, 16
			cth = totalSectors / spt
		}
		if cth >= heads*1024 {
			spt, heads = 63, 16
			cth = totalSectors / spt
		}
	}
	return Geometry{Cylinders: uint16(cth / heads), Heads: uint8(heads), Sectors: uint8(spt)}
}

// Footer holds the fields of a fixed-disk footer that vary.
type Footer struct {
	Size      int64     // original and current size
	Timestamp time.Time // creation time, stored in whole seconds since 2000
	UniqueID  [16]byte
}

// Encode builds the 512-byte footer of a fixed disk.
func (f Footer) Encode() []byte {
	b := make([]byte, FooterSize)
	be := binary.BigEndian
	copy(b[offCookie:], cookie)
	be.PutUint32(b[offFeatures:], featureReserved)
	be.PutUint32(b[offVersion:], fileFormatVer)
	be.PutUint64(b[offDataOffset:], fixedDataOffset)
	ts := max(f.Timestamp.Sub(vhdEpoch)/time.Second, 0)
	be.PutUint32(b[offTimestamp:], uint32(ts))
	copy(b[offCreatorApp:], creatorApp)
	be.PutUint32(b[offCreatorVersion:], creatorVersion)
	be.PutUint32(b[offCreatorHostOS:], creatorHostOS)
	be.PutUint64(b[offOriginalSize:], uint64(f.Size))
	be.PutUint64(b[offCurrentSize:], uint64(f.Size))
	g := CHS(f.Size / 512)
	be.PutUint16(b[offDiskGeometry:], g.Cylinders)
	b[offDiskGeometry+2] = g.Heads
	b[offDiskGeometry+3] = g.Sectors
	be.PutUint32(b[offDiskType:], DiskTypeFixed)
	copy(b[offUniqueID:], f.UniqueID[:])
	be.PutUint32(b[offChecksum:], footerChecksum(b))
	return b
}

// footerChecksum is the one's complement of the byte sum of the footer
// without its checksum field.
func footerChecksum(b []byte) uint32 {
	var sum uint32
	for i, c := range b[:FooterSize] {
		if i >= offChecksum && i < offChecksum+4 {
			continue
		}
		sum += uint32(c)
	}
	return ^sum
}

// ErrFooter reports bytes that are not a valid fixed-disk footer.
var ErrFooter = errors.New("vhd: malformed footer")

// ParsedFooter is what ParseFooter reads.
type ParsedFooter struct {
	Footer
	CreatorApp   string
	Geometry     Geometry
	DiskType     uint32
	OriginalSize int64
}

// ParseFooter decodes and validates a fixed-disk footer.
func ParseFooter(b []byte) (ParsedFooter, error) {
	if len(b) != FooterSize {
		return ParsedFooter{}, fmt.Errorf("%w: %d bytes, want %d", ErrFooter, len(b), FooterSize)
	}
	be := binary.BigEndian
	if string(b[offCookie:offCookie+8]) != cookie {
		return ParsedFooter{}, fmt.Errorf("%w: no %q cookie", ErrFooter, cookie)
	}
	if got, want := be.Uint32(b[offChecksum:]), footerChecksum(b); got != want {
		return ParsedFooter{}, fmt.Errorf("%w: checksum %#x, computed %#x", ErrFooter, got, want)
	}
	var p ParsedFooter
	p.DiskType = be.Uint32(b[offDiskType:])
	if p.DiskType != DiskTypeFixed {
		return ParsedFooter{}, fmt.Errorf("%w: disk type %d is not fixed (2)", ErrFooter, p.DiskType)
	}
	cur, orig := be.Uint64(b[offCurrentSize:]), be.Uint64(b[offOriginalSize:])
	if cur == 0 || cur%512 != 0 || cur > 1<<62 || orig > 1<<62 {
		return ParsedFooter{}, fmt.Errorf("%w: current size %d", ErrFooter, cur)
	}
	p.Size, p.OriginalSize = int64(cur), int64(orig)
	p.Timestamp = vhdEpoch.Add(time.Duration(be.Uint32(b[offTimestamp:])) * time.Second)
	copy(p.UniqueID[:], b[offUniqueID:])
	p.CreatorApp = string(b[offCreatorApp : offCreatorApp+4])
	p.Geometry = Geometry{be.Uint16(b[offDiskGeometry:]), b[offDiskGeometry+2], b[offDiskGeometry+3]}
	return p, nil
}
