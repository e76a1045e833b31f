package vmbus

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/vmbus/ring"
)

// The interrupt path allocates nothing, whatever the slot holds: a
// channel message, a slot whose size byte is over 240 (hv.CopyMessage's
// sentinel error), a foreign message type, and event flags for every relid.
func TestHandlerNoAlloc(t *testing.T) {
	h := newFakeHost(t)
	b, err := newBus(h, h.synic, Config{})
	if err != nil {
		t.Fatal(err)
	}
	simp, siefp := h.synic.simp, h.synic.siefp
	c := newChannel(b, Offer{RelID: 5})
	b.relids[5].Store(c)
	slot := hv.SlotOffset(hv.VMBusSINT)
	typeWord := (*uint32)(ptr(simp, slot))
	sizeWord := (*uint32)(ptr(simp, slot+4))
	var buf [hv.MaxMessagePayload]byte
	for _, tc := range []struct {
		name    string
		typ     uint32
		size    uint32 // byte @4
		pending bool   // message-pending flag: the handler writes EOM
		queued  bool
		counter func(BusStats) uint64
	}{
		{"channel message", hv.MessageTypeVMBus, 12, true, true, func(s BusStats) uint64 { return s.EOMs }},
		{"oversize slot", hv.MessageTypeVMBus, 255, false, false, func(s BusStats) uint64 { return s.BadMessages }},
		{"foreign type", hv.MessageTypeTimerExpired, 24, false, false, func(s BusStats) uint64 { return s.ForeignMessages }},
	} {
		before := tc.counter(b.Stats())
		allocs := testing.AllocsPerRun(100, func() {
			w := tc.size
			if tc.pending {
				w |= hv.MessageFlagPending << 8
			}
			atomic.StoreUint32(sizeWord, w)
			atomic.StoreUint32(typeWord, tc.typ)
			for i := range hv.EventFlagWords {
				atomic.StoreUint32((*uint32)(ptr(siefp, slot+4*i)), ^uint32(0))
			}
			b.handler()
			if atomic.LoadUint32(typeWord) != 0 {
				t.Fatal("slot not released")
			}
			if n := b.q.pop(&buf); (n >= 0) != tc.queued {
				t.Fatalf("queued %d bytes", n)
			}
			select {
			case <-c.kickCh: // the event flags kicked relid 5
			default:
				t.Fatal("relid 5 not kicked")
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per interrupt", tc.name, allocs)
		}
		if tc.counter(b.Stats()) == before {
			t.Errorf("%s: not counted", tc.name)
		}
	}
}

// A hostile host's control messages: each is counted and dropped, none
// panics, and the bus keeps working (an open channel still moves packets,
// Close still unloads cleanly).
func TestHostileControlMessages(t *testing.T) {
	h := newFakeHost(t)
	h.echo = true
	h.offers = [][]byte{
		offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0),
		offerBytes(scsiClass, instanceB, 8, 0x2008, 0),
		offerBytes(scsiClass, instanceB, 9, 0x2009, 1), // sub-channel of 8
	}
	b := connect(t, h, Config{})
	got := make(chan uint64, 16)
	var c *Channel
	buf := make([]byte, 4096)
	c = openTestChannel(t, h, b, 5, OpenConfig{OnInterrupt: func() {
		for {
			p, err := c.ReadPacket(buf)
			if err != nil {
				return
			}
			got <- p.TransactionID
		}
	}})
	msg := func(typ uint32, size int, fields ...uint32) []byte {
		m := make([]byte, size)
		put32(m, typ)
		for i, f := range fields {
			put32(m[8+4*i:], f)
		}
		return m
	}
	for _, tc := range []struct {
		name       string
		msgs       [][]byte
		bad, unexp uint64
	}{
		{"GPADL_CREATED for an unknown id", [][]byte{msg(10, 20, 5, 0x12345, 0)}, 0, 1},
		{"GPADL_TORNDOWN for an unknown id", [][]byte{msg(12, 12, 0x12345)}, 0, 1},
		{"VERSION_RESPONSE replayed", [][]byte{msg(15, 16, 1, 1)}, 0, 1},
		{"OPENCHANNEL_RESULT for a channel not opening", [][]byte{msg(6, 20, 8, 8, 0), msg(6, 20, 5, 5, 0)}, 0, 2},
		{"UNLOAD_RESPONSE unasked", [][]byte{msg(17, 8)}, 0, 1},
		{"ALLOFFERS_DELIVERED again", [][]byte{msg(4, 8)}, 0, 1},
		{"MODIFYCHANNEL_RESPONSE unasked", [][]byte{msg(24, 16, 5, 0)}, 0, 1},
		{"rescind of an unknown relid", [][]byte{rescindBytes(77)}, 1, 0},
		{"relid 0 and 2048", [][]byte{rescindBytes(0), rescindBytes(2048), offerBytes(heartbeatClass, instanceA, 0, 1, 0), offerBytes(heartbeatClass, instanceA, 2048, 1, 0)}, 4, 0},
		{"guest-bound message types", [][]byte{msg(14, 40), msg(5, 148, 5), msg(3, 8)}, 3, 0},
		{"oversize GPADL_CREATED", [][]byte{msg(10, 240, 5, 0x12345)}, 0, 1},
	} {
		before := b.Stats()
		for _, m := range tc.msgs {
			h.send(m)
		}
		waitFor(t, tc.name, func() bool {
			s := b.Stats()
			return s.BadMessages-before.BadMessages == tc.bad && s.UnexpectedMessages-before.UnexpectedMessages == tc.unexp
		})
	}

	// Rescinded twice: the second is counted, the clean-up runs once.
	before := b.Stats().BadMessages
	var c8 *Channel
	for _, ch := range b.Channels() {
		if ch.Offer().RelID == 8 {
			c8 = ch
		}
	}
	h.send(rescindBytes(8))
	h.send(rescindBytes(8))
	<-c8.Rescinded()
	waitFor(t, "second rescind counted", func() bool { return b.Stats().BadMessages == before+1 })
	// The primary went first; its sub-channel stays usable as a channel
	// of its own until the host rescinds it too.
	waitFor(t, "RELID_RELEASED 8", func() bool { return len(h.messagesOfType(13)) == 1 })
	relids := func() []uint32 {
		var out []uint32
		for _, ch := range b.Channels() {
			out = append(out, ch.Offer().RelID)
		}
		return out
	}
	waitFor(t, "relid 8 forgotten", func() bool { return slices.Equal(relids(), []uint32{5, 9}) })
	h.send(rescindBytes(9))
	waitFor(t, "RELID_RELEASED 9", func() bool { return len(h.messagesOfType(13)) == 2 })

	// The open channel still works.
	if err := c.TrySend(ring.TypeDataInband, ring.FlagCompletionRequested, 4242, []byte("still alive")); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-got:
		if id != 4242 {
			t.Errorf("completion for %d", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no completion after the hostile messages")
	}
	if err := b.Close(testCtx(t)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if seq := h.typeSequence(); seq[len(seq)-1] != 16 {
		t.Errorf("sequence %v does not end with UNLOAD", seq)
	}
}

// A host that offers every possible relid (1..2047), some twice, and then
// one more: memory stays bounded by the relid space, and the bus answers.
func TestOfferEveryRelID(t *testing.T) {
	h := newFakeHost(t)
	for relid := uint32(1); relid <= 2047; relid++ {
		sub := uint16(0)
		if relid%2 == 0 {
			sub = uint16(relid) // all sub-channels of relid 1's class and instance
		}
		h.offers = append(h.offers, offerBytes(heartbeatClass, instanceA, relid, relid, sub))
	}
	h.offers = append(h.offers, offerBytes(heartbeatClass, instanceA, 2048, 1, 0), offerBytes(heartbeatClass, instanceA, 7, 1, 0))
	b := connect(t, h, Config{PollInterval: -1})
	if n := len(b.Channels()); n != 2047 {
		t.Errorf("%d channels, want 2047", n)
	}
	if s := b.Stats(); s.BadMessages != 2 {
		t.Errorf("BadMessages %d, want 2 (relid 2048, duplicate relid 7)", s.BadMessages)
	}
	if n := len(b.Channels()[0].SubChannels()); n != 1023 {
		t.Errorf("relid 1 has %d sub-channels, want 1023", n)
	}
	// Every event flag set, forever: the dispatch goroutine runs, nothing
	// is opened, nothing breaks.
	for range 100 {
		for i := range hv.EventFlagWords {
			atomic.StoreUint32((*uint32)(ptr(h.synic.siefp, hv.SlotOffset(hv.VMBusSINT)+4*i)), ^uint32(0))
		}
		h.kickDelivery()
	}
	waitFor(t, "events seen", func() bool { return b.Stats().Events > 0 })
	if err := b.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// A host that keeps the ring's read index invalid or races it: TrySend
// returns a ring.CorruptError, never panics, and the channel closes.
func TestHostileOutboundIndices(t *testing.T) {
	h := newFakeHost(t)
	h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0)}
	b := connect(t, h, Config{PollInterval: time.Millisecond})
	c := openTestChannel(t, h, b, 5, OpenConfig{OnInterrupt: func() {}})
	h.noRead.Store(true)
	h.mu.Lock()
	out, in := h.open[5].out, h.open[5].in
	h.mu.Unlock()
	for _, bad := range []uint32{3, 12 * 4096, ^uint32(0)} {
		atomicStore32(out, 4, bad) // read index of the outbound ring
		if err := c.TrySend(ring.TypeDataInband, 0, 1, []byte("x")); !errors.Is(err, ring.ErrCorrupt) {
			t.Errorf("read index %#x: TrySend %v, want ErrCorrupt", bad, err)
		}
		atomicStore32(in, 0, bad) // write index of the inbound ring
		if _, err := c.ReadPacket(make([]byte, 64)); !errors.Is(err, ring.ErrCorrupt) {
			t.Errorf("write index %#x: ReadPacket %v, want ErrCorrupt", bad, err)
		}
	}
	atomicStore32(out, 4, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.Send(ctx, ring.TypeDataInband, 0, 1, make([]byte, 100)); err != nil {
		t.Errorf("Send after the host repaired the read index: %v", err)
	}
	if err := c.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// The handler finds the message queue full and leaves the message in the
// slot. It must still wake the message goroutine: that goroutine may have
// drained the queue and gone to sleep between the handler's full() check
// and its overflow note, and it is the only one that rescans the slot
// when polling is off.
func TestOverflowWakesMessageGoroutine(t *testing.T) {
	h := newFakeHost(t)
	b, err := newBus(h, h.synic, Config{})
	if err != nil {
		t.Fatal(err)
	}
	b.q.tail.Store(msgQueueLen) // full, as the goroutine saw it last
	if ok, err := hv.DeliverMessage(h.synic.simp, hv.VMBusSINT, hv.MessageTypeVMBus, 0, []byte{4, 0, 0, 0, 0, 0, 0, 0}, false); !ok || err != nil {
		t.Fatal(ok, err)
	}
	b.handler()
	if hv.LoadMessageType(h.synic.simp, hv.VMBusSINT) == 0 {
		t.Fatal("message taken out of the slot although the queue was full")
	}
	if !b.overflowed.Load() || len(b.msgWake) != 1 {
		t.Fatalf("overflowed %v, wake tokens %d: the message goroutine would sleep with a message in the slot", b.overflowed.Load(), len(b.msgWake))
	}
}

// FuzzHostMessageSequence drives a connected bus with a sequence of host
// messages built from the fuzz input: offers (primaries and sub-channels),
// rescinds, answers nobody asked for, replays, event flags and raw bytes.
// Invariants: no panic or hang; Close ends, posts nothing after UNLOAD and
// leaves no goroutine behind.
func FuzzHostMessageSequence(f *testing.F) {
	f.Add([]byte{0, 5, 0, 1, 5, 1, 5, 0, 6, 1, 2, 6, 3, 1, 4, 2})
	f.Add([]byte{0, 8, 0, 0, 9, 1, 1, 8, 1, 9, 0, 8, 0, 1, 8})
	f.Add([]byte{5, 0, 6, 0, 7, 0, 8, 5, 9, 0, 10, 0xff})
	f.Fuzz(func(t *testing.T, ops []byte) {
		h := newFakeHost(t)
		h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 1, 0x2001, 0)}
		base := runtime.NumGoroutine()
		b, err := Connect(testCtx(t), h, Config{PollInterval: time.Millisecond, CleanupTimeout: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		msg := func(typ uint32, size int, fields ...uint32) []byte {
			m := make([]byte, size)
			put32(m, typ)
			for i, v := range fields {
				put32(m[8+4*i:], v)
			}
			return m
		}
		for len(ops) >= 2 {
			op, arg := ops[0], uint32(ops[1])
			ops = ops[2:]
			var m []byte
			switch op % 12 {
			case 0:
				m = offerBytes(heartbeatClass, instanceA, arg, 0x2000+arg, 0)
			case 1:
				m = offerBytes(heartbeatClass, instanceA, arg, 0x2000+arg, uint16(arg%3))
			case 2:
				m = rescindBytes(arg % 16)
			case 3:
				m = msg(6, 20, arg%16, arg, arg&1) // OPENCHANNEL_RESULT
			case 4:
				m = msg(10, 20, arg%16, firstGPADLID+arg%4, arg&1) // GPADL_CREATED
			case 5:
				m = msg(12, 12, firstGPADLID+arg%4) // GPADL_TORNDOWN
			case 6:
				m = msg(15, 16, arg&1, arg>>1) // VERSION_RESPONSE
			case 7:
				m = msg(17, 8) // UNLOAD_RESPONSE
			case 8:
				m = msg(4, 8) // ALLOFFERS_DELIVERED
			case 9:
				m = msg(24, 16, arg%16, arg) // MODIFYCHANNEL_RESPONSE
			case 10:
				n := min(int(arg), len(ops), 240)
				m = append([]byte(nil), ops[:n]...)
				ops = ops[n:]
			case 11:
				for i := range hv.EventFlagWords {
					atomic.StoreUint32((*uint32)(ptr(h.synic.siefp, hv.SlotOffset(hv.VMBusSINT)+4*i)), arg*0x01010101)
				}
				h.kickDelivery()
				continue
			}
			h.send(m)
		}
		// Let the guest catch up with the host's queue before Close.
		waitFor(t, "host queue delivered", func() bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			return len(h.queue) == 0 && hv.LoadMessageType(h.synic.simp, hv.VMBusSINT) == 0
		})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.Close(ctx) // a hostile sequence may make it fail; it must end
		if rest := afterUnload(h); len(rest) != 0 {
			t.Fatalf("guest posted %v after UNLOAD", rest)
		}
		waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= base })
	})
}
