package kernel

import (
	"context"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/netstack"
	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/netvsp"
	"github.com/gohv/gohv/tools/hvsim/simhost"
)

// BenchmarkBulkTCP sends 1 MiB per op over TCP in the same run:
//
//   - baseline-gvisor-pair-gso: two gVisor stacks (netvsp.Peer) joined
//     directly (netvsp.JoinPeers: each packet's buffer handed to the other
//     stack, no copy), their channel endpoints offering GSO and checksum
//     offload: the baseline (gVisor's channel endpoint sends TCP
//     segments of up to 32 KiB);
//   - baseline-gvisor-pair-gso64k: the same with 64 KiB segments, the
//     size of the guest's LSO sends (NetVSP advertises 62780 bytes);
//   - baseline-gvisor-pair-gso64k-copy: the same, each frame copied out of
//     one stack and into the other, as the peer takes the guest's frames;
//   - baseline-gvisor-pair: two stacks without offloads (MTU frames, every
//     checksum computed and verified), frames copied across;
//   - netvsc-netvsp-gso: the guest's whole stack (gVisor netstack with
//     LSO, netvsc, the VMBus ring, the simulated host's NetVSP) to a peer
//     whose link offloads, which takes each large send whole (simhost's
//     default);
//   - netvsc-netvsp-segmenting: the same to a peer without offloads, for
//     which NetVSP cuts each large send into MTU frames.
//
// Each reports MB/s (b.SetBytes) and Gbit/s; the guest runs also report
// LSO sends and netvsc sends that found the queue busy, per op.
func BenchmarkBulkTCP(b *testing.B) {
	// The pairs' sender gets the guest's send buffer
	// (netstack.DefaultTCPSendBuffer).
	const sendBuf = netstack.DefaultTCPSendBuffer
	pair := func(offload bool, gsoMax int, join bool) func(b *testing.B) {
		return func(b *testing.B) {
			a, err := netvsp.NewPeer(netvsp.PeerConfig{MAC: [6]byte{2, 0, 0, 0, 0, 0xa}, Addr: netip.MustParsePrefix("10.9.0.1/24"), Offload: offload, GSOMaxSize: gsoMax, TCPSendBuffer: sendBuf})
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			z, err := netvsp.NewPeer(netvsp.PeerConfig{MAC: [6]byte{2, 0, 0, 0, 0, 0xb}, Addr: netip.MustParsePrefix("10.9.0.2/24"), Offload: offload, GSOMaxSize: gsoMax, TCPSendBuffer: sendBuf})
			if err != nil {
				b.Fatal(err)
			}
			defer z.Close()
			switch {
			case join:
				if err := netvsp.JoinPeers(a, z); err != nil {
					b.Fatal(err)
				}
			case offload:
				// Offloading links hand each other large segments
				// and trust each other's checksums, as two gVisor
				// channel endpoints with GSO and both checksum
				// offloads do.
				a.SetOffloadedReceiver(z.SendOffloaded)
				z.SetOffloadedReceiver(a.SendOffloaded)
			default:
				a.SetReceiver(z.Send)
				z.SetReceiver(a.Send)
			}
			ln, err := z.ListenTCP(5001)
			if err != nil {
				b.Fatal(err)
			}
			bulk(b, ln, func(ctx context.Context) (net.Conn, error) {
				return a.DialTCP(ctx, netip.MustParseAddrPort("10.9.0.2:5001"))
			})
		}
	}
	guest := func(noOffload bool) func(b *testing.B) {
		return func(b *testing.B) {
			m, err := simhost.New(simhost.Config{Profile: hvsim.WS2022, PeerNoOffload: noOffload})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			ctx := context.Background()
			k, err := Start(ctx, Config{Platform: func() (hv.Platform, error) { return m.Host.Platform(), nil }, Log: io.Discard})
			if err != nil {
				b.Fatal(err)
			}
			defer k.Close(ctx)
			ln, err := m.Peer.ListenTCP(5001)
			if err != nil {
				b.Fatal(err)
			}
			bulk(b, ln, func(ctx context.Context) (net.Conn, error) {
				return k.Dial(ctx, "tcp", simhost.PeerAddr.Addr().String()+":5001")
			})
			st := m.NIC.Stats()
			b.ReportMetric(float64(st.TxLSO+st.TxLSOWhole)/float64(b.N), "lso/op")
			var busy uint64
			for _, n := range k.NICs.NICs() {
				busy += n.Stats().TxBusy
			}
			b.ReportMetric(float64(busy)/float64(b.N), "busy/op")
		}
	}
	b.Run("baseline-gvisor-pair-gso", pair(true, 0, true))
	b.Run("baseline-gvisor-pair-gso64k", pair(true, 0xFFFF, true))
	b.Run("baseline-gvisor-pair-gso64k-copy", pair(true, 0xFFFF, false))
	b.Run("baseline-gvisor-pair", pair(false, 0, false))
	b.Run("netvsc-netvsp-gso", guest(false))
	b.Run("netvsc-netvsp-segmenting", guest(true))
}

// bulk writes b.N MiB from a dialled connection to ln, which discards them.
func bulk(b *testing.B, ln net.Listener, dial func(context.Context) (net.Conn, error)) {
	defer ln.Close()
	read := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			read <- -1
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		read <- n
	}()
	c, err := dial(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	if n := <-read; n != int64(b.N)*int64(len(buf)) {
		b.Fatalf("peer read %d bytes, want %d", n, int64(b.N)*int64(len(buf)))
	}
	b.StopTimer()
	wall, cpu := time.Since(start), cpuTime()-cpu0
	b.ReportMetric(float64(b.N)*float64(len(buf))*8/wall.Seconds()/1e9, "Gbit/s")
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cpus")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}

// cpuTime is the CPU time the process has used (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
