package netvsc

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gohv/gohv/hv/dma"
	"github.com/gohv/gohv/vmbus/ring"
)

// rndisPacketBytes is the RNDIS PACKET a guest sends for frame with the
// given PPI entries, written from §7.6 and §7.8: header 44 bytes, PPI
// offset 36, data after the PPIs.
func rndisPacketBytes(frame []byte, ppis ...[2]uint32) []byte { return rndisFrame(frame, ppis...) }

func TestSendCopiedBytes(t *testing.T) {
	h := newHost(t)
	n := h.mustOpen(Config{})
	frame := ethFrame(60, 0x11)
	tests := []struct {
		name string
		tx   TxInfo
		ppis [][2]uint32
	}{
		{"plain", TxInfo{}, nil},
		// TCP/IPv4 checksum: IPv4 bit 0, TCP bit 2, IP header bit 4, TCP
		// header offset 34 in bits 25:16.
		{"csum tcp4", TxInfo{CsumIPv4: true, CsumTCP: true, L3Offset: 14, L4Offset: 34}, [][2]uint32{{0, 1 | 4 | 16 | 34<<16}}},
		// UDP/IPv6: IPv6 bit 1, UDP bit 3, offset 54.
		{"csum udp6", TxInfo{CsumUDP: true, IsIPv6: true, L3Offset: 14, L4Offset: 54}, [][2]uint32{{0, 2 | 8 | 54<<16}}},
	}
	for _, tt := range tests {
		if err := n.Send(0, [][]byte{frame[:20], frame[20:]}, tt.tx); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		got := <-h.frames
		if want := rndisPacketBytes(frame, tt.ppis...); !bytes.Equal(got, want) {
			t.Errorf("%s:\n got % x\nwant % x", tt.name, got, want)
		}
	}
	waitFor(t, "send completions", func() bool { return n.queues[0].inFlight.Load() == 0 })
	if s := n.Stats(); s.TxPackets != 3 || s.TxCopied != 3 || s.TxBytes != 180 {
		t.Errorf("stats %+v", s)
	}
	// Every section is free again.
	for i := range n.secMap[:len(n.secMap)-1] {
		if v := n.secMap[i].Load(); v != 0 {
			t.Errorf("section word %d = %#x", i, v)
		}
	}
}

// TestSendRawNVSPBytes checks the NVSP message and descriptor of a copied
// send: type 6, completion requested, NVSP 107 data with the section
// index and the bytes used.
func TestSendRawNVSPBytes(t *testing.T) {
	h := newHost(t)
	n := h.mustOpen(Config{})
	c := h.primary()
	// Stop the host so the test reads the packet itself.
	c.stopHost(t)
	if err := n.Send(0, [][]byte{ethFrame(100, 2)}, TxInfo{}); err != nil {
		t.Fatal(err)
	}
	var p fakePkt
	if !c.out.pop(&p) {
		t.Fatal("nothing sent")
	}
	h.toGuest(c, ring.TypeCompletion, 0, p.txid, nil, nvspMsg(108, 1))
	if p.typ != ring.TypeDataInband || p.flags != 1 || p.hlen != 0 || p.txid>>56 != 1 {
		t.Errorf("descriptor type %d flags %d hdr %d txid %#x", p.typ, p.flags, p.hlen, p.txid)
	}
	sec := u32(p.pay[:], 8)
	if !bytes.Equal(p.pay[:p.plen], nvspMsg(107, 0, sec, 144)) {
		t.Errorf("NVSP % x", p.pay[:p.plen])
	}
	if got := n.sendBuf.Mem[int(sec)*6144 : int(sec)*6144+144]; !bytes.Equal(got, rndisPacketBytes(ethFrame(100, 2))) {
		t.Errorf("section % x", got)
	}
}

// stopHost pauses the host loop of c so the test drives the channel;
// it resumes at the end of the test.
func (c *fakeChannel) stopHost(t *testing.T) {
	t.Helper()
	// Let the host finish the set-up traffic first (the guest completes
	// the last receive after Open returned).
	waitFor(t, "idle host", func() bool { return c.out.len() == 0 && c.host.outstandingXfers() == 0 })
	c.hostMu.Lock() // the loop finished what it was handling
	c.paused.Store(true)
	c.hostMu.Unlock()
	t.Cleanup(c.resumeHost)
}

func (c *fakeChannel) resumeHost() {
	c.paused.Store(false)
	select {
	case c.toHost <- struct{}{}:
	default:
	}
}

// TestSendDirect covers the three large-frame paths: GPA-direct from
// host-visible memory (one range for the RNDIS header, one per part),
// the bounce buffer for ordinary memory, and a channel without
// TrySendWithHeader.
func TestSendDirect(t *testing.T) {
	for _, tt := range []struct {
		name        string
		phys, noHTS bool
	}{{"phys", true, false}, {"bounce", false, false}, {"bounce no TrySendWithHeader", false, true}} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t)
			var ch Channel = h.primary()
			if tt.noHTS {
				ch = noHTSChannel{h.primary()}
			}
			cfg := Config{Memory: h.mem}
			if tt.phys {
				cfg.Memory = physMem{h.mem}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			n, err := Open(ctx, ch, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close(ctx)
			// A frame in host-visible memory (phys) or on the Go heap.
			var frame []byte
			if tt.phys {
				p, _ := h.mem.AllocPages(17)
				defer h.mem.FreePages(p)
				frame = p.Mem[100 : 100+60000]
			} else {
				frame = make([]byte, 60000)
			}
			copy(frame, ethFrame(60000, 0x5A))
			tx := TxInfo{GSO: true, MSS: 1460, L3Offset: 14, L4Offset: 34}
			if err := n.Send(0, [][]byte{frame[:54], frame[54:]}, tx); err != nil {
				t.Fatal(err)
			}
			got := <-h.frames
			// LSOv2 PPI: type 2, MSS 1460 | TCP offset 34 << 20 | v2 bit 30.
			if want := rndisPacketBytes(frame, [2]uint32{2, 1460 | 34<<20 | 1<<30}); !bytes.Equal(got, want) {
				t.Errorf("RNDIS message differs (%d vs %d bytes)", len(got), len(want))
			}
			waitFor(t, "completion", func() bool { return n.queues[0].inFlight.Load() == 0 })
			s := n.Stats()
			if tt.phys && s.TxDirect != 1 || !tt.phys && s.TxBounced != 1 {
				t.Errorf("stats %+v", s)
			}
			if bounceFree(n) != DefaultBounceBuffers {
				t.Errorf("%d bounce buffers free", bounceFree(n))
			}
		})
	}
}

// TestGPADirectHeaderBytes checks the type-9 header of a phys send:
// reserved, range count 3, then {count, offset, PFNs} per range (§4.5).
func TestGPADirectHeaderBytes(t *testing.T) {
	h := newHost(t)
	h.sectionSize = 512 // a 1500-byte frame goes GPA-direct
	n := h.mustOpen(Config{Memory: physMem{h.mem}})
	c := h.primary()
	c.stopHost(t)
	p, _ := h.mem.AllocPages(4)
	defer h.mem.FreePages(p)
	part1 := p.Mem[4000 : 4000+200] // crosses into the second page
	part2 := p.Mem[8092 : 8092+1300]
	copy(part1, ethFrame(200, 1))
	if err := n.Send(0, [][]byte{part1, part2}, TxInfo{}); err != nil {
		t.Fatal(err)
	}
	var pk fakePkt
	if !c.out.pop(&pk) {
		t.Fatal("nothing sent")
	}
	h.toGuest(c, ring.TypeCompletion, 0, pk.txid, nil, nvspMsg(108, 1))
	q := n.queues[0]
	slot := uint32(pk.txid & 0xFFFFFFFF)
	hdrOff := int(slot) * 128
	hdrPFN := q.hdrPages.PFN + uint64(hdrOff/4096)
	want := words32(0, 3, 44, uint32(hdrOff%4096))
	want = append(want, le.AppendUint64(nil, hdrPFN)...)
	want = append(want, words32(200, 4000)...)
	want = append(want, le.AppendUint64(le.AppendUint64(nil, p.PFN), p.PFN+1)...)
	want = append(want, words32(1300, 3996)...)
	want = append(want, le.AppendUint64(le.AppendUint64(nil, p.PFN+1), p.PFN+2)...)
	if pk.typ != ring.TypeDataGPADirect || !bytes.Equal(pk.hdr[:pk.hlen], want) {
		t.Errorf("type %d header\n got % x\nwant % x", pk.typ, pk.hdr[:pk.hlen], want)
	}
	if !bytes.Equal(pk.pay[:pk.plen], nvspMsg(107, 0, 0xFFFFFFFF, 0)) {
		t.Errorf("NVSP % x", pk.pay[:pk.plen])
	}
	if got := q.hdrPages.Mem[hdrOff : hdrOff+44]; !bytes.Equal(got, words32(1, 1544, 36, 1500, 0, 0, 0, 36, 0, 0, 0)) {
		t.Errorf("RNDIS header % x", got)
	}
}

func TestSendRejects(t *testing.T) {
	h := newHost(t)
	n := h.mustOpen(Config{})
	for _, tt := range []struct {
		name  string
		queue int
		frame []byte
		tx    TxInfo
	}{
		{"queue", 1, ethFrame(60, 0), TxInfo{}},
		{"runt", 0, ethFrame(13, 0), TxInfo{}},
		{"too big", 0, ethFrame(1519, 0), TxInfo{}},
		{"LSO MSS 0", 0, ethFrame(3000, 0), TxInfo{GSO: true, L4Offset: 34}},
		{"LSO too big", 0, ethFrame(62781, 0), TxInfo{GSO: true, MSS: 1460, L4Offset: 34}},
		{"csum offset", 0, ethFrame(60, 0), TxInfo{CsumTCP: true, L4Offset: 60}},
	} {
		if err := n.Send(tt.queue, [][]byte{tt.frame}, tt.tx); !errors.Is(err, ErrFrame) {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

// TestBackPressure fills the send slots while the host holds completions:
// Send reports ErrBusy, WaitWritable returns once the host completes.
func TestBackPressure(t *testing.T) {
	h := newHost(t)
	n := h.mustOpen(Config{TxSlots: 4})
	h.holdSends.Store(true)
	frame := [][]byte{ethFrame(60, 3)}
	for i := range 4 {
		err := n.Send(0, frame, TxInfo{})
		if errors.Is(err, ErrBusy) {
			// Open's last control message may still hold a slot: its
			// completion follows the RNDIS reply Open waited for. Only it
			// can free one (data completions are held).
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = n.WaitWritable(ctx, 0)
			cancel()
			if err == nil {
				err = n.Send(0, frame, TxInfo{})
			}
		}
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	for range 4 {
		<-h.frames
	}
	busyBefore := n.Stats().TxBusy
	if err := n.Send(0, frame, TxInfo{}); !errors.Is(err, ErrBusy) {
		t.Fatalf("5th send: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	if err := n.WaitWritable(ctx, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitWritable with nothing completed: %v", err)
	}
	cancel()
	done := make(chan error, 1)
	go func() { done <- n.WaitWritable(context.Background(), 0) }()
	waitFor(t, "waiter", func() bool { return n.queues[0].waiters.Load() == 1 })
	h.complete(h.primary(), 1)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := n.Send(0, frame, TxInfo{}); err != nil {
		t.Errorf("send after completion: %v", err)
	}
	<-h.frames // the host has read it before it is completed
	if s := n.Stats(); s.TxBusy-busyBefore != 1 {
		t.Errorf("TxBusy went from %d to %d, want one more", busyBefore, s.TxBusy)
	}
	h.holdSends.Store(false)
	h.complete(h.primary(), 4)
}

// complete sends k held send completions on c (txids of the guest's
// slots still in flight, lowest slot first).
func (h *fakeHost) complete(c *fakeChannel, k int) {
	q := h.nic(c)
	q.slotMu.Lock()
	var ids []uint64
	for i := range q.slots {
		if q.slots[i].inUse && len(ids) < k {
			ids = append(ids, 1<<56|uint64(i))
		}
	}
	q.slotMu.Unlock()
	for _, id := range ids {
		h.toGuest(c, ring.TypeCompletion, 0, id, nil, nvspMsg(108, 1))
	}
}

// nic finds the guest queue of c (white-box, tests only).
func (h *fakeHost) nic(c *fakeChannel) *queue {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.queueOf[c]
}

// TestRingFull: a full ring gives ErrBusy and frees what was taken.
func TestRingFull(t *testing.T) {
	h := newHost(t)
	h.sectionSize = 512
	n := h.mustOpen(Config{Memory: h.mem})
	c := h.primary()
	c.stopHost(t)
	c.out.setLimit(c.out.len())
	for _, size := range []int{60, 1000} {
		if err := n.Send(0, [][]byte{ethFrame(size, 0)}, TxInfo{}); !errors.Is(err, ErrBusy) {
			t.Errorf("%d bytes: %v", size, err)
		}
	}
	c.out.setLimit(defaultOutCap)
	q := n.queues[0]
	if q.inFlight.Load() != 0 || len(q.freeSlot) != len(q.slots) || bounceFree(n) != DefaultBounceBuffers || n.secMap[0].Load() != 0 {
		t.Errorf("resources leaked: inFlight %d free slots %d bounce %d", q.inFlight.Load(), len(q.freeSlot), bounceFree(n))
	}
}

// bounceFree counts the bounce buffers free now (takes and returns them).
func bounceFree(n *NIC) int {
	var taken []*dma.Buffer
	for {
		b, ok := n.bounce.pool.TryGet()
		if !ok {
			break
		}
		taken = append(taken, b)
	}
	for _, b := range taken {
		n.bounce.pool.Put(b)
	}
	return len(taken)
}
