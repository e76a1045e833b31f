package vhdx_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gohv/gohv/internal/hosttool"
	"github.com/gohv/gohv/tools/image"
	"github.com/gohv/gohv/tools/image/vhdx"
)

// TestQEMUAcceptsAllocatedBlocks: a dynamic VHDX grown in place with
// AllocateBlock and PayloadOffset passes qemu-img check and compares equal
// to the raw disk with the same writes.
func TestQEMUAcceptsAllocatedBlocks(t *testing.T) {
	hosttool.Need(t, "qemu-img")
	dir := t.TempDir()
	d := patternDisk(t, 16*image.MiB)
	out := filepath.Join(dir, "disk.vhdx")
	if err := vhdx.Write(out, d, vhdx.Options{BlockSize: 2 << 20}); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(out, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	v, err := vhdx.Open(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	end := st.Size()
	for _, off := range []int64{5 << 20, 11<<20 + 4096, 16<<20 - 512} {
		data := []byte("written after creation")
		if _, _, ok := v.PayloadOffset(off); !ok {
			if end, err = v.AllocateBlock(f, end, off/(2<<20)); err != nil {
				t.Fatal(err)
			}
		}
		fo, run, ok := v.PayloadOffset(off)
		if !ok {
			t.Fatalf("offset %d not mapped after allocation", off)
		}
		data = data[:min(int64(len(data)), run)]
		if _, err := f.WriteAt(data, fo); err != nil {
			t.Fatal(err)
		}
		d.WriteAt(data, off)
	}
	rawPath := filepath.Join(dir, "disk.raw")
	if err := image.WriteRaw(rawPath, d); err != nil {
		t.Fatal(err)
	}
	hosttool.Run(t, "qemu-img", "check", "-f", "vhdx", out)
	hosttool.Run(t, "qemu-img", "compare", "-f", "raw", "-F", "vhdx", rawPath, out)
}
