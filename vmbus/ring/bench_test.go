package ring

import (
	"strconv"
	"testing"
)

var benchSizes = []int{64, 1 << 10, 64 << 10}

const benchRing = 1 << 20 // data area

func sizeName(n int) string {
	switch {
	case n >= 1<<10:
		return strconv.Itoa(n>>10) + "KiB"
	default:
		return strconv.Itoa(n) + "B"
	}
}

// BenchmarkRing sends and receives one packet per iteration through a
// Writer and Reader on the same 1 MiB ring: two copies per byte, like the
// Memcpy baseline.
func BenchmarkRing(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			w, r := mustPair(b, make([]byte, HeaderSize+benchRing))
			payload := make([]byte, n)
			buf := make([]byte, n+64)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			cpu0 := cpuClock()
			defer reportCPU(b, cpu0)
			for b.Loop() {
				if _, err := w.TryWrite(TypeDataInband, 0, 1, nil, payload); err != nil {
					b.Fatal(err)
				}
				if _, err := r.Read(buf); err != nil {
					b.Fatal(err)
				}
				r.Commit()
			}
		})
	}
}

// BenchmarkRingBatch writes up to 16 packets per Batch (as many as fit in
// half the ring) and reads them with one Commit.
func BenchmarkRingBatch(b *testing.B) {
	for _, n := range benchSizes {
		batch := min(16, benchRing/2/PacketSize(0, n))
		b.Run(sizeName(n), func(b *testing.B) {
			w, r := mustPair(b, make([]byte, HeaderSize+benchRing))
			payload := make([]byte, n)
			buf := make([]byte, n+64)
			b.SetBytes(int64(n * batch))
			b.ReportAllocs()
			cpu0 := cpuClock()
			defer reportCPU(b, cpu0)
			for b.Loop() {
				bt := w.Batch()
				for range batch {
					if err := bt.Add(TypeDataInband, 0, 1, nil, payload); err != nil {
						b.Fatal(err)
					}
				}
				bt.Commit()
				for range batch {
					if _, err := r.Read(buf); err != nil {
						b.Fatal(err)
					}
				}
				r.Commit()
			}
		})
	}
}

// BenchmarkMemcpy is the baseline: the same bytes copied twice, into a
// ring-sized buffer (advancing through it like the ring) and out again.
func BenchmarkMemcpy(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			mid := make([]byte, benchRing)
			src := make([]byte, n)
			dst := make([]byte, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			cpu0 := cpuClock()
			defer reportCPU(b, cpu0)
			off := 0
			for b.Loop() {
				if off+n > len(mid) {
					off = 0
				}
				copy(mid[off:off+n], src)
				copy(dst, mid[off:off+n])
				off += n
			}
		})
	}
}
