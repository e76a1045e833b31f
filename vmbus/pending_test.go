package vmbus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/ring"
)

var sinkClass = hvsim.MustParseGUID("2c1f3e55-8d0b-4e5a-9f26-7a0c4b1d9e31")

// sinkDevice is a host backend that does nothing by itself: the test
// drains its channel with Recv, so it decides when the host frees space.
type sinkDevice struct{}

func (sinkDevice) Offer() hvsim.OfferSpec {
	return hvsim.OfferSpec{Class: sinkClass, Instance: hvsim.MustParseGUID("2c1f3e55-0000-0000-0000-000000000001")}
}
func (sinkDevice) Open(*hvsim.Channel) error { return nil }
func (sinkDevice) Close(*hvsim.Channel)      {}

// waitUntil polls cond until it holds; the bound is a hang guard only.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLargestPacketSendIsWoken: the largest packet a ring allows (4088
// bytes with its trailer in a 4096-byte data area) blocked behind another
// packet must be woken by the host's pending-send-size signal alone
// (polling off). hvsim applies the exact rule (signal when free space
// exceeds the pending send size), so a guest that asks for more than the
// packet needs is never woken.
func TestLargestPacketSendIsWoken(t *testing.T) {
	h := newHost(t, hvsim.Config{}, sinkDevice{})
	bus, ctx := connect(t, h, vmbus.Config{PollInterval: -1})
	ch := findChannel(t, bus, sinkClass)
	if err := ch.Open(ctx, vmbus.OpenConfig{SendRingSize: 2 * 4096}); err != nil {
		t.Fatal(err)
	}
	hc := h.Channel(ch.Offer().RelID)
	if err := ch.TrySend(ring.TypeDataInband, 0, 1, make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 4088-ring.TrailerSize-ring.DescriptorSize)
	if n := ring.PacketSize(0, len(big)); n != 4088 {
		t.Fatalf("PacketSize = %d, want 4088", n)
	}
	for i := range big {
		big[i] = byte(i)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ch.Send(sctx, ring.TypeDataInband, 0, 2, big) }()
	// Send has stored its pending send size and re-checked once it
	// counts a wait.
	waitUntil(t, "Send to block", func() bool { return ch.Stats().SendWaits > 0 })
	buf := make([]byte, 8192)
	if p, ok, err := hc.Recv(buf); !ok || err != nil || p.TransactionID != 1 {
		t.Fatalf("host Recv: %+v %v %v", p, ok, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Send of the largest packet: %v (host never signalled)", err)
	}
	p, ok, err := hc.Recv(buf)
	if !ok || err != nil || p.TransactionID != 2 || len(p.Payload) != len(big) || p.Payload[100] != 100 {
		t.Fatalf("host got %d bytes id %d (%v %v)", len(p.Payload), p.TransactionID, ok, err)
	}
	if n := hc.Stats().PendingSendSizeSignals; n != 1 {
		t.Errorf("host sent %d pending-send-size signals, want 1", n)
	}
}

// TestOpenRescindedMidGPADL: hvsim rescinds the channel after taking the
// ring's GPADL_HEADER and then answers GPADL_CREATED with success. Open
// fails with ErrRescinded; the guest tears the GPADL down before
// RELID_RELEASED (hvsim records a violation otherwise) and the offer goes
// away; the bus then closes cleanly.
func TestOpenRescindedMidGPADL(t *testing.T) {
	h := newHost(t, hvsim.Config{}, sinkDevice{})
	bus, ctx := connect(t, h, vmbus.Config{})
	ch := findChannel(t, bus, sinkClass)
	h.Faults().RescindAtGPADL(ch.Offer().RelID)
	err := ch.Open(ctx, vmbus.OpenConfig{})
	if !errors.Is(err, vmbus.ErrRescinded) {
		t.Fatalf("Open: %v, want ErrRescinded", err)
	}
	waitUntil(t, "the relid to be released", func() bool { return len(bus.Channels()) == 0 })
	if n := bus.Stats().UnexpectedMessages; n != 0 {
		t.Errorf("%d unexpected host messages", n)
	}
}
