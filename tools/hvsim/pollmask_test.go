package hvsim

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"
)

// Guest→host ring header word of the interrupt mask
// (docs/hyperv-protocol.md §4.2), written here by hand.
const testOffIntMask = 8

// MaskSignals sets the guest→host ring's interrupt mask, so a guest
// following §4.6 does not signal; UnmaskSignals clears it and reports the
// packet written meanwhile, then nothing once the ring is drained.
func TestMaskSignals(t *testing.T) {
	oc := setupChannel(t, Config{}, 4, 2)
	ch := oc.ch
	ch.MaskSignals()
	if m := get32m(oc.out.hdr(), testOffIntMask); m != 1 {
		t.Fatalf("interrupt mask %d after MaskSignals, want 1", m)
	}
	sig, ok := oc.out.write(6, 0, 7, []byte("12345678"))
	if !ok || sig {
		t.Fatalf("write into an empty masked ring: ok %v signal %v, want no signal", ok, sig)
	}
	if !ch.UnmaskSignals() {
		t.Fatal("UnmaskSignals did not report the packet written while masked")
	}
	if m := get32m(oc.out.hdr(), testOffIntMask); m != 0 {
		t.Fatalf("interrupt mask %d after UnmaskSignals, want 0", m)
	}
	buf := make([]byte, 256)
	p, ok, err := ch.Recv(buf)
	if err != nil || !ok || p.TransactionID != 7 {
		t.Fatalf("Recv: %+v %v %v", p, ok, err)
	}
	if ch.UnmaskSignals() {
		t.Fatal("UnmaskSignals reported packets in a drained ring")
	}
	sig, ok = oc.out.write(6, 0, 8, nil)
	if !ok || !sig {
		t.Fatalf("write into an empty unmasked ring: ok %v signal %v, want a signal", ok, sig)
	}
	noViolations(t, oc.g.h)
}

// A host that polls with the mask set and waits on Signaled only after
// UnmaskSignals reported an empty ring never misses a packet of a guest
// that signals exactly when §4.6 tells it to (no lost wake-up).
func TestMaskSignalsNoLostWakeup(t *testing.T) {
	oc := setupChannel(t, Config{}, 4, 2)
	ch := oc.ch
	const n = 3000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the guest: writes, signalling only when told to
		defer wg.Done()
		var p [8]byte
		for i := uint64(1); i <= n; {
			binary.LittleEndian.PutUint64(p[:], i)
			sig, ok := oc.out.write(6, 0, i, p[:])
			if !ok { // ring full: the host frees space without signalling
				time.Sleep(time.Microsecond)
				continue
			}
			if sig {
				if err := oc.g.p.SignalEvent(oc.conn, 0); err != nil {
					t.Error(err)
					return
				}
			}
			i++
		}
	}()
	buf := make([]byte, 256)
	next := uint64(1)
	deadline := time.After(testWait)
	for next <= n {
		// Drain with the mask set, polling a little.
		ch.MaskSignals()
		for spin := 0; spin < 20; spin++ {
			for {
				p, ok, err := ch.Recv(buf)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					break
				}
				if p.TransactionID != next {
					t.Fatalf("packet %d, want %d", p.TransactionID, next)
				}
				next++
				spin = 0
			}
		}
		if ch.UnmaskSignals() {
			continue
		}
		if next > n {
			break
		}
		select {
		case <-ch.Signaled():
		case <-deadline:
			t.Fatalf("lost wake-up: waiting for packet %d of %d with nothing signalled", next, n)
		}
	}
	wg.Wait()
	noViolations(t, oc.g.h)
}
