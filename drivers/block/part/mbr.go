package part

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// MBR offsets (UEFI 2.10 §5.2.1, "Legacy Master Boot Record").
const (
	mbrPartTable  = 446 // four 16-byte records
	mbrRecordSize = 16
	mbrSignature  = 510 // 0x55, 0xAA
	mbrSize       = 512

	// Partition record offsets.
	prBootIndicator = 0 // 0x00 or 0x80
	prOSType        = 4
	prStartLBA      = 8  // u32
	prSizeInLBA     = 12 // u32

	// OSType values with a meaning here.
	TypeProtective = 0xEE // GPT protective MBR (UEFI 2.10 §5.2.3)
	typeExtCHS     = 0x05
	typeExtLBA     = 0x0F
	typeExtLinux   = 0x85
)

// MBR is a decoded MBR partition table.
type MBR struct {
	// Protective is true when a record has OSType 0xEE: the disk is GPT
	// (or hybrid) and the records are not the real layout.
	Protective bool
	Partitions []Partition // non-empty records, Index = slot 1..4
}

// ParseMBR decodes and validates sector 0 of a disk of sectors sectors.
// Records must have a valid boot indicator, lie on the disk and not
// overlap. An extended partition is reported as a partition of its own
// (Extended set); Read then adds its logical partitions (numbered from 5).
func ParseMBR(b []byte, sectors uint64) (MBR, error) {
	var m MBR
	if len(b) < mbrSize || b[mbrSignature] != 0x55 || b[mbrSignature+1] != 0xAA {
		return m, ErrNoTable
	}
	le := binary.LittleEndian
	for i := range 4 {
		r := b[mbrPartTable+i*mbrRecordSize : mbrPartTable+(i+1)*mbrRecordSize]
		if r[prBootIndicator] != 0 && r[prBootIndicator] != 0x80 {
			return m, fmt.Errorf("%w: record %d boot indicator %#x", ErrMBR, i+1, r[prBootIndicator])
		}
		typ := r[prOSType]
		start, size := uint64(le.Uint32(r[prStartLBA:])), uint64(le.Uint32(r[prSizeInLBA:]))
		if typ == 0 || size == 0 {
			continue
		}
		if typ == TypeProtective {
			m.Protective = true
			// The protective record covers the disk (or 0xFFFFFFFF
			// sectors when larger); it need not fit, so is not checked.
			continue
		}
		if start == 0 || start >= sectors || size > sectors-start {
			return m, fmt.Errorf("%w: record %d LBAs %d+%d outside a disk of %d sectors", ErrMBR, i+1, start, size, sectors)
		}
		m.Partitions = append(m.Partitions, Partition{Index: i + 1, Start: start, Sectors: size,
			MBRType: typ, Bootable: r[prBootIndicator] == 0x80,
			Extended: typ == typeExtCHS || typ == typeExtLBA || typ == typeExtLinux})
	}
	if err := checkOverlap(m.Partitions); err != nil {
		return m, fmt.Errorf("%w: %w", ErrMBR, err)
	}
	return m, nil
}

// checkOverlap fails when two partitions share a sector.
func checkOverlap(ps []Partition) error {
	s := slices.Clone(ps)
	slices.SortFunc(s, func(a, b Partition) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	for i := 1; i < len(s); i++ {
		if s[i].Start-s[i-1].Start < s[i-1].Sectors {
			return fmt.Errorf("partitions %d and %d overlap", s[i-1].Index, s[i].Index)
		}
	}
	return nil
}
