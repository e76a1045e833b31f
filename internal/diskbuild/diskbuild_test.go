package diskbuild

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/gohv/gohv/boot/testpayload"
	"github.com/gohv/gohv/internal/diskinfo"
	"github.com/gohv/gohv/tools/image/layout"
)

func TestWrite(t *testing.T) {
	gki, err := testpayload.GKI(context.Background(), t.TempDir())
	if errors.Is(err, testpayload.ErrNoToolchain) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := fstest.MapFS{"a.txt": {Data: []byte("abc")}}
	want := map[string]diskinfo.Format{"raw": diskinfo.Raw, "vhd": diskinfo.VHD, "vhdx": diskinfo.VHDX, "vhdx-fixed": diskinfo.VHDX}
	for _, gen := range []int{1, 2} {
		for _, f := range Formats {
			path := filepath.Join(dir, f.Name+string(rune('0'+gen)))
			d, err := Write(path, gki, Options{Gen: gen, Format: f.Name, Files: files})
			if err != nil {
				t.Fatalf("gen %d %s: %v", gen, f.Name, err)
			}
			r, err := diskinfo.Inspect(path)
			if err != nil {
				t.Fatal(err)
			}
			if r.Format != want[f.Name] || r.Generation != gen || r.Kernel == nil || r.Size != d.Size() || len(r.Files) != 1 {
				t.Errorf("gen %d %s: %+v (kernel error %v)", gen, f.Name, r, r.KernelErr)
			}
			if f.Name == "vhd" && r.Size < 20<<20 {
				t.Errorf("gen %d vhd: %d bytes, below Azure's 20 MiB", gen, r.Size)
			}
		}
	}
	for _, o := range []Options{{Gen: 3, Format: "raw"}, {Gen: 1, Format: "qcow2"}, {Gen: 1, Format: "raw", Size: 1 << 20}} {
		path := filepath.Join(dir, "bad")
		if _, err := Write(path, gki, o); err == nil {
			t.Errorf("%+v accepted", o)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%+v left %s behind", o, path)
		}
	}
	if _, err := Write(filepath.Join(dir, "small"), gki, Options{Gen: 1, Format: "raw", Size: 1 << 20}); !errors.Is(err, layout.ErrTooSmall) {
		t.Errorf("1 MiB disk: %v, want layout.ErrTooSmall", err)
	}
}
