package netvsp

// A small test-only guest that speaks VMBus and NVSP byte for byte from the
// literal offsets of docs/hyperv-protocol.md (adapted from hvsim's own
// test guest). It shares no code with the device: every offset here is
// written out again, so a misread offset in the device shows up.

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

func a32(b []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
func a64(b []byte, off int) *uint64 { return (*uint64)(unsafe.Pointer(&b[off])) }

func put16(b []byte, off int, v uint16) { binary.LittleEndian.PutUint16(b[off:], v) }
func put32(b []byte, off int, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }
func put64(b []byte, off int, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }
func get16(b []byte, off int) uint16    { return binary.LittleEndian.Uint16(b[off:]) }
func get32(b []byte, off int) uint32    { return binary.LittleEndian.Uint32(b[off:]) }

type tguest struct {
	t    testing.TB
	h    *hvsim.Host
	p    hv.Platform
	msgs chan []byte

	evMu   sync.Mutex
	evKick map[uint32]chan struct{}
	conn   uint32
}

func newGuest(t testing.TB, cfg hvsim.Config) *tguest {
	t.Helper()
	if cfg.OnViolation == nil {
		cfg.OnViolation = func(error) {}
	}
	h, err := hvsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	g := &tguest{t: t, h: h, p: h.Platform(), msgs: make(chan []byte, 256), evKick: map[uint32]chan struct{}{}, conn: 1}
	for _, s := range g.p.SynICs() {
		if err := s.SetHandler(2, func() { g.isr(s) }); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

func (g *tguest) kick(relid uint32) chan struct{} {
	g.evMu.Lock()
	defer g.evMu.Unlock()
	c := g.evKick[relid]
	if c == nil {
		c = make(chan struct{}, 1)
		g.evKick[relid] = c
	}
	return c
}

func (g *tguest) isr(syn hv.SynIC) {
	slot := syn.MessagePage()[2*256 : 3*256]
	if atomic.LoadUint32(a32(slot, 0)) != 0 {
		n := min(int(slot[4]), 240)
		m := make([]byte, n)
		copy(m, slot[16:16+n])
		atomic.StoreUint32(a32(slot, 0), 0)
		if atomic.LoadUint32(a32(slot, 4))&(1<<8) != 0 {
			syn.EndOfMessage()
		}
		g.msgs <- m
	}
	flags := syn.EventFlagsPage()[2*256 : 3*256]
	for w := 0; w < 32; w++ {
		v := atomic.SwapUint64(a64(flags, w*8), 0)
		for b := 0; b < 64; b++ {
			if v&(1<<b) != 0 {
				select {
				case g.kick(uint32(w*64 + b)) <- struct{}{}:
				default:
				}
			}
		}
	}
}

func (g *tguest) post(msg []byte, conn uint32) {
	g.t.Helper()
	for i := 0; ; i++ {
		err := g.p.PostMessage(conn, 1, msg)
		var st hv.Status
		if errors.As(err, &st) && st.Transient() && i < 1000 {
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			g.t.Fatalf("PostMessage type %d: %v", get32(msg, 0), err)
		}
		return
	}
}

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

// nextOf skips other messages until one of type typ (offers of sub-channels
// can interleave).
func (g *tguest) nextOf(typ uint32) []byte {
	g.t.Helper()
	for {
		m := g.next()
		if get32(m, 0) == typ {
			return m
		}
	}
}

// connect negotiates VMBus 5.3 on connection 4 (§3.4, §3.5).
func (g *tguest) connect() {
	g.t.Helper()
	m := make([]byte, 40)
	put32(m, 0, 14)
	put32(m, 8, 0x50003)
	m[16] = 2
	g.post(m, 4)
	r := g.nextOf(15)
	if r[8] == 0 {
		g.t.Fatal("VMBus 5.3 refused")
	}
	g.conn = get32(r, 12)
}

type offer struct {
	relid, conn uint32
	sub         uint16
}

func parseOffer(r []byte) offer {
	return offer{relid: get32(r, 184), conn: get32(r, 192), sub: get16(r, 180)}
}

func (g *tguest) requestOffers() []offer {
	g.t.Helper()
	m := make([]byte, 8)
	put32(m, 0, 3)
	g.post(m, g.conn)
	var out []offer
	for {
		r := g.next()
		switch get32(r, 0) {
		case 1:
			out = append(out, parseOffer(r))
		case 4:
			return out
		}
	}
}

// createGPADL sends GPADL_HEADER and GPADL_BODY (§3.9) for pfns.
func (g *tguest) createGPADL(relid, id uint32, pfns []uint64) {
	g.t.Helper()
	n := len(pfns)
	first := min(n, 26)
	h := make([]byte, 28+8*first)
	put32(h, 0, 8)
	put32(h, 8, relid)
	put32(h, 12, id)
	put16(h, 16, uint16(8+8*n))
	put16(h, 18, 1)
	put32(h, 20, uint32(n*4096))
	for i := 0; i < first; i++ {
		put64(h, 28+8*i, pfns[i])
	}
	g.post(h, g.conn)
	for sent, num := first, uint32(1); sent < n; num++ {
		k := min(n-sent, 28)
		b := make([]byte, 16+8*k)
		put32(b, 0, 9)
		put32(b, 8, num)
		put32(b, 12, id)
		for i := 0; i < k; i++ {
			put64(b, 16+8*i, pfns[sent+i])
		}
		g.post(b, g.conn)
		sent += k
	}
	r := g.nextOf(10)
	if get32(r, 12) != id || get32(r, 16) != 0 {
		g.t.Fatalf("GPADL_CREATED % x", r)
	}
}

func pfnList(p hv.Pages) []uint64 {
	out := make([]uint64, p.Count())
	for i := range out {
		out[i] = p.PFNAt(i)
	}
	return out
}

var nextGPADL atomic.Uint32

// openChannel allocates rings (16 pages each way), creates their GPADL and
// opens relid (§3.8).
func (g *tguest) openChannel(o offer) *tchan {
	g.t.Helper()
	pages, err := g.p.AllocPages(32)
	if err != nil {
		g.t.Fatal(err)
	}
	id := 0x1000 + nextGPADL.Add(1)
	g.createGPADL(o.relid, id, pfnList(pages))
	m := make([]byte, 148)
	put32(m, 0, 5)
	put32(m, 8, o.relid)
	put32(m, 12, o.relid)
	put32(m, 16, id)
	put32(m, 24, 16)
	g.post(m, g.conn)
	r := g.nextOf(6)
	if get32(r, 16) != 0 {
		g.t.Fatalf("OPENCHANNEL_RESULT % x: %v", r, g.h.Violations())
	}
	return &tchan{g: g, relid: o.relid, conn: o.conn, out: gring{pages.Mem[:16*4096]}, in: gring{pages.Mem[16*4096:]}}
}

// gring is the guest's view of one ring (§4.2, §4.3).
type gring struct{ mem []byte }

func (r gring) hdr() []byte  { return r.mem[:4096] }
func (r gring) size() uint32 { return uint32(len(r.mem) - 4096) }

func (r gring) copyIn(off uint32, src []byte) {
	for i, c := range src {
		r.mem[4096+int((off+uint32(i))%r.size())] = c
	}
}

func (r gring) copyOut(off uint32, dst []byte) {
	for i := range dst {
		dst[i] = r.mem[4096+int((off+uint32(i))%r.size())]
	}
}

// tchan is one open channel seen from the guest.
type tchan struct {
	g       *tguest
	relid   uint32
	conn    uint32
	out, in gring
}

// write produces one packet with a type-specific header (§4.3) and
// signals the host when the ring was empty (§4.6).
func (c *tchan) write(typ, flags uint16, txid uint64, hdr, payload []byte) {
	c.g.t.Helper()
	h := c.out.hdr()
	w := atomic.LoadUint32(a32(h, 0))
	rd := atomic.LoadUint32(a32(h, 4))
	off := 16 + len(hdr)
	total := (off + len(payload) + 7) &^ 7
	free := c.out.size() - (w - rd)
	if w < rd {
		free = rd - w
	}
	if free <= uint32(total+8) {
		c.g.t.Fatal("guest→host ring full")
	}
	pkt := make([]byte, total+8)
	put16(pkt, 0, typ)
	put16(pkt, 2, uint16(off/8))
	put16(pkt, 4, uint16(total/8))
	put16(pkt, 6, flags)
	put64(pkt, 8, txid)
	copy(pkt[16:], hdr)
	copy(pkt[off:], payload)
	put64(pkt, total, uint64(w)<<32)
	c.out.copyIn(w, pkt)
	atomic.StoreUint32(a32(h, 0), (w+uint32(total+8))%c.out.size())
	if atomic.LoadUint32(a32(h, 8)) == 0 && atomic.LoadUint32(a32(h, 4)) == w {
		if err := c.g.p.SignalEvent(c.conn, 0); err != nil {
			c.g.t.Fatal(err)
		}
	}
}

// pkt is one host→guest packet as the guest sees it.
type pkt struct {
	typ, flags uint16
	txid       uint64
	hdr, data  []byte
}

// tryRead consumes one packet, or returns ok == false.
func (c *tchan) tryRead() (p pkt, ok bool) {
	h := c.in.hdr()
	w := atomic.LoadUint32(a32(h, 0))
	rd := atomic.LoadUint32(a32(h, 4))
	if w == rd {
		return p, false
	}
	var d [16]byte
	c.in.copyOut(rd, d[:])
	total := uint32(get16(d[:], 4)) * 8
	raw := make([]byte, total)
	c.in.copyOut(rd, raw)
	before := c.in.size() - (w - rd)
	if w < rd {
		before = rd - w
	}
	nrd := (rd + total + 8) % c.in.size()
	atomic.StoreUint32(a32(h, 4), nrd)
	// §4.6: signal the producer when the freed space crosses its pending
	// send size.
	if pss := atomic.LoadUint32(a32(h, 12)) &^ 7; pss != 0 && before < pss && before+total+8 >= pss {
		if err := c.g.p.SignalEvent(c.conn, 0); err != nil {
			c.g.t.Fatal(err)
		}
	}
	off := int(get16(raw, 2)) * 8
	return pkt{typ: get16(raw, 0), flags: get16(raw, 6), txid: binary.LittleEndian.Uint64(raw[8:]),
		hdr: raw[16:off], data: raw[off:]}, true
}

// read waits for the next host→guest packet.
func (c *tchan) read() pkt {
	c.g.t.Helper()
	deadline := time.After(testWait)
	for {
		if p, ok := c.tryRead(); ok {
			return p
		}
		select {
		case <-c.g.kick(c.relid):
		case <-time.After(20 * time.Millisecond): // poll too: a lost interrupt must not hang the test
		case <-deadline:
			c.g.t.Fatalf("no packet on relid %d; violations %v\n%s", c.relid, c.g.h.Violations(), c.g.h.Dump())
		}
	}
}

func noViolations(t testing.TB, h *hvsim.Host) {
	t.Helper()
	if v := h.Violations(); len(v) != 0 {
		t.Fatalf("protocol violations: %v", v)
	}
}
