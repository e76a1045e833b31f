package hvsim

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestGUIDWire(t *testing.T) {
	// Example of reference "Conventions".
	g := MustParseGUID("f8615163-df3e-46c5-913f-f2d2f965ed0e")
	want := []byte{0x63, 0x51, 0x61, 0xf8, 0x3e, 0xdf, 0xc5, 0x46, 0x91, 0x3f, 0xf2, 0xd2, 0xf9, 0x65, 0xed, 0x0e}
	if w := g.Wire(); !bytes.Equal(w[:], want) {
		t.Fatalf("% x", w)
	}
	if g.String() != "f8615163-df3e-46c5-913f-f2d2f965ed0e" {
		t.Fatal(g.String())
	}
	for _, bad := range []string{"", "f8615163-df3e-46c5-913f-f2d2f965ed0", "g8615163-df3e-46c5-913f-f2d2f965ed0e"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// TestInterruptPageEra runs protocol 0.13: no connection ids in offers,
// host→guest events through the interrupt page's first half plus SIEFP bit
// 0, guest→host through its second half and connection 2 (docs/hyperv-protocol.md §3.12).
func TestInterruptPageEra(t *testing.T) {
	dev := newRecDevice("57164f39-9115-4e78-ab55-382f3bd5422d")
	g := newGuest(t, Config{Profile: WS2012R2}, dev)
	ip, _ := g.p.AllocPages(1)
	g.mustPostOn(1, initiateContact(0xD, 0, ip.PFN<<12, 0, 0))
	if r := g.expect(15, 16); r[8] != 1 {
		t.Fatal("0.13 rejected")
	}
	offers := g.requestOffers()
	if offers[0].conn != 0 {
		t.Errorf("0.13 offer carries connection id %#x", offers[0].conn)
	}
	pages, _ := g.p.AllocPages(8)
	relid := offers[0].relid
	g.createGPADL(relid, 3, pfnList(pages))
	if st := g.open(relid, 9, 3, 0, 4); st != 0 {
		t.Fatal(st)
	}
	ch := recvCh(t, dev.opened)
	if err := ch.Send(context.Background(), 6, 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, g, 0, 1)
	if v := atomic.LoadUint64(a64(ip.Mem, 0)); v != 1<<relid {
		t.Errorf("interrupt page first half %#x", v)
	}
	atomic.OrUint64(a64(ip.Mem, 2048), 1<<relid)
	if err := g.p.SignalEvent(2, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch.Signaled():
	case <-time.After(testWait):
		t.Fatal("no host signal through the interrupt page")
	}
	if v := atomic.LoadUint64(a64(ip.Mem, 2048)); v != 0 {
		t.Errorf("host left guest→host bits %#x", v)
	}
	// 0.13 has no UNLOAD_RESPONSE (docs/hyperv-protocol.md §3.2: since 1.1).
	m := make([]byte, 8)
	put32(m, 0, 16)
	g.mustPost(m)
	g.noMessage()
	noViolations(t, g.h)
}

// TestTargetVPs: control messages go to INITIATE_CONTACT's VP (3.0+), channel
// events to OPENCHANNEL's VP, and MODIFYCHANNEL moves them (docs/hyperv-protocol.md §3.4,
// §3.8, §3.10).
func TestTargetVPs(t *testing.T) {
	dev := newRecDevice("57164f39-9115-4e78-ab55-382f3bd5422d")
	g := newGuest(t, Config{VPs: 2}, dev)
	g.mustPostOn(4, initiateContact(0x50003, 1, 0, 0, 0))
	g.expect(15, 16)
	if g.vpMsgs[1].Load() != 1 || g.vpMsgs[0].Load() != 0 {
		t.Fatalf("VERSION_RESPONSE on VPs %d/%d", g.vpMsgs[0].Load(), g.vpMsgs[1].Load())
	}
	offers := g.requestOffers()
	pages, _ := g.p.AllocPages(8)
	relid := offers[0].relid
	g.createGPADL(relid, 3, pfnList(pages))
	if st := g.open(relid, 9, 3, 0, 4); st != 0 {
		t.Fatal(st)
	}
	ch := recvCh(t, dev.opened)
	in := gring{pages.Mem[4*4096:]}
	send := func() {
		if err := ch.Send(context.Background(), 6, 0, 1, nil); err != nil {
			t.Fatal(err)
		}
		in.read()
	}
	send()
	waitEvent(t, g, relid, 1)
	if g.vpEvents[0].Load() != 1 {
		t.Fatalf("event on VP0: %d", g.vpEvents[0].Load())
	}
	mod := make([]byte, 16)
	put32(mod, 0, 22)
	put32(mod, 8, relid)
	put32(mod, 12, 1)
	g.mustPost(mod)
	if r := g.expect(24, 16); get32(r, 8) != relid || get32(r, 12) != 0 {
		t.Fatalf("MODIFYCHANNEL_RESPONSE % x", r)
	}
	send()
	waitEvent(t, g, relid, 2)
	if g.vpEvents[1].Load() != 1 {
		t.Fatalf("event on VP1: %d", g.vpEvents[1].Load())
	}
	noViolations(t, g.h)
}

func TestRescindAfterPackets(t *testing.T) {
	oc := setupChannel(t, Config{}, 8, 4)
	g, ch := oc.g, oc.ch
	if !g.h.RescindAfterPackets(oc.relid, 2) {
		t.Fatal("fault not armed")
	}
	for i := 0; i < 3; i++ {
		oc.out.write(6, 1, uint64(i), nil)
	}
	buf := make([]byte, 64)
	for i := 0; i < 2; i++ {
		if _, ok, err := ch.Recv(buf); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	r := g.expect(2, 12)
	if get32(r, 8) != oc.relid {
		t.Fatalf("rescind % x", r)
	}
	<-ch.Done()
	if _, _, err := ch.Recv(buf); !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv after rescind: %v", err)
	}
}

func TestFailFast(t *testing.T) {
	h, err := New(Config{MemoryBytes: 1 << 20, FailFast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	defer func() {
		r := recover()
		if err, ok := r.(error); !ok || !errors.Is(err, ErrNotConnected) {
			t.Fatalf("recovered %v", r)
		}
	}()
	m := make([]byte, 8)
	put32(m, 0, 3)
	h.srv.handle(1, m)
	t.Fatal("no panic")
}

func TestGuestRingCorruptionIsViolation(t *testing.T) {
	oc := setupChannel(t, Config{}, 8, 4)
	put32m(oc.out.hdr(), 0, 13) // not a multiple of 8
	if _, _, err := oc.ch.Recv(make([]byte, 64)); !errors.Is(err, ErrRing) {
		t.Fatalf("Recv: %v", err)
	}
	recvCh(t, oc.dev.closed)
	if v := oc.g.h.Violations(); len(v) != 1 || !errors.Is(v[0], ErrRing) {
		t.Fatalf("violations %v", v)
	}
}

func TestDump(t *testing.T) {
	oc := setupChannel(t, Config{}, 8, 4)
	d := oc.g.h.Dump()
	for _, want := range []string{"connected=true", "version=5.3", "relid 1", "open=true", "gpadl 0xe1e10"} {
		if !bytes.Contains([]byte(d), []byte(want)) {
			t.Errorf("dump lacks %q:\n%s", want, d)
		}
	}
}

func TestDelayFaults(t *testing.T) {
	oc := setupChannel(t, Config{}, 8, 4)
	g, ch := oc.g, oc.ch
	g.h.Faults().DelayCompletions(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ch.Send(ctx, 0xB, 0, 1, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("delayed completion: %v", err)
	}
	if err := ch.Send(ctx, 6, 0, 1, nil); err != nil { // only completions wait
		t.Fatalf("in-band: %v", err)
	}
	g.h.Faults().DelayCompletions(0)
	g.h.Faults().DelayMessages(time.Hour)
	g.h.Rescind(oc.relid)
	g.noMessage() // held back; Close must still return
}

func BenchmarkHostSend(b *testing.B) {
	oc := setupChannel(b, Config{}, 2+64, 2)
	ch := oc.ch
	put32m(oc.in.hdr(), 8, 1) // guest masks interrupts: measure the ring
	payload := make([]byte, 1024)
	ctx := context.Background()
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := ch.Send(ctx, 6, 0, uint64(i), payload); err != nil {
			b.Fatal(err)
		}
		put32m(oc.in.hdr(), 4, get32m(oc.in.hdr(), 0)) // guest consumes everything
	}
}

func BenchmarkHostRecv(b *testing.B) {
	oc := setupChannel(b, Config{}, 2+64, 64)
	ch := oc.ch
	payload := make([]byte, 1024)
	buf := make([]byte, 2048)
	oc.out.write(6, 0, 1, payload)
	w := get32m(oc.out.hdr(), 0)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := ch.Recv(buf); !ok || err != nil {
			b.Fatal(ok, err)
		}
		// Replay the same packet: rewind the host's read position.
		ch.in.idx = 0
		put32m(oc.out.hdr(), 0, w)
	}
}

// BenchmarkMemcpy1K is the baseline for the ring benchmarks.
func BenchmarkMemcpy1K(b *testing.B) {
	src, dst := make([]byte, 1024), make([]byte, 1024+32)
	b.SetBytes(1024)
	for b.Loop() {
		copy(dst, src)
		copy(dst[16:], src[:16])
	}
}

func TestRelIDLimit(t *testing.T) {
	h, err := New(Config{MemoryBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	d := &Inert{}
	for i := 1; i <= 2047; i++ {
		if relid, err := h.AddDevice(d); err != nil || relid != uint32(i) {
			t.Fatalf("AddDevice %d: %d, %v", i, relid, err)
		}
	}
	if _, err := h.AddDevice(d); !errors.Is(err, ErrTooManyChannels) {
		t.Fatalf("2048th device: %v", err)
	}
}

// TestOfferLayout pins every OFFERCHANNEL field to docs/hyperv-protocol.md §3.6.
func TestOfferLayout(t *testing.T) {
	spec := OfferSpec{Class: ClassKVP, Instance: MustParseGUID("242ff919-07db-4180-9c2e-b86cb68c8c55"),
		Flags: 0x0010, MMIOMiB: 3}
	spec.UserDefined[0] = 4 // message-mode pipe
	dev := &Inert{Spec: spec}
	g := newGuest(t, Config{Profile: WS2019}, dev)
	g.connect()
	m := make([]byte, 8)
	put32(m, 0, 3)
	g.mustPost(m)
	r := g.expect(1, 196)
	want := make([]byte, 196)
	want[0] = 1
	copy(want[8:], []byte{0xe7, 0xf4, 0xa0, 0xa9, 0x45, 0x5a, 0x96, 0x4d, 0xb8, 0x27, 0x8a, 0x84, 0x1e, 0x8c, 0x03, 0xe6})
	copy(want[24:], []byte{0x19, 0xf9, 0x2f, 0x24, 0xdb, 0x07, 0x80, 0x41, 0x9c, 0x2e, 0xb8, 0x6c, 0xb6, 0x8c, 0x8c, 0x55})
	want[56] = 0x10
	want[58] = 3
	want[60] = 4
	want[184] = 1                              // relid
	put32(want, 192, defaultChannelConnBase+1) // connection id
	if !bytes.Equal(r, want) {
		t.Fatalf("offer\n got % x\nwant % x", r, want)
	}
	g.expect(4, 8)
}

func TestDropInterruptFraction(t *testing.T) {
	oc := setupChannel(t, Config{Seed: 1}, 8, 4)
	oc.g.h.Faults().DropInterruptFraction(1)
	for i := 0; i < 3; i++ {
		if err := oc.ch.Send(context.Background(), 6, 0, 1, nil); err != nil {
			t.Fatal(err)
		}
		oc.in.read()
	}
	if st := oc.ch.Stats(); st.InterruptsDropped != 3 || st.SignalsOut != 3 {
		t.Fatalf("stats %+v", st)
	}
	if n := oc.g.eventCount(oc.relid); n != 0 {
		t.Fatalf("guest saw %d events", n)
	}
}

func TestEchoDevice(t *testing.T) {
	oc := setupDevice(t, Config{}, &Echo{Spec: OfferSpec{Class: ClassNetVSC}}, 8, 4)
	for i, flags := range []uint16{1, 0} {
		sig, ok := oc.out.write(6, flags, uint64(40+i), []byte("12345678"))
		if !ok {
			t.Fatal("ring full")
		}
		if sig {
			if err := oc.g.p.SignalEvent(oc.conn, 0); err != nil {
				t.Fatal(err)
			}
		}
		pkt := oc.nextPacket(t)
		wantType := uint16(0xB)
		if flags == 0 {
			wantType = 6
		}
		if get16(pkt, 0) != wantType || binary64(pkt[8:]) != uint64(40+i) || string(pkt[16:24]) != "12345678" {
			t.Fatalf("echo % x", pkt)
		}
	}
	noViolations(t, oc.g.h)
}

// PhysAddr names arena memory only, and only whole slices inside it.
func TestArenaPhysAddr(t *testing.T) {
	h, err := New(Config{MemoryBytes: 1 << 20, BasePFN: 0x200})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	mem := h.arena.mem
	for _, c := range []struct {
		name string
		b    []byte
		gpa  uint64
		ok   bool
	}{
		{"first byte", mem[:1], 0x200 << 12, true},
		{"page 3 + 8", mem[3*4096+8 : 3*4096+100], 0x203<<12 + 8, true},
		{"whole arena", mem, 0x200 << 12, true},
		{"last byte", mem[len(mem)-1:], 0x200<<12 + uint64(len(mem)) - 1, true},
		{"empty", mem[:0], 0, false},
		{"heap", make([]byte, 16), 0, false},
	} {
		gpa, ok := h.Platform().(interface {
			PhysAddr([]byte) (uint64, bool)
		}).PhysAddr(c.b)
		if gpa != c.gpa || ok != c.ok {
			t.Errorf("%s: PhysAddr = %#x, %v; want %#x, %v", c.name, gpa, ok, c.gpa, c.ok)
		}
	}
	// A slice running past the arena's end, or starting before it, is not
	// host-visible as a whole: an arena over the middle of a larger
	// buffer.
	big := make([]byte, 4*4096)
	a := &arena{mem: big[4096 : 3*4096], basePFN: 0x10, pages: 2}
	for _, b := range [][]byte{big[3*4096-8 : 3*4096+8], big[4096-8 : 4096+8], big[3*4096:]} {
		if gpa, ok := a.PhysAddr(b); ok {
			t.Errorf("slice at %p (%d bytes) outside the arena reported at %#x", &b[0], len(b), gpa)
		}
	}
	if gpa, ok := a.PhysAddr(big[3*4096-8 : 3*4096]); !ok || gpa != 0x11<<12+4088 {
		t.Errorf("arena tail: %#x, %v", gpa, ok)
	}
}
