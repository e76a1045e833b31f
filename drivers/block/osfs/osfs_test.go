package osfs

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/gohv/gohv/drivers/block"
	"github.com/gohv/gohv/drivers/block/ext4"
	"github.com/gohv/gohv/drivers/block/fat"
)

// tree is a stand-in for TamaGo's in-memory filesystem.
type tree struct {
	dirs []string
	devs map[string]func() (DevFile, error)
	mode map[string]uint32
}

func (t *tree) hooks(w WriteFunc) Hooks {
	t.devs, t.mode = map[string]func() (DevFile, error){}, map[string]uint32{}
	return Hooks{
		Mkdir: func(p string, perm uint32) error {
			if slices.Contains(t.dirs, p) {
				return syscall.EEXIST
			}
			if p != "/" && !slices.Contains(t.dirs, path.Dir(p)) {
				return syscall.ENOENT
			}
			t.dirs = append(t.dirs, p)
			return nil
		},
		MkDev: func(p string, mode uint32, open func() (DevFile, error)) error {
			if !slices.Contains(t.dirs, path.Dir(p)) {
				return syscall.ENOENT
			}
			t.devs[p], t.mode[p] = open, mode
			return nil
		},
		Write: w,
	}
}

// readAll reads a device the way os.ReadFile does: until a zero read.
func readAll(t *testing.T, d DevFile) string {
	var out []byte
	buf := make([]byte, 3)
	for off := int64(0); ; {
		n, err := d.Pread(buf, off)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return string(out)
		}
		out = append(out, buf[:n]...)
		off += int64(n)
	}
}

func TestMirrorReadOnly(t *testing.T) {
	src := fstest.MapFS{"a.txt": {Data: []byte("hello")}, "d/e/b.txt": {Data: []byte("deeper file")}, "link": {Mode: fs.ModeSymlink, Data: []byte("a.txt")}}
	tr := &tree{dirs: []string{"/"}}
	if err := Mirror(src, "/disk", tr.hooks(nil)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tr.dirs, []string{"/", "/disk", "/disk/d", "/disk/d/e"}) || len(tr.devs) != 2 {
		t.Fatalf("dirs %v devs %v", tr.dirs, tr.devs)
	}
	d, _ := tr.devs["/disk/d/e/b.txt"]()
	if got := readAll(t, d); got != "deeper file" || tr.mode["/disk/d/e/b.txt"] != 0o444 {
		t.Errorf("read %q mode %o", got, tr.mode["/disk/d/e/b.txt"])
	}
	if _, err := d.Pwrite([]byte("x"), 0); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("write to a read-only mirror: %v", err)
	}
}

func TestMirrorFATWrite(t *testing.T) {
	const size = 40 << 20
	m, _ := block.NewMem("fat", 512, size/512)
	ft := &fat.Tree{}
	ft.AddFile("notes.txt", []byte("first version"))
	if err := fat.Write(writerAt{m}, 0, size, ft, fat.Options{}); err != nil {
		t.Fatal(err)
	}
	v, err := fat.Mount(context.Background(), m, fat.MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeThroughMirror(t, v, FATWriter(v))
	if b, _ := fs.ReadFile(v, "notes.txt"); string(b) != "FIRST version, extended" {
		t.Errorf("on the volume: %q", b)
	}
}

// writeThroughMirror mirrors fsys, whose notes.txt holds "first version",
// with write, and overwrites and extends the file through its device node.
func writeThroughMirror(t *testing.T, fsys fs.FS, write WriteFunc) {
	t.Helper()
	tr := &tree{dirs: []string{"/"}}
	if err := Mirror(fsys, "/disk", tr.hooks(write)); err != nil {
		t.Fatal(err)
	}
	d, _ := tr.devs["/disk/notes.txt"]()
	if n, err := d.Pwrite([]byte("FIRST"), 0); n != 5 || err != nil {
		t.Fatal(n, err)
	}
	if n, err := d.Pwrite([]byte(", extended"), 13); n != 10 || err != nil {
		t.Fatal(n, err)
	}
	if got := readAll(t, d); got != "FIRST version, extended" {
		t.Errorf("read back %q", got)
	}
}

type writerAt struct{ m *block.Mem }

func (w writerAt) WriteAt(p []byte, off int64) (int, error) { return copy(w.m.Bytes()[off:], p), nil }

// TestMirrorExt4Write: a volume made by mke2fs, mounted read-write, written
// through the mirror's device node; after Sync, e2fsck finds it clean and
// the file holds what was written.
func TestMirrorExt4Write(t *testing.T) {
	mkfs, err := exec.LookPath("mke2fs")
	if err != nil {
		t.Skip("mke2fs not installed (apt-get install e2fsprogs)")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "notes.txt"), []byte("first version"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "vol.img")
	if out, err := exec.Command(mkfs, "-q", "-t", "ext4", "-d", src, img, "16M").CombinedOutput(); err != nil {
		t.Fatalf("mke2fs: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	m, err := block.NewMemFrom("ext4", 512, raw)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v, err := ext4.MountRW(ctx, m, ext4.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeThroughMirror(t, v, Ext4Writer(v))
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, m.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("e2fsck", "-fn", img).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck -fn: %v\n%s", err, out)
	}
	if out, err := exec.Command("debugfs", "-R", "cat /notes.txt", img).Output(); err != nil || string(out) != "FIRST version, extended" {
		t.Errorf("debugfs cat: %q, %v", out, err)
	}
}
