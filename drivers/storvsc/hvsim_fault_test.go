package storvsc_test

// Fault suite (issue 7): the real driver against the simulated StorVSP
// with each of its injected faults. For every fault the checks are the
// same: a write the driver acknowledged is on the backing store after a
// successful Flush, a failed request returns an error (and never outlives
// its context deadline), a read returns the written data or an error.
// The backing MemStore is read only when no request is in flight.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/gohv/gohv/drivers/scsi"
	"github.com/gohv/gohv/drivers/storvsc"
	"github.com/gohv/gohv/tools/hvsim/storvsp"
)

const (
	faultTimeout = 200 * time.Millisecond
	// faultBound is how long any one call may take: the full timeout
	// escalation (timeout, RESET_LUN, RESET_BUS) with a wide margin for
	// the race detector on a shared machine.
	faultBound = 10 * time.Second
	faultSize  = 1 << 20
)

type faultRig struct {
	*simRig
	store *storvsp.MemStore
	d     *storvsc.Disk
}

func newFaultRig(t *testing.T, writeCache bool, scfg storvsc.Config) *faultRig {
	t.Helper()
	store := storvsp.NewMemStore(faultSize)
	scfg.Timeout, scfg.ResetTimeout = faultTimeout, faultTimeout
	r := newSimRig(t, storvsp.Config{}, map[uint8]storvsp.LUNConfig{0: {Store: store, WriteCache: writeCache}}, scfg)
	ds := r.ctrl.Disks()
	if len(ds) != 1 {
		t.Fatalf("%d disks", len(ds))
	}
	return &faultRig{simRig: r, store: store, d: ds[0]}
}

// pattern is the known content of write number i.
func pattern(i, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i*31 + j*7 + 1)
	}
	return b
}

// bounded runs f with a deadline and fails the test if f returned only
// because the deadline passed (a hang).
func bounded(t *testing.T, what string, f func(ctx context.Context) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), faultBound)
	defer cancel()
	err := f(ctx)
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s hung until the deadline: %v", what, err)
	}
	return err
}

func (r *faultRig) write(t *testing.T, p []byte, off int64) (int, error) {
	t.Helper()
	var n int
	err := bounded(t, "write", func(ctx context.Context) (err error) {
		n, err = r.d.WriteAt(ctx, p, off)
		return err
	})
	return n, err
}

func (r *faultRig) read(t *testing.T, p []byte, off int64) (int, error) {
	t.Helper()
	var n int
	err := bounded(t, "read", func(ctx context.Context) (err error) {
		n, err = r.d.ReadAt(ctx, p, off)
		return err
	})
	return n, err
}

func (r *faultRig) flush(t *testing.T) error {
	t.Helper()
	return bounded(t, "flush", r.d.Flush)
}

// mustWrite writes p at off and fails the test unless it succeeded.
func (r *faultRig) mustWrite(t *testing.T, p []byte, off int64) {
	t.Helper()
	if n, err := r.write(t, p, off); err != nil || n != len(p) {
		t.Fatalf("write at %d: %d, %v", off, n, err)
	}
}

// durable flushes and checks that p is on the store at off.
func (r *faultRig) durable(t *testing.T, p []byte, off int64) {
	t.Helper()
	if err := r.flush(t); err != nil {
		t.Fatalf("flush: %v", err)
	}
	r.onStore(t, p, off)
}

func (r *faultRig) onStore(t *testing.T, p []byte, off int64) {
	t.Helper()
	if !bytes.Equal(r.store.Bytes()[off:off+int64(len(p))], p) {
		t.Fatalf("acknowledged write at %d not on the store", off)
	}
}

// readBack checks that a read of len(p) at off returns p.
func (r *faultRig) readBack(t *testing.T, p []byte, off int64) {
	t.Helper()
	got := make([]byte, len(p))
	if n, err := r.read(t, got, off); err != nil || n != len(p) || !bytes.Equal(got, p) {
		t.Fatalf("read at %d: %d, %v, equal %v", off, n, err, bytes.Equal(got, p))
	}
}

func isWrite(cdb []byte) bool {
	switch cdb[0] {
	case 0x0A, 0x2A, 0xAA, 0x8A: // WRITE(6/10/12/16)
		return true
	}
	return false
}

// TestFaultRetried: BUSY, TASK SET FULL, UNIT ATTENTION and ABORTED
// COMMAND on a write are retried transparently: the write succeeds, the
// retries are counted, and the data is durable after a flush.
func TestFaultRetried(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    storvsp.Failure
	}{
		{"busy", storvsp.Busy()},
		{"task-set-full", storvsp.TaskSetFull()},
		{"unit-attention", storvsp.CheckCondition(byte(scsi.KeyUnitAttention), 0x29, 0x00)},
		{"aborted-command", storvsp.CheckCondition(byte(scsi.KeyAbortedCommand), 0x00, 0x00)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newFaultRig(t, true, storvsc.Config{})
			f := tc.f
			f.Match = isWrite
			r.vsp.FailNext(3, f)
			before := r.ctrl.Stats().Retries
			p := pattern(1, 8192)
			r.mustWrite(t, p, 65536)
			if got := r.ctrl.Stats().Retries - before; got != 3 {
				t.Fatalf("%d retries, want 3", got)
			}
			r.durable(t, p, 65536)
			r.readBack(t, p, 65536)
		})
	}
}

// TestFaultRetriesExhausted: a failure that outlasts Config.Retries ends
// in a SCSI error; nothing reached the disk.
func TestFaultRetriesExhausted(t *testing.T) {
	r := newFaultRig(t, false, storvsc.Config{Retries: 2})
	f := storvsp.Busy()
	f.Match = isWrite
	r.vsp.FailNext(3, f)
	_, err := r.write(t, pattern(2, 4096), 0)
	var se *storvsc.SCSIError
	if !errors.As(err, &se) || se.SCSIStatus != scsi.StatusBusy {
		t.Fatalf("write after 3 BUSY with 2 retries: %v", err)
	}
	if err := r.flush(t); err != nil {
		t.Fatal(err)
	}
	r.onStore(t, make([]byte, 4096), 0)
	p := pattern(3, 4096) // the fault is used up
	r.mustWrite(t, p, 0)
	r.durable(t, p, 0)
}

// TestFaultHardError: MEDIUM ERROR fails the write at once with its sense
// data; the data is not on the store; a read of the failed range returns
// what the disk holds (the old data) and later I/O works.
func TestFaultHardError(t *testing.T) {
	r := newFaultRig(t, true, storvsc.Config{})
	old := pattern(4, 4096)
	r.mustWrite(t, old, 8192)
	r.durable(t, old, 8192)
	f := storvsp.CheckCondition(byte(scsi.KeyMediumError), 0x0C, 0x00)
	f.Match = isWrite
	r.vsp.FailNext(1, f)
	before := r.ctrl.Stats().Retries
	_, err := r.write(t, pattern(5, 4096), 8192)
	var se *storvsc.SCSIError
	if !errors.As(err, &se) || !se.HasSense || se.Sense.Key != scsi.KeyMediumError || se.Sense.ASC != 0x0C {
		t.Fatalf("write with MEDIUM ERROR: %v", err)
	}
	if r.ctrl.Stats().Retries != before {
		t.Fatal("MEDIUM ERROR was retried")
	}
	r.durable(t, old, 8192)
	r.readBack(t, old, 8192)
}

// TestFaultShortTransfer: a completion reporting fewer bytes than asked
// (DATA_OVERRUN with a short length) is never reported as success: the
// request fails with io.ErrUnexpectedEOF and N counts only the segments
// that completed in full.
func TestFaultShortTransfer(t *testing.T) {
	r := newFaultRig(t, false, storvsc.Config{BounceSize: 64 << 10})
	p := pattern(6, 128<<10) // two 64 KiB segments through the bounce buffer
	r.vsp.ShortTransfers(1, 512)
	n, err := r.write(t, p, 0)
	if !errors.Is(err, io.ErrUnexpectedEOF) || n != 0 {
		t.Fatalf("short write: n %d, %v", n, err)
	}
	// The host moved the data even though it said it did not: rewrite it
	// (a retry by the caller), then a short read.
	r.mustWrite(t, p, 0)
	r.durable(t, p, 0)
	got := make([]byte, len(p))
	r.vsp.ShortTransfers(1, 0)
	if n, err := r.read(t, got, 0); !errors.Is(err, io.ErrUnexpectedEOF) || n != 0 {
		t.Fatalf("short read: n %d, %v", n, err)
	}
	r.readBack(t, p, 0)
}

// TestFaultLostCompletion: the host runs the write but never completes
// it. The driver times out, sends RESET_LUN then RESET_BUS (the simulated
// host completes nothing for them) and fails the write with ErrTimeout:
// no hang, no false success. The disk stays usable: later writes are
// acknowledged and durable.
func TestFaultLostCompletion(t *testing.T) {
	r := newFaultRig(t, true, storvsc.Config{})
	lostBefore := r.vsp.Stats().Lost
	r.vsp.LoseCompletions(1)
	start := time.Now()
	_, err := r.write(t, pattern(7, 4096), 0)
	if !errors.Is(err, storvsc.ErrTimeout) {
		t.Fatalf("write with lost completion: %v", err)
	}
	if el := time.Since(start); el < 3*faultTimeout {
		t.Fatalf("gave up after %v, before the escalation (3 × %v)", el, faultTimeout)
	}
	if s := r.ctrl.Stats(); s.Timeouts != 3 || s.Resets != 2 {
		t.Fatalf("timeouts %d resets %d, want 3 and 2", s.Timeouts, s.Resets)
	}
	if got := r.vsp.Stats().Lost - lostBefore; got != 1 {
		t.Fatalf("host lost %d completions", got)
	}
	p := pattern(8, 4096)
	r.mustWrite(t, p, 4096)
	r.durable(t, p, 4096)
	r.readBack(t, p, 4096)
}

// TestFaultQueueDepth: several asynchronous writes in flight at once with
// completions delayed (so they arrive out of order) or swapped in pairs;
// each completes once with success and the data is correct on the store
// and read back, also with reordered read completions.
func TestFaultQueueDepth(t *testing.T) {
	const n = 8
	for _, tc := range []struct {
		name  string
		fault func(v *storvsp.StorVSP)
		clear func(v *storvsp.StorVSP)
	}{
		{"delayed", func(v *storvsp.StorVSP) { v.DelayCompletions(n/2, 30*time.Millisecond) }, func(*storvsp.StorVSP) {}},
		{"reordered", func(v *storvsp.StorVSP) { v.ReorderCompletions(true) }, func(v *storvsp.StorVSP) { v.ReorderCompletions(false) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newFaultRig(t, true, storvsc.Config{})
			run := func(op storvsc.Op, bufs [][]byte) {
				t.Helper()
				done := make(chan *storvsc.Request, n)
				reqs := make([]storvsc.Request, n)
				for i := range reqs {
					reqs[i] = storvsc.Request{Op: op, Off: int64(i) * 16384, Buf: bufs[i],
						Done: func(q *storvsc.Request) { done <- q }}
				}
				tc.fault(r.vsp)
				for i := range reqs {
					if err := r.d.Submit(&reqs[i]); err != nil {
						t.Fatal(err)
					}
				}
				timeout := time.After(faultBound)
				seen := map[*storvsc.Request]bool{}
				for range reqs {
					select {
					case q := <-done:
						if seen[q] {
							t.Fatal("request completed twice")
						}
						seen[q] = true
						if q.Err != nil || q.N != len(q.Buf) {
							t.Fatalf("request at %d: N %d, %v", q.Off, q.N, q.Err)
						}
					case <-timeout:
						t.Fatalf("%d of %d requests completed", len(seen), n)
					}
				}
				tc.clear(r.vsp)
			}
			ws := make([][]byte, n)
			for i := range ws {
				ws[i] = pattern(10+i, 16384)
			}
			run(storvsc.OpWrite, ws)
			if err := r.flush(t); err != nil {
				t.Fatal(err)
			}
			for i := range ws {
				r.onStore(t, ws[i], int64(i)*16384)
			}
			rs := make([][]byte, n)
			for i := range rs {
				rs[i] = make([]byte, 16384)
			}
			run(storvsc.OpRead, rs)
			for i := range rs {
				if !bytes.Equal(rs[i], ws[i]) {
					t.Fatalf("read %d: wrong data", i)
				}
			}
		})
	}
}

// TestFaultRescindDuringIO: the host withdraws the controller with
// requests outstanding; every one of them, and every later one, fails
// with ErrRemoved, and writes acknowledged and flushed before are on the
// store.
func TestFaultRescindDuringIO(t *testing.T) {
	const n = 4
	r := newFaultRig(t, true, storvsc.Config{})
	p := pattern(30, 8192)
	r.mustWrite(t, p, 0)
	r.durable(t, p, 0)
	r.vsp.DelayCompletions(n, time.Hour) // keep them all outstanding
	r.vsp.RescindAfter(n)
	done := make(chan *storvsc.Request, n+1)
	reqs := make([]storvsc.Request, n+1)
	for i := range reqs {
		reqs[i] = storvsc.Request{Op: storvsc.OpWrite, Off: 65536 + int64(i)*4096, Buf: pattern(31+i, 4096),
			Done: func(q *storvsc.Request) { done <- q }}
		if err := r.d.Submit(&reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	timeout := time.After(faultBound)
	for range reqs {
		select {
		case q := <-done:
			if !errors.Is(q.Err, storvsc.ErrRemoved) {
				t.Fatalf("request at %d after rescind: %v", q.Off, q.Err)
			}
		case <-timeout:
			t.Fatal("requests outstanding at the rescind never completed")
		}
	}
	if _, err := r.write(t, p, 0); !errors.Is(err, storvsc.ErrRemoved) {
		t.Fatalf("write after rescind: %v", err)
	}
	if err := r.flush(t); !errors.Is(err, storvsc.ErrRemoved) {
		t.Fatalf("flush after rescind: %v", err)
	}
	r.onStore(t, p, 0)
}

// TestFaultCrash: the host crashes with the write cache holding data.
// Writes acknowledged and flushed before the crash are in the store;
// afterwards every request fails with ErrTimeout within the timeout
// escalation and nothing hangs: asynchronous writes, twice as many as the
// queue has slots (the queued ones fail when the last slot is abandoned:
// no slot can free up before the host answers), then a read and a flush
// (refused at once while every slot waits for the dead host).
func TestFaultCrash(t *testing.T) {
	const depth = 2
	r := newFaultRig(t, true, storvsc.Config{QueueDepth: depth})
	flushed := pattern(40, 16384)
	r.mustWrite(t, flushed, 0)
	r.durable(t, flushed, 0)
	r.mustWrite(t, pattern(41, 4096), 32768) // acknowledged, not flushed
	if lost := r.vsp.Crash(); lost != 1 {
		t.Fatalf("crash lost %d cache blocks, want 1", lost)
	}
	done := make(chan *storvsc.Request, 2*depth)
	reqs := make([]storvsc.Request, 2*depth)
	for i := range reqs {
		reqs[i] = storvsc.Request{Op: storvsc.OpWrite, Off: 65536 + int64(i)*4096, Buf: pattern(42+i, 4096),
			Done: func(q *storvsc.Request) { done <- q }}
		if err := r.d.Submit(&reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	timeout := time.After(faultBound)
	for i := range reqs {
		select {
		case q := <-done:
			if !errors.Is(q.Err, storvsc.ErrTimeout) {
				t.Fatalf("write at %d after crash: %v", q.Off, q.Err)
			}
		case <-timeout:
			t.Fatalf("%d of %d writes after the crash never completed", len(reqs)-i, len(reqs))
		}
	}
	if _, err := r.read(t, make([]byte, 4096), 0); !errors.Is(err, storvsc.ErrTimeout) {
		t.Fatalf("read after crash: %v", err)
	}
	if err := r.flush(t); !errors.Is(err, storvsc.ErrTimeout) {
		t.Fatalf("flush after crash: %v", err)
	}
	r.onStore(t, flushed, 0)
}
