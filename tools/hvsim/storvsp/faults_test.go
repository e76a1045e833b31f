package storvsp

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/image"
	"github.com/gohv/gohv/tools/image/vhdx"
)

func TestFailNext(t *testing.T) {
	st := NewMemStore(1 << 20)
	r := newRig(t, Config{}, hvsim.Config{}, map[Addr]LUNConfig{{}: {Store: st}})
	r.c.negotiate(0x0602, 64)
	isWrite := func(cdb []byte) bool { return cdb[0] == 0x2A }
	r.d.FailNext(1, Failure{SRBStatus: SRBError, SCSIStatus: SCSICheckCondition,
		Sense: []byte{0x70, 0, 0x03, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x0C, 0x02, 0, 0, 0, 0}, Match: isWrite})
	// A read passes the write-only failure.
	if d := r.c.io(srbReq{cdb: cdb10(0x28, 0, 1), dataIn: 1, length: 512}, r.buf, 0); d.srbStatus != 1 {
		t.Fatalf("read: % x", d.raw)
	}
	copy(r.buf.Mem, "must not land")
	d := r.c.io(srbReq{cdb: cdb10(0x2A, 0, 1), dataIn: 0, length: 512}, r.buf, 0)
	want := make([]byte, 64)
	want[0] = 1
	want[8], want[9], want[10], want[11] = 0x85, 0x01, 0x00, 0xC0 // IO_DEVICE_ERROR
	want[12] = 0x34
	want[14], want[15] = 0x84, 0x02
	want[20], want[21], want[22] = 10, 18, 0
	want[28], want[30], want[35], want[40], want[41] = 0x70, 0x03, 10, 0x0C, 0x02
	want[52] = 0x80
	wantBytes(t, "injected check condition", d.raw, want)
	if st.Bytes()[0] != 0 {
		t.Fatal("failed write reached the store")
	}
	// Busy and task set full, once each, then normal service.
	r.d.FailNext(1, Busy())
	r.d.FailNext(1, TaskSetFull())
	cc := CheckCondition(0x06, 0x2A, 0x09)
	r.d.FailNext(1, cc)
	for _, w := range []struct {
		srb, scsi byte
		status    uint32
	}{{0x05, 0x08, 0x80000011}, {0x05, 0x28, 0x80000011}, {0x84, 0x02, 0xC0000185}, {0x01, 0, 0}} {
		d := r.c.io(srbReq{cdb: []byte{0, 0, 0, 0, 0, 0}, dataIn: 2}, r.buf, 0)
		if d.srbStatus != w.srb || d.scsi != w.scsi || d.status != w.status {
			t.Fatalf("got srb %#x scsi %#x status %#x, want %+v", d.srbStatus, d.scsi, d.status, w)
		}
		if w.srb == 0x84 && (d.sense[2] != 6 || d.sense[12] != 0x2A || d.sense[13] != 9) {
			t.Fatalf("capacity-changed sense % x", d.sense)
		}
	}
	noViolations(t, r.g.h)
}

func TestLostDelayedReorderedShort(t *testing.T) {
	st := NewMemStore(1 << 20)
	r := newRig(t, Config{}, hvsim.Config{}, map[Addr]LUNConfig{{}: {Store: st}})
	r.c.negotiate(0x0602, 64)
	send := func(tx uint64, s srbReq) {
		t.Helper()
		if s.length > 0 {
			r.c.send(9, 1, tx, gpaHeader(r.buf, 0, int(s.length)), s.bytes())
		} else {
			r.c.send(6, 1, tx, nil, s.bytes())
		}
	}
	tur := srbReq{cdb: []byte{0, 0, 0, 0, 0, 0}, dataIn: 2}

	// Lost: the write runs, its completion never comes.
	r.d.LoseCompletions(1)
	copy(r.buf.Mem, "lost but written")
	send(1, srbReq{cdb: cdb10(0x2A, 4, 1), dataIn: 0, length: 512})
	send(2, tur)
	r.c.completion(2)
	if string(st.Bytes()[4*512:4*512+16]) != "lost but written" {
		t.Fatal("write with a lost completion did not run")
	}
	if s := r.d.Stats(); s.Lost != 1 {
		t.Fatalf("stats %+v", s)
	}

	// Delayed: the first completion comes after the second.
	r.d.DelayCompletions(1, 500*time.Millisecond) // long enough that the next request overtakes it even on a loaded machine
	send(3, tur)
	send(4, tur)
	r.c.completion(4)
	r.c.completion(3)

	// Reordered in pairs.
	r.d.ReorderCompletions(true)
	send(5, tur)
	send(6, tur)
	r.c.completion(6)
	r.c.completion(5)
	send(7, tur)
	r.d.ReorderCompletions(false) // releases the held one
	r.c.completion(7)

	// Short transfer: half reported, DATA OVERRUN.
	r.d.ShortTransfers(1, 0)
	d := r.c.io(srbReq{cdb: cdb10(0x28, 0, 8), dataIn: 1, length: 4096}, r.buf, 0)
	if d.srbStatus != 0x12 || d.transferred != 2048 || d.status != 0x80000005 {
		t.Fatalf("short transfer: % x", d.raw)
	}
	if d := r.c.io(srbReq{cdb: cdb10(0x28, 0, 8), dataIn: 1, length: 4096}, r.buf, 0); d.transferred != 4096 {
		t.Fatalf("fault outlived its count: % x", d.raw)
	}
	if !r.c.empty() {
		t.Fatal("extra packets")
	}
	noViolations(t, r.g.h)
}

// TestRescindDuringIO: the next SRB is not completed; the guest gets
// RESCIND_CHANNELOFFER for the channel (§3.2 type 2).
func TestRescindDuringIO(t *testing.T) {
	r := newRig(t, Config{}, hvsim.Config{}, map[Addr]LUNConfig{{}: memLUN(1 << 20)})
	r.c.negotiate(0x0602, 64)
	r.d.RescindAfter(1)
	tur := srbReq{cdb: []byte{0, 0, 0, 0, 0, 0}, dataIn: 2}
	if d := r.c.io(tur, r.buf, 0); d.srbStatus != 1 {
		t.Fatal(d.raw)
	}
	r.c.send(6, 1, 77, nil, tur.bytes())
	m := r.g.next()
	if g32(m, 0) != 2 || g32(m, 8) != r.c.relid {
		t.Fatalf("want RESCIND_CHANNELOFFER of relid %d, got % x", r.c.relid, m)
	}
	if !r.c.empty() {
		t.Fatalf("the SRB in flight was completed: % x", r.c.tryRecv())
	}
}

// TestCrashDurability: with a write cache, only flushed or FUA writes
// survive a crash in the file; nothing is completed after the crash.
func TestCrashDurability(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(path, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	fs, err := OpenRaw(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	r := newRig(t, Config{}, hvsim.Config{}, map[Addr]LUNConfig{{}: {Store: fs, WriteCache: true}})
	r.c.negotiate(0x0602, 64)
	write := func(lba uint32, s string, fua bool) {
		t.Helper()
		clear(r.buf.Mem[:512])
		copy(r.buf.Mem, s)
		cdb := cdb10(0x2A, lba, 1)
		if fua {
			cdb[1] = 0x08
		}
		if d := r.c.io(srbReq{cdb: cdb, dataIn: 0, length: 512}, r.buf, 0); d.srbStatus != 1 {
			t.Fatalf("write: % x", d.raw)
		}
	}
	write(0, "flushed", false)
	if d := r.c.io(srbReq{cdb: cdb10(0x35, 0, 0), dataIn: 2}, r.buf, 0); d.srbStatus != 1 {
		t.Fatal(d.raw)
	}
	write(1, "fua", true)
	write(2, "cached only", false)
	write(0, "overwrite, cached", false)
	// The guest reads its own cached writes.
	clear(r.buf.Mem[:512])
	if d := r.c.io(srbReq{cdb: cdb10(0x28, 2, 1), dataIn: 1, length: 512}, r.buf, 0); d.srbStatus != 1 || string(r.buf.Mem[:11]) != "cached only" {
		t.Fatalf("read of a cached write: %q", r.buf.Mem[:11])
	}
	if s, _ := r.d.LUNStats(Addr{}); s.DirtyBlocks != 1 { // sectors 0 and 2 share a 4 KiB block
		t.Fatalf("dirty blocks %d", s.DirtyBlocks)
	}
	if lost := r.d.Crash(); lost != 1 {
		t.Fatalf("crash lost %d blocks", lost)
	}
	// Nothing is answered any more.
	r.c.send(6, 1, 999, nil, srbReq{cdb: []byte{0, 0, 0, 0, 0, 0}, dataIn: 2}.bytes())
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("flushed\x00")) || !bytes.HasPrefix(b[512:], []byte("fua\x00")) || !allZero(b[1024:1536]) {
		t.Fatalf("file after crash: %q %q %q", b[:20], b[512:520], b[1024:1040])
	}
	if !r.c.empty() {
		t.Fatal("a crashed host answered")
	}
}

// TestWriteCacheModel checks the cache against a plain store: partial
// blocks are read-modified-written, flush empties the cache.
func TestWriteCacheModel(t *testing.T) {
	st := NewMemStore(10000) // not a multiple of 4096: the last block is short
	for i := range st.Bytes() {
		st.Bytes()[i] = 0xAA
	}
	u, err := newLUN(LUNConfig{Store: st, WriteCache: true})
	if err != nil {
		t.Fatal(err)
	}
	if u.size != 9728 {
		t.Fatalf("size %d", u.size)
	}
	if err := u.writeAt(bytes.Repeat([]byte{1}, 1024), 4096-512, false); err != nil {
		t.Fatal(err)
	}
	if err := u.writeAt(bytes.Repeat([]byte{2}, 512), 9728-512, false); err != nil {
		t.Fatal(err)
	}
	if st.Bytes()[4096] != 0xAA || u.dirtyBlocks() != 3 {
		t.Fatalf("write-through happened or %d dirty", u.dirtyBlocks())
	}
	got := make([]byte, 9728)
	if err := u.readAt(got, 0); err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte{0xAA}, 9728)
	copy(want[4096-512:], bytes.Repeat([]byte{1}, 1024))
	copy(want[9728-512:], bytes.Repeat([]byte{2}, 512))
	wantBytes(t, "cached view", got, want)
	if err := u.flush(); err != nil {
		t.Fatal(err)
	}
	wantBytes(t, "store after flush", st.Bytes()[:9728], want)
	if st.Bytes()[9999] != 0xAA || u.dirtyBlocks() != 0 {
		t.Fatal("flush wrote past the disk or left dirty blocks")
	}
}

// TestVHDXBacking: fixed and dynamic VHDX files written by
// tools/image/vhdx serve reads and writes in place; a write to an absent
// block of the dynamic one allocates it.
func TestVHDXBacking(t *testing.T) {
	dir := t.TempDir()
	src, _ := image.NewMemDisk(4 << 20)
	src.WriteAt([]byte("vhdx sector 3"), 3*512)
	fixed, dyn := filepath.Join(dir, "f.vhdx"), filepath.Join(dir, "d.vhdx")
	if err := vhdx.Write(fixed, src, vhdx.Options{Fixed: true}); err != nil {
		t.Fatal(err)
	}
	if err := vhdx.Write(dyn, src, vhdx.Options{}); err != nil {
		t.Fatal(err)
	}
	fs, err := OpenVHDX(fixed, false)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	ds, err := OpenVHDX(dyn, false)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	r := newRig(t, Config{}, hvsim.Config{}, map[Addr]LUNConfig{{0, 0, 0}: {Store: fs}, {0, 0, 1}: {Store: ds}})
	r.c.negotiate(0x0602, 64)
	for lun := byte(0); lun < 2; lun++ {
		if d := r.c.io(srbReq{lun: lun, cdb: cdb10(0x28, 3, 1), dataIn: 1, length: 512}, r.buf, 0); d.srbStatus != 1 || string(r.buf.Mem[:13]) != "vhdx sector 3" {
			t.Fatalf("LUN %d read: %q", lun, r.buf.Mem[:13])
		}
	}
	copy(r.buf.Mem, "written in place")
	if d := r.c.io(srbReq{cdb: cdb10(0x2A, 5000, 1), dataIn: 0, length: 512}, r.buf, 0); d.srbStatus != 1 {
		t.Fatalf("fixed write: % x", d.raw)
	}
	if d := r.c.io(srbReq{lun: 1, cdb: cdb10(0x2A, 5000, 1), dataIn: 0, length: 512}, r.buf, 0); d.srbStatus != 1 {
		t.Fatalf("dynamic write to an absent block: % x", d.raw)
	}
	// Reopen both files: the writes are there.
	for _, path := range []string{fixed, dyn} {
		f, _ := os.Open(path)
		defer f.Close()
		info, _ := f.Stat()
		v, err := vhdx.Open(f, info.Size())
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 16)
		if _, err := v.ReadAt(got, 5000*512); err != nil || string(got) != "written in place" {
			t.Fatalf("%s reopened: %q %v", path, got, err)
		}
		if _, err := v.ReadAt(got, 3*512); err != nil || string(got[:13]) != "vhdx sector 3" {
			t.Fatalf("%s reopened, old data: %q %v", path, got, err)
		}
	}
}
