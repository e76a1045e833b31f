package fat

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gohv/gohv/drivers/block"
	"github.com/gohv/gohv/internal/hosttool"
)

// hostFiles is a tree of files with the awkward cases: long and Unicode
// names, lower-case 8.3 names, empty files, multi-cluster files, deep and
// big directories.
func hostFiles() map[string][]byte {
	m := map[string][]byte{
		"README.TXT":                  []byte("upper 8.3\n"),
		"hello.txt":                   []byte("lower 8.3\n"),
		"Long File Name.markdown":     bytes.Repeat([]byte("long "), 1000),
		"empty":                       nil,
		"dir/sub/deep/leaf.bin":       bytes.Repeat([]byte{1, 2, 3}, 70000),
		"dir/Mixed Case Directory/x":  []byte("x"),
		"unicode-ÄÖÜ-✓.txt":           []byte("unicode"),
		"dir/exactly-one-cluster.bin": bytes.Repeat([]byte{0xCC}, 512),
	}
	for i := range 40 {
		m[fmt.Sprintf("many/entry with a long name %02d.txt", i)] = []byte(strings.Repeat("y", i))
	}
	return m
}

func writeHostTree(t *testing.T, files map[string][]byte) string {
	dir := t.TempDir()
	for p, b := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// mkfsImage makes a FAT32 image with mkfs.fat and copies files into it
// with mtools.
func mkfsImage(t *testing.T, size int64, files map[string][]byte, mkfsArgs ...string) string {
	hosttool.Need(t, "mkfs.fat", "mcopy")
	img := filepath.Join(t.TempDir(), "fat.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	if mkfsArgs == nil {
		mkfsArgs = []string{"-S", "512", "-s", "1"}
	}
	hosttool.Run(t, "mkfs.fat", append(append([]string{"-F", "32", "-n", "HOSTFAT"}, mkfsArgs...), img)...)
	if len(files) > 0 {
		src := writeHostTree(t, files)
		ents, _ := os.ReadDir(src)
		args := []string{"-i", img, "-s"}
		for _, e := range ents {
			args = append(args, filepath.Join(src, e.Name()))
		}
		hosttool.Run(t, "mcopy", append(args, "::/")...)
	}
	return img
}

func loadImage(t *testing.T, img string) *block.Mem { return loadImageSS(t, img, 512) }

// loadImageSS loads an image as a disk of sectorSize-byte sectors.
func loadImageSS(t *testing.T, img string, sectorSize int) *block.Mem {
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	m, err := block.NewMemFrom("fat", sectorSize, b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func saveImage(t *testing.T, m *block.Mem) string {
	img := filepath.Join(t.TempDir(), "out.img")
	if err := os.WriteFile(img, m.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return img
}

func mount(t *testing.T, m block.Device) *FS {
	t.Helper()
	f, err := Mount(context.Background(), m, MountOptions{Now: func() time.Time { return time.Date(2025, 3, 4, 5, 6, 8, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// checkTree asserts fsys holds exactly files (and their directories).
func checkTree(t *testing.T, fsys fs.FS, files map[string][]byte) {
	t.Helper()
	var names []string
	for p := range files {
		names = append(names, p)
	}
	if err := fstest.TestFS(fsys, names...); err != nil {
		t.Error(err)
	}
	checkFiles(t, fsys, files)
}

// checkFiles is checkTree without fstest.TestFS (which is slow under
// -race): the walk finds exactly files, with their contents.
func checkFiles(t *testing.T, fsys fs.FS, files map[string][]byte) {
	t.Helper()
	seen := 0
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		seen++
		want, ok := files[p]
		if !ok {
			t.Errorf("unexpected file %s", p)
			return nil
		}
		got, err := fs.ReadFile(fsys, p)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes (err %v), want %d", p, len(got), err, len(want))
		}
		return nil
	})
	if err != nil || seen != len(files) {
		t.Errorf("walk: %v; saw %d files, want %d", err, seen, len(files))
	}
}

func TestReadMkfsImage(t *testing.T) {
	files := hostFiles()
	m := loadImage(t, mkfsImage(t, 64<<20, files))
	checkTree(t, mount(t, m), files)
}

func TestReadOwnImage(t *testing.T) {
	files := hostFiles()
	tr := &Tree{}
	for p, b := range files {
		if err := tr.AddFile(p, b); err != nil {
			t.Fatal(err)
		}
	}
	d := build(t, tr, Options{Label: "OWN"})
	m, _ := block.NewMemFrom("own", 512, read(t, d, 0, volSize))
	checkTree(t, mount(t, m), files)
}

// mtools runs an mtools command on img.
func mtools(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "LC_ALL=C.UTF-8")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// TestWriteFsck changes an mkfs.fat volume through the write API in
// every way it offers, then has fsck.fat and mtools check the result.
//
// It runs on 512- and 4096-byte-sector disks: a 4 KiB-sector disk under a
// 512-byte-sector volume takes the read-modify-write path.
func TestWriteFsck(t *testing.T) {
	for _, c := range []struct {
		name     string
		mkfs     []string
		devBytes int
	}{
		// Larger clusters need volumes of 256 MiB and more before mtools
		// accepts them as FAT32 (65525 clusters), too big for this test.
		{"512B clusters", []string{"-S", "512", "-s", "1"}, 512},
		{"512B volume on a 4K-sector disk", []string{"-S", "512", "-s", "1"}, 4096},
	} {
		t.Run(c.name, func(t *testing.T) { testWriteFsck(t, c.mkfs, c.devBytes) })
	}
}

func testWriteFsck(t *testing.T, mkfsArgs []string, devBytes int) {
	hosttool.Need(t, "fsck.fat", "mdir", "mtype")
	files := map[string][]byte{"keep.txt": []byte("kept"), "old/gone.txt": []byte("gone"), "victim.txt": []byte("victim")}
	m := loadImageSS(t, mkfsImage(t, 64<<20, files, mkfsArgs...), devBytes)
	f := mount(t, m)
	want := map[string][]byte{"keep.txt": []byte("kept")}
	write := func(name string, b []byte) {
		t.Helper()
		w, err := f.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := w.Write(b); n != len(b) || err != nil {
			t.Fatalf("write %s: %d %v", name, n, err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		want[name] = b
	}
	for _, d := range []string{"new dir", "new dir/Nested Directory", "SHORT"} {
		if err := f.Mkdir(d); err != nil {
			t.Fatal(d, err)
		}
	}
	big := make([]byte, 300_000)
	for i := range big {
		big[i] = byte(i * 7)
	}
	write("new dir/Nested Directory/big file.bin", big)
	write("SHORT/A.TXT", []byte("short name only"))
	write("Ünïcödé name ✓.txt", []byte("unicode"))
	for i := range 30 { // spills the root directory into more clusters
		write(fmt.Sprintf("a rather long file name number %02d.txt", i), []byte(strings.Repeat("z", i*50)))
	}
	// Append, overwrite in the middle, sparse write past the end.
	w, err := f.OpenFile("keep.txt", os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(" and appended"))
	if _, err := w.WriteAt([]byte("KEPT"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt([]byte("tail"), 2000); err != nil {
		t.Fatal(err)
	}
	kept := append([]byte("KEPT and appended"), make([]byte, 2000-17)...)
	want["keep.txt"] = append(kept, "tail"...)
	if err := f.Remove("keep.txt"); !errors.Is(err, ErrBusy) {
		t.Errorf("remove of an open file: %v", err)
	}
	w.Close()
	// Truncate down and up.
	tr, err := f.OpenFile("new dir/Nested Directory/big file.bin", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Truncate(1000); err != nil {
		t.Fatal(err)
	}
	if err := tr.Truncate(1500); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	want["new dir/Nested Directory/big file.bin"] = append(big[:1000:1000], make([]byte, 500)...)
	// Renames: in place, across directories, a directory, replacing a file.
	if err := f.Rename("SHORT/A.TXT", "SHORT/renamed in place.txt"); err != nil {
		t.Fatal(err)
	}
	want["SHORT/renamed in place.txt"] = want["SHORT/A.TXT"]
	delete(want, "SHORT/A.TXT")
	if err := f.Rename("Ünïcödé name ✓.txt", "new dir/moved.txt"); err != nil {
		t.Fatal(err)
	}
	want["new dir/moved.txt"] = want["Ünïcödé name ✓.txt"]
	delete(want, "Ünïcödé name ✓.txt")
	if err := f.Rename("new dir/Nested Directory", "SHORT/Nested moved"); err != nil {
		t.Fatal(err)
	}
	want["SHORT/Nested moved/big file.bin"] = want["new dir/Nested Directory/big file.bin"]
	delete(want, "new dir/Nested Directory/big file.bin")
	if err := f.Rename("a rather long file name number 01.txt", "victim.txt"); err != nil {
		t.Fatal(err)
	}
	want["victim.txt"] = want["a rather long file name number 01.txt"]
	delete(want, "a rather long file name number 01.txt")
	if err := f.Rename("SHORT", "SHORT/Nested moved/inside"); err == nil {
		t.Error("moved a directory into itself")
	}
	// Removes.
	if err := f.Remove("old"); err == nil {
		t.Error("removed a non-empty directory")
	}
	for _, p := range []string{"old/gone.txt", "old", "a rather long file name number 02.txt"} {
		if err := f.Remove(p); err != nil {
			t.Fatal(p, err)
		}
	}
	delete(want, "a rather long file name number 02.txt")
	flushes := m.Flushes()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if m.Flushes() != flushes+1 {
		t.Error("Sync did not flush the device")
	}
	checkFiles(t, f, want)
	checkTree(t, mount(t, m), want) // a fresh mount sees the same

	img := saveImage(t, m)
	out, err := exec.Command("fsck.fat", "-n", "-V", img).CombinedOutput()
	if err != nil || strings.Contains(string(out), "Fixing") || strings.Contains(string(out), "\n  ") {
		t.Fatalf("fsck.fat: %v\n%s", err, out)
	}
	list := mtools(t, "mdir", "-i", img, "-/", "-b", "::/")
	for p, b := range want {
		if !strings.Contains(list, "::/"+p) {
			t.Errorf("mdir lacks %s:\n%s", p, list)
			continue
		}
		if got := mtools(t, "mtype", "-i", img, "::/"+p); got != string(b) {
			t.Errorf("mtype %s: %d bytes, want %d", p, len(got), len(b))
		}
	}
}

func TestErrors(t *testing.T) {
	m := loadImage(t, mkfsImage(t, 64<<20, map[string][]byte{"d/f": []byte("f")}))
	f := mount(t, m)
	for _, c := range []struct {
		name string
		err  error
		want error
	}{
		{"open missing", func() error { _, err := f.Open("nope"); return err }(), fs.ErrNotExist},
		{"open invalid", func() error { _, err := f.Open("/abs"); return err }(), fs.ErrInvalid},
		{"through a file", func() error { _, err := f.Open("d/f/x"); return err }(), fs.ErrNotExist},
		{"mkdir exists", f.Mkdir("d"), fs.ErrExist},
		{"mkdir no parent", f.Mkdir("x/y"), fs.ErrNotExist},
		{"excl", func() error { _, err := f.OpenFile("d/f", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0); return err }(), fs.ErrExist},
		{"bad name", func() error { _, err := f.Create("a:b"); return err }(), ErrName},
		{"remove root", f.Remove("."), fs.ErrInvalid},
	} {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
	r, _ := f.Open("d/f")
	if _, err := r.(*File).Write([]byte("x")); err == nil {
		t.Error("write through a read-only handle")
	}
	ro, err := Mount(context.Background(), m, MountOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Create("new"); !errors.Is(err, ErrReadOnly) {
		t.Errorf("create on a read-only mount: %v", err)
	}
	m.Remove()
	if _, err := f.ReadFile("d/f"); !errors.Is(err, block.ErrRemoved) {
		t.Errorf("read after the disk went away: %v", err)
	}
}

// TestFull fills a volume: the write fails with ErrFull and the volume
// stays consistent.
func TestWriteFull(t *testing.T) {
	hosttool.Need(t, "fsck.fat")
	m := loadImage(t, mkfsImage(t, 34<<20, nil))
	f := mount(t, m)
	w, err := f.Create("fill")
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	var werr error
	for range 40 {
		if _, werr = w.Write(chunk); werr != nil {
			break
		}
	}
	if !errors.Is(werr, ErrFull) {
		t.Fatalf("write error %v, want ErrFull", werr)
	}
	w.Close()
	f.Sync()
	out, err := exec.Command("fsck.fat", "-n", saveImage(t, m)).CombinedOutput()
	if err != nil {
		t.Fatalf("fsck.fat: %v\n%s", err, out)
	}
}

// tinyVolume writes a minimal FAT32 volume by hand from the spec's
// offsets: 512-byte sectors and clusters, 4 reserved sectors, one FAT of
// one sector, 64 sectors in all (59 clusters), root at cluster 2.
func tinyVolume() []byte {
	b := make([]byte, 64*512)
	le := binary.LittleEndian
	le.PutUint16(b[11:], 512)
	b[13] = 1
	le.PutUint16(b[14:], 4)
	b[16] = 1
	le.PutUint32(b[32:], 64)
	le.PutUint32(b[36:], 1)
	le.PutUint32(b[44:], 2)
	le.PutUint16(b[48:], 1)
	b[510], b[511] = 0x55, 0xAA
	fsi := b[512:]
	le.PutUint32(fsi[0:], 0x41615252)
	le.PutUint32(fsi[484:], 0x61417272)
	le.PutUint32(fsi[488:], 58)
	le.PutUint32(fsi[492:], 3)
	fat := b[4*512:]
	le.PutUint32(fat[0:], 0x0FFFFFF8)
	le.PutUint32(fat[4:], 0x0FFFFFFF)
	le.PutUint32(fat[8:], 0x0FFFFFFF) // root
	return b
}

func TestTinyVolume(t *testing.T) {
	m, _ := block.NewMemFrom("tiny", 512, tinyVolume())
	f := mount(t, m)
	w, err := f.Create("hello world.txt")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(bytes.Repeat([]byte("x"), 1500))
	w.Close()
	// The entry: an LFN slot then the short entry in the root (cluster 2
	// at sector 5); the file owns clusters 3, 4, 5 chained in the FAT.
	root := m.Bytes()[5*512:]
	le := binary.LittleEndian
	// 15 UTF-16 units need two long-name slots (13 each): ordinal 0x42
	// (last, 2) first, then 1, then the short entry.
	if root[0] != 0x42 || root[11] != 0x0F || root[32] != 0x01 || string(root[64:75]) != "HELLOW~1TXT" ||
		le.Uint16(root[64+26:]) != 3 || le.Uint32(root[64+28:]) != 1500 {
		t.Errorf("root % X", root[:96])
	}
	fat := m.Bytes()[4*512:]
	if le.Uint32(fat[12:]) != 4 || le.Uint32(fat[16:]) != 5 || le.Uint32(fat[20:])&0x0FFFFFFF != 0x0FFFFFFF {
		t.Errorf("FAT % X", fat[:24])
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if free := le.Uint32(m.Bytes()[512+488:]); free != 55 {
		t.Errorf("FSInfo free count %d, want 55", free)
	}
	if err := f.Remove("hello world.txt"); err != nil {
		t.Fatal(err)
	}
	if root[0] != 0xE5 || root[32] != 0xE5 || root[64] != 0xE5 || le.Uint32(fat[12:]) != 0 {
		t.Errorf("after remove: root % X FAT % X", root[:96], fat[:24])
	}
}

func FuzzParseBootSector(f *testing.F) {
	f.Add(tinyVolume()[:512])
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseBootSector(b)
		if err != nil {
			return
		}
		if s.Clusters == 0 || s.RootCluster < 2 || s.RootCluster > s.Clusters+1 {
			t.Fatalf("accepted %+v", s)
		}
	})
}

// FuzzVolume mounts a tiny volume whose FAT and root directory are fuzzed
// and walks it, reads every file and writes one: errors are fine, panics
// and hangs are not.
func FuzzVolume(f *testing.F) {
	seed := tinyVolume()
	m, _ := block.NewMemFrom("tiny", 512, seed)
	fsys, _ := Mount(context.Background(), m, MountOptions{})
	fsys.Mkdir("d")
	w, _ := fsys.Create("d/a long name.txt")
	w.Write(bytes.Repeat([]byte("q"), 700))
	w.Close()
	f.Add(m.Bytes()[4*512:5*512], m.Bytes()[5*512:7*512])
	f.Fuzz(func(t *testing.T, fat, root []byte) {
		img := tinyVolume()
		copy(img[4*512:5*512], fat)
		copy(img[5*512:64*512], root)
		m, _ := block.NewMemFrom("fuzz", 512, img)
		fsys, err := Mount(context.Background(), m, MountOptions{})
		if err != nil {
			return
		}
		fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				fs.ReadFile(fsys, p)
			}
			return nil
		})
		if w, err := fsys.Create("new file"); err == nil {
			w.Write([]byte("data"))
			w.Close()
		}
		fsys.Sync()
	})
}

func ExampleFS_ReadFile() {
	disk, _ := block.NewMemFrom("disk", 512, tinyVolume())
	fsys, err := Mount(context.Background(), disk, MountOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	w, _ := fsys.Create("greeting.txt")
	io.WriteString(w, "hello from FAT32")
	w.Close()
	fsys.Sync() // FSInfo, then the device's flush

	b, err := fs.ReadFile(fsys, "greeting.txt")
	fmt.Println(string(b), err)
	// Output: hello from FAT32 <nil>
}

// TestWriteLargeClusters writes through the API on volumes with 4 KiB
// logical sectors and 4 KiB clusters (mkfs.fat warns that 64 MiB gives
// fewer clusters than FAT32 suggests; fsck.fat and this package accept
// it, mtools does not, so the check is fsck plus a fresh mount).
func TestWriteLargeClusters(t *testing.T) {
	hosttool.Need(t, "fsck.fat")
	for _, c := range []struct {
		name     string
		mkfs     []string
		devBytes int
	}{
		{"4K sectors", []string{"-S", "4096", "-s", "1"}, 4096},
		{"4K clusters of 512B sectors", []string{"-S", "512", "-s", "8"}, 512},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := loadImageSS(t, mkfsImage(t, 64<<20, nil, c.mkfs...), c.devBytes)
			f := mount(t, m)
			files := hostFiles()
			for p, b := range files {
				mkdirAll(t, f, path.Dir(p))
				w, err := f.Create(p)
				if err != nil {
					t.Fatal(p, err)
				}
				if _, err := w.Write(b); err != nil {
					t.Fatal(p, err)
				}
				w.Close()
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			checkFiles(t, mount(t, m), files)
			// fsck.fat -n exits non-zero when it finds anything to fix;
			// the only message allowed is the cluster-count warning.
			out, err := exec.Command("fsck.fat", "-n", saveImage(t, m)).CombinedOutput()
			if err != nil || strings.Contains(string(out), "orrect") || strings.Contains(string(out), "runcat") || strings.Contains(string(out), "ixing") {
				t.Fatalf("fsck.fat: %v\n%s", err, out)
			}
		})
	}
}

func mkdirAll(t *testing.T, f *FS, dir string) {
	if dir == "." {
		return
	}
	mkdirAll(t, f, path.Dir(dir))
	if err := f.Mkdir(dir); err != nil && !errors.Is(err, fs.ErrExist) {
		t.Fatal(dir, err)
	}
}

// TestLFNMismatch: long-name slots whose checksum does not match the
// short entry (left by a system unaware of long names) are ignored and
// the short name is used, as the spec requires.
func TestLFNMismatch(t *testing.T) {
	m, _ := block.NewMemFrom("tiny", 512, tinyVolume())
	f := mount(t, m)
	w, _ := f.Create("hello world.txt")
	w.Close()
	root := m.Bytes()[5*512:]
	root[13] ^= 0xFF // checksum of the first long-name slot
	es, err := mount(t, m).ReadDir(".")
	if err != nil || len(es) != 1 || es[0].Name() != "HELLOW~1.TXT" {
		t.Fatalf("entries %v %v", es, err)
	}
	root[13] ^= 0xFF
	root[32] = 0x03 // wrong ordinal in the second slot
	if es, _ := mount(t, m).ReadDir("."); len(es) != 1 || es[0].Name() != "HELLOW~1.TXT" {
		t.Errorf("bad ordinal: %v", es)
	}
}
