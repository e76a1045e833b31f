package netstack_test

import (
	"context"
	"io"
	"net"
	"testing"

	"github.com/gohv/gohv/netstack/nic"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

const benchChunk = 1 << 20

// runBulk writes b.N chunks from dial's connection to the listener and
// waits until the receiver has read them all.
func runBulk(b *testing.B, l net.Listener, dial func() (net.Conn, error)) {
	b.Helper()
	done := make(chan int64, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- -1
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		done <- n
	}()
	c, err := dial()
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, benchChunk)
	b.SetBytes(benchChunk)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	if n := <-done; n != int64(b.N)*benchChunk {
		b.Fatalf("received %d bytes, want %d", n, int64(b.N)*benchChunk)
	}
}

// BenchmarkBulkTCP compares bulk TCP through netstack's link endpoint over
// fake NICs with the baseline of two gVisor stacks joined directly by
// gVisor channel endpoints, in the same run.
func BenchmarkBulkTCP(b *testing.B) {
	b.Run("baseline-channel", func(b *testing.B) {
		sa, sb := channelPair(b)
		l, err := gonet.ListenTCP(sb, tcpip.FullAddress{Port: 5001}, ipv4.ProtocolNumber)
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		runBulk(b, l, func() (net.Conn, error) {
			return gonet.DialContextTCP(context.Background(), sa, tcpip.FullAddress{Addr: tcpip.AddrFrom4(ipB.Addr().As4()), Port: 5001}, ipv4.ProtocolNumber)
		})
	})
	for _, tc := range []struct {
		name   string
		off    nic.Offloads
		queues int
	}{
		{"nictest-no-offload", nic.Offloads{}, 1},
		{"nictest-csum", nic.Offloads{TxCsumTCP4: true, TxCsumUDP4: true, RxCsum: true}, 1},
		{"nictest-gso", fullOffloads, 1},
		{"nictest-gso-4queues", fullOffloads, 4},
	} {
		b.Run(tc.name, func(b *testing.B) {
			a, s, na, _ := pair(b, pairConfig{offloads: tc.off, queues: tc.queues, slots: 256})
			l, err := s.Listen("tcp4", ":5001")
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			runBulk(b, l, func() (net.Conn, error) {
				return a.Dial(context.Background(), "tcp4", ipB.Addr().String()+":5001")
			})
			b.ReportMetric(float64(na.Stats().TxFrames)/float64(b.N), "sends/MiB")
		})
	}
}

// channelPair returns two gVisor stacks whose channel endpoints are pumped
// into each other (no link header, no netstack code).
func channelPair(b *testing.B) (*stack.Stack, *stack.Stack) {
	mk := func(ep *channel.Endpoint, addr [4]byte) *stack.Stack {
		s := stack.New(stack.Options{
			NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol},
			TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
		})
		if err := s.CreateNIC(1, ep); err != nil {
			b.Fatal(err)
		}
		pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpip.AddrFrom4(addr), PrefixLen: 24}}
		if err := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); err != nil {
			b.Fatal(err)
		}
		s.SetRouteTable([]tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: 1}})
		sack := tcpip.TCPSACKEnabled(true)
		s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
		return s
	}
	ea, eb := channel.New(256, 1500, ""), channel.New(256, 1500, "")
	sa, sb := mk(ea, ipA.Addr().As4()), mk(eb, ipB.Addr().As4())
	ctx, cancel := context.WithCancel(context.Background())
	pump := func(from, to *channel.Endpoint) {
		for {
			pkt := from.ReadContext(ctx)
			if pkt == nil {
				return
			}
			in := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: pkt.ToBuffer()})
			to.InjectInbound(pkt.NetworkProtocolNumber, in)
			in.DecRef()
			pkt.DecRef()
		}
	}
	go pump(ea, eb)
	go pump(eb, ea)
	b.Cleanup(func() {
		cancel()
		sa.Close()
		sb.Close()
	})
	return sa, sb
}
