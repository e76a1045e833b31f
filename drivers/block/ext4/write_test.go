package ext4

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gohv/gohv/drivers/block"
)

// fsck runs e2fsck -fn on img and fails the test unless it exits 0.
func fsck(t *testing.T, img string) {
	t.Helper()
	out, err := exec.Command("e2fsck", "-fn", img).CombinedOutput()
	if err != nil {
		t.Fatalf("e2fsck -fn: %v\n%s", err, out)
	}
}

// debugfsCat reads path from img with debugfs.
func debugfsCat(t *testing.T, img, p string) []byte {
	t.Helper()
	out, err := exec.Command("debugfs", "-R", "cat \""+p+"\"", img).Output()
	if err != nil {
		t.Fatalf("debugfs cat %s: %v", p, err)
	}
	return out
}

// debugfsLs lists a directory of img with debugfs (names only).
func debugfsLs(t *testing.T, img, p string) []string {
	t.Helper()
	out, err := exec.Command("debugfs", "-R", "ls -p "+p, img).Output()
	if err != nil {
		t.Fatalf("debugfs ls %s: %v", p, err)
	}
	// -p prints /inode/mode/uid/gid/name/size/ per entry, including
	// empty ones (inode 0: a removed entry that was first in its block
	// keeps its name).
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Split(l, "/")
		if len(f) >= 7 && f[1] != "0" && f[5] != "." && f[5] != ".." {
			names = append(names, f[5])
		}
	}
	return names
}

func save(t *testing.T, m *block.Mem, img string) {
	t.Helper()
	if err := os.WriteFile(img, m.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>9 + seed)
	}
	return b
}

func writeFile(t *testing.T, f *FS, name string, data []byte) {
	t.Helper()
	w, err := f.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := w.Write(data); n != len(data) || err != nil {
		t.Fatalf("write %s: %d %v", name, n, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// workload changes a volume made from sampleTree through every write
// operation and returns what each path must then hold (nil: absent).
func workload(t *testing.T, f *FS, bs int) map[string][]byte {
	want := map[string][]byte{}
	writeFile(t, f, "new.txt", []byte("written by gohv\n"))
	want["new.txt"] = []byte("written by gohv\n")

	// Larger than one extent (32768 blocks) with 1 KiB blocks.
	bigN := 33 << 20
	if bs == 4096 {
		bigN = 9 << 20
	}
	big := pattern(bigN, 1)
	w, err := f.Create("big-new.bin")
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(big); off += 1 << 20 {
		if _, err := w.Write(big[off:min(len(big), off+1<<20)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	want["big-new.bin"] = big

	// Many extents: every other block, leaving holes (a leaf block).
	frag := make([]byte, 40*bs)
	w, err = f.Create("frag.bin")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i += 2 {
		blk := bytes.Repeat([]byte{byte(i + 1)}, bs)
		copy(frag[i*bs:], blk)
		if _, err := w.WriteAt(blk, int64(i*bs)); err != nil {
			t.Fatal(err)
		}
	}
	// Unaligned writes across block boundaries, and past the end.
	if _, err := w.WriteAt([]byte("XYZ"), int64(bs-1)); err != nil {
		t.Fatal(err)
	}
	copy(frag[bs-1:], "XYZ")
	frag = append(frag, make([]byte, 100)...)
	frag = append(frag, "tail"...)
	if _, err := w.WriteAt([]byte("tail"), int64(len(frag)-4)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	want["frag.bin"] = frag

	// Directories, nested; a directory of many entries (several blocks).
	for _, d := range []string{"d1", "d1/d2", "d1/d2/d3", "many-new"} {
		if err := f.Mkdir(d); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 150 {
		name := fmt.Sprintf("many-new/entry-with-a-long-name-%03d", i)
		writeFile(t, f, name, []byte(name))
		want[name] = []byte(name)
	}
	writeFile(t, f, "d1/d2/d3/leaf.txt", []byte("leaf"))
	want["d1/d2/d3/leaf.txt"] = []byte("leaf")

	// Rename within a directory, across directories, replacing a file,
	// and a directory to another parent.
	writeFile(t, f, "d1/a.txt", []byte("a"))
	writeFile(t, f, "d1/b.txt", []byte("b"))
	must(t, f.Rename("d1/a.txt", "d1/a2.txt"))
	must(t, f.Rename("d1/a2.txt", "d1/d2/a3.txt"))
	must(t, f.Rename("d1/b.txt", "d1/d2/a3.txt")) // replaces a3
	want["d1/d2/a3.txt"] = []byte("b")
	must(t, f.Rename("d1/d2/d3", "moved-d3"))
	want["moved-d3/leaf.txt"] = []byte("leaf")
	delete(want, "d1/d2/d3/leaf.txt")
	if err := f.Rename("d1", "d1/d2/inside"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("moving a directory into itself: %v", err)
	}

	// Remove files (new and Linux-made), an empty directory; a full
	// directory is refused.
	must(t, f.Remove("many-new/entry-with-a-long-name-007"))
	delete(want, "many-new/entry-with-a-long-name-007")
	must(t, f.Remove("hello.txt"))
	want["hello.txt"] = nil
	must(t, f.Remove("big.bin")) // a Linux-made file with several extents
	want["big.bin"] = nil
	must(t, f.Mkdir("gone"))
	must(t, f.Remove("gone"))
	must(t, f.Remove("fast-link")) // symlinks: target in the inode, and in a block
	must(t, f.Remove("slow-link"))
	want["fast-link"], want["slow-link"] = nil, nil
	must(t, f.Rename("abs-link", "sub/abs-link-moved"))
	must(t, f.Remove("lost+found"))
	want["lost+found"] = nil
	if err := f.Remove("d1"); err == nil {
		t.Error("removed a directory that is not empty")
	}

	// Truncate down and up, append, overwrite a Linux-made file.
	w, err = f.OpenFile("frag.bin", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	must(t, w.Truncate(int64(5*bs+10)))
	must(t, w.Truncate(int64(7*bs)))
	w.Close()
	frag = append(frag[:5*bs+10:5*bs+10], make([]byte, 2*bs-10)...)
	want["frag.bin"] = frag
	w, err = f.OpenFile("new.txt", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("appended\n"))
	w.Close()
	want["new.txt"] = []byte("written by gohv\nappended\n")
	w, err = f.OpenFile("sub/one-block.bin", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteAt([]byte("over"), 10)
	w.Close()
	ob := bytes.Repeat([]byte{0x5A}, 4096)
	copy(ob[10:], "over")
	want["sub/one-block.bin"] = ob
	w, err = f.Create("a/b/c/deep.txt") // truncates
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("rewritten"))
	w.Close()
	want["a/b/c/deep.txt"] = []byte("rewritten")
	return want
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestWriteMke2fs runs the workload on volumes made by mke2fs, then
// checks them with e2fsck -fn and reads every file back with debugfs.
func TestWriteMke2fs(t *testing.T) {
	need(t, "e2fsck", "e2fsprogs")
	need(t, "debugfs", "e2fsprogs")
	tr := sampleTree(40)
	src := tr.write(t)
	for _, c := range []struct {
		name string
		bs   int
		args []string
	}{
		{"4K journal", 4096, []string{"-t", "ext4", "-b", "4096"}},
		{"1K no journal", 1024, []string{"-t", "ext4", "-b", "1024", "-O", "^has_journal"}},
		{"4K no csum", 4096, []string{"-t", "ext4", "-b", "4096", "-O", "^metadata_csum,^64bit"}},
		{"1K 128-byte inodes", 1024, []string{"-t", "ext4", "-b", "1024", "-I", "128"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, img := mkfs(t, src, "64M", c.args...)
			f, err := MountRW(context.Background(), m, WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := workload(t, f, c.bs)
			must(t, f.Sync())
			save(t, m, img)
			fsck(t, img)
			for p, b := range want {
				if b == nil {
					if out, _ := exec.Command("debugfs", "-R", "stat /"+p, img).CombinedOutput(); !strings.Contains(string(out), "not found") {
						t.Errorf("%s still exists", p)
					}
					continue
				}
				if got := debugfsCat(t, img, "/"+p); !bytes.Equal(got, b) {
					t.Errorf("debugfs cat %s: %d bytes, want %d", p, len(got), len(b))
				}
			}
			// Linux-made content not touched by the workload.
			for p, b := range tr.files {
				if _, changed := want[p]; changed {
					continue
				}
				if got := debugfsCat(t, img, "/"+p); !bytes.Equal(got, b) {
					t.Errorf("untouched %s changed: %d bytes, want %d", p, len(got), len(b))
				}
			}
			if ls := debugfsLs(t, img, "/many-new"); len(ls) != 149 {
				t.Errorf("debugfs ls many-new: %d entries", len(ls))
			}
			if ls := strings.Join(debugfsLs(t, img, "/moved-d3"), ","); ls != "leaf.txt" {
				t.Errorf("debugfs ls moved-d3: %s", ls)
			}
			if out := run(t, "debugfs", "-R", "stat /sub/abs-link-moved", img); !strings.Contains(out, "Fast link dest: \"/link-targets/t2.txt\"") {
				t.Errorf("moved symlink:\n%s", out)
			}
			// Our own reader, remounted, agrees.
			g, err := Mount(context.Background(), load(t, img))
			if err != nil {
				t.Fatal(err)
			}
			for p, b := range want {
				got, err := fs.ReadFile(g, p)
				if b == nil {
					if !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("%s: %v", p, err)
					}
				} else if !bytes.Equal(got, b) {
					t.Errorf("reread %s: %d bytes %v", p, len(got), err)
				}
			}
		})
	}
}

// TestWriteRefused: volumes with features the writer does not handle are
// refused read-write with a *FeatureError and still mount read-only.
func TestWriteRefused(t *testing.T) {
	src := tree{files: map[string][]byte{"x": []byte("x")}}.write(t)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"ext2", []string{"-t", "ext2"}},
		{"ext3", []string{"-t", "ext3"}},
		{"inline_data", []string{"-t", "ext4", "-O", "inline_data"}},
		{"bigalloc", []string{"-t", "ext4", "-O", "bigalloc", "-C", "16384"}},
		{"quota", []string{"-t", "ext4", "-O", "quota"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, _ := mkfs(t, src, "16M", c.args...)
			_, err := MountRW(context.Background(), m, WriteOptions{})
			if _, rerr := Mount(context.Background(), m); rerr != nil {
				if err == nil {
					t.Fatalf("MountRW accepted a volume Mount refuses (%v)", rerr)
				}
				return // bigalloc: not even readable
			}
			var fe *FeatureError
			if !errors.As(err, &fe) || !errors.Is(err, ErrUnsupported) {
				t.Fatalf("MountRW: %v", err)
			}
			f, err := Mount(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Create("y"); !errors.Is(err, ErrReadOnly) {
				t.Errorf("Create on a read-only mount: %v", err)
			}
			if b, err := f.ReadFile("x"); err != nil || string(b) != "x" {
				t.Errorf("read: %q %v", b, err)
			}
		})
	}
	// A volume not marked clean needs e2fsck first.
	m, _ := mkfs(t, src, "16M", "-t", "ext4")
	m.Bytes()[superOffset+sbState] &^= stateValid
	sb := m.Bytes()[superOffset : superOffset+superSize]
	putLE32(sb[sbChecksum:], crc32c(^uint32(0), sb[:sbChecksum]))
	if _, err := MountRW(context.Background(), m, WriteOptions{}); !errors.Is(err, ErrNeedsCheck) {
		t.Errorf("unclean volume: %v", err)
	}
}

func putLE32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

// TestWriteSemantics checks the API's errors and read-after-write.
func TestWriteSemantics(t *testing.T) {
	src := tree{files: map[string][]byte{"x": []byte("x")}}.write(t)
	m, _ := mkfs(t, src, "16M", "-t", "ext4")
	now := time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)
	f, err := MountRW(context.Background(), m, WriteOptions{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	w, err := f.Create("f")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("hello"))
	// Visible to readers before Sync.
	if b, err := f.ReadFile("f"); string(b) != "hello" || err != nil {
		t.Errorf("read before sync: %q %v", b, err)
	}
	if fi, err := f.Stat("f"); err != nil || !fi.ModTime().Equal(now) || fi.Size() != 5 {
		t.Errorf("stat: %v %v", fi, err)
	}
	if err := f.Remove("f"); !errors.Is(err, ErrBusy) {
		t.Errorf("remove open file: %v", err)
	}
	w.Seek(0, io.SeekStart)
	buf := make([]byte, 5)
	if n, err := w.Read(buf); n != 5 || string(buf) != "hello" || err != nil {
		t.Errorf("read through write handle: %q %v", buf[:n], err)
	}
	w.Close()
	if _, err := w.Write([]byte("x")); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("write after close: %v", err)
	}
	if _, err := f.OpenFile("f", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); !errors.Is(err, fs.ErrExist) {
		t.Errorf("O_EXCL: %v", err)
	}
	if _, err := f.OpenFile("nope", os.O_WRONLY, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("open missing: %v", err)
	}
	if err := f.Mkdir("x"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("mkdir existing: %v", err)
	}
	if err := f.Mkdir("no/such"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("mkdir without parent: %v", err)
	}
	r, err := f.OpenFile("x", os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Write([]byte("y")); err == nil {
		t.Error("wrote through a read-only handle")
	}
	must(t, f.Sync())
	flushes := m.Flushes()
	must(t, f.Sync()) // nothing changed: one flush, no writes
	if m.Flushes() != flushes+1 {
		t.Errorf("idle Sync: %d flushes", m.Flushes()-flushes)
	}
	// Sync made the volume clean on disk.
	if st := m.Bytes()[superOffset+sbState]; st&stateValid == 0 {
		t.Errorf("state after Sync %#x", st)
	}
}

// TestWriteNoSpace fills a small volume: the write stops with
// ErrNoSpace, the volume stays consistent and the mount usable.
func TestWriteNoSpace(t *testing.T) {
	need(t, "e2fsck", "e2fsprogs")
	src := tree{files: map[string][]byte{"x": []byte("x")}}.write(t)
	m, img := mkfs(t, src, "4M", "-t", "ext4", "-b", "1024", "-O", "^has_journal")
	f, err := MountRW(context.Background(), m, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := f.Create("fill")
	if err != nil {
		t.Fatal(err)
	}
	n, err := w.Write(make([]byte, 8<<20))
	if !errors.Is(err, ErrNoSpace) || n == 0 {
		t.Fatalf("fill: %d %v", n, err)
	}
	w.Close()
	must(t, f.Remove("fill"))
	must(t, f.Sync()) // freed blocks are reusable after the Sync
	writeFile(t, f, "after", []byte("still works"))
	must(t, f.Sync())
	save(t, m, img)
	fsck(t, img)
	if got := debugfsCat(t, img, "/after"); string(got) != "still works" {
		t.Errorf("after: %q", got)
	}
}

// TestWriteAllocs: appending and overwriting whole blocks allocate
// nothing once the group's metadata is cached.
func TestWriteAllocs(t *testing.T) {
	_, f := writeBench(t)
	w, err := f.Create("a")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	w.Write(buf)
	if n := testing.AllocsPerRun(50, func() {
		if _, err := w.Write(buf); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("append: %v allocations", n)
	}
	if n := testing.AllocsPerRun(50, func() {
		if _, err := w.WriteAt(buf, 4096); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("overwrite: %v allocations", n)
	}
}

// TestWriteHtree changes a hashed directory (indexed by e2fsck -D): a
// removal keeps the index; adding an entry turns it linear first.
func TestWriteHtree(t *testing.T) {
	need(t, "e2fsck", "e2fsprogs")
	need(t, "debugfs", "e2fsprogs")
	tr := sampleTree(300)
	src := tr.write(t)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"csum", []string{"-t", "ext4", "-b", "1024"}},
		{"no csum", []string{"-t", "ext4", "-b", "1024", "-O", "^metadata_csum"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, img := mkfs(t, src, "32M", c.args...)
			exec.Command("e2fsck", "-fyD", img).Run()
			if !strings.Contains(run(t, "debugfs", "-R", "htree many", img), "Root node dump") {
				t.Fatal("e2fsck -D did not index 'many'")
			}
			m := load(t, img)
			f, err := MountRW(context.Background(), m, WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			must(t, f.Remove("many/file-with-a-longish-name-010"))
			must(t, f.Sync())
			save(t, m, img)
			fsck(t, img)
			if !strings.Contains(run(t, "debugfs", "-R", "htree many", img), "Root node dump") {
				t.Error("removal dropped the index")
			}
			if slices.Contains(debugfsLs(t, img, "/many"), "file-with-a-longish-name-010") {
				t.Errorf("removed entry still listed")
			}
			writeFile(t, f, "many/added", []byte("added"))
			must(t, f.Rename("many/file-with-a-longish-name-020", "many/renamed"))
			must(t, f.Sync())
			save(t, m, img)
			fsck(t, img)
			if out := run(t, "debugfs", "-R", "htree many", img); !strings.Contains(out, "Not a hash-indexed directory") {
				t.Errorf("adding kept the index:\n%.300s", out)
			}
			if got := debugfsCat(t, img, "/many/added"); string(got) != "added" {
				t.Errorf("added: %q", got)
			}
			if got := debugfsCat(t, img, "/many/renamed"); string(got) != "20" {
				t.Errorf("renamed: %q", got)
			}
			if n := len(debugfsLs(t, img, "/many")); n != 300 {
				t.Errorf("%d entries, want 300", n)
			}
			// Moving a hashed directory rewrites its "..".
			exec.Command("e2fsck", "-fyD", img).Run()
			if !strings.Contains(run(t, "debugfs", "-R", "htree many", img), "Root node dump") {
				t.Fatal("e2fsck -D did not index 'many' again")
			}
			m = load(t, img)
			if f, err = MountRW(context.Background(), m, WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			must(t, f.Mkdir("newparent"))
			must(t, f.Rename("many", "newparent/many"))
			must(t, f.Sync())
			save(t, m, img)
			fsck(t, img)
			if n := len(debugfsLs(t, img, "/newparent/many")); n != 300 {
				t.Errorf("moved: %d entries, want 300", n)
			}
			if got := debugfsCat(t, img, "/newparent/many/added"); string(got) != "added" {
				t.Errorf("moved added: %q", got)
			}
		})
	}
}

// TestWriteConcurrent reads while another goroutine writes (for -race).
func TestWriteConcurrent(t *testing.T) {
	_, f := writeBench(t)
	must(t, f.Mkdir("d"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			w, err := f.Create(fmt.Sprintf("d/f%d", i))
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := w.Write(pattern(5000, i)); err != nil {
				t.Error(err)
			}
			w.Close()
		}
	}()
	for {
		select {
		case <-done:
			for i := range 50 {
				if b, err := f.ReadFile(fmt.Sprintf("d/f%d", i)); err != nil || !bytes.Equal(b, pattern(5000, i)) {
					t.Errorf("f%d: %d bytes, %v", i, len(b), err)
				}
			}
			return
		default:
			if _, err := f.ReadDir("d"); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// FuzzWriteVolume mounts read-write a small mke2fs image whose blocks are
// overwritten by the fuzzer and changes it through every operation: the
// writer must return errors, never panic, on corrupt metadata.
func FuzzWriteVolume(f *testing.F) {
	need(f, "mke2fs", "e2fsprogs")
	dir := f.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "d"), 0o755)
	os.WriteFile(filepath.Join(src, "f"), bytes.Repeat([]byte("data"), 3000), 0o644)
	os.WriteFile(filepath.Join(src, "d/g"), []byte("g"), 0o644)
	img := filepath.Join(dir, "fuzz.img")
	if out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-b", "1024", "-N", "32", "-O", "^has_journal", "-d", src, img, "1M").CombinedOutput(); err != nil {
		f.Fatalf("mke2fs: %v\n%s", err, out)
	}
	base, err := os.ReadFile(img)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint16(0), []byte{})
	f.Add(uint16(2), base[2048:2048+64])
	f.Add(uint16(5), bytes.Repeat([]byte{0xFF}, 64))
	f.Fuzz(func(t *testing.T, blk uint16, data []byte) {
		b := bytes.Clone(base)
		at := int(blk) % (len(b) / 1024) * 1024
		copy(b[at:min(len(b), at+len(data))], data)
		m, _ := block.NewMemFrom("fuzz", 512, b)
		fsys, err := MountRW(context.Background(), m, WriteOptions{})
		if err != nil {
			if len(data) == 0 {
				t.Fatalf("the unchanged image: %v", err)
			}
			return
		}
		if w, err := fsys.Create("d/new"); err == nil {
			w.Write(bytes.Repeat([]byte("x"), 5000))
			w.Truncate(100)
			w.Close()
		}
		if w, err := fsys.OpenFile("f", os.O_RDWR|os.O_APPEND, 0); err == nil {
			w.Write([]byte("more"))
			w.Close()
		}
		fsys.Mkdir("e")
		fsys.Rename("d/g", "e/g")
		fsys.Rename("d", "e/d")
		fsys.Remove("f")
		fsys.Remove("e/d/new")
		fsys.Sync()
	})
}

// TestWriteJournalFallback: a transaction larger than the journal is
// synced without it (marked not clean while written), and the volume is
// still consistent; normally operations Sync by themselves before that.
func TestWriteJournalFallback(t *testing.T) {
	need(t, "e2fsck", "e2fsprogs")
	src := tree{files: map[string][]byte{"x": []byte("x")}}.write(t)
	m, img := mkfs(t, src, "64M", "-t", "ext4", "-b", "1024", "-J", "size=1")
	f, err := MountRW(context.Background(), m, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if j, why := f.Journaled(); !j {
		t.Fatalf("not journaled: %s", why)
	}
	for _, limit := range []int{f.w.maxDirty, 1 << 20} {
		f.w.maxDirty = limit
		seq := f.w.j.js.Sequence
		for i := range 1200 {
			must(t, f.Mkdir(fmt.Sprintf("d%d-%d", limit, i)))
		}
		must(t, f.Sync())
		if logged := f.w.j.js.Sequence != seq; logged != (limit < 1<<20) {
			t.Errorf("limit %d: journal sequence %d -> %d", limit, seq, f.w.j.js.Sequence)
		}
		save(t, m, img)
		fsck(t, img)
		if n := len(debugfsLs(t, img, "/")); n < 1200 {
			t.Errorf("limit %d: %d entries", limit, n)
		}
	}
}

// TestWriteManyExtents interleaves two files block by block on 1 KiB
// blocks, so each gets an extent per block: trees of several leaf
// blocks, shrunk again by truncation, and refused past four full leaves.
func TestWriteManyExtents(t *testing.T) {
	need(t, "e2fsck", "e2fsprogs")
	need(t, "debugfs", "e2fsprogs")
	src := tree{files: map[string][]byte{"x": []byte("x")}}.write(t)
	m, img := mkfs(t, src, "16M", "-t", "ext4", "-b", "1024", "-O", "^has_journal")
	f, err := MountRW(context.Background(), m, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.Create("a")
	must(t, err)
	b, err := f.Create("b")
	must(t, err)
	var da, db []byte
	limit := f.maxExtentsWritable() // 4 leaves of 84 extents
	for i := range 250 {
		ba, bb := bytes.Repeat([]byte{byte(i)}, 1024), bytes.Repeat([]byte{byte(i + 100)}, 1024)
		if _, err := a.Write(ba); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Write(bb); err != nil {
			t.Fatal(err)
		}
		da, db = append(da, ba...), append(db, bb...)
	}
	if len(a.leaves) != 3 || len(a.xs) < 240 {
		t.Fatalf("a: %d extents in %d leaves", len(a.xs), len(a.leaves))
	}
	must(t, f.Sync())
	save(t, m, img)
	fsck(t, img)
	if got := debugfsCat(t, img, "/a"); !bytes.Equal(got, da) {
		t.Errorf("a: %d bytes, want %d", len(got), len(da))
	}
	// Past four full leaves: refused, the volume stays consistent.
	var werr error
	for i := 0; len(b.xs) < limit && werr == nil; i++ {
		a.Write([]byte{1})
		a.Write(make([]byte, 1023))
		_, werr = b.Write(bytes.Repeat([]byte{7}, 1024))
	}
	_, werr = b.WriteAt([]byte{1}, 1<<30) // a new extent far away
	var fe *FeatureError
	if !errors.As(werr, &fe) {
		t.Fatalf("write past %d extents: %v", limit, werr)
	}
	must(t, b.Truncate(100*1024)) // back to one leaf
	db = db[:100*1024]
	if len(b.leaves) != 2 && len(b.leaves) != 1 {
		t.Errorf("b after truncate: %d leaves for %d extents", len(b.leaves), len(b.xs))
	}
	must(t, b.Truncate(3*1024)) // back into the inode
	db = db[:3*1024]
	if len(b.leaves) != 0 {
		t.Errorf("b after truncate: %d leaves for %d extents", len(b.leaves), len(b.xs))
	}
	a.Close()
	b.Close()
	must(t, f.Sync())
	save(t, m, img)
	fsck(t, img)
	if got := debugfsCat(t, img, "/b"); !bytes.Equal(got, db) {
		t.Errorf("b: %d bytes, want %d", len(got), len(db))
	}
	must(t, f.Remove("a"))
	must(t, f.Sync())
	save(t, m, img)
	fsck(t, img)
}
