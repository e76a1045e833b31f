package hvsim

import (
	"errors"
	"testing"
)

// TestTrySendRaw: on a full host→guest ring TrySendRaw returns ErrRingFull
// at once, counts it and arms the pending send size (offset 12 of the ring
// header, docs/hyperv-protocol.md §4.6) so that the guest signals when it
// has room; once the guest has read, it succeeds.
func TestTrySendRaw(t *testing.T) {
	oc := setupChannel(t, Config{}, 4, 2)
	g, ch := oc.g, oc.ch
	if n := g.h.FillGuestRing(oc.relid); n == 0 {
		t.Fatal("FillGuestRing wrote nothing")
	}
	before := ch.Stats().RingFull
	payload := make([]byte, 64)
	if err := ch.TrySendRaw(6, 0, 1, nil, payload); !errors.Is(err, ErrRingFull) {
		t.Fatalf("TrySendRaw on a full ring: %v, want ErrRingFull", err)
	}
	if got := ch.Stats().RingFull - before; got != 1 {
		t.Errorf("RingFull counted %d, want 1", got)
	}
	// 16-byte descriptor + 64 bytes + 8-byte trailer.
	if pss := get32m(oc.in.hdr(), 12); pss != 88 {
		t.Errorf("pending send size %d, want 88", pss)
	}
	for oc.in.read() != nil {
	}
	if err := ch.TrySendRaw(6, 0, 2, nil, payload); err != nil {
		t.Fatalf("TrySendRaw after the guest read: %v", err)
	}
	noViolations(t, g.h)
}
