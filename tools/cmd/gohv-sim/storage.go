package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gohv/gohv/drivers/block"
	"github.com/gohv/gohv/drivers/block/ext4"
	"github.com/gohv/gohv/drivers/block/fat"
	"github.com/gohv/gohv/drivers/block/mount"
	"github.com/gohv/gohv/drivers/block/part"
	"github.com/gohv/gohv/drivers/storvsc"
	"github.com/gohv/gohv/kernel"
)

// maxListed bounds the entries listed per volume.
const maxListed = 32

// stampName is the file the demo writes on every writable FAT volume.
const stampName = "gohv-sim.txt"

// fatVolume is a FAT32 volume the demo may write to.
type fatVolume struct {
	name string // disk name and partition, for the narration
	fs   *fat.FS
}

// volumes are the writable FAT volumes found.
type volumes []fatVolume

func (v volumes) writable() *fatVolume {
	if len(v) == 0 {
		return nil
	}
	return &v[0]
}

// sync writes back each volume's FSInfo and flushes its disk.
func (v volumes) sync(w io.Writer) {
	for _, f := range v {
		if err := f.fs.Sync(); err != nil {
			fmt.Fprintf(w, "guest: syncing %s: %v\n", f.name, err)
		}
	}
}

// showDisks lists every disk the storage driver found with its
// partitions and filesystems, reads their files and writes a file on each
// writable FAT32 and ext4 volume.
func showDisks(ctx context.Context, w io.Writer, k *kernel.Kernel) (volumes, error) {
	disks := k.Disks.Devices()
	if len(disks) == 0 {
		fmt.Fprintln(w, "guest: no disks")
		return nil, nil
	}
	var out volumes
	for _, d := range disks {
		info := d.Info()
		bus := "SCSI"
		// The kernel lists its disks behind the VSS write gate; the
		// driver's disk is underneath.
		raw := d
		if u, ok := d.(interface{ Unwrap() block.Device }); ok {
			raw = u.Unwrap()
		}
		if sd, ok := raw.(*storvsc.Disk); ok && sd.Controller().IDE() {
			bus = "IDE"
		}
		mode := "read-write"
		if info.ReadOnly {
			mode = "read-only"
		}
		fmt.Fprintf(w, "guest: %s disk %s: %d MiB, %d-byte sectors, %s\n", bus, info.Name,
			info.Size()>>20, info.SectorSize, mode)
		vols, tab, err := mount.Mount(ctx, d, mount.Options{Now: k.Now, Ext4Write: true})
		if tab != nil {
			fmt.Fprintf(w, "guest:   %s partition table, %d partitions\n", strings.ToUpper(tab.Kind.String()), len(tab.Partitions))
		}
		if err != nil && len(vols) == 0 {
			fmt.Fprintf(w, "guest:   no filesystem: %v\n", err)
			continue
		}
		for _, v := range vols {
			where := "whole disk"
			if v.Partition != nil {
				where = describePartition(v.Partition, info.SectorSize)
			}
			if v.Err != nil {
				fmt.Fprintf(w, "guest:   %s: no filesystem (%v)\n", where, v.Err)
				continue
			}
			fmt.Fprintf(w, "guest:   %s: %s filesystem\n", where, v.Type)
			if err := listFiles(w, v.FS); err != nil {
				return nil, fmt.Errorf("guest: reading %s %s: %w", info.Name, where, err)
			}
			switch f := v.FS.(type) {
			case *fat.FS:
				if info.ReadOnly {
					break
				}
				if err := stamp(w, k, f.Create); err != nil {
					return nil, fmt.Errorf("guest: writing to %s %s: %w", info.Name, where, err)
				}
				out = append(out, fatVolume{name: info.Name + " " + where, fs: f})
			case *ext4.FS:
				if !f.Writable() {
					if v.WriteErr != nil {
						fmt.Fprintf(w, "guest:     read-only: %v\n", v.WriteErr)
					}
					break
				}
				if err := stamp(w, k, f.Create); err != nil {
					return nil, fmt.Errorf("guest: writing to %s %s: %w", info.Name, where, err)
				}
				if err := f.Sync(); err != nil {
					return nil, fmt.Errorf("guest: syncing %s %s: %w", info.Name, where, err)
				}
			}
		}
	}
	return out, nil
}

func describePartition(p *part.Partition, sectorSize int) string {
	size := p.Sectors * uint64(sectorSize) >> 20
	if p.Name != "" {
		return fmt.Sprintf("partition %d %q (%d MiB)", p.Index, p.Name, size)
	}
	return fmt.Sprintf("partition %d (type %#02x, %d MiB)", p.Index, p.MBRType, size)
}

// listFiles prints the volume's files with their sizes and reads each one
// whole, checking that it reads as long as its directory entry says.
func listFiles(w io.Writer, fsys fs.FS) error {
	listed := 0
	return fs.WalkDir(fsys, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		if e.IsDir() && e.Name() == "lost+found" {
			return fs.SkipDir
		}
		if listed == maxListed {
			fmt.Fprintln(w, "guest:     …")
			listed++
			return fs.SkipAll
		}
		listed++
		if e.IsDir() {
			fmt.Fprintf(w, "guest:     /%s/\n", p)
			return nil
		}
		if !e.Type().IsRegular() {
			fmt.Fprintf(w, "guest:     /%s (%s)\n", p, e.Type())
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		if int64(len(b)) != fi.Size() {
			return fmt.Errorf("/%s: read %d bytes, the directory says %d", p, len(b), fi.Size())
		}
		if text, ok := preview(b); ok {
			fmt.Fprintf(w, "guest:     /%s (%d bytes, read %q)\n", p, fi.Size(), text)
		} else {
			fmt.Fprintf(w, "guest:     /%s (%d bytes, read)\n", p, fi.Size())
		}
		return nil
	})
}

// preview is the start of a text file's first line; ok is false for
// binary files.
func preview(b []byte) (string, bool) {
	n := min(len(b), 40)
	for n > 0 && n < len(b) && !utf8.RuneStart(b[n]) {
		n-- // do not cut a character in two
	}
	s, _, _ := strings.Cut(string(b[:n]), "\n")
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return "", false
		}
	}
	return s, true
}

// stampFile is what the FAT and ext4 volumes' Create return.
type stampFile interface {
	Write(p []byte) (int, error)
	Sync() error
	Close() error
}

// stamp writes /gohv-sim.txt with the time and syncs the volume.
func stamp[F stampFile](w io.Writer, k *kernel.Kernel, create func(name string) (F, error)) error {
	text := fmt.Sprintf("written by gohv-sim at %s\n", k.Now().UTC().Format("2006-01-02 15:04:05 MST"))
	file, err := create(stampName)
	if err != nil {
		return err
	}
	if _, err := file.Write([]byte(text)); err != nil {
		file.Close()
		return err
	}
	if err := errors.Join(file.Sync(), file.Close()); err != nil {
		return err
	}
	fmt.Fprintf(w, "guest:     wrote /%s (%d bytes) and synced the volume\n", stampName, len(text))
	return nil
}
