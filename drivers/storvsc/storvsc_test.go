package storvsc

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gohv/gohv/vmbus/chanmsg"
)

type rig struct {
	t      *testing.T
	mem    *fakeMem
	host   *fakeHost
	ch     *fakeChan
	c      *Controller
	mu     sync.Mutex
	events []Event
	evCh   chan Event
}

func newRig(t *testing.T, class chanmsg.GUID, setup func(h *fakeHost), cfg Config) *rig {
	t.Helper()
	r := &rig{t: t, mem: newFakeMem(), evCh: make(chan Event, 64)}
	r.host = newFakeHost(r.mem)
	r.ch = r.host.newPrimary(class)
	if setup != nil {
		setup(r.host)
	}
	switch cfg.Memory.(type) {
	case nil:
		cfg.Memory = r.mem
	case transMem: // translate the rig's own memory
		cfg.Memory = transMem{r.mem}
	}
	cfg.OnEvent = func(e Event) {
		r.mu.Lock()
		r.events = append(r.events, e)
		r.mu.Unlock()
		r.evCh <- e
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Attach(ctx, r.ch, cfg)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	r.c = c
	t.Cleanup(func() { c.Close(context.Background()) })
	return r
}

// event waits for the next disk event.
func (r *rig) event() Event {
	r.t.Helper()
	select {
	case e := <-r.evCh:
		return e
	case <-time.After(10 * time.Second):
		r.t.Fatal("no event")
	}
	return Event{}
}

func (r *rig) disk(lun uint8) *Disk {
	r.t.Helper()
	for _, d := range r.c.Disks() {
		if _, _, l := d.Address(); l == lun {
			return d
		}
	}
	r.t.Fatalf("no disk at LUN %d", lun)
	return nil
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func twoDisks(h *fakeHost) {
	h.addDisk(0, 0, 0, 2048, 512)
	d := h.addDisk(0, 0, 3, 1024, 4096)
	d.readOnly, d.wce = true, false
}

func TestAttachScan(t *testing.T) {
	r := newRig(t, SCSIClass, func(h *fakeHost) {
		twoDisks(h)
		delete(h.versions, 0x0602) // like OpenVMM: 6.2 rejected
		h.maxTransfer = 0x20000
	}, Config{})
	if r.c.Version() != VersionWin81 {
		t.Fatalf("version %v", r.c.Version())
	}
	if r.c.MaxTransfer() != 0x20000 || r.c.Queues() != 1 || r.c.IDE() {
		t.Fatalf("max transfer %d queues %d", r.c.MaxTransfer(), r.c.Queues())
	}
	// Init sequence (§6.4): BEGIN, QUERY_VERSION 6.2 (rejected), 6.0,
	// QUERY_PROPERTIES, END.
	if !slices.Equal(r.host.ops, []uint32{7, 9, 9, 10, 8}) {
		t.Fatalf("control ops %v", r.host.ops)
	}
	if r.host.ringSizes[0] != DefaultRingSize {
		t.Fatalf("ring size %d", r.host.ringSizes[0])
	}
	var added []Event
	for range 2 {
		added = append(added, r.event())
	}
	if added[0].Kind != DiskAdded || added[1].Kind != DiskAdded {
		t.Fatalf("events %v", added)
	}
	d0, d3 := r.disk(0), r.disk(3)
	i0, i3 := d0.Info(), d3.Info()
	if i0.SectorSize != 512 || i0.Sectors != 2048 || i0.ReadOnly || !i0.WriteCache || i0.CanDiscard || i0.MaxTransfer != 0x20000 || i0.Queues != 1 {
		t.Fatalf("disk 0 info %+v", i0)
	}
	if i3.SectorSize != 4096 || i3.Sectors != 1024 || !i3.ReadOnly || i3.WriteCache {
		t.Fatalf("disk 3 info %+v", i3)
	}
	if i0.Name == i3.Name || i0.Name != "scsi-aabbccdd-0:0:0" {
		t.Fatalf("names %q %q", i0.Name, i3.Name)
	}
	if d3.Serial() != "SND" || d0.Inquiry().Vendor != "Msft" || len(d0.Identifiers()) != 1 {
		t.Fatalf("identification: serial %q inquiry %+v ids %v", d3.Serial(), d0.Inquiry(), d0.Identifiers())
	}
	// Target 1 has no LUNs: REPORT LUNS answered "invalid target".
	saw := false
	for _, s := range r.host.srbList() {
		if s.target == 1 && s.cdb[0] == 0xA0 {
			saw = true
		}
		if s.size != 64 || s.senseLen != 0x14 {
			t.Fatalf("Win8+ SRB of %d bytes, sense length %#x", s.size, s.senseLen)
		}
	}
	if !saw {
		t.Fatal("target 1 not scanned")
	}
	if _, err := d3.WriteAt(ctx(t), make([]byte, 4096), 0); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("write to read-only disk: %v", err)
	}
}

func TestAttachPreWin8(t *testing.T) {
	r := newRig(t, SCSIClass, func(h *fakeHost) {
		h.addDisk(0, 0, 0, 64, 512)
		h.versions = map[uint16]bool{0x0200: true}
		h.respSize = 48
	}, Config{})
	if r.c.Version() != VersionWin6 {
		t.Fatalf("version %v", r.c.Version())
	}
	if !slices.Equal(r.host.ops, []uint32{7, 9, 9, 9, 9, 9, 10, 8}) {
		t.Fatalf("ops %v", r.host.ops)
	}
	for _, p := range r.host.packets {
		if len(p) != 48 {
			t.Fatalf("control packet of %d bytes", len(p))
		}
	}
	d := r.disk(0)
	buf := bytes.Repeat([]byte{0x5A}, 1024)
	if _, err := d.WriteAt(ctx(t), buf, 512); err != nil {
		t.Fatal(err)
	}
	for _, s := range r.host.srbList() {
		if s.size != 48 || s.senseLen != 0x12 {
			t.Fatalf("pre-Win8 SRB of %d bytes, sense length %#x", s.size, s.senseLen)
		}
	}
}

func TestNoVersion(t *testing.T) {
	mem := newFakeMem()
	h := newFakeHost(mem)
	h.versions = map[uint16]bool{}
	_, err := Attach(ctx(t), h.newPrimary(SCSIClass), Config{Memory: mem})
	if !errors.Is(err, ErrNoVersion) {
		t.Fatalf("got %v", err)
	}
}

func TestIDE(t *testing.T) {
	mem := newFakeMem()
	h := newFakeHost(mem)
	ch := h.newPrimary(IDEClass)
	// User data (§6.3): @2 path 1, @3 target 1, @8 flags 0x2.
	ch.offer.UserDefined[2], ch.offer.UserDefined[3], ch.offer.UserDefined[8] = 1, 1, 0x2
	h.addDisk(1, 1, 0, 128, 512)
	h.addDisk(0, 0, 0, 128, 512) // not on this controller's target
	c, err := Attach(ctx(t), ch, Config{Memory: mem})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ds := c.Disks()
	if !c.IDE() || len(ds) != 1 {
		t.Fatalf("IDE %v disks %d", c.IDE(), len(ds))
	}
	if p, tg, l := ds[0].Address(); p != 1 || tg != 1 || l != 0 {
		t.Fatalf("address %d:%d:%d", p, tg, l)
	}
	for _, s := range h.srbList() {
		if s.pathID != 1 || s.target != 1 {
			t.Fatalf("SRB to %d:%d", s.pathID, s.target)
		}
	}
}

func TestReadWriteBounceAndSplit(t *testing.T) {
	r := newRig(t, SCSIClass, func(h *fakeHost) {
		h.addDisk(0, 0, 0, 4096, 512)
		h.maxTransfer = 0x10000
	}, Config{BounceSize: 0x8000})
	d := r.disk(0)
	w := make([]byte, 200<<10)
	for i := range w {
		w[i] = byte(i * 7)
	}
	if n, err := d.WriteAt(ctx(t), w, 4096); err != nil || n != len(w) {
		t.Fatalf("write %d %v", n, err)
	}
	got := make([]byte, len(w))
	if n, err := d.ReadAt(ctx(t), got, 4096); err != nil || n != len(w) {
		t.Fatalf("read %d %v", n, err)
	}
	if !bytes.Equal(got, w) || !bytes.Equal(r.host.disks[[3]uint8{}].data[4096:4096+len(w)], w) {
		t.Fatal("data mismatch")
	}
	// Heap buffers cannot be translated: every segment bounced, split at
	// the 32 KiB bounce size.
	st := r.c.Stats()
	if st.Direct != 0 || st.Bounced == 0 {
		t.Fatalf("stats %+v", st)
	}
	for _, s := range r.host.srbList() {
		if (s.cdb[0] == 0x28 || s.cdb[0] == 0x2A) && (s.dataLen > 0x8000 || s.offset != 0) {
			t.Fatalf("segment of %d bytes at offset %d", s.dataLen, s.offset)
		}
	}
}

func TestReadWriteZeroCopy(t *testing.T) {
	r := newRig(t, SCSIClass, func(h *fakeHost) {
		h.addDisk(0, 0, 0, 4096, 512)
		h.maxTransfer = 0x10000
	}, Config{Memory: transMem{}})
	d := r.disk(0)
	// A guest buffer the platform can translate, starting mid-page.
	pg, _ := r.mem.AllocPages(64)
	buf := pg.Mem[512 : 512+150<<10]
	for i := range buf {
		buf[i] = byte(i * 3)
	}
	before := r.c.Stats()
	if _, err := d.WriteAt(ctx(t), buf, 0); err != nil {
		t.Fatal(err)
	}
	clear(buf)
	if _, err := d.ReadAt(ctx(t), buf, 0); err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		if buf[i] != byte(i*3) {
			t.Fatalf("byte %d", i)
		}
	}
	st := r.c.Stats()
	if st.Bounced != before.Bounced || st.Direct-before.Direct != 6 { // 3 segments each way
		t.Fatalf("stats before %+v after %+v", before, st)
	}
	var segs []srbSeen
	for _, s := range r.host.srbList() {
		if s.cdb[0] == 0x2A {
			segs = append(segs, s)
		}
	}
	if len(segs) != 3 || segs[0].dataLen != 0x10000 || segs[0].offset != 512 || len(segs[0].pfns) != 17 ||
		segs[0].pfns[0] != pg.PFN || segs[1].pfns[0] != pg.PFN+16 || segs[2].dataLen != 150<<10-0x20000 {
		t.Fatalf("segments %+v", segs)
	}
}

// A LUN that fails its probe does not fail Attach: the controller runs
// with the other disks and reports the error.
func TestScanErrorNotFatal(t *testing.T) {
	r := newRig(t, SCSIClass, func(h *fakeHost) {
		h.addDisk(0, 0, 0, 64, 512)
		h.addDisk(0, 0, 1, 64, 512)
		h.hook = func(s *srbSeen) hookResult {
			if s.lun == 1 && (s.cdb[0] == 0x9E || s.cdb[0] == 0x25) {
				return hookResult{handled: true, srbStatus: 0x04, scsiStatus: 0x02, sense: senseFixed(3, 0x11, 0)}
			}
			return hookResult{}
		}
	}, Config{})
	if len(r.c.Disks()) != 1 || r.c.ScanError() == nil {
		t.Fatalf("disks %d, scan error %v", len(r.c.Disks()), r.c.ScanError())
	}
	r.host.mu.Lock()
	r.host.hook = nil
	r.host.mu.Unlock()
	if err := r.c.Rescan(ctx(t)); err != nil || len(r.c.Disks()) != 2 || r.c.ScanError() != nil {
		t.Fatalf("rescan: %v, %d disks", err, len(r.c.Disks()))
	}
}
