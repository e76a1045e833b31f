package vhdx

import (
	"bytes"
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
