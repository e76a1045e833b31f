package storvsp

// A test-only guest: VMBus and VSTOR written byte by byte from the offsets
// of docs/hyperv-protocol.md (§3, §4, §6), sharing no code with the
// device, so an offset the device got wrong shows up here.

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/tools/hvsim"
)

const testWait = 10 * time.Second // deadline against hangs, never asserted

func p16(b []byte, off int, v uint16) { binary.LittleEndian.PutUint16(b[off:], v) }
func p32(b []byte, off int, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }
func p64(b []byte, off int, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }
func g16(b []byte, off int) uint16    { return binary.LittleEndian.Uint16(b[off:]) }
func g32(b []byte, off int) uint32    { return binary.LittleEndian.Uint32(b[off:]) }
func g64(b []byte, off int) uint64    { return binary.LittleEndian.Uint64(b[off:]) }

func a32(b []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
func a64(b []byte, off int) *uint64 { return (*uint64)(unsafe.Pointer(&b[off])) }

type tguest struct {
	t    testing.TB
	h    *hvsim.Host
	p    hv.Platform
	msgs chan []byte
	conn uint32
	kick chan struct{} // any channel event

	mu     sync.Mutex
	offers []offer
	nextID uint32
}

type offer struct {
	class, inst [16]byte
	user        [120]byte
	subIndex    uint16
	relid, conn uint32
}

func newGuest(t testing.TB, cfg hvsim.Config, devs ...hvsim.Device) *tguest {
	t.Helper()
	if cfg.OnViolation == nil {
		cfg.OnViolation = func(error) {}
	}
	h, err := hvsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	for _, d := range devs {
		if _, err := h.AddDevice(d); err != nil {
			t.Fatal(err)
		}
	}
	g := &tguest{t: t, h: h, p: h.Platform(), msgs: make(chan []byte, 256), kick: make(chan struct{}, 1), nextID: 0x1000}
	for _, s := range g.p.SynICs() {
		if err := s.SetHandler(2, func() { g.isr(s) }); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

// isr drains SINT2's message slot (§2.1, §2.3) and event flags (§2.2).
func (g *tguest) isr(s hv.SynIC) {
	slot := s.MessagePage()[2*256 : 3*256]
	if atomic.LoadUint32(a32(slot, 0)) != 0 {
		n := min(int(slot[4]), 240)
		m := make([]byte, n)
		copy(m, slot[16:16+n])
		atomic.StoreUint32(a32(slot, 0), 0)
		if atomic.LoadUint32(a32(slot, 4))&(1<<8) != 0 {
			s.EndOfMessage()
		}
		g.msgs <- m
	}
	flags := s.EventFlagsPage()[2*256 : 3*256]
	for w := 0; w < 32; w++ {
		if atomic.SwapUint64(a64(flags, w*8), 0) != 0 {
			select {
			case g.kick <- struct{}{}:
			default:
			}
		}
	}
}

func (g *tguest) post(msg []byte) {
	g.t.Helper()
	for i := 0; ; i++ {
		err := g.p.PostMessage(g.conn, 1, msg)
		var st hv.Status
		if errors.As(err, &st) && st.Transient() && i < 1000 {
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			g.t.Fatalf("PostMessage type %d: %v", g32(msg, 0), err)
		}
		return
	}
}

// next returns the next host message that is not an offer (offers are
// collected).
func (g *tguest) next() []byte {
	g.t.Helper()
	for {
		select {
		case m := <-g.msgs:
			if g32(m, 0) == 1 {
				g.addOffer(m)
				continue
			}
			return m
		case <-time.After(testWait):
			g.t.Fatalf("no host message")
			return nil
		}
	}
}

func (g *tguest) addOffer(m []byte) {
	if len(m) != 196 {
		g.t.Errorf("OFFERCHANNEL of %d bytes", len(m))
		return
	}
	var o offer
	copy(o.class[:], m[8:24])
	copy(o.inst[:], m[24:40])
	copy(o.user[:], m[60:180])
	o.subIndex, o.relid, o.conn = g16(m, 180), g32(m, 184), g32(m, 192)
	g.mu.Lock()
	g.offers = append(g.offers, o)
	g.mu.Unlock()
}

// connect negotiates VMBus 5.3 on connection 4 (§3.4, §3.5) and takes the
// initial offers (§3.11).
func (g *tguest) connect() []offer {
	g.t.Helper()
	m := make([]byte, 40)
	p32(m, 0, 14)
	if g.h.Profile().MaxVersion() >= 0x50000 {
		p32(m, 8, 0x50003)
		m[16] = 2 // SINT
		g.conn = 4
	} else {
		// The newest version on connection 1, with an interrupt page (§3.4).
		pg, err := g.p.AllocPages(1)
		if err != nil {
			g.t.Fatal(err)
		}
		p32(m, 8, g.h.Profile().MaxVersion())
		p64(m, 16, pg.PFN<<12)
		g.conn = 1
	}
	g.post(m)
	r := g.next()
	if g32(r, 0) != 15 || r[8] == 0 {
		g.t.Fatalf("VERSION_RESPONSE % x", r)
	}
	if g.conn == 4 {
		g.conn = g32(r, 12)
	}
	req := make([]byte, 8)
	p32(req, 0, 3)
	g.post(req)
	if r := g.next(); g32(r, 0) != 4 {
		g.t.Fatalf("want ALLOFFERS_DELIVERED, got % x", r)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]offer(nil), g.offers...)
}

// waitOffers waits until n offers of sub-channels of primary arrived.
func (g *tguest) waitSubOffers(n int) []offer {
	g.t.Helper()
	deadline := time.Now().Add(testWait)
	for time.Now().Before(deadline) {
		select {
		case m := <-g.msgs:
			if g32(m, 0) == 1 {
				g.addOffer(m)
			} else {
				g.t.Fatalf("unexpected message % x", m)
			}
		case <-time.After(10 * time.Millisecond):
		}
		g.mu.Lock()
		var subs []offer
		for _, o := range g.offers {
			if o.subIndex != 0 {
				subs = append(subs, o)
			}
		}
		g.mu.Unlock()
		if len(subs) >= n {
			return subs
		}
	}
	g.t.Fatalf("fewer than %d sub-channel offers", n)
	return nil
}

// tchan is an open channel: rings per §4.1–§4.3.
type tchan struct {
	g       *tguest
	relid   uint32
	conn    uint32
	out, in []byte // guest→host, host→guest ring (header page + data)
	mu      sync.Mutex
	// skipNotes makes completion() skip (and count) unsolicited packets.
	skipNotes bool
	notes     int
}

func (g *tguest) open(o offer, ringPages int) *tchan {
	g.t.Helper()
	pages, err := g.p.AllocPages(2 * ringPages)
	if err != nil {
		g.t.Fatal(err)
	}
	id := g.newGPADL(o.relid, pages)
	m := make([]byte, 148)
	p32(m, 0, 5)
	p32(m, 8, o.relid)
	p32(m, 12, o.relid)
	p32(m, 16, id)
	p32(m, 20, 0)
	p32(m, 24, uint32(ringPages))
	g.post(m)
	r := g.next()
	if g32(r, 0) != 6 || g32(r, 8) != o.relid || g32(r, 16) != 0 {
		g.t.Fatalf("OPENCHANNEL_RESULT % x", r)
	}
	return &tchan{g: g, relid: o.relid, conn: o.conn,
		out: pages.Mem[:ringPages*4096], in: pages.Mem[ringPages*4096:]}
}

// newGPADL describes pages to the host (§3.9).
func (g *tguest) newGPADL(relid uint32, pages hv.Pages) uint32 {
	g.t.Helper()
	g.mu.Lock()
	id := g.nextID
	g.nextID++
	g.mu.Unlock()
	n := pages.Count()
	first := min(n, 26)
	h := make([]byte, 28+8*first)
	p32(h, 0, 8)
	p32(h, 8, relid)
	p32(h, 12, id)
	p16(h, 16, uint16(8+8*n))
	p16(h, 18, 1)
	p32(h, 20, uint32(n*4096))
	for i := 0; i < first; i++ {
		p64(h, 28+8*i, pages.PFNAt(i))
	}
	g.post(h)
	for sent := first; sent < n; {
		k := min(n-sent, 28)
		b := make([]byte, 16+8*k)
		p32(b, 0, 9)
		p32(b, 12, id)
		for i := 0; i < k; i++ {
			p64(b, 16+8*i, pages.PFNAt(sent+i))
		}
		g.post(b)
		sent += k
	}
	r := g.next()
	if g32(r, 0) != 10 || g32(r, 12) != id || g32(r, 16) != 0 {
		g.t.Fatalf("GPADL_CREATED % x", r)
	}
	return id
}

func ringSize(r []byte) uint32 { return uint32(len(r) - 4096) }

func ringCopyIn(r []byte, off uint32, src []byte) {
	for i, c := range src {
		r[4096+(off+uint32(i))%ringSize(r)] = c
	}
}

func ringCopyOut(r []byte, off uint32, dst []byte) {
	for i := range dst {
		dst[i] = r[4096+(off+uint32(i))%ringSize(r)]
	}
}

// send writes one packet (§4.3) with type-specific header hdr and
// signals the host when the ring was empty and its mask is clear (§4.6).
func (c *tchan) send(typ, flags uint16, txid uint64, hdr, payload []byte) {
	c.g.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	body := 16 + len(hdr) + len(payload)
	total := (body + 7) &^ 7
	pkt := make([]byte, total+8)
	p16(pkt, 0, typ)
	p16(pkt, 2, uint16((16+len(hdr))/8))
	p16(pkt, 4, uint16(total/8))
	p16(pkt, 6, flags)
	p64(pkt, 8, txid)
	copy(pkt[16:], hdr)
	copy(pkt[16+len(hdr):], payload)
	deadline := time.Now().Add(testWait)
	for {
		w, rd := atomic.LoadUint32(a32(c.out, 0)), atomic.LoadUint32(a32(c.out, 4))
		free := ringSize(c.out) - (w - rd)
		if w < rd {
			free = rd - w
		}
		if free > uint32(len(pkt)) {
			p64(pkt, total, uint64(w)<<32)
			ringCopyIn(c.out, w, pkt)
			atomic.StoreUint32(a32(c.out, 0), (w+uint32(len(pkt)))%ringSize(c.out))
			if atomic.LoadUint32(a32(c.out, 8)) == 0 && atomic.LoadUint32(a32(c.out, 4)) == w {
				if err := c.g.p.SignalEvent(c.conn, 0); err != nil {
					c.g.t.Fatal(err)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			c.g.t.Fatal("guest→host ring stays full")
		}
		time.Sleep(time.Millisecond)
	}
}

// tryRecv takes one host→guest packet (descriptor to padding) or nil.
func (c *tchan) tryRecv() []byte {
	w, rd := atomic.LoadUint32(a32(c.in, 0)), atomic.LoadUint32(a32(c.in, 4))
	if w == rd {
		return nil
	}
	var d [16]byte
	ringCopyOut(c.in, rd, d[:])
	total := uint32(g16(d[:], 4)) * 8
	pkt := make([]byte, total)
	ringCopyOut(c.in, rd, pkt)
	atomic.StoreUint32(a32(c.in, 4), (rd+total+8)%ringSize(c.in))
	return pkt
}

// recv waits for the next host→guest packet.
func (c *tchan) recv() []byte {
	c.g.t.Helper()
	deadline := time.After(testWait)
	for {
		if p := c.tryRecv(); p != nil {
			return p
		}
		select {
		case <-c.g.kick:
		case <-time.After(5 * time.Millisecond): // events of other channels share the kick
		case <-deadline:
			c.g.t.Fatalf("no packet from the host on relid %d; violations %v", c.relid, c.g.h.Violations())
			return nil
		}
	}
}

// empty reports whether the host→guest ring is empty.
func (c *tchan) empty() bool {
	return atomic.LoadUint32(a32(c.in, 0)) == atomic.LoadUint32(a32(c.in, 4))
}
