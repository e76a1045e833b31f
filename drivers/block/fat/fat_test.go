package fat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/gohv/gohv/internal/hosttool"
	"github.com/gohv/gohv/tools/image"
)

const volSize = 40 << 20

func build(t *testing.T, tr *Tree, o Options) *image.MemDisk {
	t.Helper()
	d, err := image.NewMemDisk(volSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(d, 0, volSize, tr, o); err != nil {
		t.Fatal(err)
	}
	return d
}

func read(t *testing.T, d *image.MemDisk, off, n int64) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := d.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGeometry(t *testing.T) {
	// 40 MiB = 81920 sectors, 1 sector per cluster. FAT size by the spec's
	// formula: ceil((81920-32) / ((256*1+2)/2)) = ceil(81888/129) = 635.
	g, err := NewGeometry(volSize)
	if err != nil {
		t.Fatal(err)
	}
	want := Geometry{TotalSectors: 81920, SectorsPerCluster: 1, FATSectors: 635, Clusters: 81920 - 32 - 2*635,
		DataOffset: (32 + 2*635) * 512}
	if g != want {
		t.Errorf("geometry %+v, want %+v", g, want)
	}
	if g.FATSectors*128 < g.Clusters+2 {
		t.Error("FAT too small for the clusters")
	}
	// 1 GiB: 4 KiB clusters.
	if g, _ := NewGeometry(1 << 30); g.SectorsPerCluster != 8 {
		t.Errorf("1 GiB: %d sectors per cluster", g.SectorsPerCluster)
	}
	for _, size := range []int64{0, 1000, 16 << 20, 32 << 20} {
		if _, err := NewGeometry(size); !errors.Is(err, ErrSize) {
			t.Errorf("NewGeometry(%d) = %v", size, err)
		}
	}
}

func TestBootSectorAndFSInfoBytes(t *testing.T) {
	tr := &Tree{}
	if err := tr.AddFile("A.TXT", []byte("x")); err != nil {
		t.Fatal(err)
	}
	d := build(t, tr, Options{Label: "Data", VolumeID: 0xCAFEF00D, HiddenSectors: 2048})
	bs := read(t, d, 0, 512)
	le := binary.LittleEndian
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"BytsPerSec@11", uint64(le.Uint16(bs[11:])), 512},
		{"SecPerClus@13", uint64(bs[13]), 1},
		{"RsvdSecCnt@14", uint64(le.Uint16(bs[14:])), 32},
		{"NumFATs@16", uint64(bs[16]), 2},
		{"RootEntCnt@17", uint64(le.Uint16(bs[17:])), 0},
		{"TotSec16@19", uint64(le.Uint16(bs[19:])), 0},
		{"Media@21", uint64(bs[21]), 0xF8},
		{"FATSz16@22", uint64(le.Uint16(bs[22:])), 0},
		{"HiddSec@28", uint64(le.Uint32(bs[28:])), 2048},
		{"TotSec32@32", uint64(le.Uint32(bs[32:])), 81920},
		{"FATSz32@36", uint64(le.Uint32(bs[36:])), 635},
		{"RootClus@44", uint64(le.Uint32(bs[44:])), 2},
		{"FSInfo@48", uint64(le.Uint16(bs[48:])), 1},
		{"BkBootSec@50", uint64(le.Uint16(bs[50:])), 6},
		{"BootSig@66", uint64(bs[66]), 0x29},
		{"VolID@67", uint64(le.Uint32(bs[67:])), 0xCAFEF00D},
		{"Signature@510", uint64(le.Uint16(bs[510:])), 0xAA55},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	if string(bs[71:82]) != "DATA       " || string(bs[82:90]) != "FAT32   " {
		t.Errorf("label %q type %q", bs[71:82], bs[82:90])
	}
	if !bytes.Equal(read(t, d, 6*512, 512), bs) {
		t.Error("backup boot sector differs")
	}
	fsi := read(t, d, 512, 512)
	// Used: root (cluster 2) and A.TXT (cluster 3).
	if le.Uint32(fsi[0:]) != 0x41615252 || le.Uint32(fsi[484:]) != 0x61417272 || le.Uint32(fsi[508:]) != 0xAA550000 {
		t.Errorf("FSInfo signatures % X", fsi)
	}
	if free, next := le.Uint32(fsi[488:]), le.Uint32(fsi[492:]); free != 81920-32-2*635-2 || next != 4 {
		t.Errorf("FSInfo free %d next %d", free, next)
	}
	fat := read(t, d, 32*512, 16)
	if le.Uint32(fat[0:]) != 0x0FFFFFF8 || le.Uint32(fat[4:]) != 0x0FFFFFFF || le.Uint32(fat[8:]) != 0x0FFFFFFF || le.Uint32(fat[12:]) != 0x0FFFFFFF {
		t.Errorf("FAT start % X", fat)
	}
}

func TestDirectoryEntries(t *testing.T) {
	tr := &Tree{}
	ts := time.Date(2024, 5, 17, 13, 45, 58, 0, time.UTC)
	for _, f := range []struct {
		p    string
		data []byte
	}{
		{"README.TXT", []byte("exact 8.3")},
		{"sub/Empty", nil},
		{"sub/deeper/Long file name.html", bytes.Repeat([]byte{7}, 1200)},
	} {
		if err := tr.AddFile(f.p, f.data); err != nil {
			t.Fatal(err)
		}
	}
	d := build(t, tr, Options{Time: ts})
	g, _ := NewGeometry(volSize)
	clus := func(c uint32) []byte { return read(t, d, g.DataOffset+int64(c-2)*512, 512) }
	le := binary.LittleEndian
	root := clus(2)
	// Entry 0: label; then README.TXT (no long name); then SUB.
	if root[11] != attrVolume || string(root[0:11]) != "NO NAME    " {
		t.Errorf("label entry % X", root[:32])
	}
	e := root[32:64]
	if string(e[0:11]) != "README  TXT" || e[11] != attrArchive || le.Uint32(e[28:]) != 9 {
		t.Errorf("README entry % X", e)
	}
	// 2024-05-17 13:45:58: date (44<<9)|(5<<5)|17, time (13<<11)|(45<<5)|29.
	if le.Uint16(e[24:]) != 44<<9|5<<5|17 || le.Uint16(e[22:]) != 13<<11|45<<5|29 {
		t.Errorf("timestamps %#x %#x", le.Uint16(e[24:]), le.Uint16(e[22:]))
	}
	// "sub" is lower case: one long-name entry, then short name "SUB".
	l := root[64:96]
	sub := root[96:128]
	if string(sub[0:11]) != "SUB        " || sub[11] != attrDir {
		t.Fatalf("sub entry % X", sub)
	}
	var short [11]byte
	copy(short[:], sub[0:11])
	if l[0] != 0x41 || l[11] != 0x0F || l[13] != shortNameChecksum(short) || le.Uint16(l[26:]) != 0 {
		t.Errorf("long name entry % X", l)
	}
	if le.Uint16(l[1:]) != 's' || le.Uint16(l[3:]) != 'u' || le.Uint16(l[5:]) != 'b' || le.Uint16(l[7:]) != 0 || le.Uint16(l[9:]) != 0xFFFF {
		t.Errorf("long name chars % X", l)
	}
	subClus := uint32(le.Uint16(sub[20:]))<<16 | uint32(le.Uint16(sub[26:]))
	s := clus(subClus)
	if string(s[0:11]) != ".          " || uint32(le.Uint16(s[26:])) != subClus {
		t.Errorf(". entry % X", s[0:32])
	}
	if string(s[32:43]) != "..         " || le.Uint16(s[32+26:]) != 0 || le.Uint16(s[32+20:]) != 0 {
		t.Errorf(".. of a root child must name cluster 0: % X", s[32:64])
	}
	// deeper sorts before Empty (byte order: 'E' < 'd').
	var deeperClus uint32
	var sawEmpty bool
	for i := 2; i < 16; i++ {
		e := s[32*i : 32*i+32]
		if e[0] == 0 {
			break
		}
		if e[11] == attrLFN {
			continue
		}
		switch strings.TrimSpace(string(e[0:8])) {
		case "EMPTY":
			sawEmpty = true
			if le.Uint16(e[26:]) != 0 || le.Uint32(e[28:]) != 0 {
				t.Errorf("empty file owns cluster %d size %d", le.Uint16(e[26:]), le.Uint32(e[28:]))
			}
		case "DEEPER":
			deeperClus = uint32(le.Uint16(e[26:]))
		}
	}
	if !sawEmpty || deeperClus == 0 {
		t.Fatalf("sub lacks entries: % X", s[:256])
	}
	if dd := clus(deeperClus)[32:64]; uint32(le.Uint16(dd[26:])) != subClus {
		t.Errorf(".. of sub/deeper names %d, want %d", le.Uint16(dd[26:]), subClus)
	}
}

func TestShortNames(t *testing.T) {
	dir := &node{dir: true}
	for _, n := range []string{"Long Name 1.txt", "Long Name 2.txt", "hello.txt", "HELLO.TXT2", "a.b.c", ".hidden", "ÄÖ.dat", "KERNEL"} {
		dir.children = append(dir.children, &node{name: n})
	}
	assignShortNames(dir)
	got := map[string]string{}
	seen := map[[11]byte]bool{}
	for _, c := range dir.children {
		if seen[c.short] {
			t.Errorf("duplicate short name %q", c.short)
		}
		seen[c.short] = true
		got[c.name] = string(c.short[:])
		if (c.name == "KERNEL") == c.lfn {
			t.Errorf("%s: lfn %v", c.name, c.lfn)
		}
	}
	for name, want := range map[string]string{
		"Long Name 1.txt": "LONGNA~1TXT",
		"Long Name 2.txt": "LONGNA~2TXT",
		"hello.txt":       "HELLO   TXT",
		"HELLO.TXT2":      "HELLO~1 TXT",
		"a.b.c":           "AB~1    C  ",
		".hidden":         "HIDDEN~1   ",
		"ÄÖ.dat":          "__~1    DAT",
		"KERNEL":          "KERNEL     ",
	} {
		if got[name] != want {
			t.Errorf("%s -> %q, want %q", name, got[name], want)
		}
	}
	// Spec example of the checksum: computed by hand for "README  TXT".
	var s [11]byte
	copy(s[:], "README  TXT")
	var sum byte
	for _, c := range s {
		sum = (sum>>1 | sum<<7) + c
	}
	if shortNameChecksum(s) != sum {
		t.Errorf("checksum %#x, want %#x", shortNameChecksum(s), sum)
	}
}

func TestNameErrors(t *testing.T) {
	tr := &Tree{}
	for _, p := range []string{"a:b", "x/y?", "trailing.", strings.Repeat("n", 256), "ctl\x01"} {
		if err := tr.AddFile(p, nil); !errors.Is(err, ErrName) {
			t.Errorf("AddFile(%q) = %v", p, err)
		}
	}
	if err := tr.AddFile("Same.txt", nil); err != nil {
		t.Fatal(err)
	}
	if err := tr.AddFile("SAME.TXT", nil); err == nil {
		t.Error("case-insensitive duplicate accepted")
	}
	if err := tr.AddFile("Same.txt/x", nil); err == nil {
		t.Error("file used as directory")
	}
	if _, err := volumeLabel("much too long label"); err == nil {
		t.Error("long label accepted")
	}
}

func TestFull(t *testing.T) {
	tr := &Tree{}
	if err := tr.AddFile("big", make([]byte, 40<<20-1<<19)); err != nil {
		t.Fatal(err)
	}
	d, _ := image.NewMemDisk(volSize)
	if err := Write(d, 0, volSize, tr, Options{}); !errors.Is(err, ErrSize) || !strings.Contains(err.Error(), "larger") {
		t.Errorf("err = %v", err)
	}
}

// TestFsckAndMtools builds a volume with many files (directories over
// several clusters), long and Unicode names, and checks it with dosfstools
// and mtools, implementations that are not ours.
func TestFsckAndMtools(t *testing.T) {
	hosttool.Need(t, "fsck.fat", "mdir", "mtype")
	tr := &Tree{}
	want := map[string][]byte{}
	for i := range 60 {
		p := fmt.Sprintf("many/File number %02d with a long name.txt", i)
		want[p] = []byte(strings.Repeat(fmt.Sprint(i), i*37))
	}
	want["Ünïcödé ✓.txt"] = []byte("unicode")
	want["EFI/BOOT/BOOTX64.EFI"] = bytes.Repeat([]byte("MZ"), 300000)
	want["a/b/c/d/e/f/deep.bin"] = []byte{0}
	for p, b := range want {
		if err := tr.AddFile(p, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Mkdir("empty dir"); err != nil {
		t.Fatal(err)
	}
	d := build(t, tr, Options{Label: "GOHV TEST"})
	img := filepath.Join(t.TempDir(), "fat.img")
	if err := image.WriteRaw(img, d); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("fsck.fat", "-n", "-V", img).CombinedOutput()
	if err != nil || strings.Contains(string(out), "Fixing") {
		t.Fatalf("fsck.fat: %v\n%s", err, out)
	}
	env := append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "LC_ALL=C.UTF-8")
	cmd := exec.Command("mdir", "-i", img, "-/", "-b", "::/")
	cmd.Env = env
	list, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mdir: %v\n%s", err, list)
	}
	for p := range want {
		if !strings.Contains(string(list), "::/"+p) && !strings.Contains(p, "Ü") {
			t.Errorf("mdir lacks %s", p)
		}
	}
	if !strings.Contains(string(list), "::/empty dir/") {
		t.Errorf("mdir lacks the empty directory:\n%s", list)
	}
	for p, b := range want {
		if strings.Contains(p, "Ü") {
			continue // mtools' rendering of non-ASCII depends on the locale
		}
		cmd := exec.Command("mtype", "-i", img, "::/"+p)
		cmd.Env = env
		got, err := cmd.Output()
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("mtype %s: %v (%d bytes, want %d)", p, err, len(got), len(b))
		}
	}
	// The long name of the Unicode file decodes back exactly from its
	// entries (UTF-16 in the long-name slots).
	if !strings.Contains(decodeNames(t, d), "Ünïcödé ✓.txt") {
		t.Error("Unicode long name not found in the root directory")
	}
}

// decodeNames collects the long names in the root directory's first cluster.
func decodeNames(t *testing.T, d *image.MemDisk) string {
	g, _ := NewGeometry(volSize)
	b := read(t, d, g.DataOffset, 4096)
	var names []string
	var cur []uint16
	for i := 0; i+32 <= len(b); i += 32 {
		e := b[i : i+32]
		if e[11] != attrLFN {
			if cur != nil {
				names = append(names, string(utf16.Decode(cur)))
			}
			cur = nil
			continue
		}
		var part []uint16
		for _, o := range []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
			c := binary.LittleEndian.Uint16(e[o:])
			if c == 0 || c == 0xFFFF {
				break
			}
			part = append(part, c)
		}
		cur = append(part, cur...)
	}
	return strings.Join(names, "\n")
}

// FuzzTree feeds arbitrary paths and contents: the builder either rejects
// the name or builds a volume whose directory entries have unique short
// names; it never panics.
func FuzzTree(f *testing.F) {
	f.Add("a.txt", "b/c.txt", []byte("x"))
	f.Add("Long Name.html", "long name.HTML", []byte{})
	f.Add("x/y/z", "x/y", []byte("1"))
	f.Fuzz(func(t *testing.T, p1, p2 string, data []byte) {
		tr := &Tree{}
		_ = tr.AddFile(p1, data)
		_ = tr.AddFile(p2, data)
		d, _ := image.NewMemDisk(volSize)
		if err := Write(d, 0, volSize, tr, Options{}); err != nil {
			t.Fatalf("valid tree rejected: %v", err)
		}
		var check func(n *node)
		check = func(n *node) {
			seen := map[[11]byte]bool{}
			for _, c := range n.children {
				if seen[c.short] {
					t.Fatalf("duplicate short name %q in %q", c.short, n.name)
				}
				seen[c.short] = true
				if c.dir {
					check(c)
				}
			}
		}
		check(&tr.root)
	})
}
