package ext4

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gohv/gohv/drivers/block"
)

// logDev passes I/O to a memory disk and logs every write, so that a test
// can rebuild the disk as a host crash after any write would leave it
// (the writes before that point persisted, none after).
type logDev struct {
	*block.Mem
	mu  sync.Mutex
	log []logged
}

type logged struct {
	off  int64
	data []byte // nil: a Flush
}

func (d *logDev) Flush(ctx context.Context) error {
	d.mu.Lock()
	d.log = append(d.log, logged{})
	d.mu.Unlock()
	return d.Mem.Flush(ctx)
}

func (d *logDev) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	d.mu.Lock()
	d.log = append(d.log, logged{off, bytes.Clone(p)})
	d.mu.Unlock()
	return d.Mem.WriteAt(ctx, p, off)
}

func (d *logDev) writes() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.log)
}

// image is base with the first n logged writes applied. With torn, of
// the writes after the last Flush only every other one persisted (a
// volatile write cache loses and reorders what was not flushed).
func (d *logDev) image(base []byte, n int, torn bool) []byte {
	b := bytes.Clone(base)
	lastFlush := 0
	for i, w := range d.log[:n] {
		if w.data == nil {
			lastFlush = i
		}
	}
	for i, w := range d.log[:n] {
		if torn && i > lastFlush && (i-lastFlush)%2 == 0 {
			continue
		}
		copy(b[w.off:], w.data)
	}
	return b
}

// TestCrash simulates a host crash after every write of a workload of
// three transactions (the last one never synced). Outside a Sync, the
// disk must pass e2fsck -fn as it is; inside one, e2fsck -fy must repair
// it to a state e2fsck -fn accepts. Either way what the previous Syncs
// made durable, and files never written, read back intact (debugfs).
func TestCrash(t *testing.T) {
	need(t, "e2fsck", "e2fsprogs")
	need(t, "debugfs", "e2fsprogs")
	for _, c := range []struct {
		name string
		args []string
	}{
		{"4K journal", []string{"-t", "ext4", "-b", "4096"}},
		{"1K no journal", []string{"-t", "ext4", "-b", "1024", "-O", "^has_journal"}},
	} {
		t.Run(c.name, func(t *testing.T) { crashRun(t, c.args) })
	}
}

func crashRun(t *testing.T, args []string) {
	tr := tree{files: map[string][]byte{
		"linux/untouched.bin": pattern(50000, 9),
		"linux/removed.txt":   []byte("removed in transaction 2"),
		"linux/grown.txt":     []byte("grown in transaction 2"),
	}}
	m, _ := mkfs(t, tr.write(t), "8M", args...)
	base := bytes.Clone(m.Bytes())
	dev := &logDev{Mem: m}
	f, err := MountRW(context.Background(), dev, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	type window struct{ start, end int }
	var syncs []window
	sync := func() {
		s := dev.writes()
		must(t, f.Sync())
		syncs = append(syncs, window{s, dev.writes()})
	}
	// Transaction 1.
	one := pattern(70000, 1)
	writeFile(t, f, "t1.bin", one)
	must(t, f.Mkdir("t1dir"))
	writeFile(t, f, "t1dir/small", []byte("small"))
	sync()
	// Transaction 2.
	two := pattern(30000, 2)
	writeFile(t, f, "t1dir/t2.bin", two)
	must(t, f.Remove("linux/removed.txt"))
	must(t, f.Rename("t1dir/small", "t2-small"))
	w, err := f.OpenFile("linux/grown.txt", os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	w.Write(pattern(5000, 3))
	w.Close()
	sync()
	// Transaction 3, never synced.
	writeFile(t, f, "t3.bin", pattern(40000, 4))
	must(t, f.Remove("t1.bin"))
	must(t, f.Mkdir("t3dir"))
	total := dev.writes()

	dir := t.TempDir()
	checked, repaired := 0, 0
	for n := 0; n <= total; n++ {
		inSync := false
		done := 0 // transactions durable at this point
		for i, s := range syncs {
			if n > s.start && n < s.end {
				inSync = true
			}
			if n >= s.end {
				done = i + 1
			}
		}
		for _, torn := range []bool{false, true} {
			if torn && !inSync {
				continue
			}
			checked++
			p := filepath.Join(dir, "crash.img")
			if err := os.WriteFile(p, dev.image(base, n, torn), 0o644); err != nil {
				t.Fatal(err)
			}
			repaired += crashCheck(t, p, n, total, inSync, done, tr, one, two)
		}
	}
	t.Logf("%d log entries, %d crash images checked, %d needed repair; syncs at %v", total, checked, repaired, syncs)
}

// crashCheck checks one crash image; it returns 1 when e2fsck repaired it.
func crashCheck(t *testing.T, p string, n, total int, inSync bool, done int, tr tree, one, two []byte) int {
	t.Helper()
	repaired := 0
	if !inSync {
		if out, err := exec.Command("e2fsck", "-fn", p).CombinedOutput(); err != nil {
			t.Fatalf("crash after write %d/%d (between syncs, %d done): e2fsck -fn: %v\n%s", n, total, done, err, out)
		}
	} else {
		out, err := exec.Command("e2fsck", "-fy", p).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() > 1) {
			t.Fatalf("crash after write %d (in sync %d): e2fsck -fy: %v\n%s", n, done+1, err, out)
		} else if err != nil {
			repaired = 1
		}
		if out, err := exec.Command("e2fsck", "-fn", p).CombinedOutput(); err != nil {
			t.Fatalf("crash after write %d (in sync %d): not repaired: %v\n%s", n, done+1, err, out)
		}
	}
	expect := map[string][]byte{"linux/untouched.bin": tr.files["linux/untouched.bin"]}
	if done >= 1 {
		expect["t1.bin"] = one
	}
	if done >= 2 {
		expect["t1dir/t2.bin"] = two
		expect["t2-small"] = []byte("small")
		expect["linux/grown.txt"] = append(bytes.Clone(tr.files["linux/grown.txt"]), pattern(5000, 3)...)
	}
	if !inSync && done == 0 {
		expect["linux/removed.txt"] = tr.files["linux/removed.txt"]
		expect["linux/grown.txt"] = tr.files["linux/grown.txt"]
	}
	if !inSync && done == 1 {
		expect["t1dir/small"] = []byte("small")
	}
	for name, want := range expect {
		if got := debugfsCat(t, p, "/"+name); !bytes.Equal(got, want) {
			t.Fatalf("crash after write %d/%d (in sync %v, %d done): %s is %d bytes, want %d", n, total, inSync, done, name, len(got), len(want))
		}
	}
	return repaired
}
