package vhd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gohv/gohv/internal/hosttool"
	"github.com/gohv/gohv/tools/image"
)

type fixedRand byte

func (r fixedRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r) + byte(i)
	}
	return len(p), nil
}

// TestFooterBytes pins every field to its offset in the spec's footer table.
func TestFooterBytes(t *testing.T) {
	ts := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Add(0x12345678 * time.Second)
	var id [16]byte
	for i := range id {
		id[i] = byte(0xA0 + i)
	}
	b := Footer{Size: 64 << 20, Timestamp: ts, UniqueID: id}.Encode()
	be := binary.BigEndian
	checks := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"cookie@0", b[0:8], []byte("conectix")},
		{"features@8", b[8:12], []byte{0, 0, 0, 2}},
		{"version@12", b[12:16], []byte{0, 1, 0, 0}},
		{"data offset@16", b[16:24], bytes.Repeat([]byte{0xFF}, 8)},
		{"timestamp@24", b[24:28], []byte{0x12, 0x34, 0x56, 0x78}},
		{"creator app@28", b[28:32], []byte("win ")},
		{"creator version@32", b[32:36], []byte{0, 0x0A, 0, 0}},
		{"creator OS@36", b[36:40], []byte("Wi2k")},
		{"original size@40", b[40:48], []byte{0, 0, 0, 0, 0x04, 0, 0, 0}},
		{"current size@48", b[48:56], []byte{0, 0, 0, 0, 0x04, 0, 0, 0}},
		// 131072 sectors: 17 sectors/track, 8 heads, 963 cylinders (0x03C3).
		{"geometry@56", b[56:60], []byte{0x03, 0xC3, 8, 17}},
		{"disk type@60", b[60:64], []byte{0, 0, 0, 2}},
		{"unique id@68", b[68:84], id[:]},
		{"saved state@84", b[84:85], []byte{0}},
		{"reserved", b[85:512], make([]byte, 427)},
	}
	for _, c := range checks {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s = % X, want % X", c.name, c.got, c.want)
		}
	}
	var sum uint32
	for i, c := range b {
		if i < 64 || i >= 68 {
			sum += uint32(c)
		}
	}
	if got := be.Uint32(b[64:]); got != ^sum {
		t.Errorf("checksum@64 = %#x, want %#x", got, ^sum)
	}
	p, err := ParseFooter(b)
	if err != nil || p.Size != 64<<20 || !p.Timestamp.Equal(ts) || p.UniqueID != id {
		t.Errorf("ParseFooter = %+v, %v", p, err)
	}
}

func TestCHS(t *testing.T) {
	for _, tc := range []struct {
		sectors int64
		want    Geometry
	}{
		{40960, Geometry{602, 4, 17}},     // 20 MiB
		{131072, Geometry{963, 8, 17}},    // 64 MiB
		{2097152, Geometry{2080, 16, 63}}, // 1 GiB
		{300000, Geometry{604, 16, 31}},   // 31 sectors/track
		{65535 * 16 * 255, Geometry{65535, 16, 255}},
		{1 << 40, Geometry{65535, 16, 255}}, // clamped
	} {
		if got := CHS(tc.sectors); got != tc.want {
			t.Errorf("CHS(%d) = %+v, want %+v", tc.sectors, got, tc.want)
		}
	}
}

// TestCHSMatchesQEMU compares the geometry with the one qemu-img writes,
// an implementation of the same appendix that is not ours. Without
// force_size qemu-img rounds the size up to what the geometry describes and
// stores that as the current size, so the geometry is checked for the
// sector count qemu-img chose.
func TestCHSMatchesQEMU(t *testing.T) {
	hosttool.Need(t, "qemu-img")
	dir := t.TempDir()
	for _, mib := range []int64{20, 64, 100, 1000, 4096, 40000} {
		p := filepath.Join(dir, strconv.FormatInt(mib, 10)+".vhd")
		hosttool.Run(t, "qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=fixed", p, strconv.FormatInt(mib, 10)+"M")
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		ft := make([]byte, 512)
		_, err = f.ReadAt(ft, st.Size()-512)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		cur := int64(binary.BigEndian.Uint64(ft[48:]))
		g := CHS(cur / 512)
		want := Geometry{binary.BigEndian.Uint16(ft[56:]), ft[58], ft[59]}
		if g != want {
			t.Errorf("%d MiB: CHS %+v, qemu-img wrote %+v", mib, g, want)
		}
	}
}

func TestCheckSize(t *testing.T) {
	for _, tc := range []struct {
		size    int64
		ok      bool
		mention string
	}{
		{20 << 20, true, ""},
		{64 << 20, true, ""},
		{32 << 40, true, ""},
		{19 << 20, false, "minimum of 20MiB"},
		{64<<20 + 512, false, "64MiB (67108864 bytes) or 65MiB (67108864"},
		{32<<40 + 1<<20, false, "maximum"},
	} {
		err := CheckSize(tc.size)
		if (err == nil) != tc.ok {
			t.Errorf("CheckSize(%d) = %v", tc.size, err)
			continue
		}
		if err != nil && (!errors.Is(err, ErrSize) || !strings.Contains(err.Error(), strings.Split(tc.mention, " (67108864")[0])) {
			t.Errorf("CheckSize(%d) = %q, want mention of %q", tc.size, err, tc.mention)
		}
	}
}

func TestQEMUReadsFixedVHD(t *testing.T) {
	hosttool.Need(t, "qemu-img")
	for _, size := range []int64{20 << 20, 64 << 20, 1000 << 20} {
		dir := t.TempDir()
		d, _ := image.NewMemDisk(size)
		r := rand.New(rand.NewPCG(3, 4))
		for _, off := range []int64{0, size / 3, size - 4096} {
			b := make([]byte, 4096)
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			if _, err := d.WriteAt(b, off); err != nil {
				t.Fatal(err)
			}
		}
		raw, out := filepath.Join(dir, "d.raw"), filepath.Join(dir, "d.vhd")
		if err := image.WriteRaw(raw, d); err != nil {
			t.Fatal(err)
		}
		if err := WriteFixed(out, d, Options{Rand: fixedRand(9)}); err != nil {
			t.Fatal(err)
		}
		info := hosttool.Run(t, "qemu-img", "info", "-f", "vpc", "--output=json", out)
		if want := `"virtual-size": ` + strconv.FormatInt(size, 10) + ","; !strings.Contains(info, want) {
			t.Errorf("size %d: qemu-img info lacks %s:\n%s", size, want, info)
		}
		hosttool.Run(t, "qemu-img", "compare", "-f", "raw", "-F", "vpc", raw, out)
		st, _ := os.Stat(out)
		if st.Size() != size+512 {
			t.Errorf("file size %d, want %d", st.Size(), size+512)
		}
	}
}

func TestBadSizeLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	d, _ := image.NewMemDisk(64<<20 + 512)
	err := WriteFixed(filepath.Join(dir, "x.vhd"), d, Options{})
	if !errors.Is(err, ErrSize) {
		t.Fatalf("err = %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left behind %v", ents)
	}
}

func FuzzParseFooter(f *testing.F) {
	f.Add(Footer{Size: 64 << 20, Timestamp: vhdEpoch}.Encode())
	f.Add(make([]byte, 512))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseFooter(b)
		if err != nil {
			if !errors.Is(err, ErrFooter) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if p.Size <= 0 || p.Size%512 != 0 || p.DiskType != DiskTypeFixed {
			t.Fatalf("accepted %+v", p)
		}
	})
}
