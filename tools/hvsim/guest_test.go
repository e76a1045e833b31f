package hvsim

// A deliberately small, test-only guest that speaks VMBus byte for byte from
// the literal offsets of docs/hyperv-protocol.md. It shares no
// code with the server (only the seam), so an offset the server got wrong
// shows up here.

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/gohv/gohv/hv"
)

const testWait = 10 * time.Second // deadline against hangs, never asserted

type tguest struct {
	t   testing.TB
	h   *Host
	p   hv.Platform
	syn hv.SynIC

	msgs chan []byte

	evMu   sync.Mutex
	events map[uint32]int
	evKick chan struct{}

	conn uint32 // message connection id to use after negotiation

	vpMsgs, vpEvents [4]atomic.Int32
}

func a32(b []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
func a64(b []byte, off int) *uint64 { return (*uint64)(unsafe.Pointer(&b[off])) }

// newGuest builds a host and a guest whose SINT2 handler drains the slot
// (docs/hyperv-protocol.md §2.3) and the event flags (§2.2).
func newGuest(t testing.TB, cfg Config, devs ...Device) *tguest {
	t.Helper()
	if cfg.OnViolation == nil {
		cfg.OnViolation = func(error) {}
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	for _, d := range devs {
		if _, err := h.AddDevice(d); err != nil {
			t.Fatal(err)
		}
	}
	g := &tguest{t: t, h: h, p: h.Platform(), msgs: make(chan []byte, 256),
		events: map[uint32]int{}, evKick: make(chan struct{}, 1), conn: 1}
	g.syn = g.p.SynICs()[0]
	for i, s := range g.p.SynICs() {
		if err := s.SetHandler(2, func() { g.isr(i, s) }); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

func (g *tguest) isr(vp int, syn hv.SynIC) {
	simp := syn.MessagePage()
	slot := simp[2*256 : 3*256]
	if atomic.LoadUint32(a32(slot, 0)) != 0 {
		n := int(slot[4])
		if n > 240 {
			n = 240
		}
		m := make([]byte, n)
		copy(m, slot[16:16+n])
		atomic.StoreUint32(a32(slot, 0), 0)
		if atomic.LoadUint32(a32(slot, 4))&(1<<8) != 0 {
			syn.EndOfMessage()
		}
		g.vpMsgs[vp].Add(1)
		g.msgs <- m
	}
	flags := syn.EventFlagsPage()[2*256 : 3*256]
	got := false
	for w := 0; w < 32; w++ {
		v := atomic.SwapUint64(a64(flags, w*8), 0)
		for b := 0; b < 64; b++ {
			if v&(1<<b) != 0 {
				g.evMu.Lock()
				g.events[uint32(w*64+b)]++
				g.vpEvents[vp].Add(1)
				g.evMu.Unlock()
				got = true
			}
		}
	}
	if got {
		select {
		case g.evKick <- struct{}{}:
		default:
		}
	}
}

func (g *tguest) eventCount(relid uint32) int {
	g.evMu.Lock()
	defer g.evMu.Unlock()
	return g.events[relid]
}

func (g *tguest) post(conn uint32, msg []byte) error {
	for i := 0; ; i++ {
		err := g.p.PostMessage(conn, 1, msg)
		var st hv.Status
		if errors.As(err, &st) && st.Transient() && i < 1000 {
			time.Sleep(time.Millisecond)
			continue
		}
		return err
	}
}

func (g *tguest) mustPost(msg []byte) {
	g.t.Helper()
	if err := g.post(g.conn, msg); err != nil {
		g.t.Fatalf("PostMessage type %d: %v", binary.LittleEndian.Uint32(msg), err)
	}
}

// next returns the next host message.
func (g *tguest) next() []byte {
	g.t.Helper()
	select {
	case m := <-g.msgs:
		return m
	case <-time.After(testWait):
		g.t.Fatalf("no host message; host state:\n%s", g.h.Dump())
		return nil
	}
}

// expect returns the next host message and checks its type and size.
func (g *tguest) expect(typ uint32, size int) []byte {
	g.t.Helper()
	m := g.next()
	if len(m) < 8 || binary.LittleEndian.Uint32(m) != typ {
		g.t.Fatalf("host message % x, want type %d", m, typ)
	}
	if size >= 0 && len(m) != size {
		g.t.Fatalf("host message type %d has %d bytes, want %d", typ, len(m), size)
	}
	return m
}

// noMessage asserts that no host message is waiting after the host had
// time to process everything posted so far.
func (g *tguest) noMessage() {
	g.t.Helper()
	g.sync()
	select {
	case m := <-g.msgs:
		g.t.Fatalf("unexpected host message % x", m)
	default:
	}
}

// sync waits until the server processed everything posted (its queue is
// drained) and every message it produced was delivered and seen by the
// guest's handler, or is held for a busy slot (then the guest's EOM is
// what is missing, and waiting longer changes nothing).
func (g *tguest) sync() {
	g.t.Helper()
	deadline := time.Now().Add(testWait)
	for !g.quiet() {
		if time.Now().After(deadline) {
			g.t.Fatal("host never went quiet")
		}
		time.Sleep(time.Millisecond)
	}
}

func (g *tguest) quiet() bool {
	if g.h.srv.handled.Load() != g.h.srv.accepted.Load() {
		return false
	}
	for _, s := range g.h.synics {
		if s.delivered.Load() != s.posted.Load() && !s.waitingEOM.Load() && !s.delaying.Load() {
			return false
		}
	}
	return true
}

func put32(b []byte, off int, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }
func put64(b []byte, off int, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }
func get32(b []byte, off int) uint32    { return binary.LittleEndian.Uint32(b[off:]) }
func get16(b []byte, off int) uint16    { return binary.LittleEndian.Uint16(b[off:]) }

// initiateContact builds INITIATE_CONTACT (docs/hyperv-protocol.md §3.4, 40 bytes).
func initiateContact(version, vp uint32, intPage, mon1, mon2 uint64) []byte {
	m := make([]byte, 40)
	put32(m, 0, 14)
	put32(m, 8, version)
	put32(m, 12, vp)
	if version >= 0x50000 {
		m[16] = 2 // SINT
		m[17] = 0 // VTL
	} else {
		put64(m, 16, intPage)
	}
	put64(m, 24, mon1)
	put64(m, 32, mon2)
	return m
}

// connect negotiates like Linux (newest first, docs/hyperv-protocol.md §3.3/§3.11) and
// returns the version.
func (g *tguest) connect() uint32 {
	g.t.Helper()
	pages, err := g.p.AllocPages(3)
	if err != nil {
		g.t.Fatal(err)
	}
	for _, v := range []uint32{0x50003, 0x50002, 0x50001, 0x50000, 0x40001, 0x40000, 0x30000, 0x20004, 0x10001, 0xD} {
		conn := uint32(1)
		msg := initiateContact(v, 0, pages.PFN<<12, (pages.PFN+1)<<12, (pages.PFN+2)<<12)
		if v >= 0x50000 {
			conn = 4
		}
		err := g.post(conn, msg)
		if errors.Is(err, hv.StatusInvalidConnectionID) && conn == 4 {
			continue
		}
		if err != nil {
			g.t.Fatalf("INITIATE_CONTACT %#x: %v", v, err)
		}
		r := g.expect(15, 16)
		if r[8] == 0 {
			continue
		}
		if v >= 0x50000 {
			g.conn = get32(r, 12)
		} else {
			g.conn = 1
			if get32(r, 12) != v {
				g.t.Fatalf("VERSION_RESPONSE @12 = %#x, want the version %#x (docs/hyperv-protocol.md §3.5)", get32(r, 12), v)
			}
		}
		return v
	}
	g.t.Fatal("no version accepted")
	return 0
}

type gotOffer struct {
	class, inst [16]byte
	subIndex    uint16
	relid, conn uint32
}

func (g *tguest) requestOffers() []gotOffer {
	g.t.Helper()
	m := make([]byte, 8)
	put32(m, 0, 3)
	g.mustPost(m)
	var out []gotOffer
	for {
		r := g.next()
		switch get32(r, 0) {
		case 1:
			if len(r) != 196 {
				g.t.Fatalf("OFFERCHANNEL of %d bytes", len(r))
			}
			var o gotOffer
			copy(o.class[:], r[8:24])
			copy(o.inst[:], r[24:40])
			o.subIndex = get16(r, 180)
			o.relid = get32(r, 184)
			o.conn = get32(r, 192)
			out = append(out, o)
		case 4:
			if len(r) != 8 {
				g.t.Fatalf("ALLOFFERS_DELIVERED of %d bytes", len(r))
			}
			return out
		default:
			g.t.Fatalf("unexpected message % x during offers", r)
		}
	}
}

// createGPADL sends GPADL_HEADER + GPADL_BODY messages for pages
// (docs/hyperv-protocol.md §3.9) and returns the GPADL_CREATED status.
func (g *tguest) createGPADL(relid, id uint32, pfns []uint64) uint32 {
	g.t.Helper()
	n := len(pfns)
	first := min(n, 26)
	h := make([]byte, 28+8*first)
	put32(h, 0, 8)
	put32(h, 8, relid)
	put32(h, 12, id)
	binary.LittleEndian.PutUint16(h[16:], uint16(8+8*n))
	binary.LittleEndian.PutUint16(h[18:], 1)
	put32(h, 20, uint32(n*4096))
	put32(h, 24, 0)
	for i := 0; i < first; i++ {
		put64(h, 28+8*i, pfns[i])
	}
	g.mustPost(h)
	for sent, num := first, uint32(1); sent < n; num++ {
		k := min(n-sent, 28)
		b := make([]byte, 16+8*k)
		put32(b, 0, 9)
		put32(b, 8, num)
		put32(b, 12, id)
		for i := 0; i < k; i++ {
			put64(b, 16+8*i, pfns[sent+i])
		}
		g.mustPost(b)
		sent += k
	}
	r := g.expect(10, 20)
	if get32(r, 8) != relid || get32(r, 12) != id {
		g.t.Fatalf("GPADL_CREATED % x for relid %d id %#x", r, relid, id)
	}
	return get32(r, 16)
}

func openChannelMsg(relid, openID, gpadl, vp, down uint32) []byte {
	m := make([]byte, 148)
	put32(m, 0, 5)
	put32(m, 8, relid)
	put32(m, 12, openID)
	put32(m, 16, gpadl)
	put32(m, 20, vp)
	put32(m, 24, down)
	return m
}

func (g *tguest) open(relid, openID, gpadl, vp, down uint32) uint32 {
	g.t.Helper()
	g.mustPost(openChannelMsg(relid, openID, gpadl, vp, down))
	r := g.expect(6, 20)
	if get32(r, 8) != relid || get32(r, 12) != openID {
		g.t.Fatalf("OPENCHANNEL_RESULT % x", r)
	}
	return get32(r, 16)
}

func pfnList(p hv.Pages) []uint64 {
	out := make([]uint64, p.Count())
	for i := range out {
		out[i] = p.PFNAt(i)
	}
	return out
}

// gring is the guest's view of one ring (docs/hyperv-protocol.md §4.2, §4.3).
type gring struct{ mem []byte }

func (r gring) hdr() []byte  { return r.mem[:4096] }
func (r gring) data() []byte { return r.mem[4096:] }
func (r gring) size() uint32 { return uint32(len(r.mem) - 4096) }

func (r gring) writable(w, rd uint32) uint32 {
	if w >= rd {
		return r.size() - (w - rd)
	}
	return rd - w
}

func (r gring) copyIn(off uint32, src []byte) {
	for i, c := range src {
		r.data()[(off+uint32(i))%r.size()] = c
	}
}

func (r gring) copyOut(off uint32, dst []byte) {
	for i := range dst {
		dst[i] = r.data()[(off+uint32(i))%r.size()]
	}
}

// write produces one packet; it reports whether the host must be
// signalled and false for ok when the ring is full.
func (r gring) write(typ, flags uint16, txid uint64, payload []byte) (signal, ok bool) {
	h := r.hdr()
	w := atomic.LoadUint32(a32(h, 0))
	rd := atomic.LoadUint32(a32(h, 4))
	total := (16 + len(payload) + 7) &^ 7
	if r.writable(w, rd) <= uint32(total+8) {
		return false, false
	}
	pkt := make([]byte, total+8)
	binary.LittleEndian.PutUint16(pkt[0:], typ)
	binary.LittleEndian.PutUint16(pkt[2:], 2)
	binary.LittleEndian.PutUint16(pkt[4:], uint16(total/8))
	binary.LittleEndian.PutUint16(pkt[6:], flags)
	binary.LittleEndian.PutUint64(pkt[8:], txid)
	copy(pkt[16:], payload)
	binary.LittleEndian.PutUint64(pkt[total:], uint64(w)<<32)
	r.copyIn(w, pkt)
	atomic.StoreUint32(a32(h, 0), (w+uint32(total+8))%r.size())
	return atomic.LoadUint32(a32(h, 8)) == 0 && atomic.LoadUint32(a32(h, 4)) == w, true
}

// read consumes one packet (descriptor to padding) or returns nil.
func (r gring) read() []byte {
	h := r.hdr()
	w := atomic.LoadUint32(a32(h, 0))
	rd := atomic.LoadUint32(a32(h, 4))
	if w == rd {
		return nil
	}
	var d [16]byte
	r.copyOut(rd, d[:])
	total := uint32(get16(d[:], 4)) * 8
	pkt := make([]byte, total)
	r.copyOut(rd, pkt)
	atomic.StoreUint32(a32(h, 4), (rd+total+8)%r.size())
	return pkt
}

// recDevice hands its channels to the test.
type recDevice struct {
	spec   OfferSpec
	opened chan *Channel
	closed chan *Channel
}

func newRecDevice(class string) *recDevice {
	return &recDevice{spec: OfferSpec{Class: MustParseGUID(class), Instance: MustParseGUID("11111111-2222-3333-4444-555555555555")},
		opened: make(chan *Channel, 8), closed: make(chan *Channel, 8)}
}

func (d *recDevice) Offer() OfferSpec       { return d.spec }
func (d *recDevice) Open(ch *Channel) error { d.opened <- ch; return nil }
func (d *recDevice) Close(ch *Channel)      { d.closed <- ch }

func recvCh(t testing.TB, c chan *Channel) *Channel {
	t.Helper()
	select {
	case ch := <-c:
		return ch
	case <-time.After(testWait):
		t.Fatal("device hook not called")
		return nil
	}
}

// openedChannel is a connected guest with one open channel of a recDevice.
type openedChannel struct {
	g       *tguest
	dev     *recDevice
	relid   uint32
	conn    uint32
	pages   hv.Pages
	out, in gring // guest→host, host→guest
	ch      *Channel
}

func setupChannel(t testing.TB, cfg Config, ringPages, down int) *openedChannel {
	t.Helper()
	dev := newRecDevice("57164f39-9115-4e78-ab55-382f3bd5422d")
	oc := setupDevice(t, cfg, dev, ringPages, down)
	oc.dev = dev
	oc.ch = recvCh(t, dev.opened)
	return oc
}

// setupDevice connects a guest to a host offering only dev and opens it.
func setupDevice(t testing.TB, cfg Config, dev Device, ringPages, down int) *openedChannel {
	t.Helper()
	g := newGuest(t, cfg, dev)
	g.connect()
	offers := g.requestOffers()
	if len(offers) != 1 {
		t.Fatalf("%d offers", len(offers))
	}
	pages, err := g.p.AllocPages(ringPages)
	if err != nil {
		t.Fatal(err)
	}
	relid := offers[0].relid
	if st := g.createGPADL(relid, 0xE1E10, pfnList(pages)); st != 0 {
		t.Fatalf("GPADL_CREATED status %#x", st)
	}
	if st := g.open(relid, relid, 0xE1E10, 0, uint32(down)); st != 0 {
		t.Fatalf("OPENCHANNEL_RESULT status %#x: %v", st, g.h.Violations())
	}
	return &openedChannel{g: g, relid: relid, conn: offers[0].conn, pages: pages,
		out: gring{pages.Mem[:down*4096]}, in: gring{pages.Mem[down*4096:]}}
}

func noViolations(t testing.TB, h *Host) {
	t.Helper()
	if v := h.Violations(); len(v) != 0 {
		t.Fatalf("protocol violations: %v", v)
	}
}
