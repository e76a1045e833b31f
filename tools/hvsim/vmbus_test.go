package hvsim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gohv/gohv/hv"
)

func TestProfileVersions(t *testing.T) {
	tests := []struct {
		p    Profile
		want []uint32
	}{
		{WS2012R2, []uint32{0x30000, 0x20004, 0x10001, 0xD}},
		{WS2016, []uint32{0x40000, 0x30000, 0x20004, 0x10001, 0xD}},
		{WS2019, []uint32{0x50002, 0x50001, 0x50000, 0x40001, 0x40000, 0x30000, 0x20004, 0x10001, 0xD}},
		{WS2022, []uint32{0x50003, 0x50002, 0x50001, 0x50000, 0x40001, 0x40000, 0x30000, 0x20004, 0x10001, 0xD}},
	}
	for _, tc := range tests {
		if got := tc.p.Versions(); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%v: %x, want %x", tc.p, got, tc.want)
		}
	}
}

func TestNegotiateEachProfile(t *testing.T) {
	tests := []struct {
		p    Profile
		want uint32
	}{{WS2012R2, 0x30000}, {WS2016, 0x40000}, {WS2019, 0x50002}, {WS2022, 0x50003}}
	for _, tc := range tests {
		t.Run(tc.p.String(), func(t *testing.T) {
			g := newGuest(t, Config{Profile: tc.p})
			if v := g.connect(); v != tc.want {
				t.Fatalf("negotiated %#x, want %#x", v, tc.want)
			}
			if g.conn != 1 {
				t.Errorf("message connection %d, want 1", g.conn)
			}
			v, ok := g.h.Version()
			if !ok || v != tc.want {
				t.Errorf("host says %#x connected=%v", v, ok)
			}
			// Connection 4 exists only on hosts with 5.0 (docs/hyperv-protocol.md §1.8).
			noViolations(t, g.h)
			if tc.want < 0x50000 {
				err := g.p.PostMessage(4, 1, make([]byte, 8))
				if !errors.Is(err, hv.StatusInvalidConnectionID) {
					t.Errorf("PostMessage on 4 to a %v host: %v", tc.p, err)
				}
			}
		})
	}
}

func TestVersionResponseBytes(t *testing.T) {
	g := newGuest(t, Config{Profile: WS2022, MessageConnectionID: 7})
	// 6.0 is a real version WS2022 does not know: plain rejection.
	g.mustPostOn(4, initiateContact(0x60000, 0, 0, 0, 0))
	r := g.expect(15, 16)
	if !bytes.Equal(r, []byte{15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) {
		t.Errorf("rejection % x", r)
	}
	g.mustPostOn(4, initiateContact(0x50003, 0, 0, 0, 0))
	r = g.expect(15, 16)
	if !bytes.Equal(r, []byte{15, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0}) {
		t.Errorf("acceptance % x, want supported=1 state=0 connection 7", r)
	}
	noViolations(t, g.h)
	// Connection 7 must now be used; connection 1 is a violation.
	m := make([]byte, 8)
	put32(m, 0, 3)
	g.mustPostOn(1, m)
	g.sync()
	if v := g.h.Violations(); len(v) != 1 || !errors.Is(v[0], ErrWrongConnection) {
		t.Fatalf("violations %v", v)
	}
	g.mustPostOn(7, m)
	g.expect(4, 8)
}

func (g *tguest) mustPostOn(conn uint32, m []byte) {
	g.t.Helper()
	if err := g.post(conn, m); err != nil {
		g.t.Fatal(err)
	}
}

func TestPostMessageValidation(t *testing.T) {
	g := newGuest(t, Config{})
	tests := []struct {
		name string
		conn uint32
		typ  uint32
		n    int
		want hv.Status
	}{
		{"oversize", 1, 1, 241, hv.StatusInvalidParameter},
		{"type 0", 1, 0, 8, hv.StatusInvalidParameter},
		{"bit 31", 1, 0x80000001, 8, hv.StatusInvalidParameter},
		{"not vmbus type", 1, 2, 8, hv.StatusInvalidParameter},
		{"unknown connection", 99, 1, 8, hv.StatusInvalidConnectionID},
	}
	for _, tc := range tests {
		err := g.p.PostMessage(tc.conn, tc.typ, make([]byte, tc.n))
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := g.p.SignalEvent(12345, 0); !errors.Is(err, hv.StatusInvalidConnectionID) {
		t.Errorf("SignalEvent unknown: %v", err)
	}
	g.h.Faults().FailPostMessage(2)
	for i := 0; i < 2; i++ {
		if err := g.p.PostMessage(4, 1, initiateContact(0x50003, 0, 0, 0, 0)); !errors.Is(err, hv.StatusInsufficientBuffers) {
			t.Fatalf("faulted post %d: %v", i, err)
		}
	}
	if err := g.p.PostMessage(4, 1, initiateContact(0x50003, 0, 0, 0, 0)); err != nil {
		t.Fatal(err)
	}
	g.expect(15, 16)
}

func TestOffers(t *testing.T) {
	std := Standard()
	g := newGuest(t, Config{}, std.All...)
	g.connect()
	offers := g.requestOffers()
	if len(offers) != len(std.All) {
		t.Fatalf("%d offers, want %d", len(offers), len(std.All))
	}
	// netvsc class in wire layout (docs/hyperv-protocol.md, Conventions).
	netvsc := []byte{0x63, 0x51, 0x61, 0xf8, 0x3e, 0xdf, 0xc5, 0x46, 0x91, 0x3f, 0xf2, 0xd2, 0xf9, 0x65, 0xed, 0x0e}
	found := false
	seen := map[uint32]bool{}
	for i, o := range offers {
		if o.relid != uint32(i+1) {
			t.Errorf("offer %d relid %d, want %d", i, o.relid, i+1)
		}
		if o.conn == 0 || seen[o.conn] {
			t.Errorf("offer %d connection id %#x", i, o.conn)
		}
		seen[o.conn] = true
		if bytes.Equal(o.class[:], netvsc) {
			found = true
		}
	}
	if !found {
		t.Error("no netvsc offer")
	}
	// REQUESTOFFERS twice is a violation.
	m := make([]byte, 8)
	put32(m, 0, 3)
	g.mustPost(m)
	g.noMessage()
	if v := g.h.Violations(); len(v) != 1 || !errors.Is(v[0], ErrDuplicate) {
		t.Fatalf("violations %v", v)
	}
}

func TestHotAddSubChannelAndRescind(t *testing.T) {
	dev := newRecDevice("ba6163d9-04a1-4d29-b605-72e2ffb1dc7f")
	g := newGuest(t, Config{}, dev)
	g.connect()
	offers := g.requestOffers()
	subs, err := g.h.AddSubChannels(offers[0].relid, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, relid := range subs {
		r := g.expect(1, 196)
		if get32(r, 184) != relid || get16(r, 180) != uint16(i+1) || !bytes.Equal(r[8:40], offersBytes(offers[0])) {
			t.Errorf("sub-channel offer % x", r)
		}
	}
	hot := newRecDevice("f8615163-df3e-46c5-913f-f2d2f965ed0e")
	relid, err := g.h.AddDevice(hot)
	if err != nil {
		t.Fatal(err)
	}
	if r := g.expect(1, 196); get32(r, 184) != relid {
		t.Errorf("hot-add offer relid %d, want %d", get32(r, 184), relid)
	}
	if err := g.h.Rescind(relid); err != nil {
		t.Fatal(err)
	}
	r := g.expect(2, 12)
	if get32(r, 8) != relid {
		t.Errorf("rescind % x", r)
	}
	rel := make([]byte, 12)
	put32(rel, 0, 13)
	put32(rel, 8, relid)
	g.mustPost(rel)
	g.sync()
	if _, ok := g.h.ConnectionID(relid); ok {
		t.Error("released relid still known")
	}
	noViolations(t, g.h)
}

func offersBytes(o gotOffer) []byte { return append(o.class[:], o.inst[:]...) }

func TestGPADLMultiBodyAndOpen(t *testing.T) {
	oc := setupChannel(t, Config{}, 100, 40)
	g := oc.g
	g.h.srv.mu.Lock()
	gp := g.h.srv.gpadls[0xE1E10]
	g.h.srv.mu.Unlock()
	if gp == nil || len(gp.pfns) != 100 || gp.pfns[99] != oc.pages.PFNAt(99) {
		t.Fatalf("host GPADL %+v", gp)
	}
	if st := g.h.Stats(); st.Received[9] != 3 {
		t.Errorf("GPADL_BODY count %d, want 3 (26+28+28+18 PFNs)", st.Received[9])
	}
	if oc.ch.in.size != 39*4096 || oc.ch.out.size != 59*4096 {
		t.Errorf("ring sizes %d %d", oc.ch.in.size, oc.ch.out.size)
	}
	noViolations(t, g.h)
}

// TestRingExchange sends packets both ways and checks the signalling rule
// of docs/hyperv-protocol.md §4.6 on each side.
func TestRingExchange(t *testing.T) {
	oc := setupChannel(t, Config{}, 8, 4)
	g, ch := oc.g, oc.ch

	// Guest → host: first write on an empty ring signals, the second not.
	for i := 0; i < 2; i++ {
		sig, ok := oc.out.write(6, 1, uint64(100+i), []byte(fmt.Sprintf("ping %d", i)))
		if !ok || sig != (i == 0) {
			t.Fatalf("guest write %d: signal=%v ok=%v", i, sig, ok)
		}
		if sig {
			if err := g.p.SignalEvent(oc.conn, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	select {
	case <-ch.Signaled():
	case <-time.After(testWait):
		t.Fatal("host not signalled")
	}
	buf := make([]byte, 4096)
	for i := 0; i < 2; i++ {
		p, ok, err := ch.Recv(buf)
		if err != nil || !ok {
			t.Fatalf("recv %d: %v %v", i, ok, err)
		}
		want := fmt.Sprintf("ping %d", i)
		if p.Type != 6 || p.Flags != 1 || p.TransactionID != uint64(100+i) || string(p.Payload[:len(want)]) != want {
			t.Fatalf("packet %+v", p)
		}
	}
	if _, ok, _ := ch.Recv(buf); ok {
		t.Fatal("ring not empty")
	}
	// Read index published (docs/hyperv-protocol.md §4.2 @4) equals the write index.
	if r, w := get32m(oc.out.hdr(), 4), get32m(oc.out.hdr(), 0); r != w {
		t.Errorf("read %d write %d", r, w)
	}

	// Host → guest: the first packet interrupts, the second is suppressed.
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := ch.Send(ctx, 0xB, 0, uint64(200+i), []byte("pong")); err != nil {
			t.Fatal(err)
		}
	}
	waitEvent(t, g, oc.relid, 1)
	for i := 0; i < 2; i++ {
		pkt := oc.in.read()
		if pkt == nil || get16(pkt, 0) != 0xB || get16(pkt, 2) != 2 || get16(pkt, 4) != 3 ||
			binary64(pkt[8:]) != uint64(200+i) || string(pkt[16:20]) != "pong" {
			t.Fatalf("guest got % x", pkt)
		}
	}
	st := ch.Stats()
	if st.SignalsOut != 1 || st.SignalsSuppressed != 1 || st.PacketsOut != 2 || st.PacketsIn != 2 || st.SignalsIn != 1 {
		t.Errorf("stats %+v", st)
	}
	// With the guest's interrupt mask set, the host must not signal.
	put32m(oc.in.hdr(), 8, 1)
	if err := ch.Send(ctx, 6, 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	if st := ch.Stats(); st.SignalsOut != 1 {
		t.Errorf("signalled a masked guest: %+v", st)
	}
	noViolations(t, g.h)
}

func binary64(b []byte) uint64 { return uint64(get32(b, 0)) | uint64(get32(b, 4))<<32 }

func put32m(b []byte, off int, v uint32) { atomic.StoreUint32(a32(b, off), v) }

func waitEvent(t testing.TB, g *tguest, relid uint32, n int) {
	t.Helper()
	deadline := time.After(testWait)
	for g.eventCount(relid) < n {
		select {
		case <-g.evKick:
		case <-deadline:
			t.Fatalf("event for relid %d not seen (%d < %d)", relid, g.eventCount(relid), n)
		}
	}
}

// TestHostBlockedOnFullRing fills the host→guest ring and checks that the
// host publishes a pending send size and resumes after the guest frees
// space and signals (docs/hyperv-protocol.md §4.6).
func TestHostBlockedOnFullRing(t *testing.T) {
	oc := setupChannel(t, Config{}, 4, 2) // 4 KiB data per ring
	g, ch := oc.g, oc.ch
	n := g.h.FillGuestRing(oc.relid)
	if n != (4096-1)/24 { // empty packets are 24 bytes; never fill to w == r
		t.Errorf("filled with %d packets", n)
	}
	done := make(chan error, 1)
	go func() { done <- ch.Send(context.Background(), 6, 0, 9, make([]byte, 100)) }()
	deadline := time.Now().Add(testWait)
	for get32m(oc.in.hdr(), 12) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	pss := get32m(oc.in.hdr(), 12)
	if pss < 16+104+8 {
		t.Fatalf("pending send size %d", pss)
	}
	if get32m(oc.in.hdr(), 64)&1 == 0 {
		t.Error("host did not set the pending-send-size feature bit")
	}
	for i := 0; i < 10; i++ {
		oc.in.read()
	}
	if err := g.p.SignalEvent(oc.conn, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testWait):
		t.Fatal("host send never resumed")
	}
	if get32m(oc.in.hdr(), 12) != 0 {
		t.Error("pending send size not cleared")
	}
}

// TestGuestPendingSendSize: the host signals the guest when draining
// crosses the guest's pending send size.
func TestGuestPendingSendSize(t *testing.T) {
	oc := setupChannel(t, Config{}, 4, 2)
	g, ch := oc.g, oc.ch
	for {
		if _, ok := oc.out.write(6, 0, 1, make([]byte, 200)); !ok {
			break
		}
	}
	put32m(oc.out.hdr(), 64, 1)
	put32m(oc.out.hdr(), 12, 224) // the 200-byte packet, trailer included
	if err := g.p.SignalEvent(oc.conn, 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	if _, ok, err := ch.Recv(buf); !ok || err != nil {
		t.Fatal(ok, err)
	}
	waitEvent(t, g, oc.relid, 1)
	if st := ch.Stats(); st.PendingSendSizeSignals != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestPendingSendSizeExactRule: the host signals a blocked guest producer
// when, and only when, draining makes the free space exceed its pending
// send size P (docs/hyperv-protocol.md §4.6): before ≤ P < after. A P that the ring can
// never exceed (the data size) is never signalled, as on a real host; the
// largest packet the ring takes (size − 8) is.
func TestPendingSendSizeExactRule(t *testing.T) {
	for _, c := range []struct {
		name string
		p    uint32
		want uint64
	}{
		{"largest packet: size-8", 4088, 1},
		{"P == size: free never exceeds it", 4096, 0},
		{"P == free before the drain", 4096 - 32, 1},
		{"P below free before the drain", 4096 - 40, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			oc := setupChannel(t, Config{}, 4, 2)                     // 4096-byte data areas
			if _, ok := oc.out.write(6, 0, 1, make([]byte, 8)); !ok { // 32 bytes with trailer
				t.Fatal("write failed")
			}
			put32m(oc.out.hdr(), 64, 1)
			put32m(oc.out.hdr(), 12, c.p)
			if _, ok, err := oc.ch.Recv(make([]byte, 64)); !ok || err != nil {
				t.Fatal(ok, err)
			}
			if got := oc.ch.Stats().PendingSendSizeSignals; got != c.want {
				t.Errorf("P = %d, free 4064 → 4096: %d signals, want %d", c.p, got, c.want)
			}
		})
	}
}

func TestRingAllocs(t *testing.T) {
	oc := setupChannel(t, Config{}, 8, 4)
	ch := oc.ch
	put32m(oc.in.hdr(), 8, 1) // no interrupts: measure the ring alone
	ctx := context.Background()
	payload := make([]byte, 64)
	buf := make([]byte, 256)
	n := testing.AllocsPerRun(200, func() {
		if err := ch.Send(ctx, 6, 0, 1, payload); err != nil {
			t.Fatal(err)
		}
		oc.in.read()
	})
	if n != 1 { // the test guest's read allocates its copy
		t.Errorf("host send: %v allocs per packet (1 is the guest's)", n)
	}
	oc.out.write(6, 0, 1, payload)
	n = testing.AllocsPerRun(200, func() {
		if _, ok, err := ch.Recv(buf); !ok || err != nil {
			t.Fatal(ok, err)
		}
		oc.out.write(6, 0, 1, payload)
	})
	if n != 1 {
		t.Errorf("host recv: %v allocs per packet (1 is the guest's)", n)
	}
}

// TestEOMPending: with two messages queued the second lands in the slot only
// after the guest's EOM (docs/hyperv-protocol.md §2.3).
func TestEOMPending(t *testing.T) {
	h, err := New(Config{MemoryBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	syn := h.Platform().SynICs()[0]
	var calls atomic.Int32
	if err := syn.SetHandler(2, func() { calls.Add(1) }); err != nil { // a polling guest
		t.Fatal(err)
	}
	slot := syn.MessagePage()[512:768]
	h.synics[0].post([]byte{15, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3})
	h.synics[0].post([]byte{4, 0, 0, 0, 0, 0, 0, 0})
	deadline := time.Now().Add(testWait)
	for atomic.LoadUint32(a32(slot, 4))&(1<<8) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if get32m(slot, 0) != 1 || slot[4] != 11 || slot[5]&1 == 0 || slot[16] != 15 || slot[24] != 1 {
		t.Fatalf("slot header % x", slot[:32])
	}
	// The delivery goroutine holds the second message until the EOM:
	// once it waits for one, nothing but an EOM or an interrupt moves it,
	// so the freed slot stays empty.
	for !h.synics[0].waitingEOM.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	atomic.StoreUint32(a32(slot, 0), 0)
	if get32m(slot, 0) != 0 || !h.synics[0].waitingEOM.Load() {
		t.Fatal("second message delivered without EOM")
	}
	syn.EndOfMessage()
	for get32m(slot, 0) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if get32m(slot, 0) != 1 || slot[4] != 8 || slot[16] != 4 {
		t.Fatalf("second message % x", slot[:32])
	}
	if st := h.Stats(); st.Delivered[0] != 2 || st.PendingSet[0] < 1 || st.EOMs[0] != 1 {
		t.Errorf("stats %+v", st)
	}
}

func get32m(b []byte, off int) uint32 { return atomic.LoadUint32(a32(b, off)) }

// TestNoEOMNoDeadlock: a guest that never takes messages loses the
// overflow but the host keeps working.
func TestNoEOMNoDeadlock(t *testing.T) {
	h, err := New(Config{MemoryBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for i := 0; i < msgQueueDepth*3; i++ {
		h.synics[0].post([]byte{4, 0, 0, 0, 0, 0, 0, 0})
	}
	if h.Stats().MessagesDropped == 0 {
		t.Fatal("no overflow counted")
	}
	// PostMessage still answers.
	if err := h.Platform().PostMessage(4, 1, initiateContact(0x50003, 0, 0, 0, 0)); err != nil {
		t.Fatal(err)
	}
}

func TestUnloadAndReconnect(t *testing.T) {
	oc := setupChannel(t, Config{Profile: WS2016}, 8, 4)
	g := oc.g
	m := make([]byte, 8)
	put32(m, 0, 16)
	g.mustPost(m)
	g.expect(17, 8)
	recvCh(t, oc.dev.closed)
	select {
	case <-oc.ch.Done():
	default:
		t.Fatal("channel still open after UNLOAD")
	}
	if _, ok := g.h.Version(); ok {
		t.Fatal("still connected")
	}
	// Everything is invalid now, also the GPADL: a new connection can reuse
	// the id (docs/hyperv-protocol.md §3.9).
	g.connect()
	offers := g.requestOffers()
	if st := g.createGPADL(offers[0].relid, 0xE1E10, pfnList(oc.pages)); st != 0 {
		t.Fatalf("GPADL after unload: %#x", st)
	}
	noViolations(t, g.h)
}

func TestCloseTeardownRelease(t *testing.T) {
	oc := setupChannel(t, Config{}, 8, 4)
	g := oc.g
	// Rescind while open: the host side closes at once.
	if err := g.h.Rescind(oc.relid); err != nil {
		t.Fatal(err)
	}
	g.expect(2, 12)
	recvCh(t, oc.dev.closed)
	cl := make([]byte, 12)
	put32(cl, 0, 7)
	put32(cl, 8, oc.relid)
	g.mustPost(cl)
	td := make([]byte, 16)
	put32(td, 0, 11)
	put32(td, 8, oc.relid)
	put32(td, 12, 0xE1E10)
	g.mustPost(td)
	r := g.expect(12, 12)
	if get32(r, 8) != 0xE1E10 {
		t.Errorf("TORNDOWN % x", r)
	}
	rel := make([]byte, 12)
	put32(rel, 0, 13)
	put32(rel, 8, oc.relid)
	g.mustPost(rel)
	g.sync()
	noViolations(t, g.h)
}

// TestStrictness sends each forbidden message and checks the violation.
func TestStrictness(t *testing.T) {
	msg := func(typ uint32, size int, fields ...uint32) []byte {
		m := make([]byte, size)
		put32(m, 0, typ)
		for i, f := range fields {
			put32(m, 8+4*i, f)
		}
		return m
	}
	gpadlHdr := func(relid, id uint32, rangeLen uint16, byteCount uint32, pfns ...uint64) []byte {
		m := make([]byte, 28+8*len(pfns))
		put32(m, 0, 8)
		put32(m, 8, relid)
		put32(m, 12, id)
		m[16], m[17] = byte(rangeLen), byte(rangeLen>>8)
		m[18] = 1
		put32(m, 20, byteCount)
		for i, p := range pfns {
			put64(m, 28+8*i, p)
		}
		return m
	}
	tests := []struct {
		name  string
		setup func(oc *openedChannel) []byte
		want  error
		reply uint32 // expected host reply type, 0 = none
	}{
		{"unknown type", func(*openedChannel) []byte { return msg(99, 8) }, ErrUnknownMessage, 0},
		{"short OPENCHANNEL", func(*openedChannel) []byte { return msg(5, 20) }, ErrShortMessage, 0},
		{"GPADL pages vs range length", func(oc *openedChannel) []byte {
			return gpadlHdr(oc.relid, 7, 8+8*2, 4096, oc.pages.PFN)
		}, ErrBadGPADL, 10},
		{"GPADL byte count vs pages", func(oc *openedChannel) []byte {
			return gpadlHdr(oc.relid, 7, 8+8*1, 2*4096, oc.pages.PFN)
		}, ErrBadGPADL, 10},
		{"GPADL PFN outside arena", func(oc *openedChannel) []byte {
			return gpadlHdr(oc.relid, 7, 8+8*1, 4096, 0)
		}, ErrBadGPADL, 10},
		{"GPADL unknown relid", func(oc *openedChannel) []byte {
			return gpadlHdr(77, 7, 8+8*1, 4096, oc.pages.PFN)
		}, ErrUnknownChannel, 10},
		{"GPADL duplicate id", func(oc *openedChannel) []byte {
			return gpadlHdr(oc.relid, 0xE1E10, 8+8*1, 4096, oc.pages.PFN)
		}, ErrDuplicate, 0},
		{"GPADL body unknown id", func(*openedChannel) []byte { return msg(9, 24, 1, 0x1234) }, ErrUnknownGPADL, 0},
		{"open unknown relid", func(*openedChannel) []byte { return openChannelMsg(77, 1, 0xE1E10, 0, 4) }, ErrUnknownChannel, 6},
		{"open already open", func(oc *openedChannel) []byte { return openChannelMsg(oc.relid, 1, 0xE1E10, 0, 4) }, ErrChannelState, 6},
		{"teardown in use", func(oc *openedChannel) []byte { return msg(11, 16, oc.relid, 0xE1E10) }, ErrGPADLInUse, 0},
		{"teardown unknown", func(oc *openedChannel) []byte { return msg(11, 16, oc.relid, 0x999) }, ErrUnknownGPADL, 0},
		{"release open relid", func(oc *openedChannel) []byte { return msg(13, 12, oc.relid) }, ErrChannelState, 0},
		{"close unknown", func(*openedChannel) []byte { return msg(7, 12, 77) }, ErrUnknownChannel, 0},
		{"second INITIATE_CONTACT", func(*openedChannel) []byte { return initiateContact(0x50003, 0, 0, 0, 0) }, ErrDuplicate, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			oc := setupChannel(t, Config{}, 8, 4)
			g := oc.g
			conn := g.conn
			m := tc.setup(oc)
			if get32(m, 0) == 14 {
				conn = 4
			}
			g.mustPostOn(conn, m)
			if tc.reply != 0 {
				r := g.next()
				if get32(r, 0) != tc.reply {
					t.Fatalf("reply % x, want type %d", r, tc.reply)
				}
				if st := get32(r, 16); st == 0 {
					t.Errorf("reply with success status: % x", r)
				}
			}
			g.noMessage()
			v := g.h.Violations()
			if len(v) != 1 || !errors.Is(v[0], tc.want) {
				t.Fatalf("violations %v, want one %v", v, tc.want)
			}
		})
	}
}

func TestStrictOpenParameters(t *testing.T) {
	tests := []struct {
		name       string
		down, vp   uint32
		otherRelid bool
		want       error
	}{
		{"downstream 0", 0, 0, false, ErrBadOpen},
		{"downstream = pages", 8, 0, false, ErrBadOpen},
		{"downstream beyond", 9, 0, false, ErrBadOpen},
		{"bad VP", 4, 5, false, ErrBadOpen},
		{"GPADL of other relid", 4, 0, true, ErrBadOpen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newRecDevice("57164f39-9115-4e78-ab55-382f3bd5422d"), newRecDevice("0e0b6031-5213-4934-818b-38d90ced39db")
			g := newGuest(t, Config{}, a, b)
			g.connect()
			offers := g.requestOffers()
			pages, _ := g.p.AllocPages(8)
			owner := offers[0].relid
			if tc.otherRelid {
				owner = offers[1].relid
			}
			if st := g.createGPADL(owner, 5, pfnList(pages)); st != 0 {
				t.Fatal(st)
			}
			if st := g.open(offers[0].relid, 1, 5, tc.vp, tc.down); st == 0 {
				t.Fatal("open succeeded")
			}
			v := g.h.Violations()
			if len(v) != 1 || !errors.Is(v[0], tc.want) {
				t.Fatalf("violations %v", v)
			}
		})
	}
}

func TestNotConnectedAndBadContact(t *testing.T) {
	g := newGuest(t, Config{Profile: WS2016})
	m := make([]byte, 8)
	put32(m, 0, 3)
	g.mustPostOn(1, m)
	g.noMessage()
	pg, _ := g.p.AllocPages(3)
	cases := []struct {
		name string
		msg  []byte
	}{
		{"unknown version", initiateContact(0x40002, 0, pg.PFN<<12, 0, 0)},
		{"no interrupt page", initiateContact(0x40000, 0, 0, 0, 0)},
		{"interrupt page outside arena", initiateContact(0x40000, 0, 0x10000000000, 0, 0)},
		{"one monitor page", initiateContact(0x40000, 0, pg.PFN<<12, (pg.PFN+1)<<12, 0)},
	}
	for _, c := range cases {
		g.mustPostOn(1, c.msg)
		if r := g.expect(15, 16); r[8] != 0 {
			t.Errorf("%s accepted", c.name)
		}
	}
	v := g.h.Violations()
	if len(v) != 5 || !errors.Is(v[0], ErrNotConnected) {
		t.Fatalf("violations %v", v)
	}
	for _, e := range v[1:] {
		if !errors.Is(e, ErrBadVersion) {
			t.Errorf("violation %v", e)
		}
	}
}

func TestDropInterruptFault(t *testing.T) {
	oc := setupChannel(t, Config{}, 8, 4)
	g, ch := oc.g, oc.ch
	g.h.Faults().DropInterrupts(1)
	ctx := context.Background()
	if err := ch.Send(ctx, 6, 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	flags := g.syn.EventFlagsPage()[512:]
	if atomic.LoadUint64(a64(flags, 0))&(1<<oc.relid) == 0 {
		t.Fatal("SIEFP bit not set for a dropped interrupt")
	}
	if st := ch.Stats(); st.InterruptsDropped != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBlackHoleFault(t *testing.T) {
	dev := newRecDevice("57164f39-9115-4e78-ab55-382f3bd5422d")
	g := newGuest(t, Config{}, dev)
	g.connect()
	offers := g.requestOffers()
	g.h.Faults().BlackHole(5, true)
	pages, _ := g.p.AllocPages(8)
	g.createGPADL(offers[0].relid, 1, pfnList(pages))
	g.mustPost(openChannelMsg(offers[0].relid, 1, 1, 0, 4))
	g.noMessage()
	if st := g.h.Stats(); st.BlackHoled != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestReorderCompletions(t *testing.T) {
	oc := setupChannel(t, Config{}, 8, 4)
	g, ch := oc.g, oc.ch
	g.h.Faults().ReorderCompletions(oc.relid, true)
	ctx := context.Background()
	for i := 1; i <= 2; i++ {
		if err := ch.Send(ctx, 0xB, 0, uint64(i), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	a, b := oc.in.read(), oc.in.read()
	if a == nil || b == nil || binary64(a[8:]) != 2 || binary64(b[8:]) != 1 {
		t.Fatalf("order % x / % x", a, b)
	}
}

func TestMalformedInjection(t *testing.T) {
	g := newGuest(t, Config{})
	g.connect()
	g.h.InjectMalformed(MalformedBadType)
	if r := g.next(); get32(r, 0) != 0x7F {
		t.Errorf("% x", r)
	}
	g.h.InjectMalformed(MalformedTruncatedOffer)
	if r := g.next(); get32(r, 0) != 1 || len(r) != 100 {
		t.Errorf("% x", r)
	}
	g.h.InjectMalformed(MalformedOversizeSlot)
	if r := g.next(); len(r) != 240 { // the guest clamps size 255
		t.Errorf("%d bytes", len(r))
	}
}

// TestReleaseWithGPADLLeftIsViolation: RELID_RELEASED while a GPADL of
// the channel still exists is a recorded violation (docs/hyperv-protocol.md §3.11
// step 6); with every GPADL torn down it is not.
func TestReleaseWithGPADLLeftIsViolation(t *testing.T) {
	for _, teardown := range []bool{false, true} {
		oc := setupChannel(t, Config{}, 8, 4)
		g := oc.g
		if err := g.h.Rescind(oc.relid); err != nil {
			t.Fatal(err)
		}
		g.expect(2, 12)
		cl := make([]byte, 12)
		put32(cl, 0, 7)
		put32(cl, 8, oc.relid)
		g.mustPost(cl)
		if teardown {
			td := make([]byte, 16)
			put32(td, 0, 11)
			put32(td, 8, oc.relid)
			put32(td, 12, 0xE1E10)
			g.mustPost(td)
			g.expect(12, 12)
		}
		rel := make([]byte, 12)
		put32(rel, 0, 13)
		put32(rel, 8, oc.relid)
		g.mustPost(rel)
		g.sync()
		v := g.h.Violations()
		if teardown && len(v) != 0 {
			t.Errorf("violations after a clean release: %v", v)
		}
		if !teardown && (len(v) != 1 || !errors.Is(v[0], ErrChannelState)) {
			t.Errorf("release with the ring GPADL left: violations %v, want one ErrChannelState", v)
		}
	}
}

// TestRescindAtGPADL: the fault rescinds the channel after taking its
// GPADL_HEADER; RESCIND comes first, then GPADL_CREATED with success.
func TestRescindAtGPADL(t *testing.T) {
	g := newGuest(t, Config{}, newRecDevice("57164f39-9115-4e78-ab55-382f3bd5422d"))
	g.connect()
	relid := g.requestOffers()[0].relid
	g.h.Faults().RescindAtGPADL(relid)
	pages, err := g.h.Platform().AllocPages(2)
	if err != nil {
		t.Fatal(err)
	}
	h := make([]byte, 28+16)
	put32(h, 0, 8)
	put32(h, 8, relid)
	put32(h, 12, 0x77)
	h[16] = 8 + 16
	h[18] = 1
	put32(h, 20, 2*4096)
	put64(h, 28, pages.PFN)
	put64(h, 36, pages.PFN+1)
	g.mustPost(h)
	if r := g.expect(2, 12); get32(r, 8) != relid {
		t.Fatalf("RESCIND % x", r)
	}
	if r := g.expect(10, 20); get32(r, 12) != 0x77 || get32(r, 16) != 0 {
		t.Fatalf("GPADL_CREATED % x, want success for 0x77", r)
	}
	noViolations(t, g.h)
}
