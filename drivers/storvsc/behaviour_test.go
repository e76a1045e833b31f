package storvsc

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestFlushAndUnmap(t *testing.T) {
	var fd *fakeDisk
	r := newRig(t, SCSIClass, func(h *fakeHost) {
		fd = h.addDisk(0, 0, 0, 0x8000, 512)
		fd.unmap = true
	}, Config{})
	d := r.disk(0)
	if !d.Info().CanDiscard {
		t.Fatal("UNMAP not detected")
	}
	if err := d.Flush(ctx(t)); err != nil || fd.flushes != 1 {
		t.Fatalf("flush: %v, %d", err, fd.flushes)
	}
	// VPD 0xB0 limits UNMAP to 0x1000 blocks: 0x1800 blocks take two.
	if err := d.Discard(ctx(t), 512*10, 512*0x1800); err != nil {
		t.Fatal(err)
	}
	if len(fd.unmapped) != 2 || fd.unmapped[0] != [2]uint64{10, 0x1000} || fd.unmapped[1] != [2]uint64{10 + 0x1000, 0x800} {
		t.Fatalf("unmapped %v", fd.unmapped)
	}
	if err := d.Discard(ctx(t), 3, 512); !errors.Is(err, ErrUnaligned) {
		t.Fatalf("unaligned discard: %v", err)
	}
	if err := d.Discard(ctx(t), 0, 512*0x8001); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("discard past end: %v", err)
	}
}

func TestWriteSameFallback(t *testing.T) {
	var fd *fakeDisk
	r := newRig(t, SCSIClass, func(h *fakeHost) {
		fd = h.addDisk(0, 0, 0, 0x800, 4096)
		fd.writeSame = true
	}, Config{})
	d := r.disk(0)
	if err := d.Discard(ctx(t), 4096, 4096*3); err != nil {
		t.Fatal(err)
	}
	if len(fd.writeSames) != 1 || fd.writeSames[0] != [2]uint64{1, 3} || len(fd.unmapped) != 0 {
		t.Fatalf("write same %v unmap %v", fd.writeSames, fd.unmapped)
	}
}

func TestNoDiscardOnOldHost(t *testing.T) {
	r := newRig(t, SCSIClass, func(h *fakeHost) {
		h.addDisk(0, 0, 0, 0x800, 512).writeSame = true
		h.versions = map[uint16]bool{0x0501: true} // WRITE SAME absent ≤ 5.1 (§6.6)
	}, Config{})
	d := r.disk(0)
	if d.Info().CanDiscard {
		t.Fatal("discard on a 5.1 host")
	}
	if err := d.Discard(ctx(t), 0, 512); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("got %v", err)
	}
}

func TestVPDAndRC16Failures(t *testing.T) {
	r := newRig(t, SCSIClass, func(h *fakeHost) {
		h.addDisk(0, 0, 0, 1000, 512)
		h.failVPD, h.failRC16, h.failReport = true, true, true
	}, Config{MaxLUNs: 2})
	d := r.disk(0)
	if d.Info().Sectors != 1000 || d.Serial() != "" || d.Info().CanDiscard {
		t.Fatalf("info %+v serial %q", d.Info(), d.Serial())
	}
	var rc10 bool
	for _, s := range r.host.srbList() {
		if s.cdb[0] == 0x25 {
			rc10 = true
		}
	}
	if !rc10 || len(r.c.Disks()) != 1 {
		t.Fatalf("READ CAPACITY(10) used %v, disks %d", rc10, len(r.c.Disks()))
	}
}

// hookN makes the host answer the first n READ/WRITEs with res.
func hookN(n int, res hookResult) func(s *srbSeen) hookResult {
	var left atomic.Int32
	left.Store(int32(n))
	return func(s *srbSeen) hookResult {
		if s.cdb[0] != 0x28 && s.cdb[0] != 0x2A {
			return hookResult{}
		}
		if left.Add(-1) < 0 {
			return hookResult{}
		}
		return res
	}
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  hookResult
		n    int
		ok   bool
	}{
		{"unit attention", hookResult{handled: true, srbStatus: 0x04, scsiStatus: 0x02, sense: senseFixed(6, 0x29, 0)}, 2, true},
		{"busy", hookResult{handled: true, srbStatus: 0x04, scsiStatus: 0x08}, 3, true},
		{"task set full", hookResult{handled: true, srbStatus: 0x04, scsiStatus: 0x28}, 2, true},
		{"SRB busy", hookResult{handled: true, srbStatus: 0x05}, 1, true},
		{"not ready becoming ready", hookResult{handled: true, srbStatus: 0x04, scsiStatus: 0x02, sense: senseFixed(2, 0x04, 0x01)}, 1, true},
		{"bus reset", hookResult{handled: true, srbStatus: 0x0E}, 1, true},
		{"too many", hookResult{handled: true, srbStatus: 0x04, scsiStatus: 0x08}, 100, false},
		{"medium error", hookResult{handled: true, srbStatus: 0x04, scsiStatus: 0x02, sense: senseFixed(3, 0x11, 0)}, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, SCSIClass, func(h *fakeHost) { h.addDisk(0, 0, 0, 64, 512) }, Config{Retries: 4})
			r.host.mu.Lock()
			r.host.hook = hookN(tc.n, tc.res)
			r.host.mu.Unlock()
			_, err := r.disk(0).ReadAt(ctx(t), make([]byte, 512), 0)
			if tc.ok != (err == nil) {
				t.Fatalf("err %v", err)
			}
			var se *SCSIError
			if !tc.ok && !errors.As(err, &se) {
				t.Fatalf("error %v is not a *SCSIError", err)
			}
			if tc.name == "medium error" && (!se.HasSense || se.Sense.Key != 3 || se.Sense.ASC != 0x11) {
				t.Fatalf("sense %+v", se)
			}
			var ioe *IOError
			if !tc.ok && (!errors.As(err, &ioe) || ioe.Op != OpRead) {
				t.Fatalf("not an IOError: %v", err)
			}
			if st := r.c.Stats(); tc.ok && st.Retries != uint64(tc.n) {
				t.Fatalf("retries %d", st.Retries)
			}
		})
	}
}

func TestCapacityChangedRescan(t *testing.T) {
	var fd *fakeDisk
	r := newRig(t, SCSIClass, func(h *fakeHost) { fd = h.addDisk(0, 0, 0, 64, 512) }, Config{})
	if e := r.event(); e.Kind != DiskAdded {
		t.Fatal(e)
	}
	r.host.mu.Lock()
	fd.data = append(fd.data, make([]byte, 64*512)...)
	r.host.hook = hookN(1, hookResult{handled: true, srbStatus: 0x04, scsiStatus: 0x02, sense: senseFixed(6, 0x2A, 0x09)})
	r.host.mu.Unlock()
	d := r.disk(0)
	if _, err := d.ReadAt(ctx(t), make([]byte, 512), 0); err != nil {
		t.Fatal(err)
	}
	e := r.event()
	if e.Kind != DiskChanged || e.Disk != d || d.Info().Sectors != 128 {
		t.Fatalf("event %v sectors %d", e, d.Info().Sectors)
	}
}

func TestHotAddRemove(t *testing.T) {
	r := newRig(t, SCSIClass, func(h *fakeHost) { h.addDisk(0, 0, 0, 64, 512) }, Config{})
	r.event()
	// ENUMERATE_BUS after a LUN is added.
	r.host.addDisk(0, 0, 1, 32, 512)
	r.host.sendUnsolicited(11)
	e := r.event()
	if p, tg, l := e.Disk.Address(); e.Kind != DiskAdded || p != 0 || tg != 0 || l != 1 {
		t.Fatalf("event %v", e)
	}
	// REMOVE_DEVICE after LUN 0 goes away; its I/O then fails with
	// ErrRemoved.
	d0 := r.disk(0)
	r.host.mu.Lock()
	delete(r.host.disks, [3]uint8{0, 0, 0})
	r.host.mu.Unlock()
	r.host.sendUnsolicited(2)
	e = r.event()
	if e.Kind != DiskRemoved || e.Disk != d0 || !d0.Removed() {
		t.Fatalf("event %v", e)
	}
	if _, err := d0.ReadAt(ctx(t), make([]byte, 512), 0); !errors.Is(err, ErrRemoved) {
		t.Fatalf("I/O on removed disk: %v", err)
	}
	if len(r.c.Disks()) != 1 || r.c.Stats().Unsolicited != 2 {
		t.Fatalf("disks %d stats %+v", len(r.c.Disks()), r.c.Stats())
	}
}

func TestInvalidLUNDuringIO(t *testing.T) {
	r := newRig(t, SCSIClass, func(h *fakeHost) { h.addDisk(0, 0, 0, 64, 512) }, Config{})
	r.event()
	d := r.disk(0)
	r.host.mu.Lock()
	delete(r.host.disks, [3]uint8{0, 0, 0})
	r.host.mu.Unlock()
	if _, err := d.ReadAt(ctx(t), make([]byte, 512), 0); !errors.Is(err, ErrRemoved) {
		t.Fatalf("got %v", err)
	}
	if e := r.event(); e.Kind != DiskRemoved || e.Disk != d {
		t.Fatalf("event %v", e)
	}
}

func TestTimeoutResetRecovers(t *testing.T) {
	r := newRig(t, SCSIClass, func(h *fakeHost) {
		h.addDisk(0, 0, 0, 64, 512)
		h.resetAborts = true
	}, Config{Timeout: 20 * time.Millisecond, ResetTimeout: 20 * time.Millisecond})
	r.host.mu.Lock()
	r.host.hook = hookN(1, hookResult{handled: true, hold: true})
	r.host.mu.Unlock()
	if _, err := r.disk(0).ReadAt(ctx(t), make([]byte, 512), 0); err != nil {
		t.Fatal(err)
	}
	r.host.mu.Lock()
	resets := append([]uint32(nil), r.host.resets...)
	r.host.mu.Unlock()
	// RESET_LUN (4) first, then RESET_BUS (6), whose completion aborts
	// the held request; the driver retries it.
	if len(resets) != 2 || resets[0] != 4 || resets[1] != 6 {
		t.Fatalf("resets %v", resets)
	}
}

func TestTimeoutGivesUp(t *testing.T) {
	r := newRig(t, SCSIClass, func(h *fakeHost) { h.addDisk(0, 0, 0, 64, 512) },
		Config{Timeout: 10 * time.Millisecond, ResetTimeout: 10 * time.Millisecond, QueueDepth: 1})
	r.host.mu.Lock()
	r.host.hook = hookN(1, hookResult{handled: true, hold: true})
	r.host.mu.Unlock()
	d := r.disk(0)
	if _, err := d.ReadAt(ctx(t), make([]byte, 512), 0); !errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v", err)
	}
	// The only slot is abandoned: no slot can free up until the host
	// completes the old request, so the next one is refused at once with
	// ErrTimeout (it would otherwise wait without bound) and never reaches
	// the host.
	before := r.c.Stats()
	srbs := srbCount(r)
	if _, err := d.ReadAt(ctx(t), make([]byte, 512), 0); !errors.Is(err, ErrTimeout) {
		t.Fatalf("request with every slot abandoned: %v", err)
	}
	if st := r.c.Stats(); st.Submitted != before.Submitted || srbCount(r) != srbs {
		t.Fatalf("request ran on an abandoned slot: %+v", st)
	}
	if n := r.host.releaseHeld(); n != 1 {
		t.Fatalf("released %d", n)
	}
	// The late completion frees the slot (on the channel goroutine): the
	// next request runs once it has been handled.
	c := ctx(t)
	for {
		_, err := d.ReadAt(c, make([]byte, 512), 0)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrTimeout) {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
}

func srbCount(r *rig) int { return len(r.host.srbList()) }

func TestRescindDuringIO(t *testing.T) {
	r := newRig(t, SCSIClass, func(h *fakeHost) { h.addDisk(0, 0, 0, 64, 512) }, Config{QueueDepth: 4})
	r.event()
	r.host.mu.Lock()
	r.host.hook = func(s *srbSeen) hookResult { return hookResult{handled: true, hold: true} }
	r.host.mu.Unlock()
	d := r.disk(0)
	const n = 10 // more than the queue depth: some wait for a slot
	var wg sync.WaitGroup
	errs := make(chan error, n)
	reqs := make([]Request, n)
	for i := range reqs {
		wg.Add(1)
		reqs[i] = Request{Op: OpRead, Buf: make([]byte, 512), Done: func(r *Request) { errs <- r.Err; wg.Done() }}
		if err := d.Submit(&reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	for r.host.heldCount() < 4 {
		time.Sleep(time.Millisecond)
	}
	r.ch.rescind()
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrRemoved) {
			t.Fatalf("request ended with %v", err)
		}
	}
	if e := r.event(); e.Kind != DiskRemoved || e.Disk != d {
		t.Fatalf("event %v", e)
	}
	if err := d.Submit(&reqs[0]); !errors.Is(err, ErrRemoved) {
		t.Fatalf("submit after rescind: %v", err)
	}
	if _, err := d.ReadAt(ctx(t), make([]byte, 512), 0); !errors.Is(err, ErrRemoved) {
		t.Fatalf("read after rescind: %v", err)
	}
}

func TestSubChannels(t *testing.T) {
	r := newRig(t, SCSIClass, func(h *fakeHost) {
		h.addDisk(0, 0, 0, 64, 512)
		h.multi, h.maxSubs = true, 2
	}, Config{Channels: 4})
	if r.host.subRequest != 2 || r.c.Queues() != 3 {
		t.Fatalf("asked for %d sub-channels, %d queues", r.host.subRequest, r.c.Queues())
	}
	d := r.disk(0)
	if d.Info().Queues != 3 {
		t.Fatalf("info queues %d", d.Info().Queues)
	}
	for q := range 3 {
		done := make(chan error, 1)
		req := Request{Op: OpWrite, Buf: make([]byte, 512), Queue: q, Done: func(r *Request) { done <- r.Err }}
		if err := d.Submit(&req); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		srbs := r.host.srbList()
		if last := srbs[len(srbs)-1]; last.ch != q || last.cdb[0] != 0x2A {
			t.Fatalf("queue %d went to channel %d", q, last.ch)
		}
	}
}

func TestNoSubChannelsWithoutMultiChannel(t *testing.T) {
	r := newRig(t, SCSIClass, func(h *fakeHost) { h.maxSubs = 4 }, Config{Channels: 4})
	if r.c.Queues() != 1 || r.host.subRequest != 0 {
		t.Fatalf("queues %d", r.c.Queues())
	}
}

func TestRequestValidation(t *testing.T) {
	r := newRig(t, SCSIClass, func(h *fakeHost) { h.addDisk(0, 0, 0, 64, 512) }, Config{})
	d := r.disk(0)
	for _, tc := range []struct {
		req  Request
		want error
	}{
		{Request{Op: OpRead, Buf: make([]byte, 100)}, ErrUnaligned},
		{Request{Op: OpRead, Off: 1, Buf: make([]byte, 512)}, ErrUnaligned},
		{Request{Op: OpRead}, ErrUnaligned},
		{Request{Op: OpRead, Off: 64 * 512, Buf: make([]byte, 512)}, ErrOutOfRange},
		{Request{Op: OpWrite, Off: 63 * 512, Buf: make([]byte, 1024)}, ErrOutOfRange},
		{Request{Op: OpDiscard, Len: 512}, ErrNotSupported},
		{Request{Op: Op(9)}, ErrNotSupported},
	} {
		if err := d.Submit(&tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%+v: got %v, want %v", tc.req, err, tc.want)
		}
	}
}

func TestCloseFailsWaiting(t *testing.T) {
	r := newRig(t, SCSIClass, func(h *fakeHost) { h.addDisk(0, 0, 0, 64, 512) }, Config{QueueDepth: 1})
	r.event()
	r.host.mu.Lock()
	r.host.hook = func(s *srbSeen) hookResult { return hookResult{handled: true, hold: true} }
	r.host.mu.Unlock()
	d := r.disk(0)
	errs := make(chan error, 2)
	reqs := []Request{{Op: OpRead, Buf: make([]byte, 512)}, {Op: OpRead, Buf: make([]byte, 512)}}
	for i := range reqs {
		reqs[i].Done = func(r *Request) { errs <- r.Err }
		if err := d.Submit(&reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; !errors.Is(err, ErrRemoved) {
			t.Fatalf("got %v", err)
		}
	}
	if e := r.event(); e.Kind != DiskRemoved {
		t.Fatalf("event %v", e)
	}
}

// More requests than slots: the extra ones wait in order and all
// complete.
func TestQueueOverflow(t *testing.T) {
	r := newRig(t, SCSIClass, func(h *fakeHost) { h.addDisk(0, 0, 0, 256, 512) }, Config{QueueDepth: 2})
	d := r.disk(0)
	const n = 50
	reqs := make([]Request, n)
	errs := make(chan error, n)
	for i := range reqs {
		reqs[i] = Request{Op: OpWrite, Off: int64(i) * 512, Buf: bytes.Repeat([]byte{byte(i)}, 512),
			Done: func(r *Request) { errs <- r.Err }}
		if err := d.Submit(&reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	data := r.host.disks[[3]uint8{}].data
	for i := range n {
		if data[i*512] != byte(i) || data[i*512+511] != byte(i) {
			t.Fatalf("block %d not written", i)
		}
	}
}

// The queue depth is bounded by how many largest EXECUTE_SRB packets fit
// the send ring (docs/hyperv-protocol.md §4.3: descriptor, GPA-direct
// header with 65 PFNs for 256 KiB, 64-byte packet, trailer).
func TestDepthBoundedByRing(t *testing.T) {
	r := newRig(t, SCSIClass, func(h *fakeHost) { h.addDisk(0, 0, 0, 64, 512) }, Config{RingSize: 2 * 4096, QueueDepth: 128})
	want := (4096 - 8) / (16 + 16 + 65*8 + 64 + 8) // = 6
	if got := len(r.c.queues[0].slots); got != want {
		t.Fatalf("depth %d, want %d", got, want)
	}
}
