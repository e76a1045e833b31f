package hvsim

import (
	"context"
	"testing"
	"time"
)

// TestBlockedSenderRearmsPendingSize: a host sender blocked on a full
// host→guest ring has armed the pending send size; another host write that
// fits clears it. The blocked sender must re-arm it, or a guest that drains
// the ring (correctly) sees no pending size, never signals, and the sender
// waits forever (docs/hyperv-protocol.md §4.6).
func TestBlockedSenderRearmsPendingSize(t *testing.T) {
	oc := setupChannel(t, Config{}, 4, 2)
	g, ch := oc.g, oc.ch
	if n := g.h.FillGuestRing(oc.relid); n == 0 {
		t.Fatal("FillGuestRing wrote nothing")
	}
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	big := make(chan error, 1)
	go func() { big <- ch.Send(ctx, 6, 0, 1, make([]byte, 1000)) }()
	for ch.Stats().RingFull == 0 {
		if ctx.Err() != nil {
			t.Fatal("the large send never found the ring full")
		}
		time.Sleep(time.Millisecond)
	}
	// Room for one empty packet (24 bytes with its trailer), not for the
	// large one: the small send succeeds and clears the pending size.
	oc.in.read()
	oc.in.read()
	if err := ch.Send(ctx, 6, 0, 2, nil); err != nil {
		t.Fatal(err)
	}
	// The guest drains everything and signals only if a pending send size
	// asks it to (what a guest honouring §4.6 does).
	deadline := time.After(testWait)
	for {
		for oc.in.read() != nil {
		}
		if get32m(oc.in.hdr(), 12) != 0 {
			if err := g.p.SignalEvent(oc.conn, 0); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case err := <-big:
			if err != nil {
				t.Fatalf("large send: %v", err)
			}
			noViolations(t, g.h)
			return
		case <-time.After(time.Millisecond):
		case <-deadline:
			t.Fatal("the blocked sender never resumed: its pending send size was cleared and not re-armed")
		}
	}
}
