package vmbus_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/ring"
)

// Each channel has its own dispatch goroutine: a channel whose OnInterrupt
// is stuck does not hold up another channel.
func TestChannelsDispatchIndependently(t *testing.T) {
	a, b := newEcho(1), newEcho(2)
	h := newHost(t, hvsim.Config{}, a, b)
	bus, ctx := connect(t, h, vmbus.Config{})
	chs := bus.Channels()
	if len(chs) != 2 {
		t.Fatalf("%d channels", len(chs))
	}
	chA, chB := chs[0], chs[1]
	entered, release := make(chan struct{}, 1), make(chan struct{})
	stuck := func() {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
	}
	if err := chA.Open(ctx, vmbus.OpenConfig{OnInterrupt: stuck}); err != nil {
		t.Fatal(err)
	}
	rB := newReceiver(chB)
	if err := chB.Open(ctx, vmbus.OpenConfig{OnInterrupt: rB.onInterrupt}); err != nil {
		t.Fatal(err)
	}
	if err := chA.Send(ctx, ring.TypeDataInband, 0, 1, []byte("stuck")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("channel A's OnInterrupt never ran")
	}
	// A's dispatch goroutine is blocked; B must still be served.
	exchange(t, ctx, chB, rB, 10)
	close(release)
}

// MaskInterrupt sets the inbound ring's interrupt mask: the host writes
// without signalling; UnmaskInterrupt then reports the pending packet
// (the re-check rule of docs/hyperv-protocol.md §4.6), and false once drained.
func TestMaskInterrupt(t *testing.T) {
	echo := newEcho(1)
	h := newHost(t, hvsim.Config{}, echo)
	bus, ctx := connect(t, h, vmbus.Config{PollInterval: -1})
	ch := findChannel(t, bus, echoClass)
	runs := make(chan struct{}, 16)
	if err := ch.Open(ctx, vmbus.OpenConfig{OnInterrupt: func() { runs <- struct{}{} }}); err != nil {
		t.Fatal(err)
	}
	hc := h.Channel(ch.Offer().RelID)
	ch.MaskInterrupt()
	if ch.UnmaskInterrupt() {
		t.Fatal("UnmaskInterrupt reports packets on an empty ring")
	}
	ch.MaskInterrupt()
	if err := ch.Send(ctx, ring.TypeDataInband, 0, 7, []byte("masked")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the echo", func() bool { return echo.echoed.Load() == 1 })
	if st := hc.Stats(); st.SignalsOut != 0 || st.SignalsSuppressed == 0 {
		t.Fatalf("host stats %+v: the masked guest was signalled", st)
	}
	if len(runs) != 0 {
		t.Fatal("OnInterrupt ran while masked")
	}
	if !ch.UnmaskInterrupt() {
		t.Fatal("UnmaskInterrupt missed the packet written while masked")
	}
	buf := make([]byte, 256)
	p, err := ch.ReadPacket(buf)
	if err != nil || p.TransactionID != 7 || !bytes.HasPrefix(p.Payload, []byte("masked")) {
		t.Fatalf("ReadPacket: %+v %v", p, err)
	}
	if ch.UnmaskInterrupt() {
		t.Fatal("UnmaskInterrupt reports packets on a drained ring")
	}
	// Unmasked again: the next echo is signalled.
	if err := ch.Send(ctx, ring.TypeDataInband, 0, 8, []byte("unmasked")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-runs:
	case <-ctx.Done():
		t.Fatal("no interrupt after unmasking")
	}
}

// TrySendWithHeader puts the type-specific header between descriptor and
// payload, as the host sees it (docs/hyperv-protocol.md §4.5).
func TestTrySendWithHeader(t *testing.T) {
	h := newHost(t, hvsim.Config{}, sinkDevice{})
	bus, ctx := connect(t, h, vmbus.Config{})
	ch := findChannel(t, bus, sinkClass)
	if err := ch.Open(ctx, vmbus.OpenConfig{}); err != nil {
		t.Fatal(err)
	}
	// A GPA-direct header: reserved, range count 1, one range of 16 bytes
	// at offset 8 of PFN 0x1234 (docs/hyperv-protocol.md §4.5).
	hdr := []byte{0, 0, 0, 0, 1, 0, 0, 0, 16, 0, 0, 0, 8, 0, 0, 0, 0x34, 0x12, 0, 0, 0, 0, 0, 0}
	if err := ch.TrySendWithHeader(ring.TypeDataGPADirect, ring.FlagCompletionRequested, 9, hdr, []byte("payload!")); err != nil {
		t.Fatal(err)
	}
	// 16 descriptor + 24 header + 8 payload + 8 trailer, of 3 data pages.
	if st := ch.Stats(); st.SendRingUsed != 56 || st.SendRingData != 3*4096 || st.RecvRingData != 3*4096 || st.RecvRingUsed != 0 {
		t.Errorf("ring fill in Stats: %+v", st)
	}
	if s := ch.State(); !strings.Contains(s, "out=56/12288B in=0/12288B") || !strings.Contains(s, "state=open") {
		t.Errorf("State() = %q lacks the ring fill", s)
	}
	p, ok, err := h.Channel(ch.Offer().RelID).Recv(make([]byte, 256))
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	if p.Type != 9 || p.TransactionID != 9 || !bytes.Equal(p.Header, hdr) || string(p.Payload) != "payload!" {
		t.Fatalf("host got type %d id %d header % x payload %q", p.Type, p.TransactionID, p.Header, p.Payload)
	}
	if err := ch.TrySendWithHeader(ring.TypeDataGPADirect, 0, 1, hdr[:7]); err == nil {
		t.Fatal("header of 7 bytes accepted")
	}
	if st := ch.Stats(); st.Errors != 1 || st.SendRingUsed != 0 {
		t.Errorf("after a refused send: %+v", st)
	}
}

// WaitSubChannels returns the sub-channels 1..n once the host offered
// them, in index order; on ctx expiry the ones offered so far.
func TestWaitSubChannels(t *testing.T) {
	h := newHost(t, hvsim.Config{}, newEcho(1))
	bus, ctx := connect(t, h, vmbus.Config{})
	primary := findChannel(t, bus, echoClass)
	if err := primary.Open(ctx, vmbus.OpenConfig{}); err != nil {
		t.Fatal(err)
	}
	type result struct {
		subs []vmbus.DriverChannel
		err  error
	}
	done := make(chan result, 1)
	go func() {
		s, err := primary.WaitSubChannels(ctx, 3)
		done <- result{s, err}
	}()
	if _, err := h.AddSubChannels(primary.Offer().RelID, 3); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || len(r.subs) != 3 {
		t.Fatalf("WaitSubChannels: %d, %v", len(r.subs), r.err)
	}
	for i, s := range r.subs {
		if s.Offer().SubChannelIndex != uint16(i+1) {
			t.Errorf("sub %d has index %d", i, s.Offer().SubChannelIndex)
		}
		rc := newReceiver(s.(*vmbus.Channel))
		if err := s.Open(ctx, vmbus.OpenConfig{OnInterrupt: rc.onInterrupt}); err != nil {
			t.Fatal(err)
		}
		exchange(t, ctx, s.(*vmbus.Channel), rc, 3)
	}
	// Five asked for, three offered: the three with the ctx error.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	got, err := primary.WaitSubChannels(short, 5)
	if !errors.Is(err, context.DeadlineExceeded) || len(got) != 3 {
		t.Fatalf("WaitSubChannels(5) with 3 offered: %d, %v", len(got), err)
	}
	if _, err := r.subs[0].WaitSubChannels(ctx, 1); !errors.Is(err, vmbus.ErrBadConfig) {
		t.Fatalf("WaitSubChannels on a sub-channel: %v", err)
	}
}
