package vmbus

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gohv/gohv/hv"
)

// fakeHost is a minimal in-test Hyper-V host: it decodes the guest's
// channel messages by the offsets of docs/hyperv-protocol.md §3 (by hand, not with
// chanmsg, so that a misunderstanding shared with chanmsg cannot pass),
// answers them, and delivers its own messages and events into the SynIC
// pages from a goroutine, like an interrupt.

var le32 = binary.LittleEndian.Uint32
var le16 = binary.LittleEndian.Uint16
var le64 = binary.LittleEndian.Uint64
var put32 = binary.LittleEndian.PutUint32
var put16 = binary.LittleEndian.PutUint16
var put64 = binary.LittleEndian.PutUint64

type posted struct {
	conn uint32
	data []byte
}

type fakeGPADL struct {
	relid, id uint32
	total     int
	pfns      []uint64
	created   bool
}

type fakeOpen struct {
	relid, gpadl, vp, downstream uint32
	userData                     []byte
	out, in                      []byte // guest→host ring, host→guest ring
}

type fakeHost struct {
	t testing.TB

	// knobs, set before Connect
	accept       func(v uint32) bool // nil: accept all
	noConn4      bool                // PostMessage to connection 4 fails
	connID       uint32              // ≥ 5.0 message connection id (default 1)
	silent       atomic.Bool         // never answer
	openStatus   uint32
	modifyStatus uint32
	version      uint32      // negotiated
	echo         bool        // answer each inbound packet with a completion
	noRead       atomic.Bool // doorbells do not make the host read
	offers       [][]byte
	ignoreType   atomic.Uint32 // record guest messages of this type, never answer
	// Hostile or racy host behaviour for the review tests (set under mu):
	onUnload             [][]byte        // sent before UNLOAD_RESPONSE
	rescindAfterCreated  uint32          // relid rescinded right after its GPADL_CREATED
	rescindBeforeCreated uint32          // relid rescinded between its GPADL_HEADER and GPADL_CREATED
	allocHook            func(n int)     // runs in AllocPages, before the pages are handed out
	createdRelID         uint32          // if set, GPADL_CREATED names this relid
	rescinded            map[uint32]bool // relids this host rescinded

	mu         sync.Mutex
	msgs       []posted
	msgConn    uint32
	nextPFN    uint64
	mem        map[uint64][]byte // pfn → its page
	allocated  int
	freed      int
	gpadls     map[uint32]*fakeGPADL
	open       map[uint32]*fakeOpen
	signals    []uint32
	queue      [][]byte
	postFail   []error // errors returned by the next PostMessages
	gotPackets []hostPacket

	synic *fakeSynIC
	vp1   *fakeSynIC // optional second VP (index 3 too; only pages matter)
	kick  chan struct{}
	stop  chan struct{}
	done  chan struct{}
}

type hostPacket struct {
	typ   uint16
	flags uint16
	txid  uint64
	off8  uint16
	body  []byte // bytes 16 .. len8*8
}

type fakeSynIC struct {
	h       *fakeHost
	simp    []byte
	siefp   []byte
	eoms    atomic.Int64
	handler atomic.Pointer[func()]
}

func (s *fakeSynIC) VPIndex() uint32        { return 3 }
func (s *fakeSynIC) MessagePage() []byte    { return s.simp }
func (s *fakeSynIC) EventFlagsPage() []byte { return s.siefp }
func (s *fakeSynIC) EndOfMessage()          { s.eoms.Add(1); s.h.kickDelivery() }
func (s *fakeSynIC) SetHandler(sint uint8, fn func()) error {
	if sint != 2 {
		s.h.t.Errorf("SetHandler on SINT %d, want 2", sint)
	}
	if fn == nil {
		s.handler.Store(nil)
	} else {
		s.handler.Store(&fn)
	}
	return nil
}

func newFakeHost(t testing.TB) *fakeHost {
	h := &fakeHost{
		t: t, nextPFN: 0x1000, mem: map[uint64][]byte{},
		gpadls: map[uint32]*fakeGPADL{}, open: map[uint32]*fakeOpen{}, rescinded: map[uint32]bool{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		connID: 1,
	}
	h.synic = &fakeSynIC{h: h, simp: make([]byte, 4096), siefp: make([]byte, 4096)}
	go h.deliveryLoop()
	t.Cleanup(func() { close(h.stop); <-h.done })
	return h
}

func (h *fakeHost) SynICs() []hv.SynIC {
	if h.vp1 != nil {
		return []hv.SynIC{h.synic, h.vp1}
	}
	return []hv.SynIC{h.synic}
}

func (h *fakeHost) AllocPages(n int) (hv.Pages, error) {
	h.mu.Lock()
	hook := h.allocHook
	h.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	mem := make([]byte, n*4096)
	p := hv.Pages{Mem: mem, PFN: h.nextPFN}
	for i := range n {
		h.mem[h.nextPFN+uint64(i)] = mem[i*4096 : (i+1)*4096]
	}
	h.nextPFN += uint64(n) + 1 // a hole, so that non-contiguity shows
	h.allocated += n
	return p, nil
}

func (h *fakeHost) FreePages(p hv.Pages) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range p.Count() {
		if _, ok := h.mem[p.PFN+uint64(i)]; !ok {
			h.t.Errorf("FreePages of unknown PFN %#x", p.PFN+uint64(i))
		}
		delete(h.mem, p.PFN+uint64(i))
	}
	h.freed += p.Count()
}

// send queues a host→guest message and kicks delivery.
func (h *fakeHost) sendLocked(m []byte) {
	switch {
	case len(m) >= 12 && le32(m) == 2: // RESCIND_CHANNELOFFER
		h.rescinded[le32(m[8:])] = true
	case len(m) >= 196 && le32(m) == 1: // OFFERCHANNEL: the relid is live again
		delete(h.rescinded, le32(m[184:]))
	}
	h.queue = append(h.queue, m)
	h.kickDelivery()
}

func (h *fakeHost) send(m []byte) {
	h.mu.Lock()
	h.sendLocked(m)
	h.mu.Unlock()
}

func (h *fakeHost) kickDelivery() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// signalGuest sets relid's event flag (docs/hyperv-protocol.md §2.2) and interrupts.
func (h *fakeHost) signalGuest(relid uint32) {
	hv.SetEventFlag(h.synic.siefp, 2, int(relid))
	h.kickDelivery()
}

func (h *fakeHost) deliveryLoop() {
	defer close(h.done)
	for {
		select {
		case <-h.stop:
			return
		case <-h.kick:
		}
		for {
			h.mu.Lock()
			delivered := false
			if len(h.queue) > 0 {
				ok, err := hv.DeliverMessage(h.synic.simp, 2, 1, 0, h.queue[0], len(h.queue) > 1)
				if err != nil {
					h.t.Errorf("deliver: %v", err)
				}
				if ok {
					h.queue = h.queue[1:]
					delivered = true
				}
			}
			h.mu.Unlock()
			if fn := h.synic.handler.Load(); fn != nil {
				(*fn)()
			}
			if !delivered {
				break
			}
		}
	}
}

func (h *fakeHost) messages() []posted {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.msgs)
}

// messagesOfType returns the guest messages of type typ.
func (h *fakeHost) messagesOfType(typ uint32) []posted {
	var out []posted
	for _, m := range h.messages() {
		if le32(m.data) == typ {
			out = append(out, m)
		}
	}
	return out
}

func (h *fakeHost) typeSequence() []uint32 {
	var out []uint32
	for _, m := range h.messages() {
		out = append(out, le32(m.data))
	}
	return out
}

// SignalEvent is the guest's doorbell.
func (h *fakeHost) SignalEvent(conn uint32, flag uint16) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.signals = append(h.signals, conn)
	if flag != 0 {
		h.t.Errorf("SignalEvent flag %d, want 0 (docs/hyperv-protocol.md §1.8)", flag)
	}
	for _, o := range h.open {
		for !h.noRead.Load() {
			p, ok := hostReadRing(o.out)
			if !ok {
				break
			}
			h.gotPackets = append(h.gotPackets, p)
			if h.echo {
				reply := slices.Clone(p.body[int(p.off8)*8-16:])
				slices.Reverse(reply)
				if hostWriteRing(o.in, 0xB, 0, p.txid, reply) {
					hv.SetEventFlag(h.synic.siefp, 2, int(o.relid))
					h.kickDelivery()
				}
			}
		}
	}
	return nil
}

// PostMessage decodes a guest message by reference offsets and answers.
func (h *fakeHost) PostMessage(conn uint32, msgType uint32, payload []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if msgType != 1 {
		h.t.Errorf("PostMessage type %d, want 1 (docs/hyperv-protocol.md §2.5)", msgType)
	}
	if len(payload) > 240 || len(payload) < 8 {
		h.t.Errorf("PostMessage of %d bytes", len(payload))
		return hv.StatusInvalidParameter
	}
	if len(h.postFail) > 0 {
		err := h.postFail[0]
		h.postFail = h.postFail[1:]
		if err != nil {
			return err
		}
	}
	typ := le32(payload)
	if typ == 14 && conn == 4 && h.noConn4 {
		return hv.StatusInvalidConnectionID
	}
	h.msgs = append(h.msgs, posted{conn: conn, data: slices.Clone(payload)})
	if typ != 14 && conn != h.msgConn {
		h.t.Errorf("message type %d on connection %d, want %d", typ, conn, h.msgConn)
	}
	if h.silent.Load() || (typ != 0 && h.ignoreType.Load() == typ) {
		return nil
	}
	switch typ {
	case 14: // INITIATE_CONTACT §3.4
		v := le32(payload[8:])
		want := uint32(1)
		if v >= 0x50000 {
			want = 4
		}
		if conn != want {
			h.t.Errorf("INITIATE_CONTACT %#x on connection %d, want %d", v, conn, want)
		}
		ok := h.accept == nil || h.accept(v)
		r := make([]byte, 16)
		put32(r, 15)
		if ok {
			h.version = v
			r[8] = 1
			if v >= 0x50000 {
				put32(r[12:], h.connID)
				h.msgConn = h.connID
			} else {
				put32(r[12:], v)
				h.msgConn = 1
			}
		}
		h.sendLocked(r)
	case 3: // REQUESTOFFERS
		for _, o := range h.offers {
			h.sendLocked(o)
		}
		r := make([]byte, 8)
		put32(r, 4)
		h.sendLocked(r)
	case 8: // GPADL_HEADER §3.9
		g := &fakeGPADL{relid: le32(payload[8:]), id: le32(payload[12:])}
		rangeLen := int(le16(payload[16:]))
		g.total = (rangeLen - 8) / 8
		if le16(payload[18:]) != 1 || le32(payload[20:]) != uint32(g.total)*4096 || le32(payload[24:]) != 0 {
			h.t.Errorf("GPADL_HEADER range fields % x", payload[16:28])
		}
		for off := 28; off+8 <= len(payload); off += 8 {
			g.pfns = append(g.pfns, le64(payload[off:]))
		}
		if _, dup := h.gpadls[g.id]; dup {
			h.t.Errorf("GPADL id %#x reused", g.id)
		}
		h.gpadls[g.id] = g
		h.maybeCreated(g)
	case 9: // GPADL_BODY
		g := h.gpadls[le32(payload[12:])]
		if g == nil {
			h.t.Errorf("GPADL_BODY for unknown id %#x", le32(payload[12:]))
			return nil
		}
		for off := 16; off+8 <= len(payload); off += 8 {
			g.pfns = append(g.pfns, le64(payload[off:]))
		}
		h.maybeCreated(g)
	case 5: // OPENCHANNEL §3.8
		if len(payload) != 148 {
			h.t.Errorf("OPENCHANNEL of %d bytes", len(payload))
		}
		o := &fakeOpen{relid: le32(payload[8:]), gpadl: le32(payload[16:]), vp: le32(payload[20:]),
			downstream: le32(payload[24:]), userData: slices.Clone(payload[28:148])}
		r := make([]byte, 20)
		put32(r, 6)
		put32(r[8:], o.relid)
		put32(r[12:], le32(payload[12:]))
		put32(r[16:], h.openStatus)
		if h.rescinded[o.relid] {
			put32(r[16:], 0xC0000001) // a host does not open a withdrawn offer
		} else if g := h.gpadls[o.gpadl]; g == nil || !g.created || g.relid != o.relid {
			h.t.Errorf("OPENCHANNEL with GPADL %#x not created for relid %d", o.gpadl, o.relid)
		} else if h.openStatus == 0 {
			mem := h.gpadlMemLocked(g)
			s := int(o.downstream) * 4096
			o.out, o.in = mem[:s], mem[s:]
			h.open[o.relid] = o
		}
		h.sendLocked(r)
	case 7: // CLOSECHANNEL
		delete(h.open, le32(payload[8:]))
	case 11: // GPADL_TEARDOWN
		id := le32(payload[12:])
		g := h.gpadls[id]
		if g == nil {
			h.t.Errorf("GPADL_TEARDOWN of unknown %#x", id)
			return nil
		}
		for _, o := range h.open {
			if o.gpadl == id {
				h.t.Errorf("GPADL_TEARDOWN %#x of an open channel's ring (docs/hyperv-protocol.md §3.3 4.0)", id)
			}
		}
		delete(h.gpadls, id)
		r := make([]byte, 12)
		put32(r, 12)
		put32(r[8:], id)
		h.sendLocked(r)
	case 22: // MODIFYCHANNEL §3.10: answered from 5.3 on
		if h.version >= 0x50003 {
			r := make([]byte, 16)
			put32(r, 24)
			put32(r[8:], le32(payload[8:]))
			put32(r[12:], h.modifyStatus)
			h.sendLocked(r)
		}
	case 16: // UNLOAD
		for _, m := range h.onUnload {
			h.sendLocked(m)
		}
		r := make([]byte, 8)
		put32(r, 17)
		h.sendLocked(r)
	}
	return nil
}

func (h *fakeHost) maybeCreated(g *fakeGPADL) {
	if len(g.pfns) < g.total {
		return
	}
	if len(g.pfns) > g.total {
		h.t.Errorf("GPADL %#x: %d PFNs for %d", g.id, len(g.pfns), g.total)
	}
	g.created = true
	if id := h.rescindBeforeCreated; id != 0 && id == g.relid {
		// The rescind overtakes the answer; the answer still says
		// success, as a real host's does.
		h.rescindBeforeCreated = 0
		h.sendLocked(rescindBytes(id))
	}
	r := make([]byte, 20)
	put32(r, 10)
	put32(r[8:], g.relid)
	if h.createdRelID != 0 {
		put32(r[8:], h.createdRelID)
	}
	put32(r[12:], g.id)
	h.sendLocked(r)
	if id := h.rescindAfterCreated; id != 0 && id == g.relid {
		h.rescindAfterCreated = 0
		h.sendLocked(rescindBytes(id))
	}
}

// rescindBytes builds RESCIND_CHANNELOFFER (docs/hyperv-protocol.md §3.10).
func rescindBytes(relid uint32) []byte {
	b := make([]byte, 12)
	put32(b, 2)
	put32(b[8:], relid)
	return b
}

// gpadlMemLocked returns the guest memory behind g (contiguous here).
func (h *fakeHost) gpadlMemLocked(g *fakeGPADL) []byte {
	first := h.mem[g.pfns[0]]
	for i, pfn := range g.pfns {
		if pfn != g.pfns[0]+uint64(i) || h.mem[pfn] == nil {
			h.t.Fatalf("GPADL %#x PFN %d = %#x not contiguous/allocated", g.id, i, pfn)
		}
	}
	return first[: len(g.pfns)*4096 : len(g.pfns)*4096]
}

// offer builds a 196-byte OFFERCHANNEL by docs/hyperv-protocol.md §3.6 offsets.
func offerBytes(class, instance [16]byte, relid, connID uint32, sub uint16) []byte {
	b := make([]byte, 196)
	put32(b, 1)
	copy(b[8:], class[:])
	copy(b[24:], instance[:])
	put16(b[180:], sub)
	put32(b[184:], relid)
	put32(b[192:], connID)
	return b
}

// ---- host side of the ring, by docs/hyperv-protocol.md §4.2–§4.6 offsets ----

func hword(mem []byte, off int) *uint32 { return (*uint32)(ptr(mem, off)) }

func hostReadRing(r []byte) (hostPacket, bool) {
	size := uint32(len(r) - 4096)
	data := r[4096:]
	w := atomic.LoadUint32(hword(r, 0))
	rd := atomic.LoadUint32(hword(r, 4))
	if w == rd {
		return hostPacket{}, false
	}
	get := func(at uint32, n int) []byte {
		out := make([]byte, n)
		for i := range out {
			out[i] = data[(at+uint32(i))%size]
		}
		return out
	}
	d := get(rd, 16)
	p := hostPacket{typ: le16(d), off8: le16(d[2:]), flags: le16(d[6:]), txid: le64(d[8:])}
	n := int(le16(d[4:])) * 8
	p.body = get(rd+16, n-16)
	tr := get(rd+uint32(n), 8)
	if le32(tr[4:]) != rd {
		panic(fmt.Sprintf("trailer %x, packet at %d", tr, rd))
	}
	atomic.StoreUint32(hword(r, 4), (rd+uint32(n)+8)%size)
	return p, true
}

// hostWriteRing writes a packet and reports whether to signal the guest.
func hostWriteRing(r []byte, typ uint16, flags uint16, txid uint64, payload []byte) bool {
	size := uint32(len(r) - 4096)
	data := r[4096:]
	w := atomic.LoadUint32(hword(r, 0))
	rd := atomic.LoadUint32(hword(r, 4))
	pkt := make([]byte, (16+len(payload)+7)&^7+8)
	put16(pkt, typ)
	put16(pkt[2:], 2)
	put16(pkt[4:], uint16((len(pkt)-8)/8))
	put16(pkt[6:], flags)
	put64(pkt[8:], txid)
	copy(pkt[16:], payload)
	put64(pkt[len(pkt)-8:], uint64(w)<<32)
	free := size - (w - rd)
	if w < rd {
		free = rd - w
	}
	if free <= uint32(len(pkt)) {
		panic("host ring full")
	}
	for i, c := range pkt {
		data[(w+uint32(i))%size] = c
	}
	atomic.StoreUint32(hword(r, 0), (w+uint32(len(pkt)))%size)
	return atomic.LoadUint32(hword(r, 8)) == 0 && atomic.LoadUint32(hword(r, 4)) == w
}
