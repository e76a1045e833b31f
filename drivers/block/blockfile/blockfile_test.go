package blockfile

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/gohv/gohv/drivers/block"
)

func TestFile(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(p, 3000, false); err == nil {
		t.Error("odd sector size accepted")
	}
	d, err := Open(p, 512, false)
	if err != nil {
		t.Fatal(err)
	}
	if d.Info().Sectors != 8 {
		t.Fatalf("info %+v", d.Info())
	}
	w := bytes.Repeat([]byte("x"), 512)
	if _, err := d.WriteAt(ctx, w, 1024); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := d.WriteAt(ctx, w, 4096); !errors.Is(err, block.ErrOutOfRange) {
		t.Errorf("write past end: %v", err)
	}
	if err := d.Discard(ctx, 0, 512); !errors.Is(err, block.ErrNotSupported) {
		t.Errorf("discard: %v", err)
	}
	d.Close()
	if _, err := d.ReadAt(ctx, w, 0); !errors.Is(err, block.ErrRemoved) {
		t.Errorf("read after close: %v", err)
	}
	b, _ := os.ReadFile(p)
	if !bytes.Equal(b[1024:1536], w) {
		t.Error("write not in the file")
	}
	ro, err := Open(p, 512, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.WriteAt(ctx, w, 0); !errors.Is(err, block.ErrReadOnly) {
		t.Errorf("read-only write: %v", err)
	}
}
