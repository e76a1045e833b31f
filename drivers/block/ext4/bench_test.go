package ext4

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/gohv/gohv/drivers/block"
)

// BenchmarkRead reads a 4 MiB file in 64 KiB pieces; "device" is the
// baseline: the same amount read straight from the memory disk.
func BenchmarkRead(b *testing.B) {
	need(b, "mke2fs", "e2fsprogs")
	const size, chunk = 4 << 20, 64 << 10
	dir := b.TempDir()
	src := filepath.Join(dir, "src")
	os.Mkdir(src, 0o755)
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i>>9 | 1) // no zero blocks: mke2fs would make holes of them
	}
	os.WriteFile(filepath.Join(src, "data.bin"), data, 0o644)
	img := filepath.Join(dir, "ext.img")
	run(b, "mke2fs", "-q", "-F", "-t", "ext4", "-d", src, img, "16M")
	raw, _ := os.ReadFile(img)
	m, err := block.NewMemFrom("ext", 512, raw)
	if err != nil {
		b.Fatal(err)
	}
	f, err := Mount(context.Background(), m)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, chunk)
	ctx := context.Background()
	b.Run("device", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			for off := int64(0); off < size; off += chunk {
				m.ReadAt(ctx, buf, off)
			}
		}
	})
	b.Run("file", func(b *testing.B) {
		r, _ := f.Open("data.bin")
		ra := r.(io.ReaderAt)
		b.SetBytes(size)
		for b.Loop() {
			for off := int64(0); off < size; off += chunk {
				if _, err := ra.ReadAt(buf, off); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// writeBench makes an empty 128 MiB ext4 volume (4 KiB blocks) on a memory
// disk, mounted read-write.
func writeBench(b testing.TB) (*block.Mem, *FS) {
	need(b, "mke2fs", "e2fsprogs")
	dir := b.TempDir()
	img := filepath.Join(dir, "ext.img")
	run(b, "mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", img, "128M")
	raw, _ := os.ReadFile(img)
	m, err := block.NewMemFrom("ext", 512, raw)
	if err != nil {
		b.Fatal(err)
	}
	f, err := MountRW(context.Background(), m, WriteOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return m, f
}

// BenchmarkWrite writes 16 MiB sequentially in 1 MiB pieces. "device" is
// the baseline: the same writes straight to the memory disk. "overwrite"
// rewrites an allocated file in place; "create+sync" creates (truncates)
// the file, allocates as it writes, and Syncs (two device flushes and the
// metadata).
func BenchmarkWrite(b *testing.B) {
	const size, chunk = 16 << 20, 1 << 20
	_, f := writeBench(b)
	raw, err := block.NewMem("raw", 512, 2*size/512) // the baseline's own disk
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, chunk)
	for i := range buf {
		buf[i] = byte(i)
	}
	ctx := context.Background()
	b.Run("device", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			for off := int64(0); off < size; off += chunk {
				if _, err := raw.WriteAt(ctx, buf, off); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("overwrite", func(b *testing.B) {
		w, err := f.Create("over.bin")
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		for off := int64(0); off < size; off += chunk {
			if _, err := w.WriteAt(buf, off); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Sync(); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(size)
		for b.Loop() {
			for off := int64(0); off < size; off += chunk {
				if _, err := w.WriteAt(buf, off); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("create+sync", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			w, err := f.Create("new.bin")
			if err != nil {
				b.Fatal(err)
			}
			for range size / chunk {
				if _, err := w.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Sync(); err != nil {
				b.Fatal(err)
			}
			w.Close()
		}
	})
}
