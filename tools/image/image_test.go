package image

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMemDisk(t *testing.T) {
	d, err := NewMemDisk(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.DataExtents()) != 0 {
		t.Error("fresh disk has data")
	}
	// Zero writes allocate nothing.
	if _, err := d.WriteAt(make([]byte, 200000), 0); err != nil || len(d.chunks) != 0 {
		t.Errorf("zero write: %v, %d chunks", err, len(d.chunks))
	}
	// A write across a chunk boundary, and one in the last chunk.
	if _, err := d.WriteAt([]byte("across"), chunkSize-3); err != nil {
		t.Fatal(err)
	}
	if _, err := d.WriteAt([]byte("end"), 1<<20-3); err != nil {
		t.Fatal(err)
	}
	want := []Extent{{0, 2 * chunkSize}, {1<<20 - chunkSize, chunkSize}}
	if got := d.DataExtents(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("extents %v, want %v", got, want)
	}
	b := make([]byte, 6)
	if _, err := d.ReadAt(b, chunkSize-3); err != nil || string(b) != "across" {
		t.Errorf("read %q %v", b, err)
	}
	// Reads past the end are short with io.EOF.
	n, err := d.ReadAt(b, 1<<20-3)
	if n != 3 || err != io.EOF || string(b[:3]) != "end" {
		t.Errorf("tail read %d %v %q", n, err, b[:n])
	}
	if _, err := d.WriteAt([]byte("xx"), 1<<20-1); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("write past end: %v", err)
	}
	if _, err := d.WriteAt([]byte("x"), -1); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("negative write: %v", err)
	}
	if !MayHoldData(d, 0, 1) || MayHoldData(d, 3*chunkSize, chunkSize) || !MayHoldData(d, 3*chunkSize, 1<<20) {
		t.Error("MayHoldData wrong")
	}
	if !MayHoldData(BytesSource(make([]byte, 512)), 0, 512) {
		t.Error("non-sparse source must be assumed to hold data")
	}
	if _, err := NewMemDisk(1000); err == nil {
		t.Error("size not a multiple of 512 accepted")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"64MiB": 64 << 20, "64M": 64 << 20, "64mb": 64 << 20, "2GiB": 2 << 30, "1048576": 1 << 20,
		"512K": 512 << 10, "1TiB": 1 << 40, " 8 MiB ": 8 << 20, "512b": 512,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1MiB", "0", "12XB", "1.5GiB", "99999999999TiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
	for n, want := range map[int64]string{64 << 20: "64MiB", 1 << 40: "1TiB", 3072: "3KiB", 1000: "1000 bytes", 3 << 30: "3GiB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestWriteRawSparse(t *testing.T) {
	d, _ := NewMemDisk(8 << 20)
	if _, err := d.WriteAt([]byte("head"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := d.WriteAt([]byte("tail"), 8<<20-4); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "d.raw")
	if err := WriteRaw(p, d); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 8<<20 || string(b[:4]) != "head" || string(b[len(b)-4:]) != "tail" || !IsZero(b[4:len(b)-4]) {
		t.Errorf("raw image wrong (len %d)", len(b))
	}
}

func TestCreateAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := CreateAtomic(p, func(f *os.File) error {
		_, _ = f.WriteString("half")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("failed write replaced the file: %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary file left: %v", ents)
	}
	if err := CreateAtomic(p, func(f *os.File) error { _, err := f.WriteString("new"); return err }); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Errorf("content %q", b)
	}
	err = CreateAtomic(filepath.Join(dir, "missing", "out"), func(*os.File) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing directory: %v", err)
	}
}

type shortSource struct{ Source }

func (s shortSource) ReadAt(p []byte, off int64) (int, error) { return 1, nil }

func TestReadFullShort(t *testing.T) {
	src := shortSource{BytesSource(make([]byte, 1024))}
	if err := ReadFull(src, make([]byte, 512), 0); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short read: %v", err)
	}
	// Past the end reads zero without asking the source.
	p := bytes.Repeat([]byte{1}, 512)
	if err := ReadFull(src, p, 2048); err != nil || !IsZero(p) {
		t.Errorf("beyond end: %v", err)
	}
}
