package vmbus

import (
	"errors"
	"testing"

	"github.com/gohv/gohv/vmbus/ring"
)

// The packet path allocates nothing: TrySend and ReadPacket.
func TestDataPathNoAlloc(t *testing.T) {
	h := newFakeHost(t)
	h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0)}
	b := connect(t, h, Config{PollInterval: -1})
	c := openTestChannel(t, h, b, 5, OpenConfig{SendRingSize: 64 * 4096})
	h.noRead.Store(true)
	h.mu.Lock()
	in := h.open[5].in
	h.mu.Unlock()
	payload := make([]byte, 100)
	buf := make([]byte, 256)
	n := testing.AllocsPerRun(200, func() {
		if err := c.TrySend(ring.TypeDataInband, 0, 1, payload[:50], payload[50:]); err != nil && !errors.Is(err, ErrRingFull) {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("TrySend: %v allocations", n)
	}
	hdr := make([]byte, 24)
	n = testing.AllocsPerRun(200, func() {
		if err := c.TrySendWithHeader(ring.TypeDataGPADirect, 0, 1, hdr, payload); err != nil && !errors.Is(err, ErrRingFull) {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("TrySendWithHeader: %v allocations", n)
	}
	n = testing.AllocsPerRun(200, func() {
		c.MaskInterrupt()
		c.UnmaskInterrupt()
		c.kick() // the interrupt path's wake-up of the dispatch goroutine
	})
	if n != 0 {
		t.Errorf("MaskInterrupt/UnmaskInterrupt/kick: %v allocations", n)
	}
	h.mu.Lock()
	for range 80 {
		hostWriteRing(in, 6, 0, 9, payload)
	}
	h.mu.Unlock()
	n = testing.AllocsPerRun(50, func() {
		if _, err := c.ReadPacket(buf); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("ReadPacket: %v allocations", n)
	}
}

func BenchmarkTrySendRead(b *testing.B) {
	h := newFakeHost(b)
	h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0)}
	bus, err := Connect(b.Context(), h, Config{PollInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close(b.Context())
	c := bus.Channels()[0]
	if err := c.Open(b.Context(), OpenConfig{SendRingSize: 64 * 4096}); err != nil {
		b.Fatal(err)
	}
	h.noRead.Store(true)
	h.mu.Lock()
	out := h.open[5].out
	h.mu.Unlock()
	payload := make([]byte, 1024)
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if err := c.TrySend(ring.TypeDataInband, 0, 1, payload); err != nil {
			// Drain the host side by hand (the fake's reader is slow).
			atomicStore32(out, 4, atomicLoad32(out, 0))
		}
	}
}
