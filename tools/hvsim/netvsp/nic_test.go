package netvsp

import (
	"bytes"
	"testing"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/tools/hvsim"
)

// tnic is a scripted guest NIC driver: raw NVSP and RNDIS bytes written
// from the reference's offsets (§7.3, §7.6).
type tnic struct {
	t       testing.TB
	g       *tguest
	dev     *Device
	c       *tchan
	primary offer
	recv    hv.Pages
	send    hv.Pages
	subSize uint32
	txid    uint64
	reqID   uint32
	section uint32
	pending map[*tchan][]pkt
	// recvPages is the receive buffer's size (default testRecvPgs).
	recvPages int
}

const (
	testRecvID   = 0xCAFE
	testRecvPgs  = 256 // 1 MiB
	testSendPgs  = 64  // 256 KiB = 42 sections
	testSendSect = 6144
)

var guestMAC = [6]byte{0x00, 0x15, 0x5d, 0x00, 0x00, 0x01}

// newNIC connects a guest to a host offering only a NIC built from cfg and
// opens its primary channel.
func newNIC(t testing.TB, cfg Config) *tnic {
	t.Helper()
	g := newGuest(t, hvsim.Config{})
	if cfg.MAC == ([6]byte{}) {
		cfg.MAC = guestMAC
	}
	dev, err := New(g.h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.h.AddDevice(dev); err != nil {
		t.Fatal(err)
	}
	g.connect()
	offers := g.requestOffers()
	if len(offers) != 1 {
		t.Fatalf("%d offers", len(offers))
	}
	n := &tnic{t: t, g: g, dev: dev, primary: offers[0], recvPages: testRecvPgs, pending: map[*tchan][]pkt{}}
	n.c = g.openChannel(offers[0])
	return n
}

// nvsp builds a 40-byte NVSP message (Linux's size, §7.2) of type typ with
// u32 fields at 4, 8, 12, ...
func nvsp(typ uint32, fields ...uint32) []byte {
	m := make([]byte, 40)
	put32(m, 0, typ)
	for i, f := range fields {
		put32(m, 4+4*i, f)
	}
	return m
}

// request sends an in-band NVSP message with completion requested and
// returns the completion's payload.
func (n *tnic) request(m []byte) []byte {
	n.t.Helper()
	n.txid++
	id := n.txid
	n.c.write(0x6, 1, id, nil, m)
	return n.completion(id)
}

// completion waits for the completion packet (type 0xB) of txid.
func (n *tnic) completion(txid uint64) []byte { return n.completionOn(n.c, txid) }

func (n *tnic) completionOn(c *tchan, txid uint64) []byte {
	n.t.Helper()
	p := n.waitOn(c, func(p pkt) bool { return p.typ == 0xB && p.txid == txid })
	return p.data
}

// wait returns the first packet on the primary that match accepts.
func (n *tnic) wait(match func(pkt) bool) pkt { return n.waitOn(n.c, match) }

// waitOn returns the first packet on c (pending or new) that match
// accepts; others stay pending.
func (n *tnic) waitOn(c *tchan, match func(pkt) bool) pkt {
	n.t.Helper()
	for i, p := range n.pending[c] {
		if match(p) {
			n.pending[c] = append(n.pending[c][:i], n.pending[c][i+1:]...)
			return p
		}
	}
	for {
		p := c.read()
		if match(p) {
			return p
		}
		n.pending[c] = append(n.pending[c], p)
	}
}

// negotiate runs §7.4 steps 1–5 for version v.
func (n *tnic) negotiate(v uint32) {
	t := n.t
	t.Helper()
	r := n.request(nvsp(1, v, v))
	if get32(r, 0) != 2 || get32(r, 12) != 1 {
		t.Fatalf("INIT_COMPLETE % x", r)
	}
	n.c.write(0x6, 0, 0, nil, nvsp(125, 1514, 0, 0))
	n.c.write(0x6, 0, 0, nil, nvsp(100, 6, 30))
	var err error
	if n.recv, err = n.g.p.AllocPages(n.recvPages); err != nil {
		t.Fatal(err)
	}
	n.g.createGPADL(n.primary.relid, 0x5000, pfnList(n.recv))
	r = n.request(nvsp(101, 0x5000, testRecvID))
	// 102: @4 status, @8 sections, @12 offset, @16 sub size, @20 count, @24 end.
	if get32(r, 0) != 102 || get32(r, 4) != 1 || get32(r, 8) != 1 || get32(r, 12) != 0 {
		t.Fatalf("SEND_RECEIVE_BUFFER_COMPLETE % x", r)
	}
	n.subSize = get32(r, 16)
	if n.subSize < 1514+44 || get32(r, 24) != n.subSize*get32(r, 20) || get32(r, 24) > uint32(n.recvPages)*4096 {
		t.Fatalf("receive buffer sections % x", r)
	}
	if n.send, err = n.g.p.AllocPages(testSendPgs); err != nil {
		t.Fatal(err)
	}
	n.g.createGPADL(n.primary.relid, 0x5001, pfnList(n.send))
	r = n.request(nvsp(104, 0x5001, 0))
	if get32(r, 0) != 105 || get32(r, 4) != 1 || get32(r, 8) != testSendSect {
		t.Fatalf("SEND_SEND_BUFFER_COMPLETE % x", r)
	}
}

// sendRNDIS copies msg into the next send-buffer section and sends
// SEND_RNDIS_PACKET (§7.3) on c; it returns the transaction id.
func (n *tnic) sendRNDIS(c *tchan, msg []byte, channelType uint32) uint64 {
	n.t.Helper()
	sec := n.section % (testSendPgs * 4096 / testSendSect)
	n.section++
	copy(n.send.Mem[sec*testSendSect:], msg)
	n.txid++
	c.write(0x6, 1, n.txid, nil, nvsp(107, channelType, sec, uint32(len(msg))))
	return n.txid
}

// sendRNDISDirect sends msg GPA-direct (§4.5) from fresh guest pages, one
// range per page like Linux's page buffers.
func (n *tnic) sendRNDISDirect(c *tchan, msg []byte) uint64 {
	n.t.Helper()
	pages, err := n.g.p.AllocPages((len(msg)+100+4095)/4096 + 1)
	if err != nil {
		n.t.Fatal(err)
	}
	const start = 100 // not page aligned on purpose
	copy(pages.Mem[start:], msg)
	var hdr []byte
	hdr = append(hdr, make([]byte, 8)...)
	count := 0
	for off := 0; off < len(msg); count++ {
		abs := start + off
		k := min(4096-abs%4096, len(msg)-off)
		r := make([]byte, 16)
		put32(r, 0, uint32(k))
		put32(r, 4, uint32(abs%4096))
		put64(r, 8, pages.PFNAt(abs/4096))
		hdr = append(hdr, r...)
		off += k
	}
	put32(hdr, 4, uint32(count))
	n.txid++
	c.write(0x9, 1, n.txid, hdr, nvsp(107, 0, 0xFFFFFFFF, 0))
	return n.txid
}

// control sends an RNDIS control message, checks its completion and
// returns the host's RNDIS answer.
func (n *tnic) control(msg []byte) []byte {
	n.t.Helper()
	id := n.sendRNDIS(n.c, msg, 1)
	if r := n.completion(id); get32(r, 0) != 108 || get32(r, 4) != 1 {
		n.t.Fatalf("RNDIS completion % x", r)
	}
	msgs := n.receive(n.c, 1)
	if len(msgs) != 1 {
		n.t.Fatalf("%d control answers", len(msgs))
	}
	return msgs[0]
}

// receive waits for a transfer-page packet of channelType (0 data, 1
// control; §7.5), copies out its RNDIS messages and completes it.
func (n *tnic) receive(c *tchan, channelType uint32) [][]byte {
	n.t.Helper()
	p := n.waitOn(c, func(p pkt) bool { return p.typ == 0x7 && get32(p.data, 4) == channelType })
	return n.accept(c, p)
}

func (n *tnic) accept(c *tchan, p pkt) [][]byte {
	n.t.Helper()
	// Transfer-page header (§4.5), offsets from packet byte 16.
	if get16(p.hdr, 0) != testRecvID || get32(p.data, 0) != 107 || get32(p.data, 8) != 0xFFFFFFFF || p.flags != 1 {
		n.t.Fatalf("transfer-page packet hdr % x data % x flags %d", p.hdr, p.data, p.flags)
	}
	count := int(get32(p.hdr, 4))
	if len(p.hdr) != 8+8*count {
		n.t.Fatalf("transfer-page header of %d bytes for %d ranges", len(p.hdr), count)
	}
	var out [][]byte
	for i := 0; i < count; i++ {
		size, off := get32(p.hdr, 8+8*i), get32(p.hdr, 12+8*i)
		if off%n.subSize != 0 || size > n.subSize {
			n.t.Fatalf("range %d: %d bytes at %d (sub-allocation %d)", i, size, off, n.subSize)
		}
		out = append(out, bytes.Clone(n.recv.Mem[off:off+size]))
	}
	c.write(0xB, 0, p.txid, nil, nvsp(108, 1))
	return out
}

// frames receives one data packet and returns its frames and their
// checksum PPI values (0 if absent).
func (n *tnic) frames(c *tchan) (frames [][]byte, csum []uint32) {
	n.t.Helper()
	for _, m := range n.receive(c, 0) {
		f, cs := decodePacket(n.t, m)
		frames, csum = append(frames, f), append(csum, cs)
	}
	return frames, csum
}

// decodePacket reads an RNDIS PACKET from the host by §7.6's offsets.
func decodePacket(t testing.TB, m []byte) (frame []byte, csum uint32) {
	t.Helper()
	if get32(m, 0) != 1 || int(get32(m, 4)) != len(m) {
		t.Fatalf("RNDIS PACKET header % x", m[:min(len(m), 44)])
	}
	doff, dlen := 8+int(get32(m, 8)), int(get32(m, 12))
	poff, plen := 8+int(get32(m, 28)), int(get32(m, 32))
	for p := poff; p < poff+plen; {
		size, typ, off := int(get32(m, p)), get32(m, p+4), int(get32(m, p+8))
		if typ == 0 {
			csum = get32(m, p+off)
		}
		p += size
	}
	return m[doff : doff+dlen], csum
}

// rndisInit sends INITIALIZE (§7.6) and checks INITIALIZE_CMPLT.
func (n *tnic) rndisInit() {
	n.t.Helper()
	n.reqID++
	m := make([]byte, 24)
	put32(m, 0, 2)
	put32(m, 4, 24)
	put32(m, 8, n.reqID)
	put32(m, 12, 1)
	put32(m, 16, 0)
	put32(m, 20, 0x4000)
	r := n.control(m)
	want := make([]byte, 52)
	put32(want, 0, 0x80000002)
	put32(want, 4, 52)
	put32(want, 8, n.reqID)
	put32(want, 12, 0) // success
	put32(want, 16, 1) // major
	put32(want, 20, 0) // minor
	put32(want, 24, 1) // connectionless
	put32(want, 28, 0) // 802.3
	put32(want, 32, 8)
	put32(want, 36, 0xEFFFFFFF)
	put32(want, 40, 3)
	if !bytes.Equal(r, want) {
		n.t.Fatalf("INITIALIZE_CMPLT\n got % x\nwant % x", r, want)
	}
}

// query sends QUERY of oid (§7.6) and returns status and information.
func (n *tnic) query(oid uint32) (uint32, []byte) {
	n.t.Helper()
	n.reqID++
	m := make([]byte, 28)
	put32(m, 0, 4)
	put32(m, 4, 28)
	put32(m, 8, n.reqID)
	put32(m, 12, oid)
	put32(m, 20, 20)
	r := n.control(m)
	if get32(r, 0) != 0x80000004 || get32(r, 8) != n.reqID || int(get32(r, 4)) != len(r) {
		n.t.Fatalf("QUERY_CMPLT % x", r)
	}
	l, off := int(get32(r, 16)), int(get32(r, 20))
	if l == 0 {
		return get32(r, 12), nil
	}
	return get32(r, 12), r[8+off : 8+off+l]
}

// set sends SET of oid with info (§7.6) and returns the status.
func (n *tnic) set(oid uint32, info []byte) uint32 {
	n.t.Helper()
	n.reqID++
	m := make([]byte, 28+len(info))
	put32(m, 0, 5)
	put32(m, 4, uint32(len(m)))
	put32(m, 8, n.reqID)
	put32(m, 12, oid)
	put32(m, 16, uint32(len(info)))
	put32(m, 20, 20)
	copy(m[28:], info)
	r := n.control(m)
	if get32(r, 0) != 0x80000005 || get32(r, 4) != 16 || get32(r, 8) != n.reqID {
		n.t.Fatalf("SET_CMPLT % x", r)
	}
	return get32(r, 12)
}

// ready runs the whole bring-up: NVSP 6.1, buffers, RNDIS, filter 0x0D.
func (n *tnic) ready() {
	n.t.Helper()
	n.negotiate(0x60001)
	n.rndisInit()
	var f [4]byte
	put32(f[:], 0, 0x0D)
	if st := n.set(0x0001010E, f[:]); st != 0 {
		n.t.Fatalf("set packet filter: status %#x", st)
	}
}

// ppi is one per-packet info entry for guestPacket.
type ppi struct{ typ, val uint32 }

// guestPacket builds a guest PACKET (§7.6, §7.8): PPI right after the
// 44-byte header (offset 36 from @8), then the frame.
func guestPacket(frame []byte, ppis ...ppi) []byte {
	pl := 16 * len(ppis)
	m := make([]byte, 44+pl+len(frame))
	put32(m, 0, 1)
	put32(m, 4, uint32(len(m)))
	put32(m, 8, uint32(36+pl))
	put32(m, 12, uint32(len(frame)))
	if pl > 0 {
		put32(m, 28, 36)
		put32(m, 32, uint32(pl))
	}
	for i, p := range ppis {
		put32(m, 44+16*i, 16)
		put32(m, 48+16*i, p.typ)
		put32(m, 52+16*i, 12)
		put32(m, 56+16*i, p.val)
	}
	copy(m[44+pl:], frame)
	return m
}

// transmit sends frame as data from the send buffer and checks the
// completion status.
func (n *tnic) transmit(c *tchan, msg []byte) {
	n.t.Helper()
	id := n.sendRNDIS(c, msg, 0)
	if r := n.completionOn(c, id); get32(r, 0) != 108 || get32(r, 4) != 1 {
		n.t.Fatalf("send completion % x; violations %v", r, n.g.h.Violations())
	}
}
