package netvsp

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gohv/gohv/tools/hvsim"
)

// fakeBackend records what the NIC sends and lets a test inject frames.
type fakeBackend struct {
	mu   sync.Mutex
	recv func([]byte)
	sent chan []byte
}

func newFake() *fakeBackend { return &fakeBackend{sent: make(chan []byte, 1024)} }

func (f *fakeBackend) Send(frame []byte) { f.sent <- append([]byte(nil), frame...) }
func (f *fakeBackend) SetReceiver(fn func([]byte)) {
	f.mu.Lock()
	f.recv = fn
	f.mu.Unlock()
}
func (f *fakeBackend) inject(frame []byte) {
	f.mu.Lock()
	fn := f.recv
	f.mu.Unlock()
	fn(frame)
}

func broadcast(i byte) []byte {
	f := ethFrame([6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, peerMAC, 0x88b5, make([]byte, 46))
	f[20] = i
	return f
}

// waitFor polls cond (an event the host must produce) with a deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func wantViolation(t testing.TB, h *hvsim.Host, target error) {
	t.Helper()
	waitFor(t, "a violation", func() bool { return h.ViolationCount() > 0 })
	if v := h.Violations(); !errors.Is(v[0], target) {
		t.Fatalf("violation %v, want %v", v[0], target)
	}
}

func TestVersionNegotiation(t *testing.T) {
	for _, v := range []uint32{NVSPVersion61, NVSPVersion6, NVSPVersion5, NVSPVersion4, NVSPVersion2, NVSPVersion1} {
		n := newNIC(t, Config{})
		// A version the host does not know is refused, not a violation.
		if r := n.request(nvsp(1, 0x00070000, 0x00070000)); get32(r, 12) == 1 {
			t.Fatalf("NVSP 7.0 accepted: % x", r)
		}
		r := n.request(nvsp(1, v, v))
		wantField := uint32(0xFFFFFFFF)
		if v == NVSPVersion1 {
			wantField = 2
		}
		if get32(r, 0) != 2 || get32(r, 4) != wantField || get32(r, 8) != 34 || get32(r, 12) != 1 {
			t.Fatalf("version %#x: INIT_COMPLETE % x", v, r)
		}
		// The next completion has the negotiated message size (§7.2):
		// 40 bytes for 6.1, 28 (padded to 32 in the ring) before.
		if v != NVSPVersion1 {
			n.c.write(0x6, 1, 99, nil, nvsp(125, 1514, 0, 0))
			want := 0
			if c := n.completion(99); len(c) != want {
				t.Fatalf("NDIS config completion of %d bytes", len(c))
			}
		}
		n.c.write(0x6, 0, 0, nil, nvsp(100, 6, 30))
		if err := n.g.h.Violations(); len(err) != 0 {
			t.Fatalf("version %#x: %v", v, err)
		}
		if got := n.dev.State().NVSPVersion; got != v {
			t.Fatalf("state version %#x, want %#x", got, v)
		}
	}
}

func TestNVSPMessageSizeFollowsVersion(t *testing.T) {
	for _, tt := range []struct {
		v    uint32
		size int
	}{{NVSPVersion61, 40}, {NVSPVersion5, 32}} {
		n := newNIC(t, Config{})
		n.negotiate(tt.v)
		id := n.sendRNDIS(n.c, []byte{0x77, 0, 0, 0, 8, 0, 0, 0}, 1) // unknown RNDIS type
		if c := n.completion(id); len(c) != tt.size || get32(c, 4) != 5 {
			t.Fatalf("version %#x: completion % x, want %d bytes, status 5", tt.v, c, tt.size)
		}
		wantViolation(t, n.g.h, ErrMalformed)
	}
}

func TestViolations(t *testing.T) {
	tests := []struct {
		name   string
		script func(n *tnic)
		want   error
	}{
		{"RNDIS before INIT", func(n *tnic) { n.c.write(0x6, 1, 1, nil, nvsp(107, 0, 0, 20)) }, ErrState},
		{"second INIT", func(n *tnic) {
			n.request(nvsp(1, NVSPVersion61, NVSPVersion61))
			n.c.write(0x6, 1, 2, nil, nvsp(1, NVSPVersion61, NVSPVersion61))
		}, ErrState},
		{"NDIS config under NVSP 1", func(n *tnic) {
			n.request(nvsp(1, NVSPVersion1, NVSPVersion1))
			n.c.write(0x6, 0, 0, nil, nvsp(125, 1514))
		}, ErrState},
		{"receive buffer before NDIS config", func(n *tnic) {
			n.request(nvsp(1, NVSPVersion61, NVSPVersion61))
			if r := n.request(nvsp(101, 0x777, 1)); get32(r, 4) != 2 {
				n.t.Fatalf("completion % x, want status 2", r)
			}
		}, ErrState},
		{"unknown GPADL", func(n *tnic) {
			n.request(nvsp(1, NVSPVersion61, NVSPVersion61))
			n.c.write(0x6, 0, 0, nil, nvsp(125, 1514))
			n.request(nvsp(101, 0x777, 1))
		}, ErrBufferRef},
		{"unknown NVSP type", func(n *tnic) { n.c.write(0x6, 0, 0, nil, nvsp(0x4242)) }, ErrMalformed},
		{"truncated NVSP message", func(n *tnic) { n.c.write(0x6, 0, 0, nil, []byte{1, 0, 0}) }, ErrMalformed},
		{"send-buffer section out of range", func(n *tnic) {
			n.negotiate(NVSPVersion61)
			n.c.write(0x6, 1, 7, nil, nvsp(107, 1, 1000, 20))
		}, ErrBufferRef},
		{"data before RNDIS INITIALIZE", func(n *tnic) {
			n.negotiate(NVSPVersion61)
			n.sendRNDIS(n.c, guestPacket(arpRequest()), 0)
		}, ErrState},
		{"completion for an id never sent", func(n *tnic) {
			n.negotiate(NVSPVersion61)
			n.c.write(0xB, 0, 0x1234, nil, nvsp(108, 1))
		}, ErrUnknownCompletion},
		{"malformed RNDIS PACKET", func(n *tnic) {
			n.ready()
			m := guestPacket(arpRequest())
			put32(m, 12, 4000) // data length past the message
			n.sendRNDIS(n.c, m, 0)
		}, ErrMalformed},
		{"control message on the data channel type", func(n *tnic) {
			n.ready()
			n.sendRNDIS(n.c, []byte{8, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0}, 0)
		}, ErrMalformed},
		{"revoke of an unknown receive buffer id", func(n *tnic) {
			n.negotiate(NVSPVersion61)
			n.c.write(0x6, 0, 0, nil, nvsp(103, 0xBEEF))
		}, ErrBufferRef},
		{"oversized frame", func(n *tnic) {
			n.ready()
			n.sendRNDIS(n.c, guestPacket(make([]byte, 1600)), 0)
		}, ErrMalformed},
		{"LSOv1", func(n *tnic) {
			n.ready()
			n.sendRNDIS(n.c, guestPacket(ipv4Frame(6, tcpSegment(1, 2, 3, 4, 0, make([]byte, 3000)), true), ppi{2, 1400 | 34<<20}), 0)
		}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNIC(t, Config{})
			tt.script(n)
			wantViolation(t, n.g.h, tt.want)
		})
	}
}

func TestOIDs(t *testing.T) {
	n := newNIC(t, Config{MTU: 1500, LinkSpeed: 40_000_000_000})
	n.ready()
	u32 := func(oid uint32) uint32 {
		t.Helper()
		st, b := n.query(oid)
		if st != 0 || len(b) != 4 {
			t.Fatalf("OID %#x: status %#x, % x", oid, st, b)
		}
		return get32(b, 0)
	}
	if v := u32(0x00010106); v != 1500 {
		t.Errorf("max frame size %d", v)
	}
	if v := u32(0x00010107); v != 400_000_000 {
		t.Errorf("link speed %d (100 bps units)", v)
	}
	if v := u32(0x00010114); v != 0 {
		t.Errorf("media connect status %d", v)
	}
	if v := u32(0x0001010E); v != 0x0D {
		t.Errorf("packet filter %#x", v)
	}
	if st, b := n.query(0xFC01020D); st != 0 || len(b) != 156 || b[0] != 0xA7 {
		t.Errorf("offload capabilities: %#x % x", st, b)
	}
	if st, b := n.query(0x00010203); st != 0 || len(b) != 18 || b[0] != 0x88 || get32(b, 12) != 4 {
		t.Errorf("RSS capabilities: %#x % x", st, b)
	}
	if st, _ := n.query(0x00FFFFFF); st != 0xC00000BB {
		t.Errorf("unknown OID: status %#x", st)
	}
	// Offload parameters: TCP4 checksum off, then the current config shows it.
	if st := n.set(0xFC01020C, []byte{0x80, 1, 20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}); st != 0 {
		t.Fatalf("offload parameters: %#x", st)
	}
	if _, b := n.query(0xFC01020B); get32(b, 8)&0x30 != 0 || get32(b, 16)&0x30 != 0 {
		t.Errorf("TCP4 checksum still on: % x", b[:36])
	}
	// Keepalive.
	r := n.control([]byte{8, 0, 0, 0, 12, 0, 0, 0, 0x42, 0, 0, 0})
	if get32(r, 0) != 0x80000008 || get32(r, 8) != 0x42 || get32(r, 12) != 0 {
		t.Errorf("KEEPALIVE_CMPLT % x", r)
	}
	noViolations(t, n.g.h)
	// A packet filter of 2 bytes is refused with INVALID_DATA and recorded.
	if st := n.set(0x0001010E, []byte{0x0d, 0}); st != 0xC0010015 {
		t.Errorf("2-byte packet filter: status %#x", st)
	}
	wantViolation(t, n.g.h, ErrMalformed)
}

func TestLinkIndications(t *testing.T) {
	fb := newFake()
	n := newNIC(t, Config{Backend: fb})
	n.ready()
	n.dev.SetLink(false)
	st := n.receive(n.c, 1)[0]
	if get32(st, 0) != 7 || get32(st, 8) != StatusMediaDisconnect {
		t.Fatalf("indication % x", st)
	}
	if s, b := n.query(0x00010114); s != 0 || get32(b, 0) != 1 {
		t.Fatalf("media connect status with the link down: % x", b)
	}
	fb.inject(broadcast(1))
	n.transmit(n.c, guestPacket(arpRequest()))
	if s := n.dev.Stats(); s.RxDroppedLink != 1 || s.TxDroppedLink != 1 {
		t.Fatalf("stats %+v", s)
	}
	n.dev.SetLink(true)
	if st := n.receive(n.c, 1)[0]; get32(st, 8) != StatusMediaConnect {
		t.Fatalf("indication % x", st)
	}
	n.dev.IndicateNetworkChange()
	if st := n.receive(n.c, 1)[0]; get32(st, 8) != StatusNetworkChange {
		t.Fatalf("indication % x", st)
	}
	fb.inject(broadcast(2))
	if f, _ := n.frames(n.c); len(f) != 1 || f[0][20] != 2 {
		t.Fatalf("frames after link up: %d", len(f))
	}
	noViolations(t, n.g.h)
}

func TestReceiveBufferStarvedHoldsThenDrops(t *testing.T) {
	fb := newFake()
	n := newNIC(t, Config{Backend: fb, HoldFrames: 4})
	n.ready()
	n.dev.Faults().StarveReceiveBuffer(true)
	for i := byte(0); i < 10; i++ {
		fb.inject(broadcast(i))
	}
	if s := n.dev.Stats(); s.RxDroppedFull != 6 {
		t.Fatalf("dropped %d, want 6 beyond the 4 held", s.RxDroppedFull)
	}
	waitFor(t, "a receive-buffer wait", func() bool { return n.dev.Stats().RxBufferWaits > 0 })
	n.dev.Faults().StarveReceiveBuffer(false)
	// The four held frames queued up together: one transfer-page packet
	// carries them all (§7.5), in order.
	f, _ := n.frames(n.c)
	var got []byte
	for _, x := range f {
		got = append(got, x[20])
	}
	if string(got) != "\x00\x01\x02\x03" {
		t.Fatalf("frames % x, want the first four in order", got)
	}
	noViolations(t, n.g.h)
}

// TestReceiveBufferReusedOnlyAfterCompletion fills a small receive buffer
// without completing anything: the host stops at the last free data
// sub-allocation and continues only when the guest completes.
func TestReceiveBufferReusedOnlyAfterCompletion(t *testing.T) {
	fb := newFake()
	n := newNIC(t, Config{Backend: fb, HoldFrames: 64})
	n.recvPages = 15 // 61440 bytes: 34 sub-allocations of 1806, 18 for data
	n.ready()
	for i := byte(0); i < 30; i++ {
		fb.inject(broadcast(i))
	}
	waitFor(t, "the buffer to fill", func() bool { return n.dev.Stats().RxFrames == 18 })
	waitFor(t, "the host to wait", func() bool { return n.dev.Stats().RxBufferWaits > 0 })
	var held []pkt
	total := 0
	for total < 18 {
		p := n.wait(func(p pkt) bool { return p.typ == 0x7 })
		held = append(held, p)
		total += int(get32(p.hdr, 4))
	}
	if s := n.dev.State(); s.RecvOutstanding != len(held) {
		t.Fatalf("outstanding %d, want %d\n%s", s.RecvOutstanding, len(held), n.dev.Dump())
	}
	var got []byte
	for _, p := range held {
		for _, m := range n.accept(n.c, p) {
			f, _ := decodePacket(t, m)
			got = append(got, f[20])
		}
	}
	for len(got) < 30 {
		f, _ := n.frames(n.c)
		for _, x := range f {
			got = append(got, x[20])
		}
	}
	for i, b := range got {
		if b != byte(i) {
			t.Fatalf("frame %d carries %d", i, b)
		}
	}
	noViolations(t, n.g.h)
}

func TestCompletionFaults(t *testing.T) {
	fb := newFake()
	n := newNIC(t, Config{Backend: fb})
	n.ready()
	n.dev.Faults().DropCompletions(1)
	lost := n.sendRNDIS(n.c, guestPacket(arpRequest()), 0)
	n.transmit(n.c, guestPacket(arpRequest()))
	for _, p := range n.pending[n.c] {
		if p.typ == 0xB && p.txid == lost {
			t.Fatal("dropped completion arrived")
		}
	}
	if s := n.dev.Stats(); s.CompletionsLost != 1 || s.TxFrames != 2 {
		t.Fatalf("stats %+v", s)
	}
	n.dev.Faults().ReorderCompletions(true)
	a := n.sendRNDIS(n.c, guestPacket(arpRequest()), 0)
	b := n.sendRNDIS(n.c, guestPacket(arpRequest()), 0)
	first := n.wait(func(p pkt) bool { return p.typ == 0xB })
	second := n.wait(func(p pkt) bool { return p.typ == 0xB })
	if first.txid != b || second.txid != a {
		t.Fatalf("completion order %d, %d; want %d, %d", first.txid, second.txid, b, a)
	}
	noViolations(t, n.g.h)
}

func TestGuestRingFull(t *testing.T) {
	fb := newFake()
	n := newNIC(t, Config{Backend: fb})
	n.ready()
	fillers := n.dev.FillGuestRing(0)
	if fillers == 0 {
		t.Fatal("nothing filled")
	}
	fb.inject(broadcast(9))
	ch := n.g.h.Channel(n.primary.relid)
	waitFor(t, "the host to find the ring full", func() bool { return ch.Stats().RingFull > 0 })
	f, _ := n.frames(n.c) // reading skips past the fillers and frees room
	if len(f) != 1 || f[0][20] != 9 {
		t.Fatalf("frames %d", len(f))
	}
	noViolations(t, n.g.h)
}

func TestRevokeAndRescind(t *testing.T) {
	fb := newFake()
	n := newNIC(t, Config{Backend: fb})
	n.ready()
	// A receive outstanding across the revoke may still be completed.
	fb.inject(broadcast(1))
	held := n.wait(func(p pkt) bool { return p.typ == 0x7 })
	n.c.write(0x6, 0, 0, nil, nvsp(103, testRecvID))
	n.c.write(0xB, 0, held.txid, nil, nvsp(108, 1))
	n.c.write(0x6, 0, 0, nil, nvsp(106, 0))
	waitFor(t, "the revokes", func() bool {
		s := n.dev.State()
		return s.RecvBufferSubAllocs == 0 && s.SendBufferSections == 0
	})
	// Frames after the revoke have nowhere to go.
	fb.inject(broadcast(2))
	waitFor(t, "the frame to be dropped", func() bool { return n.dev.Stats().RxDroppedFilter == 1 })
	if err := n.dev.Rescind(); err != nil {
		t.Fatal(err)
	}
	if r := n.g.nextOf(2); get32(r, 8) != n.primary.relid {
		t.Fatalf("RESCIND % x", r)
	}
	waitFor(t, "the device to close", func() bool { return n.dev.State().OpenQueues == 0 })
	noViolations(t, n.g.h)
}

func TestSubChannelsIndirectionTableAndRSS(t *testing.T) {
	fb := newFake()
	n := newNIC(t, Config{Backend: fb, MaxQueues: 3})
	n.ready()
	if r := n.request(nvsp(133, 1, 5)); get32(r, 0) != 133 || get32(r, 4) != 2 || get32(r, 8) != 0 {
		t.Fatalf("5 sub-channels of 3 queues: % x", r)
	}
	r := n.request(nvsp(133, 1, 2))
	if get32(r, 0) != 133 || get32(r, 4) != 1 || get32(r, 8) != 2 {
		t.Fatalf("SUBCHANNEL completion % x", r)
	}
	var offers []offer
	for len(offers) < 2 {
		o := parseOffer(n.g.nextOf(1))
		if o.sub == 0 || o.sub > 2 {
			t.Fatalf("offer of sub-channel index %d", o.sub)
		}
		offers = append(offers, o)
	}
	subs := map[uint16]*tchan{}
	for _, o := range offers {
		subs[o.sub] = n.g.openChannel(o)
	}
	// §7.3: SEND_INDIRECTION_TABLE, in-band on the primary, once every
	// sub-channel is open: 16 entries, entry i = i mod 3.
	p := n.wait(func(p pkt) bool { return p.typ == 0x6 })
	if get32(p.data, 0) != 134 || get32(p.data, 4) != 16 || get32(p.data, 8) != 12 || p.flags != 0 {
		t.Fatalf("indirection table % x", p.data)
	}
	for i := 0; i < 16; i++ {
		if e := get32(p.data, 12+4*i); e != uint32(i%3) {
			t.Fatalf("entry %d = %d", i, e)
		}
	}
	// Sending on a sub-channel reaches the backend.
	n.transmit(subs[1], guestPacket(arpRequest()))
	if f := <-fb.sent; len(f) != 42 {
		t.Fatalf("frame of %d bytes", len(f))
	}
	// RSS with every table entry on queue 2.
	rss := make([]byte, 40+16+40)
	copy(rss, []byte{0x89, 2, 40, 0})
	put32(rss, 8, 0x201) // Toeplitz, TCP/IPv4
	put16(rss, 12, 16)
	put32(rss, 16, 40)
	put16(rss, 20, 40)
	put32(rss, 24, 56)
	for i := 0; i < 4; i++ {
		put32(rss, 40+4*i, 2)
	}
	var key [40]byte
	for i := range key {
		key[i] = byte(3*i + 1)
		rss[56+i] = key[i]
	}
	if st := n.set(0x00010204, rss); st != 0 {
		t.Fatalf("RSS parameters: %#x", st)
	}
	seg := ipv4Frame(6, tcpSegment(80, 40000, 1, 1, 0x10, []byte("x")), false)
	copy(seg, guestMAC[:])
	copy(seg[6:], peerMAC[:])
	txChecksum(seg, csumReqTCP4)
	fb.inject(seg)
	got := n.waitOn(subs[2], func(p pkt) bool { return p.typ == 0x7 })
	msgs := n.accept(subs[2], got)
	m := msgs[0]
	var hash uint32
	for off := 8 + int(get32(m, 28)); off < 8+int(get32(m, 28))+int(get32(m, 32)); off += int(get32(m, off)) {
		if get32(m, off+4) == 8 {
			hash = get32(m, off+12)
		}
	}
	if want, _ := rssHash(&key, seg); hash != want || hash == 0 {
		t.Fatalf("hash PPI %#x, want %#x", hash, want)
	}
	noViolations(t, n.g.h)
	// Completing a sub-channel's packet on the primary is a violation.
	fb.inject(seg)
	got = n.waitOn(subs[2], func(p pkt) bool { return p.typ == 0x7 })
	n.c.write(0xB, 0, got.txid, nil, nvsp(108, 1))
	wantViolation(t, n.g.h, ErrUnknownCompletion)
}

func TestConcatenatedPacketsVLANAndHalt(t *testing.T) {
	fb := newFake()
	n := newNIC(t, Config{Backend: fb})
	n.ready()
	// Two PACKETs in one RNDIS message; the second asks for VLAN 5,
	// priority 3 (§7.8 PPI 6: bits 2:0 priority, 15:4 VLAN id).
	a := guestPacket(arpRequest())
	b := guestPacket(arpRequest(), ppi{6, 3 | 5<<4})
	n.transmit(n.c, append(a, b...))
	first, second := <-fb.sent, <-fb.sent
	if len(first) != 42 || first[12] != 0x08 || first[13] != 0x06 {
		t.Fatalf("first frame % x", first)
	}
	// 802.1Q tag: TPID 0x8100, TCI = priority 3 << 13 | VLAN 5.
	if len(second) != 46 || !bytes.Equal(second[12:18], []byte{0x81, 0x00, 0x60, 0x05, 0x08, 0x06}) {
		t.Fatalf("tagged frame % x", second)
	}
	// HALT (no answer), then data is out of order.
	n.sendRNDIS(n.c, []byte{3, 0, 0, 0, 12, 0, 0, 0, 9, 0, 0, 0}, 1)
	waitFor(t, "HALT", func() bool { return !n.dev.State().RNDISInitialized })
	n.sendRNDIS(n.c, guestPacket(arpRequest()), 0)
	wantViolation(t, n.g.h, ErrState)
}
