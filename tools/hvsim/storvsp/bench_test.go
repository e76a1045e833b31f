package storvsp

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/gohv/gohv/tools/hvsim"
)

// BenchmarkSRB measures the host side of one EXECUTE_SRB (parse, SCSI,
// copy between a memory store and guest memory, completion into the ring)
// against a plain copy of the same bytes measured in the same run.
func BenchmarkSRB(b *testing.B) {
	for _, bc := range []struct {
		name string
		op   byte
		dir  byte
		size int
	}{{"read4K", 0x28, 1, 4096}, {"read64K", 0x28, 1, 64 << 10}, {"write64K", 0x2A, 0, 64 << 10}} {
		b.Run(bc.name, func(b *testing.B) {
			r := newRig(b, Config{}, hvsim.Config{}, map[Addr]LUNConfig{{}: {Store: NewMemStore(16 << 20)}})
			r.c.negotiate(0x0602, 64)
			c := r.primary(b)
			atomic.StoreUint32(a32(r.c.in, 8), 1)
			s := srbReq{cdb: cdb10(bc.op, 64, uint16(bc.size/512)), dataIn: bc.dir, length: uint32(bc.size)}
			p := hvsim.Packet{Type: 9, Flags: 1, TransactionID: 5, Header: gpaHeader(r.buf, 0, bc.size), Payload: s.bytes()}

			// Baseline: copying the bytes once, no protocol.
			src, dst := make([]byte, bc.size), make([]byte, bc.size)
			const n = 2000
			start := time.Now()
			for i := 0; i < n; i++ {
				copy(dst, src)
			}
			base := time.Since(start).Seconds() / n

			b.SetBytes(int64(bc.size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c.handle(p)
				r.c.drain()
			}
			b.StopTimer()
			per := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(per*1e9, "ns/srb")
			b.ReportMetric(base*1e9, "ns/memcpy-baseline")
			if base > 0 {
				b.ReportMetric(per/base, "x-memcpy")
			}
		})
	}
}
