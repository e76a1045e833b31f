// Package mount finds the filesystems on a disk: it reads the partition
// table (block/part), probes each partition (or the whole disk when there
// is no table) for FAT32 and ext2/3/4, and mounts what it recognises as
// io/fs file systems.
//
// It owns only detection and the choice of driver; the formats belong to
// block/part, block/fat and block/ext4. It writes nothing unless the
// caller writes through a returned FAT volume (or an ext4 volume mounted
// read-write with Options.Ext4Write).
package mount

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/gohv/gohv/drivers/block"
	"github.com/gohv/gohv/drivers/block/ext4"
	"github.com/gohv/gohv/drivers/block/fat"
	"github.com/gohv/gohv/drivers/block/part"
)

// Type is a detected filesystem type.
type Type uint8

// Filesystem types.
const (
	Unknown Type = iota
	FAT32
	Ext4 // ext2, ext3 or ext4
)

func (t Type) String() string {
	switch t {
	case FAT32:
		return "fat32"
	case Ext4:
		return "ext4"
	}
	return "unknown"
}

// probeSize covers the FAT boot sector and the ext superblock.
const (
	probeSize  = 2048
	extMagicAt = 1024 + 0x38 // superblock s_magic (ext4 docs, "Super Block")
	extMagic   = 0xEF53
)

// ErrUnknown: no supported filesystem was found.
var ErrUnknown = errors.New("mount: no FAT32 or ext2/3/4 filesystem")

// Detect probes dev for a filesystem by its signature: the ext
// superblock magic, or a FAT32 boot sector that validates.
func Detect(ctx context.Context, dev block.Device) (Type, error) {
	info := dev.Info()
	ss := int64(info.SectorSize)
	if ss <= 0 {
		return Unknown, ErrUnknown
	}
	n := (probeSize + ss - 1) / ss * ss
	if n > info.Size() {
		return Unknown, ErrUnknown
	}
	b := make([]byte, n)
	if _, err := dev.ReadAt(ctx, b, 0); err != nil {
		return Unknown, fmt.Errorf("mount: probe %s: %w", info.Name, err)
	}
	if binary.LittleEndian.Uint16(b[extMagicAt:]) == extMagic {
		return Ext4, nil
	}
	if _, err := fat.ParseBootSector(b); err == nil {
		return FAT32, nil
	}
	return Unknown, ErrUnknown
}

// Volume is one filesystem found on a disk.
type Volume struct {
	// Partition is the table entry, or nil for a filesystem on the whole
	// disk.
	Partition *part.Partition
	Device    block.Device // the partition (or the disk)
	Type      Type
	// FS is the mounted filesystem: *fat.FS (read-write unless the
	// device or Options say read-only) or *ext4.FS (read-only, or
	// read-write with Options.Ext4Write when the volume allows it).
	FS fs.FS
	// WriteErr says why an ext4 volume asked for read-write
	// (Options.Ext4Write) was mounted read-only: an *ext4.FeatureError,
	// ext4.ErrNeedsCheck, or a read-only device.
	WriteErr error
	// Err says why a partition has no FS (ErrUnknown for foreign or
	// empty partitions, or the mount error).
	Err error
}

// Options adjust Mount.
type Options struct {
	ReadOnly bool // mount FAT volumes read-only too (and ext4 never read-write)
	// Ext4Write mounts ext4 volumes read-write (ext4.MountRW) when their
	// features and state allow it, else read-only (Volume.WriteErr).
	Ext4Write bool
	Now       func() time.Time // FAT time stamps; nil means time.Now
}

// Mount reads dev's partition table and mounts every partition it can.
// The table is nil when the filesystem covers the whole disk. Partitions
// without a recognised filesystem are listed with Err set; an error is
// returned only when nothing usable was found.
func Mount(ctx context.Context, dev block.Device, o Options) ([]Volume, *part.Table, error) {
	tab, terr := part.Read(ctx, dev)
	whole := terr != nil || len(tab.Partitions) == 0
	if !whole && tab.Kind == part.KindMBR {
		// A "superfloppy" (a filesystem on the whole disk) can look like
		// an MBR: its boot sector carries the same 0x55AA signature.
		if t, err := Detect(ctx, dev); err == nil && t == FAT32 {
			whole = true
		}
	}
	if whole {
		v := mountOne(ctx, dev, nil, o)
		if v.Err != nil {
			if terr != nil {
				return nil, nil, fmt.Errorf("mount: %s: %w (partition table: %w)", dev.Info().Name, v.Err, terr)
			}
			return nil, nil, fmt.Errorf("mount: %s: %w", dev.Info().Name, v.Err)
		}
		return []Volume{v}, nil, nil
	}
	var out []Volume
	ok := false
	for i := range tab.Partitions {
		p := &tab.Partitions[i]
		if p.Extended {
			continue
		}
		pd, err := part.Open(dev, *p)
		if err != nil {
			out = append(out, Volume{Partition: p, Err: err})
			continue
		}
		v := mountOne(ctx, pd, p, o)
		ok = ok || v.Err == nil
		out = append(out, v)
	}
	if !ok {
		return out, tab, fmt.Errorf("mount: %s: %w on any of its %d partitions", dev.Info().Name, ErrUnknown, len(tab.Partitions))
	}
	return out, tab, nil
}

func mountOne(ctx context.Context, dev block.Device, p *part.Partition, o Options) Volume {
	v := Volume{Partition: p, Device: dev}
	v.Type, v.Err = Detect(ctx, dev)
	switch v.Type {
	case FAT32:
		f, err := fat.Mount(ctx, dev, fat.MountOptions{ReadOnly: o.ReadOnly, Now: o.Now})
		v.FS, v.Err = f, err
		if err != nil {
			v.FS = nil
		}
	case Ext4:
		if o.Ext4Write && !o.ReadOnly {
			f, err := ext4.MountRW(ctx, dev, ext4.WriteOptions{Now: o.Now})
			if err == nil {
				v.FS = f
				return v
			}
			v.WriteErr = err
		}
		f, err := ext4.Mount(ctx, dev)
		v.FS, v.Err = f, err
		if err != nil {
			v.FS = nil
		}
	}
	return v
}
