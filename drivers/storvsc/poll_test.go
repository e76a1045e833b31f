package storvsc

import (
	"testing"
	"time"
)

// until waits, checking cond, for at most 10 s (a deadline against hangs,
// never asserted as a duration).
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// releaseOne answers the oldest held request.
func (h *fakeHost) releaseOne() {
	h.mu.Lock()
	x := h.held[0]
	h.held = h.held[1:]
	h.mu.Unlock()
	h.run(x.c, x.txid, &x.s)
}

// While a request is still at the host after a completion, the interrupt
// goroutine polls with the channel's interrupt masked; when the host stays
// quiet for PollTime it unmasks, so a completion sent after that (the fake
// interrupts only while unmasked, as a host following §4.6 does) still
// arrives. A driver that left the mask set would never see it.
func TestPollMasksThenUnmasks(t *testing.T) {
	r := newRig(t, SCSIClass, func(h *fakeHost) { h.addDisk(0, 0, 0, 4096, 512) }, Config{PollTime: time.Millisecond})
	d := r.disk(0)
	r.host.mu.Lock()
	r.host.hook = func(*srbSeen) hookResult { return hookResult{handled: true, hold: true} }
	r.host.mu.Unlock()
	_, masks0, unmasks0 := r.ch.maskCounts()
	done := make(chan *Request, 2)
	reqs := make([]Request, 2)
	for i := range reqs {
		reqs[i] = Request{Op: OpRead, Buf: make([]byte, 512), Off: int64(i) * 512, Done: func(r *Request) { done <- r }}
		if err := d.Submit(&reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	until(t, "two requests at the host", func() bool { return r.host.heldCount() == 2 })
	r.host.releaseOne()
	if got := <-done; got != &reqs[0] || got.Err != nil {
		t.Fatalf("first completion: %p %v", got, got.Err)
	}
	until(t, "the poll to end unmasked", func() bool {
		masked, masks, unmasks := r.ch.maskCounts()
		return !masked && masks > masks0 && unmasks > unmasks0
	})
	r.host.releaseOne()
	select {
	case got := <-done:
		if got != &reqs[1] || got.Err != nil {
			t.Fatalf("second completion: %p %v", got, got.Err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the completion sent after polling ended was never taken: interrupt left masked")
	}
	if masked, _, _ := r.ch.maskCounts(); masked {
		t.Fatal("interrupt masked after the last completion")
	}
}

// With PollTime negative the driver never masks.
func TestPollOff(t *testing.T) {
	r := newRig(t, SCSIClass, func(h *fakeHost) { h.addDisk(0, 0, 0, 4096, 512) }, Config{PollTime: -1})
	d := r.disk(0)
	buf := make([]byte, 4096)
	for i := range 20 {
		if _, err := d.ReadAt(t.Context(), buf, int64(i)*4096); err != nil {
			t.Fatal(err)
		}
	}
	if _, masks, _ := r.ch.maskCounts(); masks != 0 {
		t.Fatalf("%d MaskInterrupt calls with polling off", masks)
	}
}
