package vmbus_test

// Integration tests of the guest VMBus client against tools/hvsim, the
// simulated host written independently from the same reference. Every test
// fails if the host recorded a protocol violation.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/hvsimtest"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/chanmsg"
	"github.com/gohv/gohv/vmbus/ring"
)

// hangGuard bounds every test against hangs; it is never the thing asserted.
const hangGuard = 30 * time.Second

var echoClass = hvsim.MustParseGUID("6e3ac2d1-6f5b-4a39-8c43-1f1f0e5d2a77")

// echoDevice is a host backend that sends every guest packet back: as a
// completion (type 0xB) when the guest asked for one, as an in-band packet
// otherwise, with the guest's transaction id. While paused it leaves the
// guest→host ring alone so that the guest fills it.
type echoDevice struct {
	instance hvsim.GUID
	paused   atomic.Bool
	resume   chan struct{}
	echoed   atomic.Uint64
}

func newEcho(n byte) *echoDevice {
	return &echoDevice{
		instance: hvsim.MustParseGUID(fmt.Sprintf("0000000%d-1111-2222-3333-444455556666", n)),
		resume:   make(chan struct{}, 1),
	}
}

func (d *echoDevice) Offer() hvsim.OfferSpec {
	return hvsim.OfferSpec{Class: echoClass, Instance: d.instance}
}

func (d *echoDevice) Open(ch *hvsim.Channel) error {
	go d.serve(ch)
	return nil
}

func (d *echoDevice) Close(*hvsim.Channel) {}

func (d *echoDevice) serve(ch *hvsim.Channel) {
	buf := make([]byte, 128<<10)
	ctx := context.Background()
	for {
		select {
		case <-ch.Done():
			return
		case <-ch.Signaled():
		case <-d.resume:
		case <-time.After(5 * time.Millisecond): // the host polls too, like Hyper-V's monitor pages
		}
		for !d.paused.Load() {
			p, ok, err := ch.Recv(buf)
			if err != nil || !ok {
				break
			}
			typ := uint16(ring.TypeDataInband)
			if p.Flags&ring.FlagCompletionRequested != 0 {
				typ = uint16(ring.TypeCompletion)
			}
			sctx, cancel := context.WithTimeout(ctx, hangGuard)
			err = ch.Send(sctx, typ, 0, p.TransactionID, p.Payload)
			cancel()
			if err != nil {
				return
			}
			d.echoed.Add(1)
		}
	}
}

// newHost and connect split hvsimtest.NewGuest for tests that set host
// faults before the guest connects.
func newHost(t *testing.T, cfg hvsim.Config, devs ...hvsim.Device) *hvsim.Host {
	t.Helper()
	return hvsimtest.NewHost(t, hvsimtest.Config{Host: cfg, Devices: devs})
}

func connect(t *testing.T, h *hvsim.Host, cfg vmbus.Config) (*vmbus.Bus, context.Context) {
	t.Helper()
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	g := hvsimtest.Connect(t, h, hvsimtest.Config{Bus: cfg, Timeout: hangGuard})
	return g.Bus, g.Ctx
}

func findChannel(t *testing.T, bus *vmbus.Bus, class hvsim.GUID) *vmbus.Channel {
	t.Helper()
	want := chanmsg.GUID(class.Wire())
	for _, ch := range bus.Channels() {
		if ch.Offer().InterfaceType == want {
			return ch
		}
	}
	t.Fatalf("no offer of class %s among %d channels", class, len(bus.Channels()))
	return nil
}

// receiver collects the packets OnInterrupt drains.
type receiver struct {
	ch      *vmbus.Channel
	buf     []byte
	packets chan []byte
}

func newReceiver(ch *vmbus.Channel) *receiver {
	return &receiver{ch: ch, buf: make([]byte, 128<<10), packets: make(chan []byte, 4096)}
}

func (r *receiver) onInterrupt() {
	for {
		p, err := r.ch.ReadPacket(r.buf)
		if err != nil {
			return
		}
		msg := make([]byte, 8+len(p.Payload))
		binary.LittleEndian.PutUint64(msg, p.TransactionID)
		copy(msg[8:], p.Payload)
		select {
		case r.packets <- msg:
		default:
			panic("test receiver overflow")
		}
	}
}

func (r *receiver) next(t *testing.T, ctx context.Context) (uint64, []byte) {
	t.Helper()
	select {
	case m := <-r.packets:
		return binary.LittleEndian.Uint64(m), m[8:]
	case <-ctx.Done():
		t.Fatalf("no packet from the host: %v", ctx.Err())
		return 0, nil
	}
}

func payloadFor(i int) []byte {
	n := 8 + (i*37)%1500 // sizes that are not multiples of 8 exercise padding
	b := make([]byte, n)
	for k := range b {
		b[k] = byte(i + k)
	}
	return b
}

// exchange sends n packets and checks that each comes back intact, in order.
func exchange(t *testing.T, ctx context.Context, ch *vmbus.Channel, r *receiver, n int) {
	t.Helper()
	for i := range n {
		want := payloadFor(i)
		if err := ch.Send(ctx, ring.TypeDataInband, 0, uint64(i+1), want); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		id, got := r.next(t, ctx)
		// The ring pads payloads to 8 bytes (docs/hyperv-protocol.md §4.3).
		if id != uint64(i+1) || len(got) < len(want) || !bytes.Equal(got[:len(want)], want) {
			t.Fatalf("packet %d came back as id %d, %d bytes", i, id, len(got))
		}
	}
}

func TestHostProfiles(t *testing.T) {
	for _, tc := range []struct {
		profile hvsim.Profile
		version chanmsg.Version
	}{
		{hvsim.WS2022, chanmsg.Version(5<<16 | 3)},
		{hvsim.WS2019, chanmsg.Version(5<<16 | 2)},
		{hvsim.WS2016, chanmsg.Version(4 << 16)},
		{hvsim.WS2012R2, chanmsg.Version(3 << 16)},
	} {
		t.Run(tc.profile.String(), func(t *testing.T) {
			echo := newEcho(1)
			h := newHost(t, hvsim.Config{Profile: tc.profile}, hvsim.NewHeartbeat(time.Hour), echo)
			bus, ctx := connect(t, h, vmbus.Config{})
			if bus.Version() != tc.version {
				t.Fatalf("negotiated %s, want %s", bus.Version(), tc.version)
			}
			if v, ok := h.Version(); !ok || v != uint32(tc.version) {
				t.Fatalf("host says %#x %v", v, ok)
			}
			if n := len(bus.Channels()); n != 2 {
				t.Fatalf("%d channels offered, want 2", n)
			}
			ch := findChannel(t, bus, echoClass)
			r := newReceiver(ch)
			// Small rings (one header page + 3 data pages) so that 300
			// packets wrap them many times.
			if err := ch.Open(ctx, vmbus.OpenConfig{SendRingSize: 4 * 4096, RecvRingSize: 4 * 4096, OnInterrupt: r.onInterrupt}); err != nil {
				t.Fatal(err)
			}
			exchange(t, ctx, ch, r, 300)
			if err := ch.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if err := ch.TrySend(ring.TypeDataInband, 0, 1, []byte("late")); !errors.Is(err, vmbus.ErrClosed) {
				t.Fatalf("send after close: %v", err)
			}
		})
	}
}

// A 16 MiB buffer is 4096 pages: one GPADL_HEADER with 26 PFNs and 146
// GPADL_BODY messages (docs/hyperv-protocol.md §3.9). The host checks every PFN against
// its arena.
func TestLargeGPADL(t *testing.T) {
	h := newHost(t, hvsim.Config{MemoryBytes: 64 << 20}, newEcho(1))
	bus, ctx := connect(t, h, vmbus.Config{})
	ch := findChannel(t, bus, echoClass)
	if err := ch.Open(ctx, vmbus.OpenConfig{OnInterrupt: func() {}}); err != nil {
		t.Fatal(err)
	}
	before := h.Stats()
	mem, err := h.Platform().AllocPages(4096)
	if err != nil {
		t.Fatal(err)
	}
	g, err := ch.CreateGPADL(ctx, mem)
	if err != nil {
		t.Fatalf("CreateGPADL(16 MiB): %v", err)
	}
	after := h.Stats()
	// GPADL_HEADER is type 8 and GPADL_BODY type 9 (docs/hyperv-protocol.md §3.2).
	if hdr, body := after.Received[8]-before.Received[8], after.Received[9]-before.Received[9]; hdr != 1 || body != 146 {
		t.Errorf("host received %d headers and %d bodies for the GPADL, want 1 and 146", hdr, body)
	}
	if err := ch.TeardownGPADL(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := ch.Close(ctx); err != nil {
		t.Fatal(err)
	}
	h.Platform().FreePages(mem)
}

func TestLostInterruptsRecoveredByPolling(t *testing.T) {
	echo := newEcho(1)
	h := newHost(t, hvsim.Config{}, echo)
	bus, ctx := connect(t, h, vmbus.Config{PollInterval: 2 * time.Millisecond})
	ch := findChannel(t, bus, echoClass)
	r := newReceiver(ch)
	if err := ch.Open(ctx, vmbus.OpenConfig{OnInterrupt: r.onInterrupt}); err != nil {
		t.Fatal(err)
	}
	h.Faults().DropInterruptFraction(1) // every channel interrupt is lost
	exchange(t, ctx, ch, r, 50)
	if bus.Stats().Polls == 0 {
		t.Fatal("packets arrived with every interrupt dropped but the bus never polled")
	}
	h.Faults().DropInterruptFraction(0)
}

func TestPostMessageRetriedOnInsufficientBuffers(t *testing.T) {
	h := newHost(t, hvsim.Config{}, newEcho(1))
	h.Faults().FailPostMessage(5)
	bus, _ := connect(t, h, vmbus.Config{})
	if bus.Stats().PostRetries < 5 {
		t.Fatalf("PostRetries = %d, want ≥ 5", bus.Stats().PostRetries)
	}
}

func TestDelayedHostMessages(t *testing.T) {
	h := newHost(t, hvsim.Config{}, newEcho(1))
	h.Faults().DelayMessages(20 * time.Millisecond)
	bus, ctx := connect(t, h, vmbus.Config{})
	ch := findChannel(t, bus, echoClass)
	r := newReceiver(ch)
	if err := ch.Open(ctx, vmbus.OpenConfig{OnInterrupt: r.onInterrupt}); err != nil {
		t.Fatal(err)
	}
	exchange(t, ctx, ch, r, 10)
}

// A host that never answers OPENCHANNEL must not hang the guest.
func TestOpenTimesOutWhenHostIsSilent(t *testing.T) {
	h := newHost(t, hvsim.Config{}, newEcho(1))
	bus, _ := connect(t, h, vmbus.Config{CleanupTimeout: 100 * time.Millisecond})
	ch := findChannel(t, bus, echoClass)
	h.Faults().BlackHole(5, true) // OPENCHANNEL, docs/hyperv-protocol.md §3.2
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := ch.Open(ctx, vmbus.OpenConfig{OnInterrupt: func() {}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open with a silent host: %v, want deadline exceeded", err)
	}
	h.Faults().BlackHole(5, false)
}

// A connect to a host that never answers INITIATE_CONTACT ends with the
// caller's context.
func TestConnectTimesOutWhenHostIsSilent(t *testing.T) {
	h := newHost(t, hvsim.Config{})
	h.Faults().BlackHole(14, true) // INITIATE_CONTACT
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := vmbus.Connect(ctx, h.Platform(), vmbus.Config{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connect: %v, want deadline exceeded", err)
	}
}

func TestRescindDuringIO(t *testing.T) {
	echo := newEcho(1)
	h := newHost(t, hvsim.Config{}, echo)
	bus, ctx := connect(t, h, vmbus.Config{})
	ch := findChannel(t, bus, echoClass)
	r := newReceiver(ch)
	if err := ch.Open(ctx, vmbus.OpenConfig{OnInterrupt: r.onInterrupt}); err != nil {
		t.Fatal(err)
	}
	exchange(t, ctx, ch, r, 5)
	// Stop the host reading so that I/O is outstanding, then rescind.
	echo.paused.Store(true)
	for i := range 3 {
		if err := ch.Send(ctx, ring.TypeDataInband, 0, uint64(100+i), []byte("outstanding")); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Rescind(ch.Offer().RelID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch.Rescinded():
	case <-ctx.Done():
		t.Fatal("Rescinded() never closed")
	}
	err := ch.Send(ctx, ring.TypeDataInband, 0, 200, []byte("after rescind"))
	if !errors.Is(err, vmbus.ErrRescinded) {
		t.Fatalf("Send after rescind: %v, want ErrRescinded", err)
	}
}

func TestHotAddOffer(t *testing.T) {
	h := newHost(t, hvsim.Config{}, newEcho(1))
	bus, ctx := connect(t, h, vmbus.Config{})
	added := make(chan *vmbus.Channel, 1)
	bus.SetOfferHandler(func(ch *vmbus.Channel) { added <- ch })
	relid, err := h.AddDevice(newEcho(2))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ch := <-added:
		if ch.Offer().RelID != relid {
			t.Fatalf("hot-added relid %d, host said %d", ch.Offer().RelID, relid)
		}
		r := newReceiver(ch)
		if err := ch.Open(ctx, vmbus.OpenConfig{OnInterrupt: r.onInterrupt}); err != nil {
			t.Fatal(err)
		}
		exchange(t, ctx, ch, r, 3)
	case <-ctx.Done():
		t.Fatal("no hot-add offer delivered")
	}
}

// The host pauses draining; the guest fills its ring, Send blocks on the
// pending-send-size protocol (docs/hyperv-protocol.md §4.6), and completes once the host
// drains and signals.
func TestFullRingBlocksThenDrains(t *testing.T) {
	echo := newEcho(1)
	h := newHost(t, hvsim.Config{}, echo)
	bus, ctx := connect(t, h, vmbus.Config{})
	ch := findChannel(t, bus, echoClass)
	r := newReceiver(ch)
	if err := ch.Open(ctx, vmbus.OpenConfig{SendRingSize: 3 * 4096, RecvRingSize: 64 * 4096, OnInterrupt: r.onInterrupt}); err != nil {
		t.Fatal(err)
	}
	echo.paused.Store(true)
	msg := make([]byte, 1000)
	sent := 0
	for {
		err := ch.TrySend(ring.TypeDataInband, 0, uint64(sent+1), msg)
		if errors.Is(err, vmbus.ErrRingFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sent++
	}
	if sent == 0 || sent > 8 {
		t.Fatalf("%d packets of 1000 bytes fit an 8 KiB ring", sent)
	}
	done := make(chan error, 1)
	go func() { done <- ch.Send(ctx, ring.TypeDataInband, 0, uint64(sent+1), msg) }()
	// Send counts a wait once it stored its pending send size and found
	// the ring still full; with the host paused nothing can free space.
	waitUntil(t, "Send to block", func() bool { return ch.Stats().SendWaits > 0 })
	select {
	case err := <-done:
		t.Fatalf("Send into a full ring returned: %v", err)
	default:
	}
	echo.paused.Store(false)
	echo.resume <- struct{}{}
	if err := <-done; err != nil {
		t.Fatalf("blocked Send: %v", err)
	}
	for range sent + 1 {
		r.next(t, ctx)
	}
	if ch.Stats().SendWaits == 0 {
		t.Error("SendWaits not counted")
	}
}

// The host completes requests out of order; Transactions matches them by
// id and hands each waiter its own payload.
func TestReorderedCompletions(t *testing.T) {
	echo := newEcho(1)
	h := newHost(t, hvsim.Config{}, echo)
	bus, ctx := connect(t, h, vmbus.Config{})
	ch := findChannel(t, bus, echoClass)
	tx := vmbus.NewTransactions(16, 64)
	buf := make([]byte, 4096)
	var unmatched atomic.Uint64
	onInterrupt := func() {
		for {
			p, err := ch.ReadPacket(buf)
			if err != nil {
				return
			}
			if p.Type != ring.TypeCompletion || tx.Complete(p.TransactionID, p.Payload) != nil {
				unmatched.Add(1)
			}
		}
	}
	if err := ch.Open(ctx, vmbus.OpenConfig{OnInterrupt: onInterrupt}); err != nil {
		t.Fatal(err)
	}
	h.Faults().ReorderCompletions(ch.Offer().RelID, true)
	ids := make([]uint64, 8)
	for i := range ids {
		id, err := tx.Begin()
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
		msg := fmt.Appendf(nil, "request-%d", i)
		if err := ch.Send(ctx, ring.TypeDataInband, ring.FlagCompletionRequested, id, msg); err != nil {
			t.Fatal(err)
		}
	}
	dst := make([]byte, 64)
	for i, id := range ids {
		n, err := tx.Wait(ctx, id, dst)
		if err != nil {
			t.Fatalf("Wait(%d): %v", i, err)
		}
		if want := fmt.Sprintf("request-%d", i); !bytes.HasPrefix(dst[:n], []byte(want)) {
			t.Fatalf("transaction %d got %q, want %q", i, dst[:n], want)
		}
	}
	if unmatched.Load() != 0 || tx.Outstanding() != 0 {
		t.Fatalf("unmatched %d, outstanding %d", unmatched.Load(), tx.Outstanding())
	}
}

// A truncated offer is counted and dropped; the rest of the bus works.
func TestMalformedOfferIsCountedNotFatal(t *testing.T) {
	h := newHost(t, hvsim.Config{}, newEcho(1), newEcho(2))
	h.Faults().TruncateOffers(1)
	bus, ctx := connect(t, h, vmbus.Config{})
	if bus.Stats().BadMessages == 0 {
		t.Fatal("truncated offer not counted as a bad message")
	}
	if n := len(bus.Channels()); n != 1 {
		t.Fatalf("%d channels, want the 1 well-formed offer", n)
	}
	ch := bus.Channels()[0]
	r := newReceiver(ch)
	if err := ch.Open(ctx, vmbus.OpenConfig{OnInterrupt: r.onInterrupt}); err != nil {
		t.Fatal(err)
	}
	exchange(t, ctx, ch, r, 3)
}

// The host answers OPENCHANNEL only after Open gave up. The clean-up must
// close the channel the host did open (CLOSECHANNEL before the ring
// GPADL's teardown), after which the channel opens again normally; the
// host records any message out of order, including one after UNLOAD.
func TestOpenAnsweredLateIsClosedAndReopens(t *testing.T) {
	echo := newEcho(1)
	h := newHost(t, hvsim.Config{}, echo)
	bus, ctx := connect(t, h, vmbus.Config{CleanupTimeout: 5 * time.Second})
	ch := findChannel(t, bus, echoClass)
	h.Faults().DelayMessages(50 * time.Millisecond)
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	err := ch.Open(short, vmbus.OpenConfig{OnInterrupt: func() {}})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open: %v, want deadline exceeded", err)
	}
	r := newReceiver(ch)
	for {
		err = ch.Open(ctx, vmbus.OpenConfig{OnInterrupt: r.onInterrupt})
		if !errors.Is(err, vmbus.ErrAlreadyOpen) { // still cleaning up
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("clean-up after the abandoned Open never finished")
		case <-time.After(5 * time.Millisecond):
		}
	}
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	h.Faults().DelayMessages(0)
	exchange(t, ctx, ch, r, 3)
}

// Bus.Close right after an Open was abandoned, with the answer still on
// its way: the clean-up and Close are serialised, and nothing follows
// UNLOAD (the host records a message after UNLOAD as a violation).
func TestCloseRightAfterAbandonedOpen(t *testing.T) {
	h := newHost(t, hvsim.Config{}, newEcho(1))
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	bus, err := vmbus.Connect(ctx, h.Platform(), vmbus.Config{CleanupTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ch := findChannel(t, bus, echoClass)
	h.Faults().DelayMessages(30 * time.Millisecond)
	short, cancel2 := context.WithTimeout(ctx, 5*time.Millisecond)
	err = ch.Open(short, vmbus.OpenConfig{OnInterrupt: func() {}})
	cancel2()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open: %v, want deadline exceeded", err)
	}
	if err := bus.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	h.Faults().DelayMessages(0)
}

// A Connect that fails after the version handshake (here: the host never
// answers REQUESTOFFERS) unloads, so that the next Connect finds the host
// disconnected instead of getting no answer to a second INITIATE_CONTACT.
func TestConnectRetryAfterFailureAfterHandshake(t *testing.T) {
	h := newHost(t, hvsim.Config{}, newEcho(1))
	h.Faults().BlackHole(3, true) // REQUESTOFFERS
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err := vmbus.Connect(short, h.Platform(), vmbus.Config{CleanupTimeout: 2 * time.Second})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first Connect: %v, want deadline exceeded", err)
	}
	if _, connected := h.Version(); connected {
		t.Error("host still connected after the failed Connect")
	}
	h.Faults().BlackHole(3, false)
	bus, ctx := connect(t, h, vmbus.Config{})
	ch := findChannel(t, bus, echoClass)
	r := newReceiver(ch)
	if err := ch.Open(ctx, vmbus.OpenConfig{OnInterrupt: r.onInterrupt}); err != nil {
		t.Fatal(err)
	}
	exchange(t, ctx, ch, r, 2)
}

// Sub-channels (docs/hyperv-protocol.md §3.6 @180, §3.11): offered after the primary is
// open, delivered through the offer handler, linked to the primary, opened
// like primaries and carrying their own traffic.
func TestSubChannels(t *testing.T) {
	h := newHost(t, hvsim.Config{}, newEcho(1))
	bus, ctx := connect(t, h, vmbus.Config{})
	primary := findChannel(t, bus, echoClass)
	pr := newReceiver(primary)
	if err := primary.Open(ctx, vmbus.OpenConfig{OnInterrupt: pr.onInterrupt}); err != nil {
		t.Fatal(err)
	}
	offered := make(chan *vmbus.Channel, 4)
	bus.SetOfferHandler(func(ch *vmbus.Channel) { offered <- ch })
	relids, err := h.AddSubChannels(primary.Offer().RelID, 2)
	if err != nil {
		t.Fatal(err)
	}
	var subs []*vmbus.Channel
	for range relids {
		select {
		case ch := <-offered:
			subs = append(subs, ch)
		case <-ctx.Done():
			t.Fatal("sub-channel offers not delivered")
		}
	}
	if got := primary.SubChannels(); len(got) != 2 {
		t.Fatalf("primary lists %d sub-channels, want 2", len(got))
	}
	for i, sub := range subs {
		o := sub.Offer()
		if o.SubChannelIndex == 0 || sub.Primary() != primary || o.InterfaceInstance != primary.Offer().InterfaceInstance {
			t.Fatalf("sub-channel %d: index %d, primary %v, instance %s", i, o.SubChannelIndex, sub.Primary() == primary, o.InterfaceInstance)
		}
		r := newReceiver(sub)
		if err := sub.Open(ctx, vmbus.OpenConfig{OnInterrupt: r.onInterrupt}); err != nil {
			t.Fatal(err)
		}
		exchange(t, ctx, sub, r, 20)
	}
	exchange(t, ctx, primary, pr, 5)
	for _, sub := range subs {
		if err := sub.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
