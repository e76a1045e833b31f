package layout

import (
	"fmt"
	"io/fs"
	"time"

	"github.com/gohv/gohv/drivers/block/fat"
	"github.com/gohv/gohv/tools/image"
)

// MinFAT32Size is the smallest FAT32 partition gohv makes. With 512-byte
// clusters (the size Microsoft's table gives below 260 MB) it yields more
// than 65524 clusters, the count below which the FAT specification says a
// volume is FAT16 whatever its boot sector claims.
const MinFAT32Size = 33 * image.MiB

// fatOverheadDivisor approximates what the two FATs and directories cost
// relative to file data (8 bytes of FAT per 512-byte cluster is 1/64;
// 1/32 leaves room for directories and rounding).
const fatOverheadDivisor = 32

// fatSizeFor returns the partition size a FAT32 volume needs to hold t,
// rounded up to whole MiB.
func fatSizeFor(t *fat.Tree) int64 {
	need := t.Bytes()
	size := need + need/fatOverheadDivisor + image.MiB
	return max(MinFAT32Size, alignUp(size, image.MiB))
}

// treeFrom collects the files of fsys.
func treeFrom(fsys fs.FS) (*fat.Tree, error) {
	t := &fat.Tree{}
	if err := t.AddFS(fsys); err != nil {
		return nil, fmt.Errorf("data files: %w", err)
	}
	return t, nil
}

// writeFAT32 builds the volume for t in partition p of d.
func writeFAT32(d *image.MemDisk, p Partition, t *fat.Tree, label string, ts time.Time) error {
	err := fat.Write(d, p.Start, p.Size, t, fat.Options{
		Label:         label,
		VolumeID:      uint32(p.Start/image.SectorSize) ^ 0x60A7_0000 ^ uint32(p.Size>>20),
		HiddenSectors: uint32(p.Start / image.SectorSize),
		Time:          ts,
	})
	if err != nil {
		return fmt.Errorf("partition %d (%s): %w", p.Index, p.Name, err)
	}
	return nil
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }
