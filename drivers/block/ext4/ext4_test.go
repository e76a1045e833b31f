package ext4

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gohv/gohv/drivers/block"
)

// need skips unless prog is installed, naming its Debian package.
func need(t testing.TB, prog, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(prog); err != nil {
		t.Skipf("%s not installed (apt-get install %s); skipping", prog, pkg)
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// tree is the source directory: every kind of object the reader handles.
type tree struct {
	files    map[string][]byte
	symlinks map[string]string
	dirs     []string
}

// sampleTree has many files in "many" (a directory of several blocks).
func sampleTree(many int) tree {
	big := make([]byte, 1<<20+123) // double indirect with 1 KiB blocks (past 12+256 blocks)
	for i := range big {
		big[i] = byte(i*31 + i>>10)
	}
	tr := tree{
		files: map[string][]byte{
			"hello.txt":           []byte("hello, ext4\n"),
			"empty":               nil,
			"big.bin":             big,
			"a/b/c/deep.txt":      []byte("deep"),
			"unicode-ÄÖÜ-✓.txt":   []byte("unicode"),
			"spaces in name.txt":  []byte("spaces"),
			"sub/one-block.bin":   bytes.Repeat([]byte{0x5A}, 4096),
			"sub/exec.sh":         []byte("#!/bin/sh\n"),
			"sub/inline-ish.txt":  []byte("tiny"),
			"sparse/fragmented":   nil, // filled below
			"link-targets/t.txt":  []byte("target"),
			"link-targets/t2.txt": []byte("t2"),
		},
		symlinks: map[string]string{
			"fast-link":   "hello.txt",
			"slow-link":   "link-targets/" + strings.Repeat("../link-targets/", 5) + "t.txt",
			"abs-link":    "/link-targets/t2.txt",
			"dir-link":    "a/b",
			"sub/up-link": "../hello.txt",
		},
		dirs: []string{"empty dir"},
	}
	// Data islands with holes between them: many extents (an extent
	// tree deeper than the inode's four slots) and holes that read as 0.
	// The file starts with a hole and ends with data: mke2fs 1.47 with
	// inline_data drops a trailing hole from i_size.
	frag := make([]byte, 64*8192)
	for i := 1; i < 64; i += 2 {
		copy(frag[i*8192:], bytes.Repeat([]byte{byte(i + 1)}, 8192))
	}
	tr.files["sparse/fragmented"] = frag
	for i := range many {
		tr.files[fmt.Sprintf("many/file-with-a-longish-name-%03d", i)] = []byte(fmt.Sprint(i))
	}
	return tr
}

func (tr tree) write(t *testing.T) string {
	dir := t.TempDir()
	for p, b := range tr.files {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if p == "sparse/fragmented" {
			// Write only the islands so the source file has holes.
			f, err := os.Create(full)
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i < 64; i += 2 {
				f.WriteAt(b[i*8192:(i+1)*8192], int64(i)*8192)
			}
			f.Truncate(int64(len(b)))
			f.Close()
			continue
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(dir, "sub/exec.sh"), 0o755)
	for p, target := range tr.symlinks {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.Symlink(target, filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range tr.dirs {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	return dir
}

// mkfs makes an image of src with mke2fs -d and returns it as a device.
func mkfs(t *testing.T, src string, size string, args ...string) (*block.Mem, string) {
	need(t, "mke2fs", "e2fsprogs")
	img := filepath.Join(t.TempDir(), "ext.img")
	a := append([]string{"-q", "-F", "-d", src}, args...)
	run(t, "mke2fs", append(a, img, size)...)
	return load(t, img), img
}

func load(t *testing.T, img string) *block.Mem {
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	m, err := block.NewMemFrom("ext", 512, b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// check compares the mounted filesystem against the source tree.
// full runs fstest.TestFS too (thorough but slow under -race).
func check(t *testing.T, f *FS, tr tree, full bool) {
	t.Helper()
	var names []string
	for p := range tr.files {
		names = append(names, p)
	}
	if full {
		if err := fstest.TestFS(f, names...); err != nil {
			t.Error(err)
		}
	}
	for p, want := range tr.files {
		got, err := fs.ReadFile(f, p)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes (%v), want %d", p, len(got), err, len(want))
		}
	}
	for p, target := range tr.symlinks {
		got, err := f.ReadLink(p)
		if err != nil || got != target {
			t.Errorf("readlink %s = %q, %v; want %q", p, got, err, target)
		}
		fi, err := f.Lstat(p)
		if err != nil || fi.Mode().Type() != fs.ModeSymlink {
			t.Errorf("lstat %s: %v %v", p, fi, err)
		}
	}
	for link, want := range map[string]string{"fast-link": "hello.txt", "slow-link": "link-targets/t.txt",
		"abs-link": "link-targets/t2.txt", "dir-link/c/deep.txt": "a/b/c/deep.txt", "sub/up-link": "hello.txt"} {
		got, err := fs.ReadFile(f, link)
		if err != nil || !bytes.Equal(got, tr.files[want]) {
			t.Errorf("through %s: %q %v", link, got, err)
		}
	}
	if fi, err := f.Stat("sub/exec.sh"); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("exec.sh mode %v %v", fi.Mode(), err)
	}
	if fi, err := f.Stat("empty dir"); err != nil || !fi.IsDir() {
		t.Errorf("empty dir: %v %v", fi, err)
	}
}

func TestMke2fs(t *testing.T) {
	tr := sampleTree(40)
	src := tr.write(t)
	for _, c := range []struct {
		name string
		size string
		args []string
		full bool
	}{
		{"ext4 4K", "32M", []string{"-t", "ext4", "-b", "4096"}, true},
		{"ext4 1K", "32M", []string{"-t", "ext4", "-b", "1024"}, false},
		{"ext4 2K no 64bit", "32M", []string{"-t", "ext4", "-b", "2048", "-O", "^64bit"}, false},
		{"ext4 64bit csum", "32M", []string{"-t", "ext4", "-O", "64bit,metadata_csum"}, false},
		{"ext3 block maps", "32M", []string{"-t", "ext3", "-b", "1024"}, true},
		{"ext2 block maps", "32M", []string{"-t", "ext2", "-b", "4096"}, false},
		{"ext4 inline_data", "32M", []string{"-t", "ext4", "-O", "inline_data"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, _ := mkfs(t, src, c.size, c.args...)
			f, err := Mount(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			check(t, f, tr, c.full)
		})
	}
}

// TestHtree indexes the directories with e2fsck -D and reads them again.
func TestHtree(t *testing.T) {
	need(t, "e2fsck", "e2fsprogs")
	need(t, "debugfs", "e2fsprogs")
	tr := sampleTree(300) // enough blocks for e2fsck -D to index the directory
	m, img := mkfs(t, tr.write(t), "32M", "-t", "ext4", "-b", "1024")
	_ = m
	out, _ := exec.Command("e2fsck", "-fyD", img).CombinedOutput()
	if !strings.Contains(run(t, "debugfs", "-R", "stat many", img), "Flags: 0x81000") &&
		!strings.Contains(run(t, "debugfs", "-R", "htree many", img), "Root node dump") {
		t.Fatalf("e2fsck -D did not index 'many':\n%s", out)
	}
	f, err := Mount(context.Background(), load(t, img))
	if err != nil {
		t.Fatal(err)
	}
	check(t, f, tr, false)
}

func TestCorruptSuperblock(t *testing.T) {
	tr := tree{files: map[string][]byte{"x": []byte("x")}}
	src := tr.write(t)
	os.Symlink("does/not/exist", filepath.Join(src, "dangling"))
	m, _ := mkfs(t, src, "8M", "-t", "ext4", "-O", "metadata_csum")
	f, err := Mount(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Open("dangling"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dangling link: %v", err)
	}
	if l, err := f.ReadLink("dangling"); l != "does/not/exist" || err != nil {
		t.Errorf("readlink dangling: %q %v", l, err)
	}
	sb := m.Bytes()[1024:2048]
	orig := bytes.Clone(sb)
	sb[0x78] ^= 1 // the label, covered by the checksum
	if _, err := Mount(context.Background(), m); !errors.Is(err, ErrCorrupt) {
		t.Errorf("checksum mismatch: %v", err)
	}
	copy(sb, orig)
	sb[0x60] |= 0x10 // meta_bg
	if _, err := Mount(context.Background(), m); !errors.Is(err, ErrUnsupported) {
		t.Errorf("meta_bg: %v", err)
	}
}

func FuzzSuperblock(f *testing.F) {
	need(f, "mke2fs", "e2fsprogs")
	for _, args := range [][]string{{"-t", "ext4", "-O", "metadata_csum"}, {"-t", "ext2", "-b", "4096"}} {
		img := filepath.Join(f.TempDir(), "sb.img")
		run(f, "mke2fs", append(append([]string{"-q", "-F"}, args...), img, "1M")...)
		b, err := os.ReadFile(img)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[1024:2048])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSuperblock(b)
		if err == nil && (s.BlockSize < 1024 || s.Groups == 0) {
			t.Fatalf("accepted %+v", s)
		}
	})
}

func FuzzParsers(f *testing.F) {
	f.Add(bytes.Repeat([]byte{0x0A, 0xF3, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0}, 6), uint32(12))
	f.Add([]byte{2, 0, 0, 0, 12, 0, 1, 2, '.', 0, 0, 0, 11, 0, 0, 0, 20, 0, 5, 1, 'h', 'e', 'l', 'l', 'o', 0, 0, 0}, uint32(28))
	f.Fuzz(func(t *testing.T, b []byte, ino uint32) {
		if n, err := parseExtentNode(b, 1000); err == nil {
			for _, x := range n.leaves {
				if x.physical+uint64(x.length) > 1000 {
					t.Fatalf("accepted extent %+v", x)
				}
			}
		}
		parseDirBlock(b, true, 100)
		parseDirBlock(b, false, 100)
		if in, err := parseInode(b, ino); err == nil {
			in.fileMode()
			inlineData(in)
		}
	})
}

// FuzzVolume mounts a small mke2fs image whose metadata blocks are
// overwritten by the fuzzer and reads everything in it.
func FuzzVolume(f *testing.F) {
	need(f, "mke2fs", "e2fsprogs")
	dir := f.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), bytes.Repeat([]byte("data"), 3000), 0o644)
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	os.Symlink("f", filepath.Join(dir, "d/l"))
	img := filepath.Join(dir, "..", "fuzz.img")
	if out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-b", "1024", "-N", "32", "-d", dir, img, "1M").CombinedOutput(); err != nil {
		f.Fatalf("mke2fs: %v\n%s", err, out)
	}
	base, err := os.ReadFile(img)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint16(1), []byte{})
	f.Add(uint16(2), base[2048:3072])
	f.Fuzz(func(t *testing.T, blk uint16, data []byte) {
		b := bytes.Clone(base)
		at := int(blk) % (len(b) / 1024) * 1024
		copy(b[at:min(len(b), at+len(data))], data)
		m, _ := block.NewMemFrom("fuzz", 512, b)
		fsys, err := Mount(context.Background(), m)
		if err != nil {
			return
		}
		fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err == nil {
				fs.ReadFile(fsys, p)
				fsys.ReadLink(p)
			}
			return nil
		})
	})
}
