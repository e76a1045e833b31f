package netvsp

import "testing"

// TestLateRxLoopLosesNoFrame: a queue's rxLoop running late (here it
// cannot take the receive-buffer lock, as when its goroutine is not
// scheduled) while the guest has room to spare must not cost frames: the
// backend's call waits for a free slot instead of dropping the frame.
//
// Dropping there was the stall of the kernel's NetVSP fault suite: a busy
// machine let the in-process peer burst past the hold slots, and the
// peer's TCP then took seconds to recover from the hole.
func TestLateRxLoopLosesNoFrame(t *testing.T) {
	fb := newFake()
	const hold, sent = 4, 10
	n := newNIC(t, Config{Backend: fb, HoldFrames: hold})
	n.ready()
	n.dev.mu.Lock()
	q := n.dev.primary
	n.dev.mu.Unlock()

	n.dev.rxMu.Lock() // rxLoop is late: it cannot move a frame
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := byte(0); i < sent; i++ {
			fb.inject(broadcast(i))
		}
	}()
	// Either the backend finished (dropping what did not fit: the bug) or
	// it waits for a slot with every slot taken.
	waitFor(t, "the backend to finish or to wait for a slot", func() bool {
		select {
		case <-done:
			return true
		default:
		}
		q.qmu.Lock()
		defer q.qmu.Unlock()
		return q.room != nil && q.fsize == hold
	})
	n.dev.rxMu.Unlock()
	<-done
	if s := n.dev.Stats(); s.RxDroppedFull != 0 {
		t.Fatalf("%d frames dropped while the guest had room", s.RxDroppedFull)
	}
	var got []byte
	for len(got) < sent {
		f, _ := n.frames(n.c)
		for _, x := range f {
			got = append(got, x[20])
		}
	}
	for i, b := range got {
		if b != byte(i) {
			t.Fatalf("frames % x, want 0 to %d in order", got, sent-1)
		}
	}
	noViolations(t, n.g.h)
}

// TestRingFullDropsBeyondHold: when the guest does not read its ring the
// guest is the one behind, and frames beyond the hold slots are dropped as
// before: the backend never waits for the guest.
func TestRingFullDropsBeyondHold(t *testing.T) {
	fb := newFake()
	const hold, sent = 4, 10
	n := newNIC(t, Config{Backend: fb, HoldFrames: hold})
	n.ready()
	if n.dev.FillGuestRing(0) == 0 {
		t.Fatal("FillGuestRing wrote nothing")
	}
	// The first frame goes to rxLoop, which finds the ring full and waits
	// for the guest; then the hold slots fill and the rest are dropped.
	n.dev.mu.Lock()
	q := n.dev.primary
	n.dev.mu.Unlock()
	fb.inject(broadcast(0))
	waitFor(t, "rxLoop to wait for the ring", func() bool {
		q.qmu.Lock()
		defer q.qmu.Unlock()
		return q.fsize == 0 && n.dev.Stats().RxPackets == 0 && q.ch.Stats().RingFull > 0
	})
	for i := byte(1); i < sent; i++ {
		fb.inject(broadcast(i)) // must not block
	}
	if s := n.dev.Stats(); s.RxDroppedFull != sent-1-hold {
		t.Fatalf("dropped %d, want %d beyond the %d held", s.RxDroppedFull, sent-1-hold, hold)
	}
}
