package part

import (
	"context"
	"errors"
	"fmt"

	"github.com/gohv/gohv/drivers/block"
)

// Errors.
var (
	ErrNoTable = errors.New("part: no partition table")
	ErrGPT     = errors.New("part: invalid GPT")
	ErrMBR     = errors.New("part: invalid MBR")
)

// Kind is the partition table's format.
type Kind uint8

// Table kinds.
const (
	KindMBR Kind = iota + 1
	KindGPT
)

func (k Kind) String() string {
	switch k {
	case KindMBR:
		return "mbr"
	case KindGPT:
		return "gpt"
	}
	return "none"
}

// Partition is one entry of a table. LBAs are in the disk's sectors.
type Partition struct {
	Index   int    // 1-based slot in the table
	Start   uint64 // first LBA
	Sectors uint64 // length in sectors

	// GPT only.
	Type       GUID
	GUID       GUID
	Name       string
	Attributes uint64

	// MBR only.
	MBRType  byte
	Bootable bool
	Extended bool // an extended-partition container (not a filesystem)
}

// Table is a disk's partition table.
type Table struct {
	Kind       Kind
	Partitions []Partition
	DiskGUID   GUID // GPT

	// GPT health: UsedBackup is true when the primary header or array was
	// invalid (PrimaryErr says why) and the backup was used. BackupErr
	// says what is wrong with the backup while the primary is in use
	// (missing, corrupt, or disagreeing with the primary).
	UsedBackup bool
	PrimaryErr error
	BackupErr  error
}

// Read reads dev's partition table: GPT when the MBR is protective (or a
// GPT header is present), otherwise MBR. ErrNoTable when there is
// neither.
func Read(ctx context.Context, dev block.Device) (*Table, error) {
	info := dev.Info()
	ss := info.SectorSize
	if ss < mbrSize || info.Sectors < 3 {
		return nil, fmt.Errorf("part: %s: %w (%d sectors of %d bytes)", info.Name, ErrNoTable, info.Sectors, ss)
	}
	sec := make([]byte, 2*ss)
	if _, err := dev.ReadAt(ctx, sec, 0); err != nil {
		return nil, fmt.Errorf("part: %s: %w", info.Name, err)
	}
	mbr, mbrErr := ParseMBR(sec[:ss], info.Sectors)
	if mbrErr == nil && !mbr.Protective && string(sec[ss:ss+8]) != string(efiPart) {
		parts := mbr.Partitions
		for _, p := range mbr.Partitions {
			if !p.Extended {
				continue
			}
			logical, err := readLogical(ctx, dev, p)
			if err != nil {
				return nil, fmt.Errorf("part: %s: %w", info.Name, err)
			}
			parts = append(parts, logical...)
		}
		return &Table{Kind: KindMBR, Partitions: parts}, nil
	}
	t, err := readGPT(ctx, dev, info)
	switch {
	case err == nil:
		return t, nil
	case !errors.Is(err, errNoGPT):
	case mbrErr != nil:
		err = mbrErr
	case mbr.Protective:
		err = fmt.Errorf("%w: protective MBR but no GPT header", ErrGPT)
	default: // a hybrid-looking MBR whose GPT is gone: use the MBR
		return &Table{Kind: KindMBR, Partitions: mbr.Partitions}, nil
	}
	return nil, fmt.Errorf("part: %s: %w", info.Name, err)
}

var errNoGPT = fmt.Errorf("%w: neither header has a signature", ErrGPT)

// readGPT reads both headers and arrays, cross-checks them and picks one.
func readGPT(ctx context.Context, dev block.Device, info block.Info) (*Table, error) {
	last := info.Sectors - 1
	ph, pparts, perr := readGPTAt(ctx, dev, info, 1)
	bh, bparts, berr := readGPTAt(ctx, dev, info, last)
	switch {
	case perr == nil:
		t := &Table{Kind: KindGPT, Partitions: pparts, DiskGUID: ph.DiskGUID}
		switch {
		case berr != nil:
			t.BackupErr = berr
		case ph.AlternateLBA != last:
			t.BackupErr = fmt.Errorf("%w: primary names its backup at LBA %d, not the last LBA %d", ErrGPT, ph.AlternateLBA, last)
		default:
			if err := sameTable(ph, bh); err != nil {
				t.BackupErr = fmt.Errorf("%w: backup disagrees with primary: %w", ErrGPT, err)
			}
		}
		return t, nil
	case berr == nil:
		return &Table{Kind: KindGPT, Partitions: bparts, DiskGUID: bh.DiskGUID, UsedBackup: true, PrimaryErr: perr}, nil
	}
	if errors.Is(perr, errSig) && errors.Is(berr, errSig) {
		return nil, errNoGPT
	}
	return nil, fmt.Errorf("primary: %w; backup: %w", perr, berr)
}

var errSig = errors.New("no signature")

func readGPTAt(ctx context.Context, dev block.Device, info block.Info, lba uint64) (GPTHeader, []Partition, error) {
	ss := int64(info.SectorSize)
	b := make([]byte, ss)
	if _, err := dev.ReadAt(ctx, b, int64(lba)*ss); err != nil {
		return GPTHeader{}, nil, err
	}
	if string(b[:8]) != string(efiPart) {
		return GPTHeader{}, nil, fmt.Errorf("%w: LBA %d: %w", ErrGPT, lba, errSig)
	}
	h, err := ParseGPTHeader(b, lba, info.Sectors)
	if err != nil {
		return h, nil, err
	}
	n := (int64(h.entryBytes()) + ss - 1) / ss * ss
	arr := make([]byte, n)
	if _, err := dev.ReadAt(ctx, arr, int64(h.EntryLBA)*ss); err != nil {
		return h, nil, err
	}
	parts, err := ParseGPTEntries(arr, h)
	return h, parts, err
}

// Open returns partition p of dev as a device of its own.
func Open(dev block.Device, p Partition) (*Device, error) {
	return NewDevice(dev, p.Start, p.Sectors, fmt.Sprintf("%sp%d", dev.Info().Name, p.Index))
}
