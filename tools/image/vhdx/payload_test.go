package vhdx

import (
	"bytes"
	"io"
	"testing"

	"github.com/gohv/gohv/tools/image"
)

// TestPayloadOffset writes through PayloadOffset into the file bytes and
// reads the change back through ReadAt: the mapping is the one ReadAt uses.
func TestPayloadOffset(t *testing.T) {
	d, _ := image.NewMemDisk(3<<20 + 512)
	if _, err := d.WriteAt([]byte("data"), 2<<20); err != nil { // only block 2 has data
		t.Fatal(err)
	}
	for _, fixed := range []bool{false, true} {
		b := writeTemp(t, d, Options{Fixed: fixed})
		v, err := Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, ok := v.PayloadOffset(-1); ok {
			t.Error("negative offset mapped")
		}
		if _, _, ok := v.PayloadOffset(v.Size()); ok {
			t.Error("offset at the end mapped")
		}
		if _, _, ok := v.PayloadOffset(0); !fixed && ok {
			t.Errorf("fixed=%v: absent block 0 mapped", fixed)
		}
		off := int64(2<<20 + 100)
		fo, run, ok := v.PayloadOffset(off)
		if !ok || run != 1<<20-100 || fo%512 != 100%512 {
			t.Fatalf("fixed=%v: block 2: %d %d %v", fixed, fo, run, ok)
		}
		copy(b[fo:], "XYZ")
		got := make([]byte, 3)
		if _, err := v.ReadAt(got, off); err != nil || string(got) != "XYZ" {
			t.Fatalf("read back %q %v", got, err)
		}
		// The last block is short: its run ends at the disk's end.
		if _, run, ok := v.PayloadOffset(3<<20 + 10); fixed && (!ok || run != 502) {
			t.Errorf("last block run %d %v", run, ok)
		}
		if fixed {
			for i := int64(0); i < 4; i++ {
				if _, _, ok := v.PayloadOffset(i << 20); !ok {
					t.Errorf("fixed block %d not mapped", i)
				}
			}
		}
	}
}

// memFile is a growable in-memory file.
type memFile struct{ b []byte }

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if need := off + int64(len(p)); need > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, need-int64(len(m.b)))...)
	}
	return copy(m.b[off:], p), nil
}

// TestAllocateBlock allocates a block of a dynamic VHDX, writes into it
// and reopens the file: the block is present and holds the data; the other
// blocks are unchanged.
func TestAllocateBlock(t *testing.T) {
	d, _ := image.NewMemDisk(4 << 20)
	d.WriteAt([]byte("keep"), 3<<20)
	f := &memFile{b: writeTemp(t, d, Options{})}
	v, err := Open(f, int64(len(f.b)))
	if err != nil {
		t.Fatal(err)
	}
	if v.PresentBlocks != 1 {
		t.Fatalf("%d blocks present", v.PresentBlocks)
	}
	end, err := v.AllocateBlock(f, int64(len(f.b)), 1)
	if err != nil {
		t.Fatal(err)
	}
	if end != int64(len(f.b)) || end%(1<<20) != 0 {
		t.Fatalf("new end %d, file %d", end, len(f.b))
	}
	fo, _, ok := v.PayloadOffset(1<<20 + 7)
	if !ok {
		t.Fatal("allocated block not mapped")
	}
	f.WriteAt([]byte("new data"), fo)
	// Allocating again is a no-op.
	if e2, err := v.AllocateBlock(f, end, 1); err != nil || e2 != end {
		t.Fatalf("second allocation: %d %v", e2, err)
	}
	if _, err := v.AllocateBlock(f, end, 99); err == nil {
		t.Fatal("block 99 allocated")
	}
	w, err := Open(bytes.NewReader(f.b), int64(len(f.b)))
	if err != nil {
		t.Fatal(err)
	}
	if w.PresentBlocks != 2 || w.BlockState(1) != PayloadFullyPresent {
		t.Fatalf("reopened: %d present, state %d", w.PresentBlocks, w.BlockState(1))
	}
	got := make([]byte, 4<<20)
	if _, err := w.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 4<<20)
	copy(want[3<<20:], "keep")
	copy(want[1<<20+7:], "new data")
	if !bytes.Equal(got, want) {
		t.Fatal("reopened contents differ")
	}
}
