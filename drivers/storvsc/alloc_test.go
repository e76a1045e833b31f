package storvsc

import (
	"testing"

	"github.com/gohv/gohv/hv/dma"
)

// TestSubmitCompleteAllocs proves the I/O path allocates nothing: Submit,
// the EXECUTE_SRB send, the completion on the channel goroutine and Done,
// for zero-copy and bounced reads and writes.
func TestSubmitCompleteAllocs(t *testing.T) {
	r := newRig(t, SCSIClass, func(h *fakeHost) { h.addDisk(0, 0, 0, 4096, 512) }, Config{Memory: transMem{}})
	d := r.disk(0)
	r.host.mu.Lock()
	r.host.fast, r.host.recordSRBs = true, false
	r.host.mu.Unlock()
	pg, _ := r.mem.AllocPages(4)
	for _, tc := range []struct {
		name string
		buf  []byte
	}{{"zero-copy", pg.Mem[512 : 512+8192]}, {"bounce", make([]byte, 8192)}} {
		done := make(chan struct{}, 1)
		req := Request{Buf: tc.buf, Done: func(*Request) { done <- struct{}{} }}
		before := r.c.Stats()
		i := 0
		n := testing.AllocsPerRun(200, func() {
			req.Op = OpRead
			if i%2 == 0 {
				req.Op = OpWrite
			}
			req.Off = int64(i%100) * 512
			i++
			if err := d.Submit(&req); err != nil {
				t.Fatal(err)
			}
			<-done
			if req.Err != nil || req.N != len(tc.buf) {
				t.Fatalf("request: %v, %d", req.Err, req.N)
			}
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per I/O", tc.name, n)
		}
		st := r.c.Stats()
		if tc.name == "zero-copy" && st.Direct == before.Direct || tc.name == "bounce" && st.Bounced == before.Bounced {
			t.Errorf("%s path not taken: %+v", tc.name, st)
		}
	}
}

// FuzzHandlePacket feeds arbitrary host packets to a queue with requests
// in flight: nothing may panic, and every request ends exactly once.
func FuzzHandlePacket(f *testing.F) {
	f.Add(uint64(1)<<32, []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x34, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0}, uint8(0xB))
	f.Add(uint64(0), []byte{11, 0, 0, 0}, uint8(6))
	f.Add(uint64(1)<<63|1, make([]byte, 64), uint8(0xB))
	f.Add(uint64(2)<<32|1, append([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x34, 0, 0x84, 2, 0, 0, 0, 0, 0, 20}, make([]byte, 42)...), uint8(0xB))
	f.Fuzz(func(t *testing.T, txid uint64, payload []byte, typ uint8) {
		mem := newFakeMem()
		h := newFakeHost(mem)
		ch := h.newPrimary(SCSIClass)
		ch.manual = true
		c := &Controller{cfg: Config{Memory: mem}.withDefaults(), primary: ch, version: VersionWin10,
			maxTransfer: 64 << 10, rescan: make(chan struct{}, 1), stop: make(chan struct{}), disks: map[addr]*Disk{}}
		q := newQueue(c, 0, ch)
		pool, _ := dma.NewPool(mem, c.cfg.BounceSize, 2)
		q.initSlots(2, pool, c.maxPFN())
		c.queues = []*queue{q}
		d := &Disk{c: c}
		d.info.Store(&Info{SectorSize: 512, Sectors: 100})
		h.hook = func(*srbSeen) hookResult { return hookResult{handled: true, hold: true} }
		ended := 0
		reqs := []Request{{Op: OpRead, Buf: make([]byte, 1024)}, {Op: OpWrite, Buf: make([]byte, 512), Off: 512}}
		for i := range reqs {
			reqs[i].Done = func(*Request) { ended++ }
			if err := d.Submit(&reqs[i]); err != nil {
				t.Fatal(err)
			}
		}
		ch.deliver(ringType(typ), txid, payload[:min(len(payload), 96)])
		ch.dispatch()
		q.kill(ErrRemoved)
		if ended != 2 {
			t.Fatalf("%d requests ended", ended)
		}
		for i := range q.slots {
			q.slots[i].retry.Stop()
		}
	})
}
