package kernel

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/netvsp"
	"github.com/gohv/gohv/tools/hvsim/simhost"
)

// BenchmarkBulkTCP sends 1 MiB per op over TCP two ways in the same run:
// from the guest's whole stack (gVisor netstack, netvsc, the VMBus ring,
// the simulated host's NetVSP) to the host's peer stack, and, as the
// baseline, between two gVisor stacks joined directly (the peer stack on
// both ends, frames handed across with nothing in between).
func BenchmarkBulkTCP(b *testing.B) {
	b.Run("baseline-gvisor-pair", func(b *testing.B) {
		a, err := netvsp.NewPeer(netvsp.PeerConfig{MAC: [6]byte{2, 0, 0, 0, 0, 0xa}, Addr: netip.MustParsePrefix("10.9.0.1/24")})
		if err != nil {
			b.Fatal(err)
		}
		defer a.Close()
		z, err := netvsp.NewPeer(netvsp.PeerConfig{MAC: [6]byte{2, 0, 0, 0, 0, 0xb}, Addr: netip.MustParsePrefix("10.9.0.2/24")})
		if err != nil {
			b.Fatal(err)
		}
		defer z.Close()
		a.SetReceiver(z.Send)
		z.SetReceiver(a.Send)
		ln, err := z.ListenTCP(5001)
		if err != nil {
			b.Fatal(err)
		}
		bulk(b, ln, func(ctx context.Context) (net.Conn, error) {
			return a.DialTCP(ctx, netip.MustParseAddrPort("10.9.0.2:5001"))
		})
	})
	b.Run("netvsc-netvsp", func(b *testing.B) {
		m, err := simhost.New(simhost.Config{Profile: hvsim.WS2022})
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
	})
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
}
