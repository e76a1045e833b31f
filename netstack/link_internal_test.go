package netstack

import (
	"context"
	"encoding/binary"
	"net/netip"

	"github.com/gohv/gohv/netstack/dhcp4"
	"testing"

	"github.com/gohv/gohv/netstack/nic"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// sinkNIC accepts every frame and counts it.
type sinkNIC struct {
	off    nic.Offloads
	frames int
	bytes  int
	last   nic.TxInfo
	recv   func(int, []byte, nic.RxInfo)
	onSend func([][]byte)
}

func (s *sinkNIC) MAC() [6]byte                                 { return [6]byte{2, 0, 0, 0, 0, 1} }
func (s *sinkNIC) MTU() int                                     { return 1500 }
func (s *sinkNIC) Queues() int                                  { return 2 }
func (s *sinkNIC) LinkUp() bool                                 { return true }
func (s *sinkNIC) Offloads() nic.Offloads                       { return s.off }
func (s *sinkNIC) SetReceiver(fn func(int, []byte, nic.RxInfo)) { s.recv = fn }
func (s *sinkNIC) WaitWritable(context.Context, int) error      { return nil }
func (s *sinkNIC) SetLinkHandler(func(bool))                    {}
func (s *sinkNIC) SetNetworkChangeHandler(func())               {}
func (s *sinkNIC) Send(q int, parts [][]byte, tx nic.TxInfo) error {
	s.frames++
	for _, p := range parts {
		s.bytes += len(p)
	}
	s.last = tx
	if s.onSend != nil {
		s.onSend(parts)
	}
	return nil
}

// tcpPacket builds an outbound IPv4 TCP packet with a payload of n bytes,
// as gVisor would hand it to WritePackets.
func tcpPacket(ep *linkEndpoint, n int, gso bool) *stack.PacketBuffer {
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		ReserveHeaderBytes: header.EthernetMinimumSize + header.IPv4MinimumSize + header.TCPMinimumSize,
		Payload:            buffer.MakeWithData(make([]byte, n)),
	})
	t := header.TCP(pkt.TransportHeader().Push(header.TCPMinimumSize))
	t.Encode(&header.TCPFields{SrcPort: 1234, DstPort: 80, DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagAck})
	pkt.TransportProtocolNumber = header.TCPProtocolNumber
	ip := header.IPv4(pkt.NetworkHeader().Push(header.IPv4MinimumSize))
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(min(header.IPv4MinimumSize+header.TCPMinimumSize+n, 0xffff)), TTL: 64,
		Protocol: uint8(header.TCPProtocolNumber), SrcAddr: tcpip.AddrFrom4([4]byte{10, 0, 0, 1}), DstAddr: tcpip.AddrFrom4([4]byte{10, 0, 0, 2})})
	pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
	pkt.EgressRoute.RemoteLinkAddress = tcpip.LinkAddress("\x02\x00\x00\x00\x00\x02")
	if gso {
		pkt.GSOOptions = stack.GSO{Type: stack.GSOTCPv4, NeedsCsum: true, MSS: 1460, L3HdrLen: header.IPv4MinimumSize}
	}
	ep.AddHeader(pkt)
	return pkt
}

// TestLinkAllocs proves the per-packet paths allocate nothing: transmit
// (parts handed to the NIC, checksum offload and GSO metadata) and receive
// (NIC callback to gVisor dispatcher).
func TestLinkAllocs(t *testing.T) {
	for _, tc := range []struct {
		name string
		off  nic.Offloads
		size int
		gso  bool
	}{
		{"tx plain", nic.Offloads{}, 1460, false},
		{"tx csum offload", nic.Offloads{TxCsumTCP4: true}, 1460, false},
		{"tx gso", nic.Offloads{TxCsumTCP4: true, LSOv4: true, LSOv6: true, LSOMaxSize: 62780}, 60000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &sinkNIC{off: tc.off}
			ep := newLinkEndpoint(n, 0)
			defer ep.Close()
			pkt := tcpPacket(ep, tc.size, tc.gso)
			defer pkt.DecRef()
			var list stack.PacketBufferList
			list.PushBack(pkt)
			allocs := testing.AllocsPerRun(1000, func() {
				if _, err := ep.WritePackets(list); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 && !raceEnabled {
				t.Errorf("%v allocations per packet sent", allocs)
			}
			if want := header.EthernetMinimumSize + header.IPv4MinimumSize + header.TCPMinimumSize + tc.size; n.bytes/n.frames != want {
				t.Errorf("sent %d bytes per frame, want %d", n.bytes/n.frames, want)
			}
			if n.last.GSO != tc.gso || n.last.CsumTCP != (tc.off.TxCsumTCP4) {
				t.Errorf("TxInfo %+v", n.last)
			}
		})
	}
	t.Run("rx", func(t *testing.T) {
		n := &sinkNIC{off: nic.Offloads{RxCsum: true}}
		ep := newLinkEndpoint(n, 0)
		defer ep.Close()
		d := &countingDispatcher{got: make(chan struct{}, 1)}
		ep.Attach(d)
		src := &sinkNIC{}
		sep := newLinkEndpoint(src, 0)
		defer sep.Close()
		var frame []byte
		pkt := tcpPacket(sep, 1460, false)
		for _, s := range pkt.AsSlices() {
			frame = append(frame, s...)
		}
		pkt.DecRef()
		info := nic.RxInfo{CsumChecked: true, IPCsumOK: true, L4CsumOK: true}
		allocs := testing.AllocsPerRun(1000, func() {
			n.recv(0, frame, info)
			<-d.got
		})
		if allocs != 0 && !raceEnabled {
			t.Errorf("%v allocations per packet received", allocs)
		}
		if st := ep.Stats(); st.RxPackets < 1000 || st.RxCsumOffloaded != st.RxPackets {
			t.Errorf("stats %+v", st)
		}
	})
}

type countingDispatcher struct{ got chan struct{} }

func (d *countingDispatcher) DeliverNetworkPacket(p tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	if p == header.IPv4ProtocolNumber && pkt.Data().Size() == header.IPv4MinimumSize+header.TCPMinimumSize+1460 {
		d.got <- struct{}{}
	}
}

func (d *countingDispatcher) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {}

// TestVerifyFrame checks the software verification used for frames the NIC
// did not check: a good frame passes, a flipped payload bit fails.
func TestVerifyFrame(t *testing.T) {
	ep := newLinkEndpoint(&sinkNIC{}, 0)
	defer ep.Close()
	pkt := tcpPacket(ep, 100, false)
	var frame []byte
	for _, s := range pkt.AsSlices() {
		frame = append(frame, s...)
	}
	pkt.DecRef()
	ip := header.IPv4(frame[header.EthernetMinimumSize:])
	ip.SetChecksum(^ip.CalculateChecksum())
	l4 := header.TCP(ip[header.IPv4MinimumSize:])
	l4.SetChecksum(^checksum.Checksum(l4, header.PseudoHeaderChecksum(header.TCPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(l4)))))
	if !verifyFrame(frame) {
		t.Fatal("good frame rejected")
	}
	frame[len(frame)-1] ^= 1
	if verifyFrame(frame) {
		t.Fatal("corrupt TCP payload accepted")
	}
	frame[len(frame)-1] ^= 1
	frame[header.EthernetMinimumSize+8] ^= 1 // TTL: IPv4 header checksum breaks
	if verifyFrame(frame) {
		t.Fatal("corrupt IPv4 header accepted")
	}
}

// FuzzReceive feeds arbitrary frames (as a hostile host could deliver them)
// through the receive path: the DHCP intercept, checksum verification and
// hand-off to the dispatcher. Nothing may panic.
func FuzzReceive(f *testing.F) {
	ep := newLinkEndpoint(&sinkNIC{}, 0)
	pkt := tcpPacket(ep, 64, false)
	var frame []byte
	for _, s := range pkt.AsSlices() {
		frame = append(frame, s...)
	}
	pkt.DecRef()
	ep.Close()
	f.Add(frame, false)
	f.Add(frame[:20], true)
	// A DHCP reply as the intercept sees it: our own DISCOVER frame with the
	// UDP ports swapped.
	sink := &sinkNIC{}
	dep := newLinkEndpoint(sink, 0)
	tr := newDHCPTransport(dep)
	disc, _ := (&dhcp4.Message{Type: dhcp4.Offer, XID: 1}).Append(nil)
	var captured []byte
	sink.onSend = func(parts [][]byte) {
		for _, p := range parts {
			captured = append(captured, p...)
		}
	}
	tr.Send(context.Background(), disc, netip.IPv4Unspecified(), netip.AddrFrom4([4]byte{255, 255, 255, 255}))
	dep.Close()
	if len(captured) > 42 {
		binary.BigEndian.PutUint16(captured[34:], 67) // source port
		binary.BigEndian.PutUint16(captured[36:], 68) // destination port
		binary.BigEndian.PutUint16(captured[40:], 0)  // no UDP checksum
		f.Add(captured, false)
	}
	f.Add(make([]byte, 14), false)
	f.Fuzz(func(t *testing.T, b []byte, checked bool) {
		n := &sinkNIC{off: nic.Offloads{RxCsum: true}}
		ep := newLinkEndpoint(n, 0)
		defer ep.Close()
		ep.Attach(&countingDispatcher{got: make(chan struct{}, 1<<20)})
		tr := newDHCPTransport(ep)
		verifyFrame(append([]byte(nil), b...))
		n.recv(0, b, nic.RxInfo{CsumChecked: checked, IPCsumOK: true, L4CsumOK: true})
		select {
		case m := <-tr.rx:
			if len(m) > cap(m) {
				t.Fatal("impossible")
			}
		default:
		}
	})
}
