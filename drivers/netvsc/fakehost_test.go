package netvsc

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/ring"
)

// fakeHost is a NetVSP written from docs/hyperv-protocol.md §7 with
// literal offsets. It answers the init sequence and RNDIS control,
// completes sends, delivers frames into the receive buffer and records
// what the guest sent.
type fakeHost struct {
	t   testing.TB
	mem *fakeMem

	// Behaviour (set before Open).
	maxVersion  uint32 // highest NVSP version accepted
	subAlloc    int    // receive sub-allocation size
	sectionSize uint32
	maxFrame    uint32 // OID_GEN_MAXIMUM_FRAME_SIZE
	lsoMax      uint32 // LSOv2 maximum offload size
	mac         [6]byte
	linkDown    bool
	rssQueues   uint32 // RSS capabilities' receive queues; 0 = not supported
	subOffer    int    // sub-channels the host allocates at most
	noOffload   bool
	outCap      int
	holdSends   atomic.Bool // do not complete data sends
	sink        atomic.Bool // count data frames without copying them (allocation-free)
	sunk        atomic.Uint64
	scratch     []byte
	compl108    []byte
	frames      chan []byte // data frames the guest sent (RNDIS PACKET bytes)
	sendStatus  uint32

	nextGPADL atomic.Uint32
	space     chan struct{}

	mu       sync.Mutex
	chans    []*fakeChannel
	logLines []string
	records  [][]byte // raw guest messages of the set-up and control kind
	sets     map[uint32][]byte
	recvID   uint32 // receive GPADL id
	sendID   uint32
	recvBuf  []byte
	sendBuf  []byte
	freeSub  []int
	xfers    map[uint64][]int // outstanding transfer-page packets
	nextXfer uint64
	keepAck  int
	halted   bool
	revoked  []uint32
	config   []byte
	queueOf  map[*fakeChannel]*queue
	// mutate, if set, may rewrite a set-up completion (by NVSP type)
	// before it goes to the guest.
	mutate func(typ uint32, msg []byte) []byte
}

func newHost(t testing.TB) *fakeHost {
	h := &fakeHost{
		t: t, mem: newMem(), maxVersion: 0x00060001, subAlloc: 4096, sectionSize: 6144,
		maxFrame: 1500, lsoMax: 62780, mac: [6]byte{0x00, 0x15, 0x5d, 0x12, 0x34, 0x56}, outCap: defaultOutCap,
		frames: make(chan []byte, 1024), sendStatus: 1, scratch: make([]byte, 80<<10), compl108: nvspMsg(108, 1), space: make(chan struct{}, 1),
		sets: map[uint32][]byte{}, queueOf: map[*fakeChannel]*queue{}, xfers: map[uint64][]int{}, nextXfer: 0x7000,
	}
	h.chans = []*fakeChannel{h.newChannel(0)}
	return h
}

func (h *fakeHost) newChannel(i int) *fakeChannel {
	return &fakeChannel{
		host: h, index: i, offer: vmbus.Offer{SubChannelIndex: uint16(i), RelID: uint32(10 + i)},
		gpadls: map[uint32]hv.Pages{}, rescinded: make(chan struct{}),
		out: newPktRing(h.outCap), in: newPktRing(fakeSlots), toHost: make(chan struct{}, 1), intr: make(chan struct{}, 1),
	}
}

func (h *fakeHost) log(format string, args ...any) {
	h.mu.Lock()
	h.logLines = append(h.logLines, fmt.Sprintf(format, args...))
	h.mu.Unlock()
}

func (h *fakeHost) lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.logLines...)
}

func (h *fakeHost) record(b []byte) {
	h.mu.Lock()
	h.records = append(h.records, append([]byte(nil), b...))
	h.mu.Unlock()
}

func (h *fakeHost) recorded() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]byte(nil), h.records...)
}

// WaitSubChannels implements SubChannels.
func (h *fakeHost) WaitSubChannels(ctx context.Context, n int) ([]Channel, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Channel
	for i := 1; i <= n && i < len(h.chans); i++ {
		out = append(out, h.chans[i])
	}
	if len(out) < n {
		return out, context.DeadlineExceeded
	}
	return out, nil
}

func (h *fakeHost) primary() *fakeChannel { return h.chans[0] }

// open opens a NIC on the host's primary channel.
func (h *fakeHost) open(cfg Config) (*NIC, error) {
	if cfg.Memory == nil {
		cfg.Memory = h.mem
	}
	if cfg.SubChannels == nil && h.subOffer > 0 {
		cfg.SubChannels = h
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := Open(ctx, h.primary(), cfg)
	if err == nil {
		h.mu.Lock()
		for i, q := range n.queues {
			h.queueOf[h.chans[i]] = q
		}
		h.mu.Unlock()
	}
	return n, err
}

func (h *fakeHost) mustOpen(cfg Config) *NIC {
	h.t.Helper()
	n, err := h.open(cfg)
	if err != nil {
		h.t.Fatalf("Open: %v", err)
	}
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.Close(ctx)
	})
	return n
}

// loop serves one channel: it handles what the guest sent.
func (h *fakeHost) loop(c *fakeChannel) {
	defer c.wg.Done()
	var p fakePkt
	for {
		select {
		case <-c.toHost:
		case <-c.stop:
			return
		}
		c.hostMu.Lock()
		for !c.paused.Load() && c.out.pop(&p) {
			h.handle(c, &p)
			select {
			case h.space <- struct{}{}:
			default:
			}
		}
		c.hostMu.Unlock()
	}
}

// toGuest queues a packet to the guest and interrupts it.
func (h *fakeHost) toGuest(c *fakeChannel, typ ring.PacketType, flags uint16, txid uint64, hdr []byte, payload []byte) {
	if h.mutate != nil && typ == ring.TypeCompletion && len(payload) >= 4 && u32(payload, 0) != 108 {
		payload = h.mutate(u32(payload, 0), payload)
	}
	if err := c.in.push(typ, flags, txid, hdr, payload); err != nil {
		h.t.Errorf("host: inbound ring: %v", err)
		return
	}
	c.interrupt()
}

func u32(b []byte, off int) uint32 { return le.Uint32(b[off:]) }

func words32(ws ...uint32) []byte {
	b := make([]byte, 4*len(ws))
	for i, w := range ws {
		le.PutUint32(b[4*i:], w)
	}
	return b
}

// nvspMsg is a 40-byte NVSP message with u32 fields from offset 0.
func nvspMsg(ws ...uint32) []byte {
	b := make([]byte, 40)
	copy(b, words32(ws...))
	return b
}

func (h *fakeHost) handle(c *fakeChannel, p *fakePkt) {
	pay := p.pay[:p.plen]
	switch p.typ {
	case ring.TypeCompletion:
		// The guest completed a receive: NVSP 108 @0, status @4.
		if len(pay) < 8 || u32(pay, 0) != 108 {
			h.t.Errorf("host: bad guest completion % x", pay)
			return
		}
		if h.sink.Load() && p.txid >= sinkXfer {
			return // a fixed benchmark delivery
		}
		h.mu.Lock()
		subs, ok := h.xfers[p.txid]
		delete(h.xfers, p.txid)
		h.freeSub = append(h.freeSub, subs...)
		h.mu.Unlock()
		if !ok {
			h.t.Errorf("host: completion of unknown transfer %#x", p.txid)
		}
		return
	case ring.TypeDataInband, ring.TypeDataGPADirect:
	default:
		h.t.Errorf("host: packet type %d", p.typ)
		return
	}
	if len(pay) < 4 {
		h.t.Errorf("host: short NVSP message")
		return
	}
	typ := u32(pay, 0)
	if typ != 107 {
		h.record(pay)
	}
	switch typ {
	case 1: // INIT: min @4, max @8
		status := uint32(1)
		if u32(pay, 8) > h.maxVersion {
			status = 3 // too new
		}
		h.toGuest(c, ring.TypeCompletion, 0, p.txid, nil, nvspMsg(2, 0, 34, status))
	case 125:
		h.mu.Lock()
		h.config = append([]byte(nil), pay...)
		h.mu.Unlock()
	case 100:
	case 101: // SEND_RECEIVE_BUFFER: GPADL @4, id @8
		pg, ok := c.gpadl(u32(pay, 4))
		if !ok || u32(pay, 8) != 0xCAFE {
			h.toGuest(c, ring.TypeCompletion, 0, p.txid, nil, nvspMsg(102, 2))
			return
		}
		n := len(pg.Mem) / h.subAlloc
		h.mu.Lock()
		h.recvID, h.recvBuf = u32(pay, 4), pg.Mem
		h.freeSub = h.freeSub[:0]
		for i := n - 1; i >= 0; i-- {
			h.freeSub = append(h.freeSub, i)
		}
		h.mu.Unlock()
		h.toGuest(c, ring.TypeCompletion, 0, p.txid, nil, nvspMsg(102, 1, 1, 0, uint32(h.subAlloc), uint32(n), uint32(n*h.subAlloc)))
	case 104: // SEND_SEND_BUFFER
		pg, ok := c.gpadl(u32(pay, 4))
		if !ok {
			h.toGuest(c, ring.TypeCompletion, 0, p.txid, nil, nvspMsg(105, 2))
			return
		}
		h.mu.Lock()
		h.sendID, h.sendBuf = u32(pay, 4), pg.Mem
		h.mu.Unlock()
		h.toGuest(c, ring.TypeCompletion, 0, p.txid, nil, nvspMsg(105, 1, h.sectionSize))
	case 103, 106:
		h.mu.Lock()
		h.revoked = append(h.revoked, typ)
		h.mu.Unlock()
	case 133: // SUBCHANNEL: op @4, count @8
		n := min(int(u32(pay, 8)), h.subOffer)
		h.mu.Lock()
		for len(h.chans) <= n {
			h.chans = append(h.chans, h.newChannel(len(h.chans)))
		}
		h.mu.Unlock()
		h.toGuest(c, ring.TypeCompletion, 0, p.txid, nil, nvspMsg(133, 1, uint32(n)))
	case 107: // SEND_RNDIS_PACKET: channel type @4, section @8, size @12
		h.rndisPacket(c, p, pay)
	default:
		h.t.Errorf("host: NVSP type %d", typ)
	}
}

// rndisPacket reads the RNDIS message of a send from the send buffer or
// the GPA-direct ranges.
func (h *fakeHost) rndisPacket(c *fakeChannel, p *fakePkt, pay []byte) {
	var msg []byte
	section, size := u32(pay, 8), u32(pay, 12)
	sink := h.sink.Load() && u32(pay, 4) == 0
	if p.typ == ring.TypeDataInband {
		h.mu.Lock()
		buf := h.sendBuf
		h.mu.Unlock()
		off := int(section) * int(h.sectionSize)
		if section == 0xFFFFFFFF || off+int(size) > len(buf) || size > h.sectionSize {
			h.t.Errorf("host: bad section %d size %d", section, size)
			return
		}
		if sink {
			msg = h.scratch[:copy(h.scratch, buf[off:off+int(size)])]
		} else {
			msg = append([]byte(nil), buf[off:off+int(size)]...)
		}
	} else if sink {
		msg = h.gatherInto(p.hdr[:p.hlen], h.scratch)
	} else {
		// GPA direct header (descriptor @16 on): reserved @0, count @4,
		// ranges @8: {byte count, byte offset, PFNs}.
		hdr := p.hdr[:p.hlen]
		if section != 0xFFFFFFFF {
			h.t.Errorf("host: GPA-direct send with section %d", section)
		}
		count, at := int(u32(hdr, 4)), 8
		for range count {
			bc, bo := u32(hdr, at), u32(hdr, at+4)
			pages := int((uint64(bo) + uint64(bc) + 4095) / 4096)
			at += 8
			chunk := make([]byte, bc)
			done := 0
			for i := range pages {
				pfn := le.Uint64(hdr[at+8*i:])
				start := uint64(0)
				if i == 0 {
					start = uint64(bo)
				}
				n := min(4096-int(start), int(bc)-done)
				if err := h.mem.read(pfn*4096+start, chunk[done:done+n]); err != nil {
					h.t.Errorf("host: %v", err)
					return
				}
				done += n
			}
			at += 8 * pages
			msg = append(msg, chunk...)
		}
	}
	chanType := u32(pay, 4)
	status := h.sendStatus
	if len(msg) < 8 || int(u32(msg, 4)) != len(msg) {
		h.t.Errorf("host: RNDIS length %d in %d bytes", u32(msg, 4), len(msg))
		status = 5
	}
	switch {
	case sink:
		h.sunk.Add(1)
		h.toGuest(c, ring.TypeCompletion, 0, p.txid, nil, h.compl108)
		return
	case chanType == 0 && u32(msg, 0) == 1:
		select {
		case h.frames <- msg:
		default:
			h.t.Error("host: frame queue full")
		}
		if h.holdSends.Load() {
			return
		}
	case chanType == 1:
		h.record(msg)
		h.control(c, msg)
	default:
		h.t.Errorf("host: channel type %d message %#x", chanType, u32(msg, 0))
	}
	h.toGuest(c, ring.TypeCompletion, 0, p.txid, nil, nvspMsg(108, status))
}

// sinkXfer and above are transaction ids of fixed benchmark deliveries.
const sinkXfer = 1 << 40

// gatherInto copies the GPA-direct ranges of hdr into dst without
// allocating (benchmarks).
func (h *fakeHost) gatherInto(hdr, dst []byte) []byte {
	count, at, done := int(u32(hdr, 4)), 8, 0
	for range count {
		bc, bo := u32(hdr, at), u32(hdr, at+4)
		pages := int((uint64(bo) + uint64(bc) + 4095) / 4096)
		at += 8
		left := int(bc)
		for i := range pages {
			pfn := le.Uint64(hdr[at+8*i:])
			start := uint64(0)
			if i == 0 {
				start = uint64(bo)
			}
			n := min(4096-int(start), left)
			if err := h.mem.read(pfn*4096+start, dst[done:done+n]); err != nil {
				h.t.Errorf("host: %v", err)
				return dst[:0]
			}
			done += n
			left -= n
		}
		at += 8 * pages
	}
	return dst[:done]
}

// control answers one RNDIS control message (§7.6).
func (h *fakeHost) control(c *fakeChannel, msg []byte) {
	id := u32(msg, 8)
	switch u32(msg, 0) {
	case 2: // INITIALIZE → INITIALIZE_CMPLT, 52 bytes
		h.deliver(c, words32(0x80000002, 52, id, 0, 1, 0, 0, 0, 8, 0xEFFFFFFF, 3, 0, 0))
	case 3:
		h.mu.Lock()
		h.halted = true
		h.mu.Unlock()
		h.log("halt")
	case 4: // QUERY: OID @12
		h.deliver(c, h.query(id, u32(msg, 12), msg))
	case 5: // SET: OID @12, info length @16, info offset @20 (from @8)
		oid, l, off := u32(msg, 12), u32(msg, 16), u32(msg, 20)
		h.mu.Lock()
		h.sets[oid] = append([]byte(nil), msg[8+off:8+off+l]...)
		h.mu.Unlock()
		h.deliver(c, words32(0x80000005, 16, id, 0))
	case 8: // KEEPALIVE
		h.deliver(c, words32(0x80000008, 16, id, 0))
	case 0x80000008:
		h.mu.Lock()
		h.keepAck++
		h.mu.Unlock()
	default:
		h.t.Errorf("host: RNDIS control type %#x", u32(msg, 0))
	}
}

func queryCmplt(id, status uint32, info []byte) []byte {
	return append(words32(0x80000004, uint32(24+len(info)), id, status, uint32(len(info)), 16), info...)
}

func (h *fakeHost) query(id, oid uint32, msg []byte) []byte {
	switch oid {
	case 0x00010106:
		return queryCmplt(id, 0, words32(h.maxFrame))
	case 0x01010101, 0x01010102:
		return queryCmplt(id, 0, h.mac[:])
	case 0x00010114:
		st := uint32(0)
		if h.linkDown {
			st = 1
		}
		return queryCmplt(id, 0, words32(st))
	case 0x00010107:
		return queryCmplt(id, 0, words32(100000000)) // 10 Gbit/s in 100 bps
	case 0xFC01020D:
		if h.noOffload {
			return queryCmplt(id, 0xC00000BB, nil)
		}
		caps := make([]byte, 156)
		copy(caps, []byte{0xA7, 3, 156, 0})
		le.PutUint32(caps[4:], 2)      // IPv4 TX encapsulation 802.3
		le.PutUint32(caps[8:], 0x154)  // IPv4 TX: TCP, TCP options, UDP, IP
		le.PutUint32(caps[16:], 0x154) // IPv4 RX
		le.PutUint32(caps[24:], 0x55)  // IPv6 TX: ext headers, TCP options, TCP, UDP
		le.PutUint32(caps[32:], 0x55)  // IPv6 RX
		copy(caps[80:], words32(2, h.lsoMax, 2, 2, h.lsoMax, 2, 5))
		return queryCmplt(id, 0, caps)
	case 0x00010203:
		if h.rssQueues == 0 {
			return queryCmplt(id, 0xC00000BB, nil)
		}
		cap := append([]byte{0x88, 2, 18, 0}, words32(0, 8, h.rssQueues)...)
		return queryCmplt(id, 0, append(cap, 128, 0))
	}
	return queryCmplt(id, 0xC00000BB, nil)
}

// deliver puts RNDIS messages into receive sub-allocations and sends one
// transfer-page packet with a range per message on c.
func (h *fakeHost) deliver(c *fakeChannel, msgs ...[]byte) {
	h.mu.Lock()
	if len(h.freeSub) < len(msgs) {
		h.mu.Unlock()
		h.t.Errorf("host: receive buffer full")
		return
	}
	hdr := words32(0xCAFE, uint32(len(msgs)))
	var subs []int
	for _, m := range msgs {
		s := h.freeSub[len(h.freeSub)-1]
		h.freeSub = h.freeSub[:len(h.freeSub)-1]
		if len(m) > h.subAlloc {
			h.mu.Unlock()
			h.t.Errorf("host: %d-byte message in %d-byte sub-allocation", len(m), h.subAlloc)
			return
		}
		copy(h.recvBuf[s*h.subAlloc:], m)
		subs = append(subs, s)
		hdr = append(hdr, words32(uint32(len(m)), uint32(s*h.subAlloc))...)
	}
	h.nextXfer++
	txid := h.nextXfer
	h.xfers[txid] = subs
	h.mu.Unlock()
	h.toGuest(c, ring.TypeDataTransferPages, 1, txid, hdr, nvspMsg(107, 0, 0xFFFFFFFF, 0))
}

func (h *fakeHost) outstandingXfers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.xfers)
}

// rndisFrame builds a host RNDIS PACKET around frame with the given
// per-packet info entries (each {type, value}).
func rndisFrame(frame []byte, ppis ...[2]uint32) []byte {
	ppiLen := 16 * len(ppis)
	m := words32(1, uint32(44+ppiLen+len(frame)), uint32(36+ppiLen), uint32(len(frame)), 0, 0, 0, 36, uint32(ppiLen), 0, 0)
	for _, p := range ppis {
		m = append(m, words32(16, p[0], 12, p[1])...)
	}
	return append(m, frame...)
}

// indicate builds INDICATE_STATUS with an optional u32 buffer.
func indicate(status uint32, buf ...uint32) []byte {
	b := words32(buf...)
	return append(words32(7, uint32(20+len(b)), status, uint32(len(b)), 12), b...)
}

// waitFor polls cond until it holds or the test times out; used only to
// wait for an event that must happen, never to prove an absence.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func ethFrame(n int, fill byte) []byte {
	f := bytes.Repeat([]byte{fill}, n)
	copy(f, []byte{0x00, 0x15, 0x5d, 0x12, 0x34, 0x56, 0x00, 0x15, 0x5d, 0xAA, 0xBB, 0xCC, 0x08, 0x00})
	return f
}
