package testpayload

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/gohv/gohv/boot/kimage"
	"github.com/gohv/gohv/internal/qemutest"
)

func build(t *testing.T) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	elf, err := Build(ctx, t.TempDir())
	if errors.Is(err, ErrNoToolchain) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return elf
}

// TestImage checks the payload has the shape the loaders must cope with:
// two segments above 256 MiB, a bss, a PVH entry distinct from the ELF one.
func TestImage(t *testing.T) {
	elf := build(t)
	gki, err := kimage.Build(elf)
	if err != nil {
		t.Fatal(err)
	}
	im, err := kimage.Parse(gki)
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Segments) != 2 {
		t.Fatalf("%d segments, want text and data", len(im.Segments))
	}
	if im.Segments[0].Paddr != LinkAddress {
		t.Errorf("text at %#x, want %#x", im.Segments[0].Paddr, LinkAddress)
	}
	d := im.Segments[1]
	if d.MemSize-uint64(d.FileSize) < 256<<10 {
		t.Errorf("bss is %d bytes, want at least 256 KiB", d.MemSize-uint64(d.FileSize))
	}
	if d.FileSize < 96<<10 {
		t.Errorf("data is %d bytes, want more than one 32 KiB loader chunk several times", d.FileSize)
	}
	if im.Entry == LinkAddress {
		t.Error("PVH entry equals the ELF entry; the entry check would prove nothing")
	}
}

// TestReproducible makes sure two builds are identical, so images built
// from the payload are stable.
func TestReproducible(t *testing.T) {
	if a, b := build(t), build(t); !bytes.Equal(a, b) {
		t.Fatal("two builds differ")
	}
}

// TestQEMUDirect boots the payload with QEMU's own PVH loader (-kernel), to
// tell payload bugs apart from loader bugs.
func TestQEMUDirect(t *testing.T) {
	elf := build(t)
	kernel := filepath.Join(t.TempDir(), "payload.elf")
	if err := os.WriteFile(kernel, elf, 0o644); err != nil {
		t.Fatal(err)
	}
	r := qemutest.Run(t, qemutest.Options{Kind: qemutest.PVH, Kernel: kernel, MemMiB: MinMemoryMiB,
		DebugExit: true, Timeout: 60 * time.Second}, nil)
	out := []byte(r.Log())
	if r.ExitCode != ExitPass {
		t.Fatalf("QEMU exit status %d, want %d\n%s\n%s", r.ExitCode, ExitPass, r.Stderr, out)
	}
	m := regexp.MustCompile(regexp.QuoteMeta(ReportPrefix) + `(\d+), ram=(\d+) KiB, bss zero ok, data ok, entry ok`).FindSubmatch(out)
	if m == nil || !bytes.Contains(out, []byte(PassLine)) {
		t.Fatalf("report line missing:\n%s", out)
	}
	if n, _ := strconv.Atoi(string(m[1])); n == 0 {
		t.Error("no memmap entries")
	}
	if kib, _ := strconv.Atoi(string(m[2])); kib < MinMemoryMiB*1024*9/10 || kib > MinMemoryMiB*1024 {
		t.Errorf("ram=%d KiB, want about %d MiB", kib, MinMemoryMiB)
	}
}
