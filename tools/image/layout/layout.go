package layout

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/gohv/gohv/drivers/block/fat"
	"github.com/gohv/gohv/tools/image"
)

// Partition placement.
const (
	// FirstPartition is where the first partition starts on both layouts
	// (LBA 2048, the 1 MiB alignment every modern tool uses); the Gen1
	// loader's stage 2 lives in the gap before it.
	FirstPartition = image.MiB
	// MaxStage2Sectors bounds the loader's stage 2, written from LBA 1 in
	// the gap before the first partition (docs/boot.md, "Gen1 disk layout (MBR)": k ≤ 2046).
	MaxStage2Sectors = 2046
	// mbrMaxSize is the disk size 32-bit sector numbers can address.
	mbrMaxSize = (1 << 32) * image.SectorSize
	// gptTail reserves the end of a GPT disk for the backup header and
	// partition array (33 sectors), rounded to keep partition ends aligned.
	gptTail = image.MiB
	// gptMaxSize keeps every partition a FAT32 volume can fill addressable
	// with 32-bit sector counts (2 TiB); GPT itself goes further.
	gptMaxSize = (1 << 32) * image.SectorSize
)

// Partition describes one partition of a built disk.
type Partition struct {
	Index int    // 1-based, as partition tools number them
	Type  string // MBR type byte in hex ("0xDA") or GPT type GUID
	Start int64  // byte offset
	Size  int64  // bytes
	Name  string
}

// Disk is a built virtual disk and its partitions.
type Disk struct {
	*image.MemDisk
	Partitions []Partition
}

// ErrTooSmall reports a requested disk size that cannot hold the layout.
var ErrTooSmall = errors.New("disk too small")

// ErrInput reports missing or malformed input bytes.
var ErrInput = errors.New("bad input")

// Gen1Options describe a Generation 1 (BIOS, MBR) disk.
type Gen1Options struct {
	// Size of the whole disk in bytes (a multiple of 512). Zero picks the
	// smallest size that holds everything, rounded to MiB.
	Size int64
	// Stage1 is the MBR boot code (at most 440 bytes); Stage2 is the rest
	// of the loader, whole sectors, written from LBA 1.
	Stage1, Stage2 []byte
	// Kernel is the GKI written at the start of the kernel partition.
	Kernel []byte
	// KernelPartitionSize is the kernel partition size; zero means the GKI
	// rounded up to whole MiB.
	KernelPartitionSize int64
	// Files, if not nil, become a FAT32 data partition that takes the rest
	// of the disk.
	Files fs.FS
	// DataLabel is the data volume label; empty means "GOHV DATA".
	DataLabel string
	// Time stamps the data files; zero means 2000-01-01 (reproducible).
	Time time.Time
	// DiskSignature goes at MBR offset 440; zero means random.
	DiskSignature uint32
	// Rand supplies random identifiers; nil means crypto/rand.
	Rand io.Reader
}

// Gen1 builds an MBR disk per docs/boot.md, "Gen1 disk layout (MBR)": stage 1 in the MBR,
// stage 2 from LBA 1, the active kernel partition (type 0xDA) at LBA 2048
// holding the GKI, and an optional FAT32 data partition (type 0x0C).
func Gen1(o Gen1Options) (*Disk, error) {
	switch {
	case len(o.Stage1) == 0:
		return nil, fmt.Errorf("%w: no stage 1 loader bytes", ErrInput)
	case len(o.Stage1) > mbrBootCodeSize:
		return nil, fmt.Errorf("%w: stage 1 is %d bytes; the MBR boot code area holds %d", ErrInput, len(o.Stage1), mbrBootCodeSize)
	case len(o.Stage2) == 0 || len(o.Stage2)%image.SectorSize != 0:
		return nil, fmt.Errorf("%w: stage 2 is %d bytes; want a non-zero multiple of 512", ErrInput, len(o.Stage2))
	case len(o.Stage2)/image.SectorSize > MaxStage2Sectors:
		return nil, fmt.Errorf("%w: stage 2 is %d sectors; at most %d fit before LBA 2048", ErrInput, len(o.Stage2)/image.SectorSize, MaxStage2Sectors)
	case len(o.Kernel) == 0:
		return nil, fmt.Errorf("%w: no kernel image (GKI) bytes", ErrInput)
	}
	kSize := alignUp(int64(len(o.Kernel)), image.MiB)
	if o.KernelPartitionSize != 0 {
		if o.KernelPartitionSize < int64(len(o.Kernel)) || o.KernelPartitionSize%image.SectorSize != 0 {
			return nil, fmt.Errorf("%w: kernel partition size %d must be a multiple of 512 no smaller than the %d-byte GKI",
				ErrInput, o.KernelPartitionSize, len(o.Kernel))
		}
		kSize = o.KernelPartitionSize
	}
	dataStart := alignUp(FirstPartition+kSize, image.MiB)
	need := FirstPartition + kSize
	files, dataMin, err := dataPartition(o.Files)
	if err != nil {
		return nil, err
	}
	if files != nil {
		need = dataStart + dataMin
	}
	size, err := pickSize(o.Size, need, mbrMaxSize, "an MBR disk",
		fmt.Sprintf("kernel partition %s", image.FormatSize(kSize)), dataMin)
	if err != nil {
		return nil, err
	}
	d, err := image.NewMemDisk(size)
	if err != nil {
		return nil, err
	}
	disk := &Disk{MemDisk: d}
	parts := []mbrPartition{{active: true, typ: KernelPartitionType, start: uint32(FirstPartition / image.SectorSize), sectors: uint32(kSize / image.SectorSize)}}
	disk.Partitions = append(disk.Partitions, Partition{1, "0xDA", FirstPartition, kSize, "kernel"})
	if o.Files != nil {
		dSize := size - dataStart
		parts = append(parts, mbrPartition{typ: FAT32PartitionType, start: uint32(dataStart / image.SectorSize), sectors: uint32(dSize / image.SectorSize)})
		disk.Partitions = append(disk.Partitions, Partition{2, "0x0C", dataStart, dSize, "data"})
	}
	sig := o.DiskSignature
	if sig == 0 {
		var b [4]byte
		if err := readRand(o.Rand, b[:]); err != nil {
			return nil, err
		}
		sig = binary.LittleEndian.Uint32(b[:]) | 1 // never zero: zero means "none" to Windows
	}
	mbr, err := encodeMBR(o.Stage1, sig, parts)
	if err != nil {
		return nil, err
	}
	for _, w := range []struct {
		b   []byte
		off int64
	}{{mbr, 0}, {o.Stage2, image.SectorSize}, {o.Kernel, FirstPartition}} {
		if _, err := d.WriteAt(w.b, w.off); err != nil {
			return nil, err
		}
	}
	if files != nil {
		if err := writeFAT32(d, disk.Partitions[1], files, labelOr(o.DataLabel, "GOHV DATA"), o.Time); err != nil {
			return nil, err
		}
	}
	return disk, nil
}

// Gen2Options describe a Generation 2 (UEFI, GPT) disk.
type Gen2Options struct {
	// Size of the whole disk; zero picks the smallest that fits.
	Size int64
	// EFI is the UEFI application stored as \EFI\BOOT\BOOTX64.EFI.
	EFI []byte
	// ESPSize is the EFI System Partition size; zero means enough for EFI
	// and at least MinFAT32Size.
	ESPSize int64
	// Files, if not nil, become a FAT32 Microsoft basic data partition
	// that takes the rest of the disk.
	Files fs.FS
	// DataLabel is the data volume label; empty means "GOHV DATA".
	DataLabel string
	// Time stamps the files; zero means 2000-01-01 (reproducible).
	Time time.Time
}

// ESP file placement: the removable-media boot path UEFI firmware tries
// when no boot entry exists (UEFI spec §3.5.1.1).
const bootFilePath = "/EFI/BOOT/BOOTX64.EFI"

// Gen2 builds a GPT disk per docs/boot.md, "Gen2 disk layout (GPT)": a FAT32 EFI System
// Partition at LBA 2048 holding \EFI\BOOT\BOOTX64.EFI, and an optional
// FAT32 data partition.
func Gen2(o Gen2Options) (*Disk, error) {
	if len(o.EFI) == 0 {
		return nil, fmt.Errorf("%w: no EFI application bytes (BOOTX64.EFI)", ErrInput)
	}
	espTree := &fat.Tree{}
	if err := espTree.AddFile(bootFilePath, o.EFI); err != nil {
		return nil, err
	}
	espMin := fatSizeFor(espTree)
	esp := espMin
	if o.ESPSize != 0 {
		if o.ESPSize < espMin || o.ESPSize%image.MiB != 0 {
			return nil, fmt.Errorf("%w: ESP size %d must be whole MiB and at least %s for a %d-byte BOOTX64.EFI",
				ErrInput, o.ESPSize, image.FormatSize(espMin), len(o.EFI))
		}
		esp = o.ESPSize
	}
	dataStart := FirstPartition + esp
	need := dataStart + gptTail
	files, dataMin, err := dataPartition(o.Files)
	if err != nil {
		return nil, err
	}
	need += dataMin
	size, err := pickSize(o.Size, need, gptMaxSize, "a GPT disk", "EFI system partition "+image.FormatSize(esp), dataMin)
	if err != nil {
		return nil, err
	}
	d, err := image.NewMemDisk(size)
	if err != nil {
		return nil, err
	}
	disk := &Disk{MemDisk: d}
	sec := uint64(image.SectorSize)
	tbl := &gpt.Table{
		LogicalSectorSize:  image.SectorSize,
		PhysicalSectorSize: image.SectorSize,
		ProtectiveMBR:      true,
		Partitions: []*gpt.Partition{{
			Index: 1, Start: uint64(FirstPartition) / sec, Size: uint64(esp),
			Type: gpt.EFISystemPartition, Name: "EFI system partition",
		}},
	}
	disk.Partitions = append(disk.Partitions, Partition{1, string(gpt.EFISystemPartition), FirstPartition, esp, "EFI system partition"})
	if o.Files != nil {
		dSize := (size - gptTail) - dataStart
		tbl.Partitions = append(tbl.Partitions, &gpt.Partition{
			Index: 2, Start: uint64(dataStart) / sec, Size: uint64(dSize),
			Type: gpt.MicrosoftBasicData, Name: "gohv data",
		})
		disk.Partitions = append(disk.Partitions, Partition{2, string(gpt.MicrosoftBasicData), dataStart, dSize, "gohv data"})
	}
	if err := tbl.Write(&diskBackend{d: d}, size); err != nil {
		return nil, fmt.Errorf("write GPT: %w", err)
	}
	if err := writeFAT32(d, disk.Partitions[0], espTree, "EFI", o.Time); err != nil {
		return nil, err
	}
	if files != nil {
		if err := writeFAT32(d, disk.Partitions[1], files, labelOr(o.DataLabel, "GOHV DATA"), o.Time); err != nil {
			return nil, err
		}
	}
	return disk, nil
}

// pickSize returns the requested size, or need rounded to MiB when none was
// requested, and explains what does not fit otherwise.
func pickSize(requested, need, limit int64, what, first string, dataMin int64) (int64, error) {
	need = alignUp(need, image.MiB)
	if requested == 0 {
		requested = need
	}
	if requested%image.SectorSize != 0 {
		return 0, fmt.Errorf("%w: disk size %d is not a multiple of 512 bytes", ErrInput, requested)
	}
	if requested > limit {
		return 0, fmt.Errorf("%w: disk size %s exceeds the %s limit of %s", ErrInput, image.FormatSize(requested), what, image.FormatSize(limit))
	}
	if requested < need {
		detail := first
		if dataMin > 0 {
			detail += fmt.Sprintf(", data partition at least %s for the files", image.FormatSize(dataMin))
		}
		return 0, fmt.Errorf("%w: %s is too small for the layout (%s); use a size of at least %s, or omit the size to get exactly that",
			ErrTooSmall, image.FormatSize(requested), detail, image.FormatSize(need))
	}
	return requested, nil
}

func labelOr(l, def string) string {
	if l == "" {
		return def
	}
	return l
}

func readRand(r io.Reader, b []byte) error {
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("random identifier: %w", err)
	}
	return nil
}

// dataPartition reads the user files of the optional FAT32 data partition
// and the smallest partition that holds them (nil and 0 without files).
func dataPartition(fsys fs.FS) (*fat.Tree, int64, error) {
	if fsys == nil {
		return nil, 0, nil
	}
	t, err := treeFrom(fsys)
	if err != nil {
		return nil, 0, err
	}
	return t, fatSizeFor(t), nil
}
