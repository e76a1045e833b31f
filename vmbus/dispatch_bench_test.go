package vmbus_test

import (
	"sync"
	"testing"

	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/hvsimtest"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/ring"
)

// BenchmarkEchoRoundTrip sends 1 KiB packets through hvsim's loopback
// device and waits for each echo (delivered by the channel's dispatch
// goroutine), on one channel and on four channels at once: with a
// dispatch goroutine per channel the four share no goroutine on the guest
// side. The one-channel case is the baseline; the metric is round trips
// per second over all channels.
func BenchmarkEchoRoundTrip(b *testing.B) {
	for _, n := range []int{1, 4} {
		b.Run(map[int]string{1: "1-channel", 4: "4-channels"}[n], func(b *testing.B) {
			var devs []hvsim.Device
			for i := range n {
				devs = append(devs, &hvsim.Echo{Spec: hvsim.OfferSpec{Class: echoClass,
					Instance: hvsim.MustParseGUID("0000000" + string(rune('1'+i)) + "-aaaa-bbbb-cccc-ddddeeeeffff")}})
			}
			g := hvsimtest.NewGuest(b, hvsimtest.Config{Devices: devs, Bus: vmbus.Config{Logf: func(string, ...any) {}}})
			chs := g.Bus.Channels()
			echoed := make([]chan struct{}, len(chs))
			for i, ch := range chs {
				echoed[i] = make(chan struct{}, 1)
				buf := make([]byte, 2048)
				if err := ch.Open(g.Ctx, vmbus.OpenConfig{OnInterrupt: func() {
					for {
						if _, err := ch.ReadPacket(buf); err != nil {
							return
						}
						echoed[i] <- struct{}{}
					}
				}}); err != nil {
					b.Fatal(err)
				}
			}
			payload := make([]byte, 1024)
			b.SetBytes(int64(len(payload) * len(chs)))
			b.ResetTimer()
			var wg sync.WaitGroup
			for i, ch := range chs {
				wg.Go(func() {
					for range b.N {
						if err := ch.Send(g.Ctx, ring.TypeDataInband, 0, 1, payload); err != nil {
							b.Error(err)
							return
						}
						<-echoed[i]
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N*len(chs))/b.Elapsed().Seconds(), "roundtrips/s")
		})
	}
}
