package netvsp

import (
	"testing"

	"github.com/gohv/gohv/tools/hvsim"
)

// Each benchmark reports its rate next to a memcpy of the same bytes run
// in the same process (the "memcpy" sub-benchmark) and the ratio to it.

func benchMemcpy(b *testing.B, n int) float64 {
	src, dst := make([]byte, n), make([]byte, n)
	var ns float64
	b.Run("memcpy", func(b *testing.B) {
		b.SetBytes(int64(n))
		for i := 0; i < b.N; i++ {
			copy(dst, src)
		}
		ns = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	return ns
}

func BenchmarkTransmitChecksum(b *testing.B) {
	msg := guestPacket(ipv4Frame(6, tcpSegment(1, 2, 3, 4, 0x10, make([]byte, 1460)), false), ppi{0, csumReqTCP4})
	base := benchMemcpy(b, len(msg))
	q := testQueue(b, &nullBackend{})
	b.Run("transmit", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		for i := 0; i < b.N; i++ {
			q.transmit(msg)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/base, "x-memcpy")
	})
}

func BenchmarkTransmitLSO64K(b *testing.B) {
	msg := guestPacket(ipv4Frame(6, tcpSegment(1, 2, 3, 4, 0x10, make([]byte, 62000)), true), ppi{2, lsoInfo(1460)})
	base := benchMemcpy(b, len(msg))
	q := testQueue(b, &nullBackend{})
	b.Run("transmit", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		for i := 0; i < b.N; i++ {
			q.transmit(msg)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/base, "x-memcpy")
	})
}

func BenchmarkReceivePrepare(b *testing.B) {
	frame := ipv4Frame(6, tcpSegment(1, 2, 3, 4, 0x10, make([]byte, 1460)), false)
	txChecksum(frame, csumReqTCP4)
	base := benchMemcpy(b, len(frame))
	out := make([]byte, 2048)
	o := allOffloads
	b.Run("checksum+header+copy", func(b *testing.B) {
		b.SetBytes(int64(len(frame)))
		for i := 0; i < b.N; i++ {
			cs := rxChecksum(frame, &o)
			n := encodeRxPacketHeader(out, len(frame), cs, true, 0, false)
			copy(out[n:], frame)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/base, "x-memcpy")
	})
}

// BenchmarkGuestSendThroughRing is the whole send path as the scripted
// guest drives it (send-buffer section, NVSP, RNDIS, checksum, backend,
// completion), against the bare ring round trip of hvsim.Echo with the same
// payload size measured in the same run.
func BenchmarkGuestSendThroughRing(b *testing.B) {
	frame := ipv4Frame(6, tcpSegment(1, 2, 3, 4, 0x10, make([]byte, 1400)), false)
	msg := guestPacket(frame, ppi{0, csumReqTCP4})
	var base float64
	b.Run("echo-baseline", func(b *testing.B) {
		g := newGuest(b, hvsim.Config{})
		if _, err := g.h.AddDevice(&hvsim.Echo{Spec: hvsim.OfferSpec{Class: hvsim.MustParseGUID("57164f39-9115-4e78-ab55-382f3bd5422d")}}); err != nil {
			b.Fatal(err)
		}
		g.connect()
		c := g.openChannel(g.requestOffers()[0])
		b.SetBytes(int64(len(msg)))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			c.write(0x6, 1, uint64(i), nil, msg)
			c.read()
		}
		base = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("netvsp", func(b *testing.B) {
		be := &nullBackend{}
		n := newNIC(b, Config{Backend: be})
		n.ready()
		b.SetBytes(int64(len(msg)))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			n.transmit(n.c, msg)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/base, "x-echo")
	})
}
