package netvsc

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gohv/gohv/vmbus/ring"
)

// memcpyBaseline measures, in the same run, copying size bytes n times:
// the floor every per-frame copy is compared with.
func memcpyBaseline(size, n int) time.Duration {
	src, dst := make([]byte, size), make([]byte, size)
	start := time.Now()
	for range n {
		copy(dst, src)
	}
	return time.Since(start)
}

func reportBaseline(b *testing.B, size int, elapsed time.Duration) {
	base := memcpyBaseline(size, b.N)
	per := float64(base.Nanoseconds()) / float64(b.N)
	b.ReportMetric(per, "memcpy-ns/op")
	if base > 0 {
		b.ReportMetric(float64(elapsed)/float64(base), "x-memcpy")
	}
}

func benchSend(b *testing.B, size int, tx TxInfo, phys bool) {
	h := newHost(b)
	h.sink.Store(true)
	h.lsoMax = 64 << 10
	cfg := Config{Memory: h.mem}
	var frame []byte
	if phys {
		cfg.Memory = physMem{h.mem}
		p, _ := h.mem.AllocPages(17)
		frame = p.Mem[:size]
	} else {
		frame = make([]byte, size)
	}
	copy(frame, ethFrame(60, 1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := Open(ctx, h.primary(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close(ctx)
	parts := [][]byte{frame[:54], frame[54:]}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		for {
			err := n.Send(0, parts, tx)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrBusy) {
				b.Fatal(err)
			}
			if err := n.WaitWritable(ctx, 0); err != nil {
				b.Fatal(err)
			}
		}
	}
	q := n.queues[0]
	waitUntil(func() bool { return q.inFlight.Load() == 0 })
	elapsed := time.Since(start)
	b.StopTimer()
	reportBaseline(b, size, elapsed)
}

func BenchmarkSend1500(b *testing.B) {
	benchSend(b, 1514, TxInfo{CsumIPv4: true, CsumTCP: true, L3Offset: 14, L4Offset: 34}, false)
}

func BenchmarkSendLSO64KDirect(b *testing.B) {
	benchSend(b, 64<<10, TxInfo{GSO: true, MSS: 1460, L3Offset: 14, L4Offset: 34}, true)
}

func BenchmarkSendLSO64KBounced(b *testing.B) {
	benchSend(b, 64<<10, TxInfo{GSO: true, MSS: 1460, L3Offset: 14, L4Offset: 34}, false)
}

// benchReceive delivers one prebuilt frame per iteration; the host keeps
// up to 64 packets queued so the guest's dispatch goroutine stays busy.
func benchReceive(b *testing.B, size int) {
	h := newHost(b)
	h.sink.Store(true)
	h.maxFrame, h.subAlloc = 9000, 16384
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := Open(ctx, h.primary(), Config{Memory: h.mem, MTU: 9000})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close(ctx)
	var got atomic.Int64
	n.SetReceiver(func(q int, f []byte, info RxInfo) { got.Add(1) })
	d := h.prepareFixed(ethFrame(size, 3))
	c := h.primary()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		waitUntil(func() bool { return int64(i)-got.Load() < 64 })
		d.txid++
		for c.in.push(ring.TypeDataTransferPages, 1, d.txid, d.hdr, d.pay) != nil {
			waitUntil(func() bool { return c.in.len() < 64 })
		}
		c.interrupt()
	}
	waitUntil(func() bool { return got.Load() == int64(b.N) })
	elapsed := time.Since(start)
	b.StopTimer()
	reportBaseline(b, size, elapsed)
}

func BenchmarkReceive1500(b *testing.B) { benchReceive(b, 1514) }
func BenchmarkReceive9000(b *testing.B) { benchReceive(b, 9014) }
