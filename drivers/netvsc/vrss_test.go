package netvsc

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gohv/gohv/vmbus/ring"
)

func TestVRSSQueues(t *testing.T) {
	h := newHost(t)
	h.rssQueues, h.subOffer = 8, 3
	n := h.mustOpen(Config{Queues: 6})
	if n.Queues() != 4 {
		t.Fatalf("%d queues, want 1 + 3 offered", n.Queues())
	}
	got := collect(n)
	// Receives are served on the queue of the channel they arrive on.
	for i := range 4 {
		h.deliver(h.chans[i], rndisFrame(ethFrame(60, byte(i))))
		g := <-got
		if g.queue != i || g.frame[20] != byte(i) {
			t.Errorf("channel %d: delivered on queue %d", i, g.queue)
		}
	}
	// Sends go out on the chosen queue's channel and complete there.
	if err := n.Send(2, [][]byte{ethFrame(80, 9)}, TxInfo{}); err != nil {
		t.Fatal(err)
	}
	<-h.frames
	waitFor(t, "completion on queue 2", func() bool { return n.queues[2].inFlight.Load() == 0 })
	if s := n.queues[2].ctr.txPackets.Load(); s != 1 {
		t.Errorf("queue 2 sent %d", s)
	}
	// The default send table spreads over the queues.
	for i := range 16 {
		if v := n.sendTable[i].Load(); v != uint32(i%4) {
			t.Errorf("send table[%d] = %d", i, v)
		}
	}
}

func tcp4Frame(sport uint16) []byte {
	f := make([]byte, 14+20+20)
	f[12], f[13] = 0x08, 0x00
	ip := f[14:]
	ip[0], ip[9] = 0x45, 6
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	ip[20], ip[21], ip[22], ip[23] = byte(sport>>8), byte(sport), 0, 80
	return f
}

// TestIndirectionTable: the host's SEND_INDIRECTION_TABLE steers
// QueueFor; an invalid table is counted and ignored.
func TestIndirectionTable(t *testing.T) {
	h := newHost(t)
	h.rssQueues, h.subOffer = 4, 3
	n := h.mustOpen(Config{Queues: 4})
	c := h.primary()
	// NVSP 6.1: entries at the offset the message gives (12), all 3.
	tab := words32(134, 16, 12)
	for range 16 {
		tab = append(tab, words32(3)...)
	}
	h.toGuest(c, ring.TypeDataInband, 0, 0, nil, tab)
	waitFor(t, "table", func() bool { return n.Stats().SendTableUpdates == 1 })
	for sport := range uint16(50) {
		if q := n.QueueFor(tcp4Frame(1000 + sport)); q != 3 {
			t.Fatalf("QueueFor = %d", q)
		}
	}
	// Entry 4 with 4 queues: rejected, the old table stays.
	tab[len(tab)-4] = 4
	h.toGuest(c, ring.TypeDataInband, 0, 0, nil, tab)
	waitFor(t, "rejected table", func() bool { return n.Stats().RxBadPackets == 1 })
	if n.QueueFor(tcp4Frame(7)) != 3 || n.Stats().SendTableUpdates != 1 {
		t.Error("bad table applied")
	}
	if n.QueueFor([]byte{1, 2, 3}) != 0 {
		t.Error("non-IP frame not on queue 0")
	}
	// With a spreading table, flows land on several queues.
	for i := range 16 {
		n.sendTable[i].Store(uint32(i % 4))
	}
	seen := map[int]bool{}
	for sport := range uint16(200) {
		seen[n.QueueFor(tcp4Frame(sport))] = true
	}
	if len(seen) != 4 {
		t.Errorf("flows spread over %d queues", len(seen))
	}
}

// TestNoVRSSBelowNVSP5: older hosts get one queue, and no RSS requests.
func TestNoVRSSBelowNVSP5(t *testing.T) {
	h := newHost(t)
	h.maxVersion, h.rssQueues, h.subOffer = 0x40000, 4, 3
	n := h.mustOpen(Config{Queues: 4})
	if n.Queues() != 1 {
		t.Errorf("%d queues", n.Queues())
	}
	for _, r := range h.recorded() {
		if len(r) >= 16 && u32(r, 0) == 4 && u32(r, 12) == 0x00010203 {
			t.Error("RSS capabilities queried under NVSP 4")
		}
	}
}

// TestTwoNICs: two NICs on two hosts are independent values.
func TestTwoNICs(t *testing.T) {
	h1, h2 := newHost(t), newHost(t)
	h2.mac = [6]byte{0x00, 0x15, 0x5d, 0x99, 0x99, 0x99}
	var wg sync.WaitGroup
	var n1, n2 *NIC
	wg.Add(2)
	go func() { defer wg.Done(); n1 = h1.mustOpen(Config{}) }()
	go func() { defer wg.Done(); n2 = h2.mustOpen(Config{MTU: 1400}) }()
	wg.Wait()
	if n1 == nil || n2 == nil {
		t.FailNow()
	}
	if n1.MAC() == n2.MAC() || n1.MTU() != 1500 || n2.MTU() != 1400 {
		t.Errorf("MACs %x %x MTUs %d %d", n1.MAC(), n2.MAC(), n1.MTU(), n2.MTU())
	}
	g1, g2 := collect(n1), collect(n2)
	h1.deliver(h1.primary(), rndisFrame(ethFrame(60, 1)))
	h2.deliver(h2.primary(), rndisFrame(ethFrame(61, 2)))
	if a, b := <-g1, <-g2; len(a.frame) != 60 || len(b.frame) != 61 {
		t.Errorf("frames %d %d", len(a.frame), len(b.frame))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n2.Send(0, [][]byte{ethFrame(60, 3)}, TxInfo{}); err != nil {
		t.Errorf("second NIC after the first closed: %v", err)
	}
	if m := <-h2.frames; !bytes.Equal(m[44:], ethFrame(60, 3)) {
		t.Error("second NIC frame")
	}
}
