package ext4

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
		name    string
		args    []string
		csumV3  bool // journal checksums (set as Linux does at mount, here with debugfs)
		journal bool
	}{
		{"4K journal", []string{"-t", "ext4", "-b", "4096"}, false, true},
		{"1K journal csum v3", []string{"-t", "ext4", "-b", "1024"}, true, true},
		{"1K no journal", []string{"-t", "ext4", "-b", "1024", "-O", "^has_journal"}, false, false},
		{"4K no csum journal", []string{"-t", "ext4", "-b", "4096", "-O", "^metadata_csum"}, false, true},
	} {
		t.Run(c.name, func(t *testing.T) { crashRun(t, c.args, c.csumV3, c.journal) })
	}
}

// journalCsumV3 turns on jbd2 checksum v3 (and 64-bit tags) in img's
// journal with debugfs, as the Linux kernel does when it mounts a
// metadata_csum volume.
func journalCsumV3(t *testing.T, img string) {
	cmd := filepath.Join(t.TempDir(), "cmds")
	os.WriteFile(cmd, []byte("jo -c\njc\n"), 0o644)
	run(t, "debugfs", "-w", "-f", cmd, img)
	if out := run(t, "debugfs", "-R", "logdump -S", img); !strings.Contains(out, "journal_checksum_v3") {
		t.Fatalf("debugfs did not set csum v3:\n%s", out)
	}
}

func crashRun(t *testing.T, args []string, csumV3, journaled bool) {
	tr := tree{files: map[string][]byte{
		"linux/untouched.bin": pattern(50000, 9),
		"linux/removed.txt":   []byte("removed in transaction 2"),
		"linux/grown.txt":     []byte("grown in transaction 2"),
	}}
	m, img := mkfs(t, tr.write(t), "8M", args...)
	if csumV3 {
		journalCsumV3(t, img)
		m = load(t, img)
	}
	base := bytes.Clone(m.Bytes())
	dev := &logDev{Mem: m}
	f, err := MountRW(context.Background(), dev, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if j, why := f.Journaled(); j != journaled {
		t.Fatalf("journaled %v (%s), want %v", j, why, journaled)
	}
	// commit is, per Sync, the index of the journal commit block write
	// (-1 without the journal).
	type window struct{ start, end, commit int }
	var syncs []window
	sync := func() {
		s := dev.writes()
		must(t, f.Sync())
		w := window{s, dev.writes(), -1}
		if journaled {
			flushes := 0
			for i := s; i < w.end; i++ {
				if dev.log[i].data == nil {
					if flushes++; flushes == 2 {
						w.commit = i - 1
					}
				}
			}
		}
		syncs = append(syncs, w)
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
	grown := append(bytes.Clone(tr.files["linux/grown.txt"]), pattern(5000, 3)...)

	// state is what the volume holds after k transactions (nil: absent).
	state := func(k int) map[string][]byte {
		st := map[string][]byte{"linux/untouched.bin": tr.files["linux/untouched.bin"]}
		switch k {
		case 0:
			st["linux/removed.txt"] = tr.files["linux/removed.txt"]
			st["linux/grown.txt"] = tr.files["linux/grown.txt"]
			st["t1.bin"], st["t1dir/small"], st["t2-small"] = nil, nil, nil
		case 1:
			st["linux/removed.txt"] = tr.files["linux/removed.txt"]
			st["linux/grown.txt"] = tr.files["linux/grown.txt"]
			st["t1.bin"], st["t1dir/small"] = one, []byte("small")
			st["t2-small"], st["t1dir/t2.bin"] = nil, nil
		default:
			st["linux/removed.txt"] = nil
			st["linux/grown.txt"] = grown
			st["t1.bin"], st["t1dir/t2.bin"], st["t2-small"] = one, two, []byte("small")
			st["t1dir/small"], st["t3.bin"] = nil, nil
		}
		return st
	}

	dir := t.TempDir()
	checked, repaired := 0, 0
	for n := 0; n <= total; n++ {
		for _, torn := range []bool{false, true} {
			inSync := false
			done := 0 // transactions completely synced at this point
			applied := -1
			for i, s := range syncs {
				if n > s.start && n < s.end {
					inSync = true
					if s.commit >= 0 {
						// Journaled: the transaction is there after
						// recovery exactly when its commit block is.
						applied = i
						if dev.persisted(n, torn, s.commit) {
							applied = i + 1
						}
					}
				}
				if n >= s.end {
					done = i + 1
				}
			}
			if torn && !inSync {
				continue
			}
			if !inSync {
				applied = done
			}
			checked++
			p := filepath.Join(dir, "crash.img")
			if err := os.WriteFile(p, dev.image(base, n, torn), 0o644); err != nil {
				t.Fatal(err)
			}
			var want map[string][]byte
			if applied >= 0 {
				want = state(applied)
			} else {
				// Not journaled, crashed in the Sync of transaction
				// done+1: only what was synced before and untouched by
				// it is certain.
				want = map[string][]byte{"linux/untouched.bin": tr.files["linux/untouched.bin"]}
				if done >= 1 {
					want["t1.bin"] = one
				}
			}
			repaired += crashCheck(t, p, fmt.Sprintf("crash after write %d/%d (torn %v, in sync %v, %d synced)", n, total, torn, inSync, done),
				inSync, want)
		}
	}
	t.Logf("%d log entries, %d crash images checked, %d needed repair; syncs at %v", total, checked, repaired, syncs)
}

// persisted reports whether log entry i is in image(n, torn).
func (d *logDev) persisted(n int, torn bool, i int) bool {
	if i >= n {
		return false
	}
	lastFlush := 0
	for k, w := range d.log[:n] {
		if w.data == nil {
			lastFlush = k
		}
	}
	return !(torn && i > lastFlush && (i-lastFlush)%2 == 0)
}

// crashCheck checks one crash image against want (nil: absent); it
// returns 1 when e2fsck repaired it. Outside a Sync the image must be
// clean as it is; inside one, e2fsck -fy (which replays a journal) must
// leave it clean.
func crashCheck(t *testing.T, p, what string, inSync bool, want map[string][]byte) int {
	t.Helper()
	repaired := 0
	if !inSync {
		if out, err := exec.Command("e2fsck", "-fn", p).CombinedOutput(); err != nil {
			t.Fatalf("%s: e2fsck -fn: %v\n%s", what, err, out)
		}
	} else {
		out, err := exec.Command("e2fsck", "-fy", p).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() > 1) {
			t.Fatalf("%s: e2fsck -fy: %v\n%s", what, err, out)
		} else if err != nil || strings.Contains(string(out), "recovering journal") {
			repaired = 1
		}
		if out, err := exec.Command("e2fsck", "-fn", p).CombinedOutput(); err != nil {
			t.Fatalf("%s: not repaired: %v\n%s", what, err, out)
		}
	}
	for name, b := range want {
		if b == nil {
			if out, _ := exec.Command("debugfs", "-R", "stat /"+name, p).CombinedOutput(); !strings.Contains(string(out), "not found") {
				t.Fatalf("%s: %s exists", what, name)
			}
			continue
		}
		if got := debugfsCat(t, p, "/"+name); !bytes.Equal(got, b) {
			t.Fatalf("%s: %s is %d bytes, want %d", what, name, len(got), len(b))
		}
	}
	return repaired
}
