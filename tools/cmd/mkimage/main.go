// Command mkimage builds a bootable gohv disk image from a kernel ELF:
//
//	mkimage -gen 1|2 -format vhdx|vhdx-fixed|vhd|raw -kernel kernel.elf \
//	        [-size 64MiB] [-files dir] -o out.vhdx
//
// Generation 1 images carry an MBR, the BIOS loader (boot/gen1) and the
// kernel image (boot/kimage) in a partition of its own; Generation 2 images
// a GPT and an EFI System Partition with the UEFI loader (boot/gen2). With
// -files, a FAT32 data partition holds the directory's contents. The
// output appears only when complete; on any error mkimage exits non-zero
// and leaves no output file.
//
//	mkimage inspect file
//
// describes an existing image (VHDX, fixed VHD or raw).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/gohv/gohv/boot/kimage"
	"github.com/gohv/gohv/internal/diskbuild"
	"github.com/gohv/gohv/tools/image"
	"github.com/gohv/gohv/tools/image/vhd"
	"github.com/gohv/gohv/tools/image/vhdx"
)

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

// Formats mkimage writes.
var formats = map[string]string{
	"vhdx":       "dynamic VHDX (Hyper-V Gen1 and Gen2)",
	"vhdx-fixed": "fixed VHDX (Hyper-V Gen1 and Gen2)",
	"vhd":        "fixed VHD (Azure; Hyper-V Gen1)",
	"raw":        "raw disk (QEMU)",
}

type config struct {
	gen       int
	format    string
	kernel    string
	gki       string
	size      string
	files     string
	out       string
	label     string
	blockSize string
}

func parse(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.gen, "gen", 2, "Hyper-V generation: 1 (BIOS, MBR) or 2 (UEFI, GPT)")
	fs.StringVar(&c.format, "format", "vhdx", "output format: vhdx, vhdx-fixed, vhd or raw")
	fs.StringVar(&c.kernel, "kernel", "", "kernel ELF built with TamaGo (required unless -gki)")
	fs.StringVar(&c.gki, "gki", "", "already flattened gohv kernel image, instead of -kernel")
	fs.StringVar(&c.size, "size", "", "virtual disk size, e.g. 64MiB or 2GiB (default: smallest that fits; 20MiB at least for vhd)")
	fs.StringVar(&c.files, "files", "", "directory whose contents go on a FAT32 data partition")
	fs.StringVar(&c.out, "o", "", "output file (required)")
	fs.StringVar(&c.label, "label", "GOHV DATA", "data partition volume label")
	fs.StringVar(&c.blockSize, "block-size", "", "VHDX block size, 1MiB..256MiB (default 1MiB)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mkimage -gen 1|2 -format vhdx|vhdx-fixed|vhd|raw -kernel kernel.elf [-size 64MiB] [-files dir] -o out")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() != 0 {
		return c, fmt.Errorf("unexpected argument %q (all options are flags; see -h)", fs.Arg(0))
	}
	switch {
	case c.out == "":
		return c, errors.New("no output file: add -o out.vhdx")
	case c.gen != 1 && c.gen != 2:
		return c, fmt.Errorf("-gen %d: use 1 (BIOS, MBR) or 2 (UEFI, GPT)", c.gen)
	case (c.kernel == "") == (c.gki == ""):
		return c, errors.New("give the kernel with exactly one of -kernel kernel.elf or -gki kernel.gki")
	}
	if _, ok := formats[c.format]; !ok {
		names := make([]string, 0, len(formats))
		for _, n := range []string{"vhdx", "vhdx-fixed", "vhd", "raw"} {
			names = append(names, n+" ("+formats[n]+")")
		}
		return c, fmt.Errorf("unknown -format %q; use one of: %s", c.format, strings.Join(names, ", "))
	}
	if c.gen == 2 && c.format == "vhd" {
		fmt.Fprintln(stderr, "mkimage: warning: Hyper-V boots Generation 2 VMs only from VHDX; a VHD suits Azure")
	}
	return c, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "inspect" {
		return inspect(args[1:], stdout)
	}
	c, err := parse(args, stderr)
	if err != nil {
		return err
	}
	var size int64
	if c.size != "" {
		if size, err = image.ParseSize(c.size); err != nil {
			return err
		}
		if c.format == "vhd" {
			if err := vhd.CheckSize(size); err != nil {
				return err
			}
		}
	}
	var block uint32
	if c.blockSize != "" {
		b, err := image.ParseSize(c.blockSize)
		if err != nil {
			return fmt.Errorf("-block-size: %w", err)
		}
		if b > vhdx.MaxBlockSize {
			return fmt.Errorf("-block-size %s is above the VHDX maximum of 256MiB", c.blockSize)
		}
		block = uint32(b)
	}
	var files *os.Root
	if c.files != "" {
		st, err := os.Stat(c.files)
		if err != nil {
			return fmt.Errorf("-files: %w", err)
		}
		if !st.IsDir() {
			return fmt.Errorf("-files %s is not a directory", c.files)
		}
		if files, err = os.OpenRoot(c.files); err != nil {
			return fmt.Errorf("-files: %w", err)
		}
		defer files.Close()
	}
	gki, err := loadKernel(c)
	if err != nil {
		return err
	}
	o := diskbuild.Options{Gen: c.gen, Format: c.format, Size: size, Label: c.label, BlockSize: block}
	if files != nil {
		o.Files = files.FS()
	}
	disk, err := diskbuild.Write(c.out, gki, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s, Generation %d, %s\n", c.out, formats[c.format], c.gen, image.FormatSize(disk.Size()))
	for _, p := range disk.Partitions {
		fmt.Fprintf(stdout, "  partition %d: %-20s start %-8s size %-8s %s\n", p.Index, p.Name,
			image.FormatSize(p.Start), image.FormatSize(p.Size), p.Type)
	}
	return nil
}

// loadKernel reads the kernel and returns its GKI form.
func loadKernel(c config) ([]byte, error) {
	if c.gki != "" {
		b, err := os.ReadFile(c.gki)
		if err != nil {
			return nil, fmt.Errorf("-gki: %w", err)
		}
		if _, err := kimage.Parse(b); err != nil {
			return nil, fmt.Errorf("-gki %s: %w", c.gki, err)
		}
		return b, nil
	}
	elf, err := os.ReadFile(c.kernel)
	if err != nil {
		return nil, fmt.Errorf("-kernel: %w", err)
	}
	gki, err := kimage.Build(elf)
	if err != nil {
		return nil, fmt.Errorf("-kernel %s: %w", c.kernel, err)
	}
	return gki, nil
}
