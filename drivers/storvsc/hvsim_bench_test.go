package storvsc_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
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
// done directly on the store's memory in the same run. Two guest sides:
// storvsc-hvsim with the caller's buffers on the Go heap, which the
// simulated host cannot address, so every I/O is bounced through storvsc's
// pool (one more 4 KiB copy); and storvsc-hvsim-direct with the buffers in
// guest memory, so every I/O goes GPA-direct from the caller's buffer — as
// every buffer does on a gohv kernel, where all RAM is guest-physical.
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
			b.Run(fmt.Sprintf("storvsc-hvsim/%s/qd%d", op, qd), func(b *testing.B) { benchSim(b, store, qd, write, false) })
			b.Run(fmt.Sprintf("storvsc-hvsim-direct/%s/qd%d", op, qd), func(b *testing.B) { benchSim(b, store, qd, write, true) })
		}
	}
}

// simController attaches storvsc, through the vmbus client, to a fresh
// simulated host whose StorVSP serves store on LUN 0; everything is closed
// when b ends.
func simController(b *testing.B, store storvsp.Store, cfg storvsc.Config) (*hvsim.Host, *storvsc.Controller) {
	ctx := context.Background()
	h, err := hvsim.New(hvsim.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
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
	b.Cleanup(func() { bus.Close(ctx) })
	var ch *vmbus.Channel
	for _, c := range bus.Channels() {
		if c.Offer().InterfaceType == chanmsg.ClassSCSI {
			ch = c
		}
	}
	cfg.Memory = h.Platform()
	ctrl, err := storvsc.Attach(ctx, ch, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ctrl.Close(ctx) })
	return h, ctrl
}

// guestBuffer returns n bytes of the simulated guest's memory, which
// storvsc can hand to the host GPA-direct.
func guestBuffer(b *testing.B, h *hvsim.Host, n int) []byte {
	pages, err := h.Platform().AllocPages(n / 4096)
	if err != nil {
		b.Fatal(err)
	}
	return pages.Mem
}

func benchSim(b *testing.B, store storvsp.Store, qd int, write, direct bool) {
	h, ctrl := simController(b, store, storvsc.Config{QueueDepth: 128, BounceSize: 4096})
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
	for i := range reqs {
		buf := make([]byte, 4096)
		if direct {
			buf = guestBuffer(b, h, 4096)
		}
		reqs[i] = storvsc.Request{Op: op, Buf: buf, Queue: i, Done: next}
	}
	before := ctrl.Stats()
	b.SetBytes(4096)
	b.ResetTimer()
	start := time.Now()
	for i := range reqs {
		next(&reqs[i])
	}
	<-done
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "IOPS")
	if failed != nil {
		b.Fatal(failed)
	}
	after := ctrl.Stats()
	if bounced, direct := after.Bounced-before.Bounced, after.Direct-before.Direct; (direct == 0) != (bounced != 0) || bounced+direct < uint64(b.N) {
		b.Fatalf("%d I/Os bounced, %d direct, of %d", bounced, direct, b.N)
	}
}

// BenchmarkSimRandom4KFile is BenchmarkSimRandom4K with the issue's
// baseline: the simulated host's disk is a file in memory (tmpfs), and the
// baseline reads and writes 4 KiB at random offsets of that same file with
// pread/pwrite on one goroutine. storvsc's buffers are in guest memory
// (GPA-direct), as on a gohv kernel.
func BenchmarkSimRandom4KFile(b *testing.B) {
	const size = 64 << 20
	dir := "/dev/shm"
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		b.Skip("no /dev/shm (tmpfs) here")
	}
	f, err := os.CreateTemp(dir, "gohv-bench-*.raw")
	if err != nil {
		b.Fatal(err)
	}
	name := f.Name()
	defer os.Remove(name)
	block := make([]byte, 4096)
	for off := 0; off < size; off += len(block) {
		block[0] = byte(off >> 12)
		if _, err := f.WriteAt(block, int64(off)); err != nil {
			b.Fatal(err)
		}
	}
	f.Close()
	store, err := storvsp.OpenRaw(name, false)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	file, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer file.Close()
	for _, qd := range []int{1, 32, 128} {
		for _, write := range []bool{false, true} {
			op := "read"
			if write {
				op = "write"
			}
			b.Run(fmt.Sprintf("baseline-pread-tmpfs/%s/qd%d", op, qd), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(3, 4))
				buf := make([]byte, 4096)
				b.SetBytes(4096)
				start := time.Now()
				for range b.N {
					off := int64(rng.IntN(size/4096)) * 4096
					var err error
					if write {
						_, err = file.WriteAt(buf, off)
					} else {
						_, err = file.ReadAt(buf, off)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "IOPS")
			})
			b.Run(fmt.Sprintf("storvsc-hvsim-direct-tmpfs/%s/qd%d", op, qd), func(b *testing.B) { benchSim(b, store, qd, write, true) })
		}
	}
}
