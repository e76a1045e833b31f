package netvsp

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

var (
	guestIP = netip.MustParseAddr("10.0.0.2")
	peerIP  = netip.MustParseAddr("10.0.0.1")
	peerMAC = [6]byte{0x02, 0, 0, 0, 0, 0x02}
)

func newPeer(t testing.TB) *Peer {
	t.Helper()
	p, err := NewPeer(PeerConfig{MAC: peerMAC, Addr: netip.PrefixFrom(peerIP, 24)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// The frames below are built with gVisor's header package: an encoder
// independent of the device's own header code.

func ethFrame(dst, src [6]byte, typ tcpip.NetworkProtocolNumber, payload []byte) []byte {
	b := make([]byte, header.EthernetMinimumSize+len(payload))
	header.Ethernet(b).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(src[:]), DstAddr: tcpip.LinkAddress(dst[:]), Type: typ})
	copy(b[header.EthernetMinimumSize:], payload)
	return b
}

func arpRequest() []byte {
	a := header.ARP(make([]byte, header.ARPSize))
	a.SetIPv4OverEthernet()
	a.SetOp(header.ARPRequest)
	copy(a.HardwareAddressSender(), guestMAC[:])
	copy(a.ProtocolAddressSender(), guestIP.AsSlice())
	copy(a.ProtocolAddressTarget(), peerIP.AsSlice())
	return ethFrame([6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, guestMAC, header.ARPProtocolNumber, a)
}

// ipv4Frame builds guest→peer IPv4 with a zero header checksum (the host
// computes it on request); lso leaves the total length 0, as Linux sends
// LSO frames.
func ipv4Frame(proto uint8, l4 []byte, lso bool) []byte {
	ip := header.IPv4(make([]byte, header.IPv4MinimumSize+len(l4)))
	totalLen := uint16(len(ip))
	if lso {
		totalLen = 0
	}
	ip.Encode(&header.IPv4Fields{TotalLength: totalLen, TTL: 64, Protocol: proto, ID: 7,
		SrcAddr: tcpip.AddrFromSlice(guestIP.AsSlice()), DstAddr: tcpip.AddrFromSlice(peerIP.AsSlice())})
	copy(ip[header.IPv4MinimumSize:], l4)
	return ethFrame(peerMAC, guestMAC, header.IPv4ProtocolNumber, ip)
}

func tcpSegment(srcPort, dstPort uint16, seq, ack uint32, flags header.TCPFlags, payload []byte) []byte {
	b := make([]byte, header.TCPMinimumSize+len(payload))
	header.TCP(b).Encode(&header.TCPFields{SrcPort: srcPort, DstPort: dstPort, SeqNum: seq, AckNum: ack,
		DataOffset: header.TCPMinimumSize, Flags: flags, WindowSize: 0xFFFF, Checksum: 0xBAD})
	copy(b[header.TCPMinimumSize:], payload)
	return b
}

// Checksum request bits and LSO info as a guest writes them (§7.8).
const (
	csumReqTCP4 = 1<<0 | 1<<2 | 1<<4 | 34<<16 // IPv4, TCP, IP header; TCP at 34
	csumReqUDP4 = 1<<0 | 1<<3 | 1<<4
)

func lsoInfo(mss uint32) uint32 { return mss | 34<<20 | 1<<30 }

// TestScriptedGuestTalksToPeer is the whole path: a raw-packet guest
// negotiates NVSP 6.1 and RNDIS, then exchanges ARP, UDP and TCP (with
// checksum offload and LSOv2) with the gVisor peer.
func TestScriptedGuestTalksToPeer(t *testing.T) {
	peer := newPeer(t)
	n := newNIC(t, Config{Backend: peer})
	n.ready()

	// The MAC, from OID_802_3_PERMANENT_ADDRESS.
	if st, mac := n.query(0x01010101); st != 0 || !bytes.Equal(mac, guestMAC[:]) {
		t.Fatalf("permanent address: status %#x, % x", st, mac)
	}

	// ARP over GPA-direct pages: the peer answers.
	if r := n.completion(n.sendRNDISDirect(n.c, guestPacket(arpRequest()))); get32(r, 4) != 1 {
		t.Fatalf("ARP send completion % x", r)
	}
	frames, _ := n.frames(n.c)
	arp := header.ARP(frames[0][header.EthernetMinimumSize:])
	if !bytes.Equal(frames[0][:6], guestMAC[:]) || arp.Op() != header.ARPReply ||
		!bytes.Equal(arp.ProtocolAddressSender(), peerIP.AsSlice()) || !bytes.Equal(arp.HardwareAddressSender(), peerMAC[:]) {
		t.Fatalf("ARP reply % x", frames[0])
	}

	// UDP with a checksum request: gVisor drops datagrams whose
	// checksums are wrong, so arrival proves the host computed them.
	uc, err := peer.ListenUDP(7000)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	udp := header.UDP(make([]byte, header.UDPMinimumSize+5))
	udp.Encode(&header.UDPFields{SrcPort: 5555, DstPort: 7000, Length: uint16(len(udp)), Checksum: 0xdead})
	copy(udp[header.UDPMinimumSize:], "hello")
	n.transmit(n.c, guestPacket(ipv4Frame(uint8(header.UDPProtocolNumber), udp, false), ppi{0, csumReqUDP4}))
	uc.SetReadDeadline(time.Now().Add(testWait))
	buf := make([]byte, 64)
	k, from, err := uc.ReadFrom(buf)
	if err != nil || string(buf[:k]) != "hello" || from.(*net.UDPAddr).Port != 5555 {
		t.Fatalf("peer UDP read %q from %v: %v", buf[:k], from, err)
	}

	// TCP: handshake by hand, then one LSO send of 5000 bytes.
	got := acceptRead(t, peer, 8080, 5000)
	const iss = 1000
	n.transmit(n.c, guestPacket(ipv4Frame(6, tcpSegment(40000, 8080, iss, 0, header.TCPFlagSyn, nil), false), ppi{0, csumReqTCP4}))
	frames, csum := n.frames(n.c)
	synack := header.TCP(frames[0][34:])
	if synack.Flags() != header.TCPFlagSyn|header.TCPFlagAck || synack.AckNumber() != iss+1 {
		t.Fatalf("SYN-ACK % x", frames[0])
	}
	if csum[0] != RxCsumIPOK|RxCsumTCPOK {
		t.Fatalf("SYN-ACK checksum info %#x, want IP ok | TCP ok", csum[0])
	}
	peerSeq := synack.SequenceNumber() + 1
	n.transmit(n.c, guestPacket(ipv4Frame(6, tcpSegment(40000, 8080, iss+1, peerSeq, header.TCPFlagAck, nil), false), ppi{0, csumReqTCP4}))
	data := make([]byte, 5000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	lso := ipv4Frame(6, tcpSegment(40000, 8080, iss+1, peerSeq, header.TCPFlagAck|header.TCPFlagPsh, data), true)
	n.transmit(n.c, guestPacket(lso, ppi{2, lsoInfo(1460)}))
	select {
	case b := <-got:
		if !bytes.Equal(b, data) {
			t.Fatal("peer read different bytes")
		}
	case <-time.After(testWait):
		t.Fatalf("peer got nothing; stats %+v", n.dev.Stats())
	}
	st := n.dev.Stats()
	if st.TxLSO != 1 || st.TxFrames < 4+4 {
		t.Fatalf("stats %+v: want 1 LSO send cut into 4 frames", st)
	}
	if d := n.dev.Dump(); !strings.Contains(d, "NVSP 0x60001 NDIS 6.30 MTU 1514 rndis=true filter 0xd") {
		t.Errorf("Dump:\n%s", d)
	}
	noViolations(t, n.g.h)
}

// TestPeerDialsGuestTCP checks the receive direction under load: the
// peer connects to the guest and sends, the scripted guest answers the
// handshake and acknowledges, completing every receive packet.
func TestPeerDialsGuestTCP(t *testing.T) {
	t.Run("no offload", func(t *testing.T) { peerDialsGuestTCP(t, newPeer(t)) })
	// An offloading peer's stack sends large segments and leaves
	// checksums to its link: the peer cuts and completes them.
	t.Run("offload", func(t *testing.T) { peerDialsGuestTCP(t, newOffloadPeer(t)) })
}

func peerDialsGuestTCP(t *testing.T, peer *Peer) {
	n := newNIC(t, Config{Backend: peer})
	n.ready()
	// Teach the peer our MAC with an ARP request of our own.
	n.transmit(n.c, guestPacket(arpRequest()))
	n.frames(n.c) // the reply
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	conns := make(chan net.Conn, 1)
	go func() {
		c, err := peer.DialTCP(ctx, netip.AddrPortFrom(guestIP, 80))
		if err != nil {
			conns <- nil
			return
		}
		conns <- c
	}()
	frames, _ := n.frames(n.c)
	syn := header.TCP(frames[0][34:])
	if syn.Flags() != header.TCPFlagSyn || syn.DestinationPort() != 80 {
		t.Fatalf("SYN % x", frames[0])
	}
	const iss = 77
	n.transmit(n.c, guestPacket(ipv4Frame(6, tcpSegment(80, syn.SourcePort(), iss, syn.SequenceNumber()+1,
		header.TCPFlagSyn|header.TCPFlagAck, nil), false), ppi{0, csumReqTCP4}))
	c := <-conns
	if c == nil {
		t.Fatal("peer dial failed")
	}
	defer c.Close()
	payload := bytes.Repeat([]byte("0123456789"), 1000)
	go c.Write(payload)
	var recv []byte
	for len(recv) < len(payload) {
		frames, csum := n.frames(n.c)
		for i, f := range frames {
			if len(f) > 1514 || csum[i] != RxCsumIPOK|RxCsumTCPOK {
				t.Fatalf("frame of %d bytes, checksum info %#x", len(f), csum[i])
			}
			seg := header.TCP(f[34:])
			ip := header.IPv4(f[14:])
			body := seg[seg.DataOffset() : ip.TotalLength()-uint16(ip.HeaderLength())]
			recv = append(recv, body...)
			ack := seg.SequenceNumber() + uint32(len(body))
			n.transmit(n.c, guestPacket(ipv4Frame(6, tcpSegment(80, syn.SourcePort(), iss+1, ack, header.TCPFlagAck, nil), false), ppi{0, csumReqTCP4}))
		}
	}
	if !bytes.Equal(recv, payload) {
		t.Fatal("guest received different bytes")
	}
	noViolations(t, n.g.h)
}

// acceptRead listens on the peer's port, accepts one connection and sends
// its first size bytes on the returned channel (nil on any failure, or
// when nothing arrives within testWait). The listener closes with the test.
func acceptRead(t *testing.T, peer *Peer, port uint16, size int) <-chan []byte {
	t.Helper()
	ln, err := peer.ListenTCP(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(testWait))
		b := make([]byte, size)
		if _, err := io.ReadFull(c, b); err != nil {
			got <- nil
			return
		}
		got <- b
	}()
	return got
}
