package storvsc_test

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/gohv/gohv/drivers/storvsc"
	"github.com/gohv/gohv/tools/hvsim/storvsp"
)

// BenchmarkSimSequential1M reads a 64 MiB memory-backed disk front to back
// in 1 MiB requests through storvsc, the vmbus rings and hvsim's StorVSP,
// with 1 and 4 requests in flight, the buffers in host-visible memory so
// that the I/O goes GPA-direct as on bare metal (the host copies each
// byte once, straight into the guest's buffer). The baseline is a memcpy
// of the same 1 MiB blocks in the same run.
func BenchmarkSimSequential1M(b *testing.B) {
	const (
		size  = 64 << 20
		chunk = 1 << 20
	)
	store := storvsp.NewMemStore(size)
	for i := 0; i < size; i += 4096 {
		binary.LittleEndian.PutUint32(store.Bytes()[i:], uint32(i>>12)) // each block names itself
	}
	b.Run("baseline-memcpy", func(b *testing.B) {
		buf := make([]byte, chunk)
		mem := store.Bytes()
		b.SetBytes(chunk)
		for i := range b.N {
			off := (i * chunk) % size
			copy(buf, mem[off:off+chunk])
		}
	})
	for _, qd := range []int{1, 4} {
		b.Run(fmt.Sprintf("storvsc-hvsim/qd%d", qd), func(b *testing.B) {
			h, ctrl := simController(b, store, storvsc.Config{QueueDepth: 32})
			d := ctrl.Disks()[0]
			done := make(chan *storvsc.Request, qd)
			reqs := make([]storvsc.Request, qd)
			for i := range reqs {
				reqs[i] = storvsc.Request{Op: storvsc.OpRead, Buf: guestBuffer(b, h, chunk), Queue: i, Done: func(r *storvsc.Request) { done <- r }}
			}
			next := 0
			submit := func(r *storvsc.Request) {
				r.Off = int64(next*chunk) % size
				next++
				clear(r.Buf[4096:4100]) // so a read that moved nothing shows
				if err := d.Submit(r); err != nil {
					b.Fatal(err)
				}
			}
			bouncedBefore := ctrl.Stats().Bounced // the scan's own commands
			b.SetBytes(chunk)
			b.ResetTimer()
			start := time.Now()
			inflight := 0
			for i := range reqs {
				if i < b.N {
					submit(&reqs[i])
					inflight++
				}
			}
			for completed := 0; completed < b.N; completed++ {
				r := <-done
				inflight--
				if r.Err != nil {
					b.Fatal(r.Err)
				}
				if got, want := binary.LittleEndian.Uint32(r.Buf[4096:]), uint32((r.Off+4096)>>12); got != want {
					b.Fatalf("block at %d+4096 holds %d, want %d", r.Off, got, want)
				}
				if next < b.N {
					submit(r)
					inflight++
				}
			}
			b.ReportMetric(float64(b.N)*chunk/time.Since(start).Seconds()/1e9, "GB/s")
			if n := ctrl.Stats().Bounced - bouncedBefore; n != 0 {
				b.Errorf("%d reads bounced, want all GPA-direct", n)
			}
		})
	}
}
