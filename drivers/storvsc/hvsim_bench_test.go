package storvsc_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/gohv/gohv/drivers/storvsc"
	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/storvsp"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// BenchmarkSimRandom4K runs 4 KiB random reads and writes at queue depths
// 1, 32 and 128 through the real vmbus client and rings against hvsim's
// StorVSP (64 MiB memory store), next to a baseline of the same copies
// done directly on the store's memory in the same run.
func BenchmarkSimRandom4K(b *testing.B) {
	const size = 64 << 20
	store := storvsp.NewMemStore(size)
	for i := 0; i < size; i += 4096 {
		store.Bytes()[i] = 1
	}
	for _, qd := range []int{1, 32, 128} {
		for _, write := range []bool{false, true} {
			op := "read"
			if write {
				op = "write"
			}
			b.Run(fmt.Sprintf("baseline-memcpy/%s/qd%d", op, qd), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(3, 4))
				buf := make([]byte, 4096)
				mem := store.Bytes()
				b.SetBytes(4096)
				start := time.Now()
				for range b.N {
					off := rng.IntN(size/4096) * 4096
					if write {
						copy(mem[off:off+4096], buf)
					} else {
						copy(buf, mem[off:off+4096])
					}
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "IOPS")
			})
			b.Run(fmt.Sprintf("storvsc-hvsim/%s/qd%d", op, qd), func(b *testing.B) { benchSim(b, store, qd, write) })
		}
	}
}

func benchSim(b *testing.B, store *storvsp.MemStore, qd int, write bool) {
	ctx := context.Background()
	h, err := hvsim.New(hvsim.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	vsp, _ := storvsp.New(storvsp.Config{Instance: hvsim.MustParseGUID("f2d3a7b1-0c3e-4b8e-9a56-123456789abc")})
	if err := vsp.Attach(storvsp.Addr{}, storvsp.LUNConfig{Store: store}); err != nil {
		b.Fatal(err)
	}
	if _, err := h.AddDevice(vsp); err != nil {
		b.Fatal(err)
	}
	bus, err := vmbus.Connect(ctx, h.Platform(), vmbus.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close(ctx)
	var ch *vmbus.Channel
	for _, c := range bus.Channels() {
		if c.Offer().InterfaceType == chanmsg.ClassSCSI {
			ch = c
		}
	}
	ctrl, err := storvsc.Attach(ctx, ch, storvsc.Config{Memory: h.Platform(), QueueDepth: 128, BounceSize: 4096})
	if err != nil {
		b.Fatal(err)
	}
	defer ctrl.Close(ctx)
	d := ctrl.Disks()[0]
	blocks := int(d.Info().Sectors) * d.Info().SectorSize / 4096
	op := storvsc.OpRead
	if write {
		op = storvsc.OpWrite
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var (
		mu      sync.Mutex
		issued  int
		pending = qd
		done    = make(chan struct{})
		failed  error
	)
	// take claims the next I/O for r; false when the run is over.
	take := func(r *storvsc.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if r.Err != nil && failed == nil {
			failed = r.Err
		}
		if issued >= b.N || failed != nil {
			pending--
			if pending == 0 {
				close(done)
			}
			return false
		}
		issued++
		r.Off = int64(rng.IntN(blocks)) * 4096
		return true
	}
	var next func(r *storvsc.Request)
	next = func(r *storvsc.Request) {
		if take(r) {
			if err := d.Submit(r); err != nil {
				r.Err = err
				next(r)
			}
		}
	}
	reqs := make([]storvsc.Request, qd)
	b.SetBytes(4096)
	b.ResetTimer()
	start := time.Now()
	for i := range reqs {
		reqs[i] = storvsc.Request{Op: op, Buf: make([]byte, 4096), Queue: i, Done: next}
		next(&reqs[i])
	}
	<-done
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "IOPS")
	if failed != nil {
		b.Fatal(failed)
	}
}
