package vhdx

import (
	"path/filepath"
	"testing"

	"github.com/gohv/gohv/tools/image"
)

// benchDisk is a 1 GiB disk with 64 MiB of data spread over it, the shape
// of a real image (loader, kernel, a few files, lots of free space).
func benchDisk(b *testing.B) *image.MemDisk {
	d, _ := image.NewMemDisk(1 << 30)
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i) | 1
	}
	for i := int64(0); i < 64; i++ {
		if _, err := d.WriteAt(chunk, i*16<<20); err != nil {
			b.Fatal(err)
		}
	}
	return d
}

// BenchmarkWrite reports dynamic and fixed VHDX writing next to the raw
// writer over the same disk, the baseline (same data, no container).
func BenchmarkWrite(b *testing.B) {
	d := benchDisk(b)
	dir := b.TempDir()
	for _, bc := range []struct {
		name  string
		write func(string) error
	}{
		{"raw-baseline", func(p string) error { return image.WriteRaw(p, d) }},
		{"vhdx-dynamic", func(p string) error { return Write(p, d, Options{}) }},
		{"vhdx-fixed", func(p string) error { return Write(p, d, Options{Fixed: true}) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(64 << 20)
			p := filepath.Join(dir, bc.name)
			for b.Loop() {
				if err := bc.write(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
