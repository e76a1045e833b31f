package part

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/gohv/gohv/drivers/block"
)

// maxLogical bounds the chain of extended boot records (EBRs) followed.
const maxLogical = 128

// readLogical follows the EBR chain of extended partition ext (UEFI 2.10
// §5.2.1 describes only the MBR; the EBR layout is the same record format:
// record 1 is the logical partition, relative to its EBR; record 2 links
// to the next EBR, relative to the extended partition's start). Logical
// partitions are numbered from 5. Every EBR and partition must lie inside
// ext; the chain must not revisit an EBR.
func readLogical(ctx context.Context, dev block.Device, ext Partition) ([]Partition, error) {
	ss := int64(dev.Info().SectorSize)
	b := make([]byte, ss)
	le := binary.LittleEndian
	end := ext.Start + ext.Sectors
	seen := map[uint64]bool{}
	var out []Partition
	for ebr := ext.Start; ; {
		if len(out) >= maxLogical || seen[ebr] {
			return nil, fmt.Errorf("%w: extended partition chain loops or is longer than %d", ErrMBR, maxLogical)
		}
		seen[ebr] = true
		if _, err := dev.ReadAt(ctx, b, int64(ebr)*ss); err != nil {
			return nil, err
		}
		if b[mbrSignature] != 0x55 || b[mbrSignature+1] != 0xAA {
			return nil, fmt.Errorf("%w: EBR at LBA %d has no signature", ErrMBR, ebr)
		}
		r1 := b[mbrPartTable : mbrPartTable+mbrRecordSize]
		r2 := b[mbrPartTable+mbrRecordSize : mbrPartTable+2*mbrRecordSize]
		if typ, size := r1[prOSType], uint64(le.Uint32(r1[prSizeInLBA:])); typ != 0 && size != 0 {
			start := ebr + uint64(le.Uint32(r1[prStartLBA:]))
			if start <= ebr || start >= end || size > end-start {
				return nil, fmt.Errorf("%w: logical partition at LBA %d+%d outside the extended partition", ErrMBR, start, size)
			}
			out = append(out, Partition{Index: 5 + len(out), Start: start, Sectors: size, MBRType: typ,
				Bootable: r1[prBootIndicator] == 0x80})
		}
		next := uint64(le.Uint32(r2[prStartLBA:]))
		if r2[prOSType] == 0 || next == 0 {
			break
		}
		ebr = ext.Start + next
		if ebr >= end {
			return nil, fmt.Errorf("%w: EBR link to LBA %d outside the extended partition", ErrMBR, ebr)
		}
	}
	if err := checkOverlap(out); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMBR, err)
	}
	return out, nil
}
