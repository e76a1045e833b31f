// Package diskinfo describes a gohv disk image file: its container format
// (VHDX, fixed VHD or raw), its partition table, the Hyper-V generation its
// layout is for, the kernel image (GKI) it boots with its entry point,
// segments, CRC check and the least RAM the kernel needs, and the files of its
// FAT32 data partition. cmd/gohv inspect and tools/cmd/mkimage inspect print
// it.
//
// It reads only, and trusts nothing in the file: the container, partition,
// GKI and FAT parsers it uses validate every offset before use, and a damaged
// part is reported next to what could still be read. It must not write
// images (tools/image does) or boot them.
package diskinfo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"

	"github.com/gohv/gohv/boot/gen2"
	"github.com/gohv/gohv/boot/kimage"
	"github.com/gohv/gohv/drivers/block"
	"github.com/gohv/gohv/drivers/block/fat"
	"github.com/gohv/gohv/drivers/block/part"
	"github.com/gohv/gohv/tools/image"
	"github.com/gohv/gohv/tools/image/vhd"
	"github.com/gohv/gohv/tools/image/vhdx"
)

// Limits on what is read from an untrusted image.
const (
	// maxKernel bounds the bytes read from a kernel partition or an
	// EFI application.
	maxKernel = 256 << 20
	// maxFiles bounds the data partition listing.
	maxFiles = 10000
)

// Format is an image container format.
type Format string

// Container formats.
const (
	VHDX Format = "vhdx"
	VHD  Format = "vhd"
	Raw  Format = "raw"
)

// Report is what an image holds.
type Report struct {
	Path   string
	Format Format
	// Container describes the container: format, size, and the VHDX
	// header or VHD footer details.
	Container string
	// Size is the virtual disk size in bytes.
	Size int64
	// Generation is 1 (MBR with a gohv kernel partition), 2 (GPT with an
	// EFI System Partition holding BOOTX64.EFI) or 0 (neither).
	Generation int
	// Table is "MBR", "GPT" or "" (none).
	Table      string
	Partitions []Partition
	// Kernel describes the GKI; nil when none was found (KernelErr says
	// why when one was expected).
	Kernel    *Kernel
	KernelErr error
	// Files lists the data partition's regular files (sorted by path);
	// DataErr says why it could not be read.
	Files   []File
	DataErr error
}

// Partition is one partition table entry.
type Partition struct {
	Index int
	Start int64 // bytes
	Size  int64 // bytes
	// Type is the MBR type byte ("0xDA") or the GPT type GUID.
	Type string
	// Role is what gohv uses it for: "kernel", "EFI system", "data" or "".
	Role string
	Name string
}

// Kernel describes a gohv kernel image.
type Kernel struct {
	Entry     uint32
	TotalSize uint32
	CRC       uint32 // checked: Parse fails on a mismatch
	Segments  []kimage.Segment
	// MinRAM is the least RAM from address 0 the kernel needs (its image
	// end plus the least heap and stack; see MinRAM).
	MinRAM uint64
}

// File is a data partition file.
type File struct {
	Path string
	Size int64
}

// KernelOf describes a GKI (whose CRC Parse has checked).
func KernelOf(im *kimage.Image) *Kernel {
	k := &Kernel{Entry: im.Entry, TotalSize: im.TotalSize, CRC: im.CRC, Segments: im.Segments}
	k.MinRAM = MinRAM(im)
	return k
}

// The board's RAM floor (boot/layout.go, defaultLayoutConfig and
// layoutConfig.MinRAM, which the board prints when RAM is short): the image
// end plus the least heap and tamago's boot stack offset.
const (
	mib         = 1 << 20
	minHeap     = 16 * mib
	stackOffset = 1 * mib
)

// MinRAM is the least RAM, counted from address 0 and rounded up to whole
// MiB, with which the board can lay out the kernel of im: the end of its
// image in memory, 16 MiB of heap and 1 MiB of stack.
func MinRAM(im *kimage.Image) uint64 {
	if len(im.Segments) == 0 {
		return 0
	}
	var end uint64
	for _, s := range im.Segments {
		end = max(end, s.End())
	}
	return (end + minHeap + stackOffset + mib - 1) &^ (mib - 1)
}

// Inspect opens path and describes it. The error is non-nil only when the
// file cannot be read or its container is malformed; damaged contents are
// reported in the Report.
func Inspect(path string) (*Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	r := &Report{Path: path}
	src, err := open(f, st.Size(), r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.Size = src.Size()
	describe(src, r)
	return r, nil
}

// open identifies the container and returns the virtual disk inside.
func open(f *os.File, size int64, r *Report) (image.Source, error) {
	sig := make([]byte, 8)
	if _, err := f.ReadAt(sig, 0); err == nil && string(sig) == "vhdxfile" {
		d, err := vhdx.Open(f, size)
		if err != nil {
			return nil, err
		}
		kind := "dynamic"
		if d.LeaveBlocksAllocated {
			kind = "fixed"
		}
		r.Format = VHDX
		r.Container = fmt.Sprintf("VHDX (%s), virtual size %s (%d bytes), block size %s, %d of %d blocks present\n  creator %q, sectors %d/%d (logical/physical), page 83 id %s",
			kind, image.FormatSize(d.Size()), d.Size(), image.FormatSize(int64(d.Layout.BlockSize)),
			d.PresentBlocks, d.Layout.DataBlocks, d.Creator, d.LogicalSectorSize, d.PhysicalSectorSize, d.Page83)
		return d, nil
	}
	if size >= vhd.FooterSize {
		b := make([]byte, vhd.FooterSize)
		if _, err := f.ReadAt(b, size-vhd.FooterSize); err != nil {
			return nil, err
		}
		if string(b[:8]) == "conectix" {
			p, err := vhd.ParseFooter(b)
			if err != nil {
				return nil, err
			}
			if p.Size != size-vhd.FooterSize {
				return nil, fmt.Errorf("VHD footer says %d bytes of data, the file holds %d", p.Size, size-vhd.FooterSize)
			}
			r.Format = VHD
			r.Container = fmt.Sprintf("fixed VHD, size %s (%d bytes), creator %q, CHS %d/%d/%d, created %s",
				image.FormatSize(p.Size), p.Size, p.CreatorApp, p.Geometry.Cylinders, p.Geometry.Heads, p.Geometry.Sectors,
				p.Timestamp.Format("2006-01-02 15:04:05 UTC"))
			return image.SizedReaderAt(io.NewSectionReader(f, 0, p.Size), p.Size), nil
		}
	}
	r.Format = Raw
	r.Container = fmt.Sprintf("raw, %s (%d bytes)", image.FormatSize(size), size)
	return image.SizedReaderAt(f, size), nil
}

// describe fills in the partitions, kernel and data files.
func describe(src image.Source, r *Report) {
	ctx := context.Background()
	dev := &sourceDevice{src: src}
	t, err := part.Read(ctx, dev)
	if err != nil {
		if errors.Is(err, part.ErrNoTable) {
			r.KernelErr = errors.New("no partition table: not a gohv boot disk")
		} else {
			r.KernelErr = fmt.Errorf("partition table: %w", err)
		}
		return
	}
	var dataPart *part.Partition
	var kernelPart, espPart *part.Partition
	for i, p := range t.Partitions {
		pi := Partition{Index: p.Index, Start: int64(p.Start) * image.SectorSize, Size: int64(p.Sectors) * image.SectorSize, Name: p.Name}
		if t.Kind == part.KindMBR {
			pi.Type = fmt.Sprintf("0x%02X", p.MBRType)
			switch p.MBRType {
			case 0xDA:
				pi.Role = "kernel"
				kernelPart = &t.Partitions[i]
			case 0x0B, 0x0C:
				pi.Role = "data"
				dataPart = &t.Partitions[i]
			}
		} else {
			pi.Type = guidString(p.Type)
			switch p.Type {
			case part.TypeEFISystem:
				pi.Role = "EFI system"
				espPart = &t.Partitions[i]
			case part.TypeMicrosoftData:
				pi.Role = "data"
				dataPart = &t.Partitions[i]
			}
		}
		r.Partitions = append(r.Partitions, pi)
	}
	if t.Kind == part.KindMBR {
		r.Table = "MBR"
	} else {
		r.Table = "GPT"
	}
	switch {
	case kernelPart != nil:
		r.Generation = 1
		r.Kernel, r.KernelErr = gen1Kernel(src, kernelPart)
	case espPart != nil:
		r.Generation = 2
		r.Kernel, r.KernelErr = gen2Kernel(ctx, dev, espPart)
	default:
		r.KernelErr = errors.New("no gohv kernel partition (MBR type 0xDA) and no EFI System Partition")
	}
	if dataPart != nil {
		r.Files, r.DataErr = dataFiles(ctx, dev, dataPart)
	}
}

func gen1Kernel(src image.Source, p *part.Partition) (*Kernel, error) {
	start := int64(p.Start) * image.SectorSize
	n := min(int64(p.Sectors)*image.SectorSize, maxKernel, max(src.Size()-start, 0))
	b := make([]byte, n)
	if err := image.ReadFull(src, b, start); err != nil {
		return nil, fmt.Errorf("kernel partition: %w", err)
	}
	im, err := kimage.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("kernel partition: %w", err)
	}
	return KernelOf(im), nil
}

func gen2Kernel(ctx context.Context, dev block.Device, p *part.Partition) (*Kernel, error) {
	pd, err := part.Open(dev, *p)
	if err != nil {
		return nil, fmt.Errorf("EFI System Partition: %w", err)
	}
	esp, err := fat.Mount(ctx, pd, fat.MountOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("EFI System Partition: %w", err)
	}
	const name = "EFI/BOOT/BOOTX64.EFI"
	st, err := fs.Stat(esp, name)
	if err != nil {
		return nil, fmt.Errorf("EFI System Partition: %w", err)
	}
	if st.Size() > maxKernel {
		return nil, fmt.Errorf("%s: %d bytes is implausibly large", name, st.Size())
	}
	efi, err := fs.ReadFile(esp, name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	gki, err := gen2.KernelImage(efi)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	im, err := kimage.Parse(gki)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return KernelOf(im), nil
}

func dataFiles(ctx context.Context, dev block.Device, p *part.Partition) ([]File, error) {
	pd, err := part.Open(dev, *p)
	if err != nil {
		return nil, err
	}
	v, err := fat.Mount(ctx, pd, fat.MountOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	var files []File
	err = fs.WalkDir(v, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			files = append(files, File{Path: path, Size: info.Size()})
			if len(files) >= maxFiles {
				return fmt.Errorf("more than %d files; listing stopped", maxFiles)
			}
		}
		return nil
	})
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, err
}

// guidString formats an on-disk (mixed-endian) GUID the usual way.
func guidString(g part.GUID) string {
	return fmt.Sprintf("%08X-%04X-%04X-%02X%02X-%X",
		uint32(g[3])<<24|uint32(g[2])<<16|uint32(g[1])<<8|uint32(g[0]),
		uint16(g[5])<<8|uint16(g[4]), uint16(g[7])<<8|uint16(g[6]), g[8], g[9], g[10:16])
}

// Print writes r for a person to read.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "%s: %s\n", r.Path, r.Container)
	switch r.Generation {
	case 1:
		fmt.Fprintln(w, "layout: Generation 1 (BIOS): MBR, gohv loader, kernel partition")
	case 2:
		fmt.Fprintln(w, "layout: Generation 2 (UEFI): GPT, EFI System Partition with BOOTX64.EFI")
	default:
		fmt.Fprintln(w, "layout: not a gohv boot disk")
	}
	for _, p := range r.Partitions {
		role := p.Role
		if role == "" {
			role = "-"
		}
		fmt.Fprintf(w, "  partition %d: %-10s start %-8s size %-8s type %s", p.Index, role,
			image.FormatSize(p.Start), image.FormatSize(p.Size), p.Type)
		if p.Name != "" {
			fmt.Fprintf(w, " %q", p.Name)
		}
		fmt.Fprintln(w)
	}
	if k := r.Kernel; k != nil {
		fmt.Fprintf(w, "kernel: GKI %s, entry %#x, CRC-32 %#08x ok, needs at least %d MiB of RAM\n",
			image.FormatSize(int64(k.TotalSize)), k.Entry, k.CRC, k.MinRAM>>20)
		for i, s := range k.Segments {
			fmt.Fprintf(w, "  segment %d: %#010x-%#010x  file %-8s memory %s\n", i, s.Paddr, s.End(),
				image.FormatSize(int64(s.FileSize)), image.FormatSize(int64(s.MemSize)))
		}
	} else if r.KernelErr != nil {
		fmt.Fprintf(w, "kernel: %v\n", r.KernelErr)
	}
	if r.Files != nil || r.DataErr != nil {
		fmt.Fprintf(w, "data partition: %d files\n", len(r.Files))
		for _, f := range r.Files {
			fmt.Fprintf(w, "  %-40s %d bytes\n", f.Path, f.Size)
		}
		if r.DataErr != nil {
			fmt.Fprintf(w, "  error: %v\n", r.DataErr)
		}
	}
}

// sourceDevice is a read-only block.Device over a virtual disk.
type sourceDevice struct{ src image.Source }

func (d *sourceDevice) Info() block.Info {
	return block.Info{Name: "image", SectorSize: image.SectorSize, Sectors: uint64(d.src.Size() / image.SectorSize), ReadOnly: true}
}

func (d *sourceDevice) ReadAt(_ context.Context, p []byte, off int64) (int, error) {
	if err := block.Check(d.Info(), block.OpRead, off, int64(len(p))); err != nil {
		return 0, err
	}
	if err := image.ReadFull(d.src, p, off); err != nil {
		return 0, &block.IOError{Op: block.OpRead, Off: off, Err: err}
	}
	return len(p), nil
}

func (d *sourceDevice) WriteAt(_ context.Context, p []byte, off int64) (int, error) {
	return 0, &block.IOError{Op: block.OpWrite, Off: off, Err: block.ErrReadOnly}
}

func (d *sourceDevice) Flush(context.Context) error { return nil }

func (d *sourceDevice) Discard(_ context.Context, off, _ int64) error {
	return &block.IOError{Op: block.OpDiscard, Off: off, Err: block.ErrReadOnly}
}
