package ext4

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// model is what the volume must hold: file contents and directories.
type model struct {
	files map[string][]byte
	dirs  map[string]bool // "" is the root
}

func (m *model) pick(r *rand.Rand, dirs bool) string {
	var ks []string
	if dirs {
		for k := range m.dirs {
			ks = append(ks, k)
		}
	} else {
		for k := range m.files {
			ks = append(ks, k)
		}
	}
	if len(ks) == 0 {
		return ""
	}
	slices.Sort(ks)
	return ks[r.IntN(len(ks))]
}

func (m *model) empty(d string) bool {
	for k := range m.files {
		if path.Dir(k) == d || (d == "" && !strings.Contains(k, "/")) {
			return false
		}
	}
	for k := range m.dirs {
		if k != d && (path.Dir(k) == d || (d == "" && k != "" && !strings.Contains(k, "/"))) {
			return false
		}
	}
	return true
}

func join(d, n string) string {
	if d == "" {
		return n
	}
	return d + "/" + n
}

// TestWriteRandom applies random operations to a volume and to a model,
// then checks the volume with e2fsck -fn and compares a debugfs rdump of
// it with the model, file by file.
func TestWriteRandom(t *testing.T) {
	need(t, "e2fsck", "e2fsprogs")
	need(t, "debugfs", "e2fsprogs")
	for _, c := range []struct {
		name string
		bs   int
		args []string
	}{
		{"4K", 4096, []string{"-t", "ext4", "-b", "4096"}},
		{"1K", 1024, []string{"-t", "ext4", "-b", "1024", "-O", "^has_journal"}},
		{"2K no csum 128-byte inodes", 2048, []string{"-t", "ext4", "-b", "2048", "-I", "128", "-O", "^metadata_csum,^64bit"}},
	} {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("%s seed %d", c.name, seed), func(t *testing.T) {
				randomRun(t, c.bs, seed, c.args)
			})
		}
	}
}

func randomRun(t *testing.T, bs int, seed uint64, args []string) {
	r := rand.New(rand.NewPCG(seed, 42))
	src := tree{files: map[string][]byte{"linux.txt": []byte("made by mke2fs")}}.write(t)
	dev, img := mkfs(t, src, "64M", args...)
	f, err := MountRW(context.Background(), dev, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := newModel()
	randomOps(t, f, r, m, bs, 500, func() { must(t, f.Sync()) })
	must(t, f.Sync())
	save(t, dev, img)
	fsck(t, img)
	compareDump(t, img, m)
	t.Logf("%d files, %d directories", len(m.files), len(m.dirs)-1)
}

func newModel() *model {
	return &model{files: map[string][]byte{"linux.txt": []byte("made by mke2fs")}, dirs: map[string]bool{"": true, "lost+found": true}}
}

func (m *model) clone() *model {
	c := &model{files: map[string][]byte{}, dirs: map[string]bool{}}
	for k, v := range m.files {
		c.files[k] = v
	}
	for k, v := range m.dirs {
		c.dirs[k] = v
	}
	return c
}

// randomOps applies n random operations to f and m, calling sync now
// and then.
func randomOps(t *testing.T, f *FS, r *rand.Rand, m *model, bs, n int, sync func()) {
	names := 0
	newName := func() string { names++; return fmt.Sprintf("n%d", names) }
	for op := range n {
		switch k := r.IntN(12); {
		case k < 3: // create
			p := join(m.pick(r, true), newName())
			size := r.IntN(3 * bs)
			if r.IntN(8) == 0 {
				size = r.IntN(300 * bs)
			}
			data := pattern(size, op)
			writeFile(t, f, p, data)
			m.files[p] = data
		case k < 5: // write at an offset, maybe past the end
			p := m.pick(r, false)
			if p == "" {
				continue
			}
			old := m.files[p]
			off := r.IntN(len(old) + 2*bs)
			data := pattern(1+r.IntN(2*bs), op+7)
			w, err := f.OpenFile(p, os.O_RDWR, 0)
			must(t, err)
			if _, err := w.WriteAt(data, int64(off)); err != nil {
				t.Fatal(err)
			}
			w.Close()
			nb := make([]byte, max(len(old), off+len(data)))
			copy(nb, old)
			copy(nb[off:], data)
			m.files[p] = nb
		case k < 6: // truncate
			p := m.pick(r, false)
			if p == "" {
				continue
			}
			old := m.files[p]
			size := r.IntN(len(old) + 2*bs + 1)
			w, err := f.OpenFile(p, os.O_RDWR, 0)
			must(t, err)
			must(t, w.Truncate(int64(size)))
			w.Close()
			nb := make([]byte, size)
			copy(nb, old)
			m.files[p] = nb
		case k < 7: // mkdir
			p := join(m.pick(r, true), newName())
			must(t, f.Mkdir(p))
			m.dirs[p] = true
		case k < 8: // remove a file
			p := m.pick(r, false)
			if p == "" {
				continue
			}
			must(t, f.Remove(p))
			delete(m.files, p)
		case k < 9: // remove a directory (refused when not empty)
			p := m.pick(r, true)
			if p == "" || p == "lost+found" {
				continue
			}
			err := f.Remove(p)
			if m.empty(p) {
				must(t, err)
				delete(m.dirs, p)
			} else if err == nil {
				t.Fatalf("removed non-empty %s", p)
			}
		case k < 11: // rename a file, maybe over another
			p := m.pick(r, false)
			if p == "" {
				continue
			}
			q := join(m.pick(r, true), newName())
			if r.IntN(3) == 0 {
				q = m.pick(r, false)
			}
			must(t, f.Rename(p, q))
			if p != q {
				m.files[q] = m.files[p]
				delete(m.files, p)
			}
		default: // rename a directory, maybe into itself (refused)
			p := m.pick(r, true)
			if p == "" || p == "lost+found" {
				continue
			}
			to := m.pick(r, true)
			q := join(to, newName())
			err := f.Rename(p, q)
			if to == p || strings.HasPrefix(to, p+"/") {
				if !errors.Is(err, fs.ErrInvalid) {
					t.Fatalf("rename %s into %s: %v", p, q, err)
				}
				continue
			}
			must(t, err)
			for k, v := range m.files {
				if strings.HasPrefix(k, p+"/") {
					delete(m.files, k)
					m.files[q+k[len(p):]] = v
				}
			}
			for k := range m.dirs {
				if k == p || strings.HasPrefix(k, p+"/") {
					delete(m.dirs, k)
					m.dirs[q+k[len(p):]] = true
				}
			}
		}
		if r.IntN(40) == 0 {
			sync()
		}
	}
}

// compareDump compares a debugfs rdump of img with m.
func compareDump(t *testing.T, img string, m *model) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "dump")
	os.Mkdir(out, 0o755)
	if b, err := exec.Command("debugfs", "-R", "rdump / "+out, img).CombinedOutput(); err != nil {
		t.Fatalf("debugfs rdump: %v\n%s", err, b)
	}
	seen := map[string]bool{}
	filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == out {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		seen[rel] = true
		if d.IsDir() {
			if !m.dirs[rel] {
				t.Errorf("unexpected directory %s", rel)
			}
			return nil
		}
		want, ok := m.files[rel]
		if !ok {
			t.Errorf("unexpected file %s", rel)
			return nil
		}
		got, _ := os.ReadFile(p)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, want %d", rel, len(got), len(want))
		}
		return nil
	})
	for p := range m.files {
		if !seen[p] {
			t.Errorf("missing file %s", p)
		}
	}
	for p := range m.dirs {
		if p != "" && !seen[p] {
			t.Errorf("missing directory %s", p)
		}
	}
}

// TestCrashRandom runs random operations with Syncs on a logged device
// and crashes after sampled writes: every crash image must be clean
// (between Syncs) or repaired by e2fsck -fy (inside one), and at the end
// of each Sync the volume must hold exactly the model as of that Sync.
func TestCrashRandom(t *testing.T) {
	need(t, "e2fsck", "e2fsprogs")
	need(t, "debugfs", "e2fsprogs")
	for _, c := range []struct {
		name   string
		bs     int
		args   []string
		csumV3 bool
	}{
		{"1K journal csum v3", 1024, []string{"-t", "ext4", "-b", "1024"}, true},
		{"4K no journal", 4096, []string{"-t", "ext4", "-b", "4096", "-O", "^has_journal"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, 42))
			src := tree{files: map[string][]byte{"linux.txt": []byte("made by mke2fs")}}.write(t)
			mem, img := mkfs(t, src, "32M", c.args...)
			if c.csumV3 {
				journalCsumV3(t, img)
				mem = load(t, img)
			}
			base := bytes.Clone(mem.Bytes())
			dev := &logDev{Mem: mem}
			f, err := MountRW(context.Background(), dev, WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			m := newModel()
			type point struct{ start, end int }
			var syncs []point
			var snaps []*model
			sync := func() {
				s := dev.writes()
				must(t, f.Sync())
				syncs = append(syncs, point{s, dev.writes()})
				snaps = append(snaps, m.clone())
			}
			randomOps(t, f, r, m, c.bs, 250, sync)
			sync()
			total := dev.writes()
			p := filepath.Join(t.TempDir(), "crash.img")
			checked := 0
			for n := 1; n <= total; n++ {
				inSync, atEnd := false, -1
				for i, s := range syncs {
					inSync = inSync || (n > s.start && n < s.end)
					if n == s.end {
						atEnd = i
					}
				}
				if atEnd < 0 && n%7 != 0 {
					continue // sample the rest
				}
				checked++
				if err := os.WriteFile(p, dev.image(base, n, false), 0o644); err != nil {
					t.Fatal(err)
				}
				what := fmt.Sprintf("crash after write %d/%d (in sync %v)", n, total, inSync)
				if inSync {
					out, err := exec.Command("e2fsck", "-fy", p).CombinedOutput()
					if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() > 1) {
						t.Fatalf("%s: e2fsck -fy: %v\n%s", what, err, out)
					}
				}
				if out, err := exec.Command("e2fsck", "-fn", p).CombinedOutput(); err != nil {
					t.Fatalf("%s: e2fsck -fn: %v\n%s", what, err, out)
				}
				if atEnd >= 0 {
					compareDump(t, p, snaps[atEnd])
					if t.Failed() {
						t.Fatalf("%s: not the state of Sync %d", what, atEnd+1)
					}
				}
			}
			t.Logf("%d writes, %d Syncs, %d crash images checked", total, len(syncs), checked)
		})
	}
}
