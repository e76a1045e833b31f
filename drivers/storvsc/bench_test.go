package storvsc

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

const benchBlocks = 16384 // 64 MiB of 4 KiB blocks

// BenchmarkRandom4K runs 4 KiB random reads and writes at queue depths
// 1, 32 and 128 through the driver against the fake host (zero-copy
// buffers, the host copying to and from its backing store), next to a
// baseline that does the same copies directly in memory.
func BenchmarkRandom4K(b *testing.B) {
	for _, qd := range []int{1, 32, 128} {
		for _, write := range []bool{false, true} {
			op := "read"
			if write {
				op = "write"
			}
			b.Run(fmt.Sprintf("baseline-memcpy/%s/qd%d", op, qd), func(b *testing.B) { benchBaseline(b, qd, write) })
			b.Run(fmt.Sprintf("storvsc/%s/qd%d", op, qd), func(b *testing.B) { benchDriver(b, qd, write) })
		}
	}
}

// touch faults the pages of b in before timing.
func touch(b []byte) {
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
}

func reportIOPS(b *testing.B, start time.Time) {
	el := time.Since(start)
	b.ReportMetric(float64(b.N)/el.Seconds(), "IOPS")
	b.SetBytes(4096)
}

// benchBaseline copies 4 KiB between a buffer and a memory "disk" at
// random offsets, qd buffers in rotation: the cost floor of the same
// data movement.
func benchBaseline(b *testing.B, qd int, write bool) {
	disk := make([]byte, benchBlocks*4096)
	touch(disk)
	rng := rand.New(rand.NewPCG(1, 2))
	bufs := make([][]byte, qd)
	for i := range bufs {
		bufs[i] = make([]byte, 4096)
	}
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		off := rng.IntN(benchBlocks) * 4096
		if write {
			copy(disk[off:off+4096], bufs[i%qd])
		} else {
			copy(bufs[i%qd], disk[off:off+4096])
		}
	}
	reportIOPS(b, start)
}

func benchDriver(b *testing.B, qd int, write bool) {
	mem := newFakeMem()
	h := newFakeHost(mem)
	touch(h.addDisk(0, 0, 0, benchBlocks, 4096).data)
	rng := rand.New(rand.NewPCG(1, 2))
	ch := h.newPrimary(SCSIClass)
	c, err := Attach(context.Background(), ch, Config{Memory: transMem{mem}, QueueDepth: 128})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(context.Background())
	h.mu.Lock()
	h.fast, h.recordSRBs = true, false
	h.mu.Unlock()
	d := c.Disks()[0]
	op := OpRead
	if write {
		op = OpWrite
	}
	pg, _ := mem.AllocPages(qd)
	var (
		mu      sync.Mutex
		issued  int
		pending = qd
		done    = make(chan struct{})
		failed  error
	)
	reqs := make([]Request, qd)
	var next func(r *Request)
	next = func(r *Request) {
		mu.Lock()
		if r.Err != nil && failed == nil {
			failed = r.Err
		}
		if issued >= b.N || failed != nil {
			pending--
			if pending == 0 {
				close(done)
			}
			mu.Unlock()
			return
		}
		issued++
		r.Off = int64(rng.IntN(benchBlocks)) * 4096
		mu.Unlock()
		if err := d.Submit(r); err != nil {
			r.Err = err
			next(r)
		}
	}
	b.ResetTimer()
	start := time.Now()
	for i := range reqs {
		reqs[i] = Request{Op: op, Buf: pg.Mem[i*4096 : (i+1)*4096], Done: next}
		mu.Lock()
		if issued >= b.N {
			pending--
			if pending == 0 {
				close(done)
			}
			mu.Unlock()
			continue
		}
		issued++
		reqs[i].Off = int64(rng.IntN(benchBlocks)) * 4096
		mu.Unlock()
		if err := d.Submit(&reqs[i]); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	reportIOPS(b, start)
	if failed != nil {
		b.Fatal(failed)
	}
}
