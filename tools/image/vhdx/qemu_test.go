package vhdx_test

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gohv/gohv/internal/hosttool"
	"github.com/gohv/gohv/tools/image"
	"github.com/gohv/gohv/tools/image/vhdx"
)

// patternDisk fills a disk with data near the start, in the middle and at
// the very end, with holes between, some holes smaller than a block.
func patternDisk(t *testing.T, size int64) *image.MemDisk {
	t.Helper()
	d, err := image.NewMemDisk(size)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	put := func(off int64, n int) {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32()) | 1
		}
		if _, err := d.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	put(0, 512)
	put(3*image.MiB+4096, 100000)
	put(size/2-700, 1400)
	put(size-512, 512)
	return d
}

func TestQEMUAcceptsDynamicAndFixed(t *testing.T) {
	hosttool.Need(t, "qemu-img")
	for _, tc := range []struct {
		name string
		size int64
		opts vhdx.Options
	}{
		{"dynamic-64MiB", 64 * image.MiB, vhdx.Options{}},
		{"fixed-64MiB", 64 * image.MiB, vhdx.Options{Fixed: true}},
		{"dynamic-32MiB-blocks", 256 * image.MiB, vhdx.Options{BlockSize: 32 << 20}},
		{"fixed-odd-size", 64*image.MiB + 3*512, vhdx.Options{Fixed: true, BlockSize: 8 << 20}},
		{"dynamic-odd-size", 64*image.MiB + 3*512, vhdx.Options{BlockSize: 2 << 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d := patternDisk(t, tc.size)
			rawPath := filepath.Join(dir, "disk.raw")
			if err := image.WriteRaw(rawPath, d); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "disk.vhdx")
			if err := vhdx.Write(out, d, tc.opts); err != nil {
				t.Fatal(err)
			}
			hosttool.Run(t, "qemu-img", "check", "-f", "vhdx", out)
			hosttool.Run(t, "qemu-img", "compare", "-f", "raw", "-F", "vhdx", rawPath, out)
			info := hosttool.Run(t, "qemu-img", "info", "-f", "vhdx", "--output=json", out)
			if want := `"virtual-size": ` + strconv.FormatInt(tc.size, 10); !strings.Contains(info, want) {
				t.Errorf("qemu-img info lacks %s:\n%s", want, info)
			}
			st, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.opts.Fixed && st.Size() >= tc.size {
				t.Errorf("dynamic file is %d bytes for a %d-byte sparse disk", st.Size(), tc.size)
			}
			if tc.opts.Fixed && st.Size() < tc.size {
				t.Errorf("fixed file is %d bytes, smaller than the %d-byte disk", st.Size(), tc.size)
			}
		})
	}
}

// TestOpenReadsQEMUFiles reads files qemu-img wrote (its own layout
// choices, 32 MiB blocks, dynamic and fixed) with our parser.
func TestOpenReadsQEMUFiles(t *testing.T) {
	hosttool.Need(t, "qemu-img")
	dir := t.TempDir()
	d := patternDisk(t, 96*image.MiB)
	rawPath := filepath.Join(dir, "disk.raw")
	if err := image.WriteRaw(rawPath, d); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"dynamic", "fixed"} {
		out := filepath.Join(dir, sub+".vhdx")
		hosttool.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "vhdx", "-o", "subformat="+sub, rawPath, out)
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		v, err := vhdx.Open(f, st.Size())
		if err != nil {
			f.Close()
			t.Fatalf("%s: %v", sub, err)
		}
		got, want := make([]byte, d.Size()), make([]byte, d.Size())
		_, err1 := v.ReadAt(got, 0)
		_, err2 := d.ReadAt(want, 0)
		f.Close()
		if err1 != nil || err2 != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: contents differ (%v, %v)", sub, err1, err2)
		}
		if v.LeaveBlocksAllocated != (sub == "fixed") {
			t.Errorf("%s: LeaveBlocksAllocated %v", sub, v.LeaveBlocksAllocated)
		}
	}
}
