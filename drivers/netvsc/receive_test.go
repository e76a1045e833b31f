package netvsc

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gohv/gohv/vmbus/ring"
)

type rxFrame struct {
	queue int
	frame []byte
	info  RxInfo
}

func collect(n *NIC) chan rxFrame {
	ch := make(chan rxFrame, 64)
	n.SetReceiver(func(q int, f []byte, info RxInfo) {
		ch <- rxFrame{q, append([]byte(nil), f...), info}
	})
	return ch
}

// TestReceive delivers host-built packets: several RNDIS messages per
// transfer-page packet, per-packet info, and checks that every packet is
// completed.
func TestReceive(t *testing.T) {
	h := newHost(t)
	n := h.mustOpen(Config{})
	got := collect(n)
	f1, f2, f3 := ethFrame(60, 1), ethFrame(1514, 2), ethFrame(100, 3)
	h.deliver(h.primary(),
		rndisFrame(f1),
		// RX checksum: TCP ok (bit 3) and IP ok (bit 5).
		rndisFrame(f2, [2]uint32{0, 1<<3 | 1<<5}, [2]uint32{8, 0x1234}),
		// VLAN id 100 priority 5: priority bits 2:0, id bits 15:4.
		rndisFrame(f3, [2]uint32{6, 100<<4 | 5}, [2]uint32{0, 1 << 0}))
	want := []rxFrame{
		{0, f1, RxInfo{}},
		{0, f2, RxInfo{CsumChecked: true, IPCsumOK: true, L4CsumOK: true}},
		{0, f3, RxInfo{CsumChecked: true, VLAN: 5<<13 | 100}},
	}
	for i, w := range want {
		g := <-got
		if g.queue != w.queue || !bytes.Equal(g.frame, w.frame) || g.info != w.info {
			t.Errorf("frame %d: queue %d %d bytes %+v", i, g.queue, len(g.frame), g.info)
		}
	}
	waitFor(t, "receive completion", func() bool { return h.outstandingXfers() == 0 })
	if s := n.Stats(); s.RxPackets != 3 || s.RxBytes != 60+1514+100 || s.RxBadPackets != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestReceiveCompletionBytes: the completion of a transfer-page packet is
// type 0xB, flags 0, the packet's txid, NVSP 108 with status 1 (§7.5).
func TestReceiveCompletionBytes(t *testing.T) {
	h := newHost(t)
	n := h.mustOpen(Config{})
	c := h.primary()
	c.stopHost(t)
	got := collect(n)
	hdr := words32(0xCAFE, 1, 64, 4096*3)
	copy(h.recvBuf[4096*3:], rndisFrame(ethFrame(20, 9)))
	h.toGuest(c, ring.TypeDataTransferPages, 1, 0xABCDEF, hdr, nvspMsg(107, 0, 0xFFFFFFFF, 0))
	<-got
	var p fakePkt
	waitFor(t, "completion", func() bool { return c.out.len() > 0 })
	c.out.pop(&p)
	if p.typ != ring.TypeCompletion || p.flags != 0 || p.txid != 0xABCDEF || p.hlen != 0 || !bytes.Equal(p.pay[:p.plen], nvspMsg(108, 1)) {
		t.Errorf("completion type %d flags %d txid %#x % x", p.typ, p.flags, p.txid, p.pay[:p.plen])
	}
}

// TestReceiveHostile: malformed packets are completed with a failure
// status, counted, and never delivered; good ranges in the same packet
// still are.
func TestReceiveHostile(t *testing.T) {
	h := newHost(t)
	n := h.mustOpen(Config{})
	c := h.primary()
	c.stopHost(t)
	got := collect(n)
	good := rndisFrame(ethFrame(60, 4))
	copy(h.recvBuf[0:], good)
	limit := uint32(len(h.recvBuf))
	tests := []struct {
		name   string
		hdr    []byte
		pay    []byte
		status uint32
		frames int
	}{
		{"good", words32(0xCAFE, 1, uint32(len(good)), 0), nvspMsg(107), 1, 1},
		{"wrong set id", words32(0xBEEF, 1, uint32(len(good)), 0), nvspMsg(107), 2, 0},
		{"zero ranges", words32(0xCAFE, 0), nvspMsg(107), 2, 0},
		{"count beyond header", words32(0xCAFE, 3, uint32(len(good)), 0), nvspMsg(107), 2, 0},
		{"not NVSP 107", words32(0xCAFE, 1, uint32(len(good)), 0), nvspMsg(108), 2, 0},
		{"short payload", words32(0xCAFE, 1, uint32(len(good)), 0), nvspMsg(107)[:8], 2, 0},
		{"range past buffer", words32(0xCAFE, 1, 64, limit-32), nvspMsg(107), 2, 0},
		{"range offset overflow", words32(0xCAFE, 1, 64, 0xFFFFFFF0), nvspMsg(107), 2, 0},
		{"range too short", words32(0xCAFE, 1, 4, 0), nvspMsg(107), 2, 0},
		{"one bad of two", words32(0xCAFE, 2, uint32(len(good)), 0, 64, limit), nvspMsg(107), 2, 1},
		{"RNDIS length past range", words32(0xCAFE, 1, 40, 0), nvspMsg(107), 2, 0},
	}
	for i, tt := range tests {
		txid := uint64(0x100 + i)
		h.toGuest(c, ring.TypeDataTransferPages, 1, txid, tt.hdr, tt.pay)
		for range tt.frames {
			if g := <-got; !bytes.Equal(g.frame, good[44:]) {
				t.Errorf("%s: wrong frame", tt.name)
			}
		}
		var p fakePkt
		waitFor(t, "completion", func() bool { return c.out.len() > 0 })
		c.out.pop(&p)
		if p.txid != txid || u32(p.pay[:], 4) != tt.status {
			t.Errorf("%s: completion txid %#x status %d", tt.name, p.txid, u32(p.pay[:], 4))
		}
	}
	// A malformed RNDIS packet inside a good range: per-packet info past
	// the message.
	bad := words32(1, 44+14, 36, 14, 0, 0, 0, 36, 16, 0, 0)
	bad = append(bad, ethFrame(14, 0)...)
	copy(h.recvBuf[8192:], bad)
	h.toGuest(c, ring.TypeDataTransferPages, 1, 0x999, words32(0xCAFE, 1, uint32(len(bad)), 8192), nvspMsg(107))
	var p fakePkt
	waitFor(t, "completion", func() bool { return c.out.len() > 0 })
	c.out.pop(&p)
	if u32(p.pay[:], 4) != 2 {
		t.Errorf("bad PPI: status %d", u32(p.pay[:], 4))
	}
	// Unknown packet types and bad completions are counted.
	h.toGuest(c, ring.TypeDataGPADirect, 0, 1, nil, nvspMsg(107))
	h.toGuest(c, ring.TypeCompletion, 0, 1<<56|9999, nil, nvspMsg(108, 1))
	h.toGuest(c, ring.TypeCompletion, 0, 1<<56|5, nil, nvspMsg(108, 1)) // slot not in flight
	h.toGuest(c, ring.TypeCompletion, 0, 3<<56, nil, nvspMsg(108, 1))
	waitFor(t, "bad packets counted", func() bool { return n.Stats().RxBadPackets >= 10+1+4 })
	if s := n.Stats(); s.RxPackets != 2 {
		t.Errorf("delivered %d frames", s.RxPackets)
	}
}

// TestReceiveDeferredCompletion: with the ring full the completion is
// queued and sent once there is room.
func TestReceiveDeferredCompletion(t *testing.T) {
	h := newHost(t)
	n := h.mustOpen(Config{})
	c := h.primary()
	c.stopHost(t)
	got := collect(n)
	c.out.setLimit(0)
	copy(h.recvBuf, rndisFrame(ethFrame(60, 1)))
	h.toGuest(c, ring.TypeDataTransferPages, 1, 0x4242, words32(0xCAFE, 1, 104, 0), nvspMsg(107))
	<-got
	waitFor(t, "deferred", func() bool { return n.Stats().RxCompletionsLate == 1 })
	c.out.setLimit(defaultOutCap)
	select {
	case h.space <- struct{}{}:
	default:
	}
	var p fakePkt
	waitFor(t, "completion", func() bool { return c.out.len() > 0 })
	c.out.pop(&p)
	if p.typ != ring.TypeCompletion || p.txid != 0x4242 {
		t.Errorf("type %d txid %#x", p.typ, p.txid)
	}
}

func TestNoReceiverDrops(t *testing.T) {
	h := newHost(t)
	n := h.mustOpen(Config{})
	h.deliver(h.primary(), rndisFrame(ethFrame(60, 1)))
	waitFor(t, "drop", func() bool { return n.Stats().RxDropped == 1 })
	waitFor(t, "completion", func() bool { return h.outstandingXfers() == 0 })
}

// TestStatusIndications: link flaps reach the link handler in order, a
// network change reaches its handler, a link-speed change updates Stats.
func TestStatusIndications(t *testing.T) {
	h := newHost(t)
	h.linkDown = true
	n := h.mustOpen(Config{})
	if n.LinkUp() {
		t.Fatal("link up at open with the host saying disconnected")
	}
	links := make(chan bool, 8)
	changes := make(chan struct{}, 8)
	n.SetLinkHandler(func(up bool) { links <- up })
	n.SetNetworkChangeHandler(func() { changes <- struct{}{} })
	c := h.primary()
	h.deliver(c, indicate(0x4001000B), indicate(0x4001000C), indicate(0x4001000B))
	for i, want := range []bool{true, false, true} {
		if got := <-links; got != want {
			t.Errorf("event %d: up=%v", i, got)
		}
	}
	if !n.LinkUp() {
		t.Error("LinkUp false after connect")
	}
	h.deliver(c, indicate(0x40010018))
	<-changes
	h.deliver(c, indicate(0x40010013, 250000)) // 25 Mbit/s
	waitFor(t, "speed", func() bool { return n.Stats().LinkSpeed == 25_000_000 })
	if s := n.Stats(); s.LinkChanges != 3 || s.NetworkChanges != 1 {
		t.Errorf("stats %+v", s)
	}
}

// TestKeepalive: the host's KEEPALIVE is answered with KEEPALIVE_CMPLT of
// the same request id; the guest's Keepalive gets the host's answer.
func TestKeepalive(t *testing.T) {
	h := newHost(t)
	n := h.mustOpen(Config{})
	h.deliver(h.primary(), words32(8, 12, 0x77))
	waitFor(t, "keepalive answer", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.keepAck == 1
	})
	recs := h.recorded()
	if last := recs[len(recs)-1]; !bytes.Equal(last, words32(0x80000008, 16, 0x77, 0)) {
		t.Errorf("answer % x", last)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Keepalive(ctx); err != nil {
		t.Fatal(err)
	}
	recs = h.recorded()
	// Request id 9: the eight requests of Open used 1–8.
	if last := recs[len(recs)-1]; !bytes.Equal(last, words32(8, 12, 9)) {
		t.Errorf("KEEPALIVE % x", last)
	}
	if mac, err := n.CurrentMAC(ctx); err != nil || mac != h.mac {
		t.Errorf("CurrentMAC %x %v", mac, err)
	}
	if last := h.recorded(); !bytes.Equal(last[len(last)-1], words32(4, 28, 10, 0x01010102, 0, 20, 0)) {
		t.Errorf("QUERY current address % x", last[len(last)-1])
	}
}

// TestControlTimeout: a request the host never answers ends with ctx.
func TestControlTimeout(t *testing.T) {
	h := newHost(t)
	n := h.mustOpen(Config{})
	h.primary().stopHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := n.Keepalive(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
}

// TestRescind: outstanding waits and later sends fail with ErrRemoved,
// nothing hangs, and Close releases everything.
func TestRescind(t *testing.T) {
	h := newHost(t)
	n, err := h.open(Config{TxSlots: 2})
	if err != nil {
		t.Fatal(err)
	}
	h.holdSends.Store(true)
	frame := [][]byte{ethFrame(60, 1)}
	for range 2 {
		if err := n.Send(0, frame, TxInfo{}); err != nil {
			t.Fatal(err)
		}
	}
	waits := make(chan error, 2)
	h.primary().stopHost(t) // the keepalive stays unanswered
	go func() { waits <- n.WaitWritable(context.Background(), 0) }()
	go func() { waits <- n.Keepalive(context.Background()) }()
	c := h.primary()
	c.rescOnce.Do(func() { close(c.rescinded) })
	for range 2 {
		if err := <-waits; !errors.Is(err, ErrRemoved) {
			t.Errorf("wait: %v", err)
		}
	}
	if err := n.Send(0, frame, TxInfo{}); !errors.Is(err, ErrRemoved) {
		t.Errorf("send: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	if l := h.mem.liveAllocs(); l != 0 {
		t.Errorf("%d allocations leaked", l)
	}
}
