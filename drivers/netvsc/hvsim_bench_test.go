package netvsc_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gohv/gohv/drivers/netvsc"
	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/netvsp"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// sink is a Backend that counts guest frames.
type sink struct{ frames, bytes atomic.Uint64 }

func (s *sink) Send(f []byte) {
	s.frames.Add(1)
	s.bytes.Add(uint64(len(f)))
}
func (s *sink) SetReceiver(func([]byte)) {}

// benchHvsimSend sends size-byte frames end to end: the real VMBus client
// and ring, hvsim's NetVSP (which checksums and segments LSO), a counting
// backend. The memcpy baseline is measured in the same run.
func benchHvsimSend(b *testing.B, size int, tx netvsc.TxInfo) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	h, err := hvsim.New(hvsim.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	s := &sink{}
	dev, err := netvsp.New(h, netvsp.Config{MAC: guestMAC, MTU: 1500, Backend: s})
	if err != nil {
		b.Fatal(err)
	}
	h.AddDevice(dev)
	bus, err := vmbus.Connect(ctx, h.Platform(), vmbus.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close(ctx)
	var nic *netvsc.NIC
	for _, ch := range bus.Channels() {
		if ch.Offer().InterfaceType == chanmsg.ClassNetwork {
			nic, err = netvsc.Open(ctx, ch, netvsc.Config{Memory: h.Platform(), VMBusVersion: bus.Version()})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	defer nic.Close(ctx)
	if tx.GSO && !nic.Offloads().LSOv4 {
		b.Skip("no LSO")
	}
	f := tcp4([6]byte{2, 0, 0, 0, 0, 9}, guestMAC, min(size, nic.Offloads().LSOMaxSize)-54)
	if !tx.GSO {
		f = tcp4([6]byte{2, 0, 0, 0, 0, 9}, guestMAC, size-54)
	}
	parts := [][]byte{f[:54], f[54:]}
	b.SetBytes(int64(len(f)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		for {
			err := nic.Send(0, parts, tx)
			if err == nil {
				break
			}
			if !errors.Is(err, netvsc.ErrBusy) {
				b.Fatal(err)
			}
			if err := nic.WaitWritable(ctx, 0); err != nil {
				b.Fatal(err)
			}
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	src, dst := make([]byte, len(f)), make([]byte, len(f))
	t0 := time.Now()
	for range b.N {
		copy(dst, src)
	}
	base := time.Since(t0)
	b.ReportMetric(float64(base.Nanoseconds())/float64(b.N), "memcpy-ns/op")
	if base > 0 {
		b.ReportMetric(float64(elapsed)/float64(base), "x-memcpy")
	}
}

func BenchmarkHvsimSend1500(b *testing.B) {
	benchHvsimSend(b, 1514, netvsc.TxInfo{CsumTCP: true, CsumIPv4: true, L3Offset: 14, L4Offset: 34})
}

func BenchmarkHvsimSendLSO64K(b *testing.B) {
	benchHvsimSend(b, 64<<10, netvsc.TxInfo{GSO: true, MSS: 1460, L3Offset: 14, L4Offset: 34})
}
