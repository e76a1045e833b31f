package netvsc

import (
	"testing"

	"github.com/gohv/gohv/vmbus/ring"
)

// fuzzNIC opens a NIC on a fake host and pauses the host, so that the
// fuzz body drives the receive path directly.
func fuzzNIC(f *testing.F) (*NIC, *fakeHost) {
	h := newHost(f)
	n := h.mustOpen(Config{})
	n.SetReceiver(func(q int, frame []byte, info RxInfo) {
		if len(frame) > n.maxFrame || len(frame) < ethHeaderLen {
			f.Fatalf("delivered a %d-byte frame", len(frame))
		}
	})
	c := h.primary()
	waitFor(f, "idle host", func() bool { return c.out.len() == 0 && h.outstandingXfers() == 0 })
	c.hostMu.Lock()
	c.paused.Store(true)
	c.hostMu.Unlock()
	f.Cleanup(c.resumeHost) // before the NIC's Close, which needs the host
	return n, h
}

// drainOut empties the fake's outbound ring, completing the guest's own
// sends (keepalive answers) so slots and sections never run out.
func drainOut(n *NIC, c *fakeChannel) {
	var p fakePkt
	for c.out.pop(&p) {
		if p.typ == ring.TypeDataInband && p.txid>>56 == 1 {
			n.queues[0].release(uint32(p.txid & 0xFFFFFFFF))
		}
	}
}

// FuzzReceivePacket feeds a transfer-page packet (header, NVSP payload)
// whose ranges point into receive-buffer bytes chosen by the fuzzer: any
// mix of frames, control completions, indications and keepalives, valid
// or not. Nothing may panic, every packet is completed exactly once, and
// delivered frames respect the frame limits.
func FuzzReceivePacket(f *testing.F) {
	frame := rndisFrame(ethFrame(60, 1), [2]uint32{0, 1<<3 | 1<<5}, [2]uint32{6, 100 << 4})
	two := append(append([]byte{}, frame...), indicate(0x4001000C)...)
	f.Add(words32(0xCAFE, 1, uint32(len(frame)), 0), nvspMsg(107), frame)
	f.Add(words32(0xCAFE, 2, uint32(len(frame)), 0, 20, uint32(len(frame))), nvspMsg(107), two)
	f.Add(words32(0xCAFE, 1, 12, 0), nvspMsg(107, 1), words32(8, 12, 5))
	f.Add(words32(0xCAFE, 1, 16, 0), nvspMsg(107, 1), words32(0x80000005, 16, 3, 0))
	f.Add(words32(0xCAFE, 1, 24, 0), nvspMsg(107), indicate(0x40010013, 1000))
	n, h := fuzzNIC(f)
	c := h.primary()
	q := n.queues[0]
	f.Fuzz(func(t *testing.T, hdr, payload, buf []byte) {
		if len(buf) > 64<<10 {
			buf = buf[:64<<10]
		}
		copy(n.recvBuf.Mem, buf)
		before := c.out.len()
		q.onReceive(ring.Packet{Type: ring.TypeDataTransferPages, TransactionID: 0x5150, Header: hdr, Payload: payload})
		// Exactly one completion with this txid, among any keepalive
		// answers.
		completions := 0
		var p fakePkt
		for c.out.pop(&p) {
			switch {
			case p.typ == ring.TypeCompletion && p.txid == 0x5150:
				completions++
			case p.typ == ring.TypeDataInband && p.txid>>56 == 1:
				q.release(uint32(p.txid & 0xFFFFFFFF))
			default:
				t.Fatalf("unexpected packet type %d txid %#x", p.typ, p.txid)
			}
		}
		if before != 0 || completions != 1 {
			t.Fatalf("%d completions (ring had %d)", completions, before)
		}
	})
}

// FuzzInband feeds arbitrary in-band host messages and completions.
func FuzzInband(f *testing.F) {
	tab := words32(134, 16, 12)
	for range 16 {
		tab = append(tab, 0, 0, 0, 0)
	}
	f.Add(uint64(0), tab)
	f.Add(uint64(0), nvspMsg(128, 1, 5))
	f.Add(uint64(1<<56|3), nvspMsg(108, 1))
	f.Add(uint64(2<<56|1), nvspMsg(2, 0, 0, 1))
	n, h := fuzzNIC(f)
	c := h.primary()
	q := n.queues[0]
	f.Fuzz(func(t *testing.T, txid uint64, payload []byte) {
		q.onInband(payload)
		q.onCompletion(txid, payload)
		for i := range n.sendTable {
			if n.sendTable[i].Load() >= uint32(len(n.queues)) {
				t.Fatalf("send table entry %d", n.sendTable[i].Load())
			}
		}
		if q.inFlight.Load() < 0 {
			t.Fatal("negative in-flight count")
		}
		drainOut(n, c)
	})
}
