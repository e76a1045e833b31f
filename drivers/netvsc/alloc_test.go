package netvsc

import (
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/gohv/gohv/vmbus/ring"
)

// waitUntil spins (yielding) until cond holds; allocation-free, for
// AllocsPerRun bodies.
func waitUntil(cond func() bool) {
	for !cond() {
		runtime.Gosched()
	}
}

func TestSendAllocs(t *testing.T) {
	for _, tt := range []struct {
		name string
		size int
		tx   TxInfo
		phys bool
	}{
		{"1500 copied", 1514, TxInfo{CsumIPv4: true, CsumTCP: true, L3Offset: 14, L4Offset: 34}, false},
		{"64K LSO direct", 64 << 10, TxInfo{GSO: true, MSS: 1460, L3Offset: 14, L4Offset: 34}, true},
		{"64K LSO bounced", 64 << 10, TxInfo{GSO: true, MSS: 1460, L3Offset: 14, L4Offset: 34}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t)
			h.sink.Store(true)
			h.lsoMax = 64 << 10
			cfg := Config{}
			var frame []byte
			if tt.phys {
				cfg.Memory = physMem{h.mem}
				p, _ := h.mem.AllocPages(17)
				defer h.mem.FreePages(p)
				frame = p.Mem[:tt.size]
			} else {
				frame = make([]byte, tt.size)
			}
			copy(frame, ethFrame(60, 1))
			n := h.mustOpen(cfg)
			q := n.queues[0]
			parts := [][]byte{frame[:54], frame[54:]}
			allocs := testing.AllocsPerRun(200, func() {
				if err := n.Send(0, parts, tt.tx); err != nil {
					t.Fatal(err)
				}
				waitUntil(func() bool { return q.inFlight.Load() == 0 })
			})
			if allocs != 0 {
				t.Errorf("%v allocations per send", allocs)
			}
			if h.sunk.Load() < 200 {
				t.Errorf("host saw %d frames", h.sunk.Load())
			}
		})
	}
}

// fixedDelivery is a prebuilt transfer-page packet carrying one frame in
// the last sub-allocation of the receive buffer.
type fixedDelivery struct {
	hdr, pay []byte
	txid     uint64
}

func (h *fakeHost) prepareFixed(frame []byte) *fixedDelivery {
	off := len(h.recvBuf) - h.subAlloc
	m := rndisFrame(frame, [2]uint32{0, 1<<3 | 1<<5})
	if len(m) > h.subAlloc {
		h.t.Fatalf("%d-byte message for %d-byte sub-allocation", len(m), h.subAlloc)
	}
	copy(h.recvBuf[off:], m)
	return &fixedDelivery{hdr: words32(0xCAFE, 1, uint32(len(m)), uint32(off)), pay: nvspMsg(107, 0, 0xFFFFFFFF, 0), txid: sinkXfer}
}

func (h *fakeHost) sendFixed(c *fakeChannel, d *fixedDelivery) {
	d.txid++
	if err := c.in.push(ring.TypeDataTransferPages, 1, d.txid, d.hdr, d.pay); err != nil {
		h.t.Fatal(err)
	}
	c.interrupt()
}

func TestReceiveAllocs(t *testing.T) {
	h := newHost(t)
	n := h.mustOpen(Config{})
	h.sink.Store(true)
	var got atomic.Uint64
	n.SetReceiver(func(q int, f []byte, info RxInfo) {
		if len(f) == 1514 && info.L4CsumOK {
			got.Add(1)
		}
	})
	d := h.prepareFixed(ethFrame(1514, 3))
	c := h.primary()
	allocs := testing.AllocsPerRun(200, func() {
		want := got.Load() + 1
		h.sendFixed(c, d)
		waitUntil(func() bool { return got.Load() == want })
	})
	if allocs != 0 {
		t.Errorf("%v allocations per receive", allocs)
	}
	if got.Load() < 200 {
		t.Errorf("%d frames received", got.Load())
	}
}
