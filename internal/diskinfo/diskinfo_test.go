package diskinfo

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gohv/gohv/boot/gen1"
	"github.com/gohv/gohv/boot/gen2"
	"github.com/gohv/gohv/boot/kimage"
	"github.com/gohv/gohv/boot/testpayload"
	"github.com/gohv/gohv/tools/image"
	"github.com/gohv/gohv/tools/image/layout"
	"github.com/gohv/gohv/tools/image/vhd"
	"github.com/gohv/gohv/tools/image/vhdx"
)

func gki(t *testing.T) []byte {
	t.Helper()
	b, err := testpayload.GKI(context.Background(), t.TempDir())
	if errors.Is(err, testpayload.ErrNoToolchain) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var files = fstest.MapFS{
	"www/index.html": {Data: []byte("<h1>gohv</h1>")},
	"config.txt":     {Data: []byte("a=1\n")},
}

func TestInspect(t *testing.T) {
	k := gki(t)
	im, err := kimage.Parse(k)
	if err != nil {
		t.Fatal(err)
	}
	efi, err := gen2.BuildEFI(k)
	if err != nil {
		t.Fatal(err)
	}
	disks := map[int]*layout.Disk{}
	if disks[1], err = layout.Gen1(layout.Gen1Options{Size: 64 * image.MiB, Stage1: gen1.Stage1(), Stage2: gen1.Stage2(), Kernel: k, Files: files}); err != nil {
		t.Fatal(err)
	}
	if disks[2], err = layout.Gen2(layout.Gen2Options{Size: 96 * image.MiB, EFI: efi, Files: files}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for gen, d := range disks {
		for _, f := range []Format{Raw, VHD, VHDX} {
			path := filepath.Join(dir, string(f)+string(rune('0'+gen)))
			switch f {
			case Raw:
				err = image.WriteRaw(path, d)
			case VHD:
				err = vhd.WriteFixed(path, d, vhd.Options{})
			case VHDX:
				err = vhdx.Write(path, d, vhdx.Options{})
			}
			if err != nil {
				t.Fatal(err)
			}
			r, err := Inspect(path)
			if err != nil {
				t.Fatalf("gen %d %s: %v", gen, f, err)
			}
			if r.Format != f || r.Generation != gen || r.Size != d.Size() {
				t.Errorf("gen %d %s: format %s, generation %d, size %d", gen, f, r.Format, r.Generation, r.Size)
			}
			if r.Kernel == nil {
				t.Fatalf("gen %d %s: no kernel: %v", gen, f, r.KernelErr)
			}
			if r.Kernel.Entry != im.Entry || r.Kernel.CRC != im.CRC || len(r.Kernel.Segments) != len(im.Segments) {
				t.Errorf("gen %d %s: kernel %+v, want entry %#x CRC %#x", gen, f, r.Kernel, im.Entry, im.CRC)
			}
			want := []File{{"config.txt", 4}, {"www/index.html", 13}}
			if len(r.Files) != 2 || r.Files[0] != want[0] || r.Files[1] != want[1] || r.DataErr != nil {
				t.Errorf("gen %d %s: files %v (%v), want %v", gen, f, r.Files, r.DataErr, want)
			}
			if len(r.Partitions) != 2 {
				t.Errorf("gen %d %s: partitions %+v", gen, f, r.Partitions)
			}
			var out bytes.Buffer
			r.Print(&out)
			for _, s := range []string{"Generation", "CRC-32", "www/index.html"} {
				if !strings.Contains(out.String(), s) {
					t.Errorf("gen %d %s: output lacks %q:\n%s", gen, f, s, out.String())
				}
			}
		}
	}

	// A damaged kernel partition: the CRC check catches one flipped byte.
	b, err := os.ReadFile(filepath.Join(dir, "raw1"))
	if err != nil {
		t.Fatal(err)
	}
	b[image.MiB+int64(im.HeaderSize)+100] ^= 0xff
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Inspect(bad)
	if err != nil {
		t.Fatal(err)
	}
	if r.Kernel != nil || !errors.Is(r.KernelErr, kimage.ErrChecksum) {
		t.Errorf("damaged kernel: %+v, %v; want ErrChecksum", r.Kernel, r.KernelErr)
	}
}

func TestMinRAM(t *testing.T) {
	// Two segments ending at 0x02400000 + 0x100: 36 MiB + 256 bytes of
	// image, plus 16 MiB heap and 1 MiB stack, rounded up to 54 MiB.
	im := &kimage.Image{Segments: []kimage.Segment{
		{Paddr: 0x02010000, MemSize: 0x1000},
		{Paddr: 0x02400000, MemSize: 0x100},
	}}
	if got, want := MinRAM(im), uint64(54<<20); got != want {
		t.Errorf("MinRAM = %d MiB, want %d MiB", got>>20, want>>20)
	}
}

func TestNotADisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zero")
	if err := os.WriteFile(path, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Format != Raw || r.Generation != 0 || r.Kernel != nil || r.KernelErr == nil {
		t.Errorf("zero disk: %+v", r)
	}
	if _, err := Inspect(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// FuzzInspect feeds arbitrary files to Inspect: it must return an error or
// a report, never panic.
func FuzzInspect(f *testing.F) {
	f.Add(make([]byte, 4096))
	mbr := make([]byte, 8192)
	mbr[510], mbr[511] = 0x55, 0xaa
	mbr[446+4] = 0xda
	mbr[446+8] = 1
	mbr[446+12] = 8
	f.Add(mbr)
	f.Add(append([]byte("vhdxfile"), make([]byte, 1024)...))
	footer := make([]byte, 1024)
	copy(footer[512:], "conectix")
	f.Add(footer)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "img")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if r, err := Inspect(path); err == nil {
			r.Print(new(bytes.Buffer))
		}
	})
}
