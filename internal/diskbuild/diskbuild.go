// Package diskbuild writes a bootable gohv disk image from a kernel image
// (GKI): the Generation 1 or 2 layout (tools/image/layout) with the
// generation's loader, an optional FAT32 data partition, in one of the
// container formats (raw, fixed VHD, dynamic or fixed VHDX). cmd/gohv build
// and tools/cmd/mkimage share it.
//
// It owns the choice of loader, layout and writer for a generation and a
// format; the bytes of each are the packages' it calls (boot/gen1,
// boot/gen2, tools/image/...). It writes only the path it is given, all or
// nothing (the writers create the file atomically).
package diskbuild

import (
	"fmt"
	"io/fs"

	"github.com/gohv/gohv/boot/gen1"
	"github.com/gohv/gohv/boot/gen2"
	"github.com/gohv/gohv/tools/image"
	"github.com/gohv/gohv/tools/image/layout"
	"github.com/gohv/gohv/tools/image/vhd"
	"github.com/gohv/gohv/tools/image/vhdx"
)

// Formats lists the container formats with a description, in the order
// to show them.
var Formats = []struct{ Name, Desc string }{
	{"vhdx", "dynamic VHDX (Hyper-V Gen1 and Gen2)"},
	{"vhdx-fixed", "fixed VHDX (Hyper-V Gen1 and Gen2)"},
	{"vhd", "fixed VHD (Azure; Hyper-V Gen1)"},
	{"raw", "raw disk (QEMU)"},
}

// Describe returns the description of format, "" when unknown.
func Describe(format string) string {
	for _, f := range Formats {
		if f.Name == format {
			return f.Desc
		}
	}
	return ""
}

// Options describe the image.
type Options struct {
	// Gen is 1 (BIOS, MBR) or 2 (UEFI, GPT).
	Gen int
	// Format is one of Formats.
	Format string
	// Size is the virtual disk size; zero picks the smallest that fits
	// (at least vhd.MinSize for a VHD).
	Size int64
	// Files, if not nil, fill a FAT32 data partition labelled Label.
	Files fs.FS
	Label string
	// BlockSize is the VHDX block size (zero: the writer's default).
	BlockSize uint32
}

// Write lays out the disk for gki and writes it to path. It returns the
// layout written.
func Write(path string, gki []byte, o Options) (*layout.Disk, error) {
	if o.Gen != 1 && o.Gen != 2 {
		return nil, fmt.Errorf("diskbuild: generation %d: use 1 or 2", o.Gen)
	}
	if Describe(o.Format) == "" {
		return nil, fmt.Errorf("diskbuild: unknown format %q", o.Format)
	}
	var efi []byte
	if o.Gen == 2 {
		var err error
		if efi, err = gen2.BuildEFI(gki); err != nil {
			return nil, fmt.Errorf("build BOOTX64.EFI: %w", err)
		}
	}
	lay := func(size int64) (*layout.Disk, error) {
		if o.Gen == 1 {
			return layout.Gen1(layout.Gen1Options{Size: size, Stage1: gen1.Stage1(), Stage2: gen1.Stage2(),
				Kernel: gki, Files: o.Files, DataLabel: o.Label})
		}
		return layout.Gen2(layout.Gen2Options{Size: size, EFI: efi, Files: o.Files, DataLabel: o.Label})
	}
	disk, err := lay(o.Size)
	if err != nil {
		return nil, err
	}
	if o.Format == "vhd" && o.Size == 0 && disk.Size() < vhd.MinSize {
		// Azure's floor; the layout's own minimum is smaller.
		if disk, err = lay(vhd.MinSize); err != nil {
			return nil, err
		}
	}
	switch o.Format {
	case "raw":
		err = image.WriteRaw(path, disk)
	case "vhd":
		err = vhd.WriteFixed(path, disk, vhd.Options{})
	default:
		err = vhdx.Write(path, disk, vhdx.Options{Fixed: o.Format == "vhdx-fixed", BlockSize: o.BlockSize})
	}
	if err != nil {
		return nil, err
	}
	return disk, nil
}
