package netvsc

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gohv/gohv/drivers/netvsc/nvsp"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// TestOpenSequenceBytes checks, byte for byte, every message the guest
// sends while opening under NVSP 6.1 with vRSS, against bytes written
// from docs/hyperv-protocol.md §7.3–7.7 and the NDIS layouts.
func TestOpenSequenceBytes(t *testing.T) {
	h := newHost(t)
	h.rssQueues, h.subOffer = 4, 3
	n := h.mustOpen(Config{Queues: 2})
	if n.Version() != nvsp.Version61 || n.Queues() != 2 {
		t.Fatalf("version %v queues %d", n.Version(), n.Queues())
	}
	recs := h.recorded()
	recvID, sendID := h.recvID, h.sendID
	query := func(id, oid uint32, info []byte) []byte {
		return append(words32(4, uint32(28+len(info)), id, oid, uint32(len(info)), 20, 0), info...)
	}
	set := func(id, oid uint32, info []byte) []byte {
		return append(words32(5, uint32(28+len(info)), id, oid, uint32(len(info)), 20, 0), info...)
	}
	hwcaps := append([]byte{0xA7, 3, 156, 0}, make([]byte, 152)...)
	// Offload parameters granted by the fake's caps: IPv4 header csum
	// TX+RX (4) @4, TCP4 4 @5, UDP4 4 @6, TCP6 4 @7, UDP6 4 @8, LSOv2 on
	// (2) @11 and @12.
	params := []byte{0x80, 3, 28, 0, 4, 4, 4, 4, 4, 0, 0, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	rssq := append([]byte{0x88, 2, 18, 0}, make([]byte, 14)...)
	rss := append([]byte{0x89, 2, 40, 0, 0, 0, 0, 0}, words32(0x1701, 512, 40, 40, 40+512, 0, 0, 0)...)
	for i := range 128 {
		rss = append(rss, words32(uint32(i%2))...)
	}
	rss = append(rss, DefaultRSSKey[:]...)
	want := [][]byte{
		nvspMsg(1, 0x60001, 0x60001),       // INIT 6.1
		nvspMsg(125, 1514, 0, 0x28),        // NDIS config: MTU+14, 802.1Q | teaming
		nvspMsg(100, 6, 30),                // NDIS 6.30
		nvspMsg(101, recvID, 0xCAFE),       // receive buffer
		nvspMsg(104, sendID, 0),            // send buffer
		words32(2, 24, 1, 1, 0, 0x4000),    // RNDIS INITIALIZE
		query(2, 0x00010106, nil),          // max frame size
		query(3, 0x01010101, nil),          // permanent address
		query(4, 0xFC01020D, hwcaps),       // offload capabilities
		set(5, 0xFC01020C, params),         // offload parameters
		query(6, 0x00010114, nil),          // media connect status
		query(7, 0x00010107, nil),          // link speed
		query(8, 0x00010203, rssq),         // RSS capabilities
		nvspMsg(133, 1, 1),                 // SUBCHANNEL allocate 1
		set(9, 0x00010204, rss),            // RSS parameters
		set(10, 0x0001010E, words32(0x0D)), // packet filter
	}
	if len(recs) != len(want) {
		for _, r := range recs {
			t.Logf("% x", r)
		}
		t.Fatalf("%d messages, want %d", len(recs), len(want))
	}
	for i := range want {
		if !bytes.Equal(recs[i], want[i]) {
			t.Errorf("message %d:\n got % x\nwant % x", i, recs[i], want[i])
		}
	}
	if n.MAC() != h.mac || n.MTU() != 1500 || !n.LinkUp() || n.Stats().LinkSpeed != 10_000_000_000 {
		t.Errorf("MAC %x MTU %d link %v speed %d", n.MAC(), n.MTU(), n.LinkUp(), n.Stats().LinkSpeed)
	}
	o := n.Offloads()
	if !o.TxCsumIPv4 || !o.TxCsumTCP4 || !o.TxCsumUDP4 || !o.TxCsumTCP6 || !o.TxCsumUDP6 || !o.RxCsum || !o.LSOv4 || !o.LSOv6 || o.LSOMaxSize != 62780 {
		t.Errorf("offloads %+v", o)
	}
}

// TestNegotiationFallsBack: a host that stops at NVSP 4 gets INIT 61, 6,
// 5, 4 in turn, then NDIS 6.1, no teaming bit, the 6.1 offload query and
// the 22-byte offload parameters without UDP.
func TestNegotiationFallsBack(t *testing.T) {
	h := newHost(t)
	h.maxVersion = 0x00040000
	n := h.mustOpen(Config{MTU: 9000})
	if n.Version() != nvsp.Version4 {
		t.Fatalf("version %v", n.Version())
	}
	recs := h.recorded()
	for i, v := range []uint32{0x60001, 0x60000, 0x50000, 0x40000} {
		if !bytes.Equal(recs[i], nvspMsg(1, v, v)) {
			t.Errorf("INIT %d: % x", i, recs[i])
		}
	}
	if !bytes.Equal(recs[4], nvspMsg(125, 9014, 0, 0x08)) || !bytes.Equal(recs[5], nvspMsg(100, 6, 1)) {
		t.Errorf("config % x\nversion % x", recs[4], recs[5])
	}
	// The host's max frame size (1500) lowers the requested 9000.
	if n.MTU() != 1500 {
		t.Errorf("MTU %d", n.MTU())
	}
	h.mu.Lock()
	p := h.sets[0xFC01020C]
	h.mu.Unlock()
	if !bytes.Equal(p, []byte{0x80, 3, 22, 0, 4, 4, 0, 4, 0, 0, 0, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0}) {
		t.Errorf("v4 offload parameters % x", p)
	}
	if o := n.Offloads(); o.TxCsumUDP4 || o.TxCsumUDP6 || !o.TxCsumTCP4 {
		t.Errorf("offloads %+v", o)
	}
}

func TestJumboMTU(t *testing.T) {
	h := newHost(t)
	h.maxFrame, h.subAlloc = 9000, 16384
	n := h.mustOpen(Config{MTU: 9000})
	if n.MTU() != 9000 {
		t.Fatalf("MTU %d", n.MTU())
	}
	got := make(chan int, 1)
	n.SetReceiver(func(q int, f []byte, _ RxInfo) { got <- len(f) })
	h.deliver(h.primary(), rndisFrame(ethFrame(9014, 7)))
	if l := <-got; l != 9014 {
		t.Errorf("received %d bytes", l)
	}
	if err := n.Send(0, [][]byte{ethFrame(9014, 1)}, TxInfo{}); err != nil {
		t.Fatal(err)
	}
	if m := <-h.frames; len(m) != 44+9014 {
		t.Errorf("sent %d-byte RNDIS message", len(m))
	}
	if err := n.Send(0, [][]byte{ethFrame(9019, 1)}, TxInfo{}); !errors.Is(err, ErrFrame) {
		t.Errorf("oversize frame: %v", err)
	}
}

func TestNoVersion(t *testing.T) {
	h := newHost(t)
	h.maxVersion = 1
	if _, err := h.open(Config{}); !errors.Is(err, ErrNoVersion) {
		t.Fatalf("err %v", err)
	}
	if l := h.mem.liveAllocs(); l != 0 {
		t.Errorf("%d allocations leaked", l)
	}
}

func TestOpenFailureReleasesEverything(t *testing.T) {
	// Fail each allocation in turn: Open must fail cleanly and free all.
	for i := 1; i <= 6; i++ {
		h := newHost(t)
		h.mem.failAt = i
		if _, err := h.open(Config{}); err == nil {
			t.Fatalf("allocation %d failed but Open succeeded", i)
		}
		if l := h.mem.liveAllocs(); l != 0 {
			t.Errorf("allocation %d: %d allocations leaked", i, l)
		}
	}
}

func TestBadConfig(t *testing.T) {
	h := newHost(t)
	for _, c := range []Config{
		{Memory: nil},
		{Memory: h.mem, MTU: 100},
		{Memory: h.mem, MTU: 9001},
		{Memory: h.mem, Queues: 65},
		{Memory: h.mem, SendBufferSize: 100},
		{Memory: h.mem, ReceiveBufferSize: 4097},
	} {
		if _, err := Open(context.Background(), h.primary(), c); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

// TestCloseOrder checks the teardown order of §7.4 step 8: HALT, both
// revokes, then, with VMBus ≥ 4.0, the channels' close before the GPADL
// teardowns; below 4.0 the teardowns first.
func TestCloseOrder(t *testing.T) {
	for _, tt := range []struct {
		v    chanmsg.Version
		want []string
	}{
		{chanmsg.Version5_0, []string{"halt", "revoke 103", "revoke 106", "close 0", "teardown gpadl 1", "teardown gpadl 2"}},
		{chanmsg.Version3_0, []string{"halt", "revoke 103", "revoke 106", "teardown gpadl 1", "teardown gpadl 2", "close 0"}},
	} {
		h := newHost(t)
		n, err := h.open(Config{VMBusVersion: tt.v})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := n.Close(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		var got []string
		for _, l := range h.lines() {
			if !strings.HasPrefix(l, "open") {
				got = append(got, l)
			}
		}
		if strings.Join(got, ", ") != strings.Join(tt.want, ", ") {
			t.Errorf("VMBus %v: %q", tt.v, got)
		}
		// The last messages, byte for byte: SET filter 0 (request id 9
		// after the eight of Open), HALT (id 10), REVOKE_RECEIVE_BUFFER
		// 0xCAFE, REVOKE_SEND_BUFFER 0.
		recs := h.recorded()
		wantTail := [][]byte{
			words32(5, 32, 9, 0x0001010E, 4, 20, 0, 0),
			words32(3, 12, 10),
			nvspMsg(103, 0xCAFE),
			nvspMsg(106, 0),
		}
		for i, w := range wantTail {
			if got := recs[len(recs)-4+i]; !bytes.Equal(got, w) {
				t.Errorf("close message %d:\n got % x\nwant % x", i, got, w)
			}
		}
		h.mu.Lock()
		filter := h.sets[0x0001010E]
		h.mu.Unlock()
		if !bytes.Equal(filter, words32(0)) {
			t.Errorf("filter at close % x", filter)
		}
		if l := h.mem.liveAllocs(); l != 0 {
			t.Errorf("%d allocations leaked", l)
		}
		if err := n.Send(0, [][]byte{ethFrame(60, 0)}, TxInfo{}); !errors.Is(err, ErrClosed) {
			t.Errorf("Send after Close: %v", err)
		}
	}
}
