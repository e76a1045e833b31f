package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gohv/gohv/boot/kimage"
	"github.com/gohv/gohv/internal/diskbuild"
	"github.com/gohv/gohv/internal/diskinfo"
	"github.com/gohv/gohv/internal/tamago"
	"github.com/gohv/gohv/tools/image"
	"github.com/gohv/gohv/tools/image/layout"
	"github.com/gohv/gohv/tools/image/vhd"
)

// kernelStart is the package gohv build's overlay imports blankly into the
// program's main package: the board and the kernel's start-up path.
const kernelStart = "github.com/gohv/gohv/kernel/autostart"

// kernelPkg is the kernel package: a program importing it starts the kernel
// itself (kernel.Run), so gohv adds no start-up path of its own.
const kernelPkg = "github.com/gohv/gohv/kernel"

// Linker and build settings of a gohv kernel (Makefile: LDFLAGS,
// KERNEL_TAGS): text at 0x02010000 with the runtime's RAM starting at the
// MiB below, and the board's own PVH entry and RAM start.
const (
	kernelLDFlags = "-T 0x02010000 -R 0x1000"
	kernelTags    = "linkcpuinit,linkramstart"
	// overlayFile is the name of the file the overlay adds to the main
	// package's directory.
	overlayFile = "zz_gohv_start.go"
)

// formatInfo says what each -format writes.
var formatInfo = map[string]struct{ ext, desc string }{
	"vhdx": {".vhdx", "dynamic VHDX (Hyper-V Gen1 and Gen2)"},
	"vhd":  {".vhd", "fixed VHD (Azure; Hyper-V Gen1)"},
	"raw":  {".raw", "raw disk (QEMU)"},
}

// buildFlags are gohv build's settings (also used by gohv run ./pkg).
type buildFlags struct {
	gen    int
	format string
	out    string
	size   string
	data   string
	label  string
	mem    int // MiB
	tags   string
	quiet  bool
}

func (b *buildFlags) register(cmd *cobra.Command, withOut bool) {
	f := cmd.Flags()
	f.IntVar(&b.gen, "gen", 2, "Hyper-V generation: 1 (BIOS, MBR) or 2 (UEFI, GPT)")
	f.IntVar(&b.mem, "mem", 0, "VM memory in MiB, refused when below what the kernel needs (default 128)")
	f.StringVar(&b.tags, "tags", "", "extra comma-separated build tags")
	f.StringVar(&b.data, "data", "", "directory whose contents go on a FAT32 data partition")
	f.StringVar(&b.label, "label", "GOHV DATA", "data partition volume label")
	f.BoolVar(&b.quiet, "quiet", false, "no progress display")
	if withOut {
		f.StringVar(&b.format, "format", "vhdx", "image format: vhdx (Hyper-V), vhd (Azure fixed VHD, whole MiB) or raw")
		f.StringVarP(&b.out, "output", "o", "", "output image (default: the package directory's name plus the format's extension)")
		f.StringVar(&b.size, "size", "", "virtual disk size, e.g. 64MiB or 2GiB (default: the smallest that fits; 20MiB at least for vhd)")
	}
}

func newBuild() *cobra.Command {
	var b buildFlags
	cmd := &cobra.Command{
		Use:   "build [flags] ./path/to/main",
		Short: "Compile a Go main package with TamaGo into a bootable disk image",
		Long: `build compiles the main package with the TamaGo compiler (GOOS=tamago
GOARCH=amd64) and the gohv board, and writes a disk image that boots it as a
Hyper-V Generation 1 or 2 VM: VHDX for Hyper-V, fixed VHD for Azure, raw for
QEMU. The image appears only when complete.

The package may be a plain Go program: gohv adds the kernel's start-up path to
it through the go command's -overlay. Its module must require
github.com/gohv/gohv.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st := newStatus(b.quiet)
			out, k, err := buildImage(cmd.Context(), args[0], b, st)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s, Generation %d; the kernel needs %d MiB of RAM\n",
				out, formatInfo[b.format].desc, b.gen, k.MinRAM>>20)
			return nil
		},
	}
	b.register(cmd, true)
	return cmd
}

// defaultMem is the VM memory (MiB) gohv assumes: 128 MiB, Hyper-V's and
// Azure's small size, for both generations (the Gen2 loader places what
// OVMF still holds after ExitBootServices).
func defaultMem(int) int { return 128 }

// check validates the flags before anything is compiled.
func (b *buildFlags) check() (size int64, err error) {
	if b.gen != 1 && b.gen != 2 {
		return 0, fmt.Errorf("-gen %d: use 1 (BIOS, MBR) or 2 (UEFI, GPT)", b.gen)
	}
	if _, ok := formatInfo[b.format]; !ok {
		return 0, fmt.Errorf("unknown -format %q: use vhdx (Hyper-V), vhd (Azure fixed VHD) or raw (QEMU)", b.format)
	}
	if b.mem == 0 {
		b.mem = defaultMem(b.gen)
	}
	if b.mem < 0 {
		return 0, fmt.Errorf("-mem %d: give the VM's memory in MiB, e.g. -mem 128", b.mem)
	}
	if b.size != "" {
		if size, err = image.ParseSize(b.size); err != nil {
			return 0, fmt.Errorf("-size: %w", err)
		}
		if b.format == "vhd" {
			if err := vhd.CheckSize(size); err != nil {
				return 0, fmt.Errorf("-size %s: %w", b.size, err)
			}
		}
	}
	if b.data != "" {
		fi, err := os.Stat(b.data)
		if err != nil {
			return 0, fmt.Errorf("-data: %w", err)
		}
		if !fi.IsDir() {
			return 0, fmt.Errorf("-data %s is not a directory", b.data)
		}
	}
	return size, nil
}

// buildImage compiles pkg and writes its image; it returns the image path
// and the kernel's description. On any error or cancellation nothing is
// left at the output path.
func buildImage(ctx context.Context, pkg string, b buildFlags, st *status) (out string, k *diskinfo.Kernel, err error) {
	size, err := b.check()
	if err != nil {
		return "", nil, err
	}
	if err := requireGohv(ctx); err != nil {
		return "", nil, err
	}
	tc, err := tamago.Lookup{}.Find()
	if err != nil {
		return "", nil, err
	}
	work, err := os.MkdirTemp("", "gohv-build-")
	if err != nil {
		return "", nil, err
	}
	defer os.RemoveAll(work)
	modArgs, err := modfileArgs(ctx, tc.Go, tc.Env(os.Environ()), work)
	if err != nil {
		return "", nil, err
	}
	dir, imports, err := mainPackage(ctx, tc.Go, tc.Env(os.Environ()), modArgs, pkg)
	if err != nil {
		return "", nil, err
	}
	out = b.out
	if out == "" {
		out = filepath.Base(dir) + formatInfo[b.format].ext
	}
	if b.gen == 2 && b.format == "vhd" {
		fmt.Fprintln(os.Stderr, "gohv: warning: Hyper-V boots Generation 2 VMs only from VHDX; a VHD suits Azure")
	}
	// Reserve the output's temporary name first: an unwritable destination
	// fails before the compiler runs.
	tmp, err := reserve(out)
	if err != nil {
		return "", nil, err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()

	// A program that runs the kernel itself gets the board only, which
	// its kernel import brings along.
	start := kernelStart
	if imports[kernelPkg] {
		start = "github.com/gohv/gohv/boot"
	}
	overlay, err := writeOverlay(work, dir, start)
	if err != nil {
		return "", nil, err
	}
	elf := filepath.Join(work, "kernel.elf")
	tags := kernelTags
	if b.tags != "" {
		tags += "," + b.tags
	}
	end := st.step(fmt.Sprintf("compiling %s with %s", pkg, compilerName(tc)))
	args := append([]string{"build", "-overlay", overlay}, modArgs...)
	args = append(args, "-tags", tags, "-ldflags", kernelLDFlags, "-o", elf, pkg)
	cmd := exec.CommandContext(ctx, tc.Go, args...)
	cmd.Env = tc.Env(os.Environ())
	outb, err := cmd.CombinedOutput()
	end(err == nil)
	if err != nil {
		if ctx.Err() != nil {
			return "", nil, fmt.Errorf("interrupted: %w", ctx.Err())
		}
		return "", nil, fmt.Errorf("compiling %s with %s failed:\n%s%s", pkg, tc.Go, outb, requireHint(outb))
	}
	elfBytes, err := os.ReadFile(elf)
	if err != nil {
		return "", nil, err
	}
	gki, err := kimage.Build(elfBytes)
	if err != nil {
		return "", nil, fmt.Errorf("kernel image from %s: %w", pkg, err)
	}
	im, err := kimage.Parse(gki)
	if err != nil {
		return "", nil, fmt.Errorf("kernel image from %s: %w", pkg, err)
	}
	k = diskinfo.KernelOf(im)
	if err := checkMem(b.mem, k); err != nil {
		return "", nil, err
	}

	end = st.step(fmt.Sprintf("writing %s (%s)", filepath.Base(out), formatInfo[b.format].desc))
	err = writeImage(tmp, gki, size, b)
	end(err == nil)
	if err != nil {
		return "", nil, err
	}
	if ctx.Err() != nil {
		return "", nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", nil, err
	}
	return out, k, nil
}

func compilerName(tc tamago.Compiler) string {
	if tc.Version != "" {
		return tc.Version
	}
	return tc.Go
}

// checkMem refuses a VM memory size below the kernel's floor.
func checkMem(memMiB int, k *diskinfo.Kernel) error {
	if uint64(memMiB)<<20 >= k.MinRAM {
		return nil
	}
	end := k.MinRAM - 17<<20
	return fmt.Errorf("-mem %d MiB is below what this kernel needs: %d MiB (its image ends at %#x, plus 16 MiB of heap and 1 MiB of stack, counted from address 0); use -mem %d or more",
		memMiB, k.MinRAM>>20, end, k.MinRAM>>20)
}

// reserve creates an empty temporary file next to out and returns its
// name; the image is written there and renamed to out when complete.
func reserve(out string) (string, error) {
	dir, base := filepath.Split(out)
	if dir == "" {
		dir = "."
	}
	if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		return "", fmt.Errorf("-o %s is a directory; name the image file, e.g. -o %s", out, filepath.Join(out, "app.vhdx"))
	}
	f, err := os.CreateTemp(dir, "."+base+".gohv-*")
	if err != nil {
		return "", fmt.Errorf("cannot write the image to %s: %w (choose a writable directory with -o)", out, err)
	}
	name := f.Name()
	f.Close()
	return name, nil
}

// mainPackage resolves pkg with the go command, checks that it is a main
// package, and returns its directory and its direct imports.
func mainPackage(ctx context.Context, gobin string, env, modArgs []string, pkg string) (string, map[string]bool, error) {
	args := append([]string{"list"}, modArgs...)
	args = append(args, "-tags", kernelTags, "-f", "{{.Name}}\n{{.Dir}}\n{{join .Imports \" \"}}", pkg)
	cmd := exec.CommandContext(ctx, gobin, args...)
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return "", nil, fmt.Errorf("cannot find package %s: %s", pkg, msg)
	}
	lines := strings.SplitN(strings.TrimRight(string(out), "\n"), "\n", 3)
	for len(lines) < 3 {
		lines = append(lines, "")
	}
	if lines[0] != "main" {
		return "", nil, fmt.Errorf("%s is package %s, not a main package: gohv builds programs (package main with func main)", pkg, lines[0])
	}
	imports := map[string]bool{}
	for _, p := range strings.Fields(lines[2]) {
		imports[p] = true
	}
	return lines[1], imports, nil
}

// writeOverlay writes the file that the overlay adds to the main package
// (a blank import of start) and the overlay description, and returns the
// latter's path.
func writeOverlay(work, pkgDir, start string) (string, error) {
	target := filepath.Join(pkgDir, overlayFile)
	if _, err := os.Stat(target); err == nil {
		return "", fmt.Errorf("%s exists; gohv adds a file of that name to the package when building: rename yours", target)
	}
	src := filepath.Join(work, overlayFile)
	code := "// Code generated by gohv; DO NOT EDIT.\n\npackage main\n\nimport _ \"" + start + "\"\n"
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		return "", err
	}
	j, err := json.Marshal(map[string]map[string]string{"Replace": {target: src}})
	if err != nil {
		return "", err
	}
	overlay := filepath.Join(work, "overlay.json")
	return overlay, os.WriteFile(overlay, j, 0o644)
}

// requireHint explains the usual cause of a compile failure on a plain
// program: its module does not require gohv.
func requireHint(out []byte) string {
	if strings.Contains(string(out), "github.com/gohv/gohv") &&
		(strings.Contains(string(out), "no required module") || strings.Contains(string(out), "missing go.sum")) {
		return "\nyour module must require gohv: run `go get github.com/gohv/gohv` (or `go get -tool github.com/gohv/gohv/cmd/gohv`, which keeps it through go mod tidy)"
	}
	return ""
}

// writeImage lays out the disk and writes it to path in b.format.
func writeImage(path string, gki []byte, size int64, b buildFlags) error {
	o := diskbuild.Options{Gen: b.gen, Format: b.format, Size: size, Label: b.label}
	if b.data != "" {
		files, err := os.OpenRoot(b.data)
		if err != nil {
			return fmt.Errorf("-data: %w", err)
		}
		defer files.Close()
		o.Files = files.FS()
	}
	_, err := diskbuild.Write(path, gki, o)
	if errors.Is(err, layout.ErrTooSmall) {
		return fmt.Errorf("-size %s: %w (leave -size out for the smallest that fits)", b.size, err)
	}
	return err
}
