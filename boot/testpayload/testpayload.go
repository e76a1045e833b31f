// Package testpayload owns the gohv test payload: a tiny PVH kernel
// (payload.asm, linked by payload.ld at 0x10010000 like a TamaGo kernel)
// that checks the hand-off a gohv loader performs and reports on COM1.
//
// The ELF is not committed: Build assembles it from the embedded sources
// with nasm and GNU ld at test time. Tests of boot/gen1, boot/gen2 and
// tools/image use it; nothing in a real image does. This package must not
// know about disk layouts or loaders.
package testpayload

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/gohv/gohv/boot/kimage"
)

var (
	//go:embed payload.asm
	asmSource []byte
	//go:embed payload.ld
	ldScript []byte
)

// Linked layout of the payload, for tests that check where it was loaded.
const (
	// LinkAddress is the start of the text segment.
	LinkAddress = 0x10010000
	// MinMemoryMiB is the smallest guest RAM (QEMU -m) the payload fits in.
	MinMemoryMiB = 512
)

// QEMU isa-debug-exit codes (value*2+1) the payload produces; see
// payload.asm. Run QEMU with
// -device isa-debug-exit,iobase=0xf4,iosize=0x04.
const (
	ExitPass = 0x10*2 + 1
	ExitFail = 0x11*2 + 1
)

// Serial log markers.
const (
	// PassLine is printed when every check passed.
	PassLine = "gohv-testpayload: PASS"
	// ReportPrefix starts the line with the check results: "start_info ok,
	// memmap entries=N, ram=K KiB, bss zero ok, data ok, entry ok, rsdp=0x...".
	ReportPrefix = "gohv-testpayload: start_info ok, memmap entries="
)

// ErrNoToolchain means nasm or ld is not installed; tests skip on it.
var ErrNoToolchain = errors.New("testpayload: nasm and GNU ld are needed to build the test payload (apt-get install nasm binutils)")

// Build assembles and links the payload in dir (a scratch directory, e.g.
// t.TempDir()) and returns the ELF bytes.
func Build(ctx context.Context, dir string) ([]byte, error) {
	nasm, err1 := exec.LookPath("nasm")
	ld, err2 := exec.LookPath("ld")
	if err1 != nil || err2 != nil {
		return nil, ErrNoToolchain
	}
	// Relative names only: the object's symbol table records the source
	// name, and the output must not depend on dir.
	if err := os.WriteFile(filepath.Join(dir, "payload.asm"), asmSource, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "payload.ld"), ldScript, 0o644); err != nil {
		return nil, err
	}
	if err := run(ctx, dir, nasm, "-f", "elf64", "-o", "payload.o", "payload.asm"); err != nil {
		return nil, err
	}
	if err := run(ctx, dir, ld, "-m", "elf_x86_64", "-nostdlib", "--build-id=none", "-z", "noexecstack",
		"-T", "payload.ld", "-o", "payload.elf", "payload.o"); err != nil {
		return nil, err
	}
	return os.ReadFile(filepath.Join(dir, "payload.elf"))
}

func run(ctx context.Context, dir, name string, args ...string) error {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("testpayload: %s: %w: %s", filepath.Base(name), err, stderr.Bytes())
	}
	return nil
}

// GKI builds the payload into dir and flattens it into a gohv kernel image,
// the form both loaders load. Errors as for Build (ErrNoToolchain when the
// assembler is missing).
func GKI(ctx context.Context, dir string) ([]byte, error) {
	elf, err := Build(ctx, dir)
	if err != nil {
		return nil, err
	}
	return kimage.Build(elf)
}
