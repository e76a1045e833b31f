package fat

import (
	"context"
	"io"
	"os"
	"testing"

	"github.com/gohv/gohv/drivers/block"
)

// BenchmarkFile reads and writes a 4 MiB file in 64 KiB pieces; "device"
// is the baseline: the same bytes read straight from the memory disk.
func BenchmarkFile(b *testing.B) {
	const size, chunk = 4 << 20, 64 << 10
	m, _ := block.NewMem("bench", 512, volSize/512)
	tr := &Tree{}
	tr.AddFile("data.bin", make([]byte, size))
	if err := Write(memWriter{m}, 0, volSize, tr, Options{}); err != nil {
		b.Fatal(err)
	}
	f, err := Mount(context.Background(), m, MountOptions{})
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
	b.Run("read", func(b *testing.B) {
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
	b.Run("overwrite", func(b *testing.B) {
		w, _ := f.OpenFile("data.bin", os.O_RDWR, 0)
		defer w.Close()
		b.SetBytes(size)
		for b.Loop() {
			for off := int64(0); off < size; off += chunk {
				if _, err := w.WriteAt(buf, off); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

type memWriter struct{ m *block.Mem }

func (w memWriter) WriteAt(p []byte, off int64) (int, error) { return copy(w.m.Bytes()[off:], p), nil }
