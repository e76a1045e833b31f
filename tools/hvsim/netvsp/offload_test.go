package netvsp

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// recBackend records what a Device hands an OffloadBackend.
type recBackend struct {
	takes           bool
	sent, offloaded [][]byte
}

func (b *recBackend) Send(f []byte)              { b.sent = append(b.sent, bytes.Clone(f)) }
func (b *recBackend) SendOffloaded(f []byte)     { b.offloaded = append(b.offloaded, bytes.Clone(f)) }
func (b *recBackend) SetReceiver(func(f []byte)) {}
func (b *recBackend) TakesOffloaded() bool       { return b.takes }

// partialSum is what an LSOv2 sender puts in the TCP checksum field: the
// pseudo-header sum with a zero length, by gVisor's header package.
func partialSum(f []byte) uint16 {
	ip := header.IPv4(f[14:])
	return header.PseudoHeaderChecksum(header.TCPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), 0)
}

func lsoFrame(payload int, partial bool) []byte {
	data := make([]byte, payload)
	for i := range data {
		data[i] = byte(i * 3)
	}
	f := ipv4Frame(6, tcpSegment(40000, 80, 1000, 55, header.TCPFlagAck|header.TCPFlagPsh, data), true)
	if partial {
		header.TCP(f[34:]).SetChecksum(partialSum(f))
	}
	return f
}

func TestWholeLSO(t *testing.T) {
	f := lsoFrame(3000, true)
	want := bytes.Clone(f)
	ok, err := wholeLSO(f, lsoInfo(1460), 1514)
	if err != nil || !ok {
		t.Fatalf("wholeLSO: partial sum accepted %v, %v", ok, err)
	}
	ip := header.IPv4(f[14:])
	// IPv4 total length @2 = 20 + 20 + 3000 (RFC 791).
	if f[14+2] != 0x0b || f[14+3] != 0xe0 || !ip.IsChecksumValid() {
		t.Fatalf("IPv4 header % x: want total length 0x0be0 and a valid checksum", f[14:34])
	}
	// Nothing else changes: not the TCP header, not a payload byte.
	if !bytes.Equal(f[34:], want[34:]) || !bytes.Equal(f[:16], want[:16]) || !bytes.Equal(f[18:24], want[18:24]) {
		t.Fatal("wholeLSO changed more than the IPv4 length and checksum")
	}

	bad := lsoFrame(3000, false) // checksum field 0x0bad: not a partial sum
	if ok, err := wholeLSO(bad, lsoInfo(1460), 1514); err != nil || ok {
		t.Fatalf("0x0bad taken for the partial sum: %v, %v", ok, err)
	}

	// IPv6: payload length @4 = 20 + 3000 (RFC 8200).
	tcp := tcpSegment(1, 2, 3, 4, header.TCPFlagAck, make([]byte, 3000))
	ip6 := header.IPv6(make([]byte, 40+len(tcp)))
	src, dst := tcpip.AddrFrom16([16]byte{0xfe, 0x80, 15: 1}), tcpip.AddrFrom16([16]byte{0xfe, 0x80, 15: 2})
	ip6.Encode(&header.IPv6Fields{TransportProtocol: 6, HopLimit: 64, SrcAddr: src, DstAddr: dst})
	copy(ip6[40:], tcp)
	f6 := ethFrame(peerMAC, guestMAC, header.IPv6ProtocolNumber, ip6)
	header.TCP(f6[54:]).SetChecksum(header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, 0))
	if ok, err := wholeLSO(f6, 1440|54<<20|1<<30|1<<31, 1514); err != nil || !ok {
		t.Fatalf("IPv6: %v, %v", ok, err)
	}
	if f6[14+4] != 0x0b || f6[14+5] != 0xcc {
		t.Fatalf("IPv6 payload length % x, want 0b cc", f6[18:20])
	}

	for name, c := range map[string]struct {
		f    []byte
		info uint32
	}{
		"MSS beyond the MTU": {lsoFrame(3000, true), lsoInfo(1500)},
		"wrong TCP offset":   {lsoFrame(3000, true), 1400 | 20<<20 | 1<<30},
		"IPv6 bit on IPv4":   {lsoFrame(3000, true), lsoInfo(1400) | 1<<31},
		"over the LSO size":  {lsoFrame(lsoMaxOffld+1, true), lsoInfo(1460)},
		"not TCP":            {ipv4Frame(17, make([]byte, 100), true), lsoInfo(1460)},
	} {
		if _, err := wholeLSO(c.f, c.info, 1514); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestTransmitToOffloadBackend: a backend that takes offloaded frames gets
// LSO sends whole and checksum-offloaded frames vouched for; frames the
// host did nothing to go through Send; a backend that declines gets
// segments as before.
func TestTransmitToOffloadBackend(t *testing.T) {
	be := &recBackend{takes: true}
	q := testQueue(t, be)
	if err := q.transmit(guestPacket(lsoFrame(20000, true), ppi{2, lsoInfo(1460)})); err != nil {
		t.Fatal(err)
	}
	if err := q.transmit(guestPacket(lsoFrame(20000, false), ppi{2, lsoInfo(1460)})); err != nil {
		t.Fatal(err)
	}
	if err := q.transmit(guestPacket(ipv4Frame(6, tcpSegment(1, 2, 3, 4, header.TCPFlagAck, []byte("x")), false), ppi{0, csumReqTCP4})); err != nil {
		t.Fatal(err)
	}
	if err := q.transmit(guestPacket(arpRequest())); err != nil {
		t.Fatal(err)
	}
	// TCP checksum asked for, the IPv4 header's left to the guest, who
	// got it wrong (ipv4Frame leaves it zero): not vouched for.
	if err := q.transmit(guestPacket(ipv4Frame(6, tcpSegment(1, 2, 3, 4, header.TCPFlagAck, []byte("y")), false), ppi{0, 1<<0 | 1<<2 | 34<<16})); err != nil {
		t.Fatal(err)
	}
	if len(be.offloaded) != 2 || len(be.sent) != 3 {
		t.Fatalf("%d offloaded, %d sent; want 2 and 3", len(be.offloaded), len(be.sent))
	}
	if len(be.offloaded[0]) != 14+40+20000 || header.IPv4(be.offloaded[0][14:]).TotalLength() != 40+20000 {
		t.Fatalf("LSO send of %d bytes, IP length %d: want it whole", len(be.offloaded[0]), header.IPv4(be.offloaded[0][14:]).TotalLength())
	}
	validTCP4(t, be.offloaded[1]) // the host computed what the guest asked
	if len(be.sent[0]) != 14+40+20000 || !bytes.Equal(be.sent[1], arpRequest()) {
		t.Fatal("the LSO send without the partial sum and the ARP request should go through Send unchanged in size")
	}
	if st := q.d.Stats(); st.TxLSOWhole != 2 || st.TxLSO != 0 {
		t.Fatalf("stats %+v: want 2 whole LSO sends", st)
	}

	no := &recBackend{}
	q = testQueue(t, no)
	if err := q.transmit(guestPacket(lsoFrame(20000, true), ppi{2, lsoInfo(1460)})); err != nil {
		t.Fatal(err)
	}
	if len(no.offloaded) != 0 || len(no.sent) != 14 { // ceil(20000/1460)
		t.Fatalf("declining backend: %d offloaded, %d sent; want 0 and 14", len(no.offloaded), len(no.sent))
	}
}

func newOffloadPeer(t testing.TB) *Peer {
	t.Helper()
	p, err := NewPeer(PeerConfig{MAC: peerMAC, Addr: netip.PrefixFrom(peerIP, 24), Offload: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestOffloadPeerVerifiesWhatTheHostDoesNot: an offloading peer's link
// tells gVisor checksums were verified, so the peer checks every frame
// that comes through Send: a bad one is dropped and counted, a good one
// answered.
func TestOffloadPeerVerifiesWhatTheHostDoesNot(t *testing.T) {
	p := newOffloadPeer(t)
	ln, err := p.ListenTCP(80)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	answers := make(chan []byte, 4)
	p.SetReceiver(func(f []byte) { answers <- bytes.Clone(f) })
	syn := ipv4Frame(6, tcpSegment(40000, 80, 1000, 0, header.TCPFlagSyn, nil), false)
	header.IPv4(syn[14:]).SetChecksum(^header.IPv4(syn[14:]).CalculateChecksum())
	p.Send(syn) // TCP checksum 0x0bad
	if p.BadChecksums() != 1 {
		t.Fatalf("bad checksums %d, want 1", p.BadChecksums())
	}
	if err := txChecksum(syn, csumReqTCP4); err != nil {
		t.Fatal(err)
	}
	p.Send(syn)
	if p.BadChecksums() != 1 {
		t.Fatal("a good frame counted as bad")
	}
	// The SYN-ACK comes after an ARP exchange; wait for any TCP answer.
	for {
		select {
		case f := <-answers:
			if be.Uint16(f[12:]) == etherTypeIPv4 && f[14+9] == protoTCP {
				validTCP4(t, f) // the peer completed the checksum its stack left
				return
			}
			if be.Uint16(f[12:]) == 0x0806 { // ARP request: answer it
				a := header.ARP(f[14:])
				r := header.ARP(make([]byte, header.ARPSize))
				r.SetIPv4OverEthernet()
				r.SetOp(header.ARPReply)
				copy(r.HardwareAddressSender(), guestMAC[:])
				copy(r.ProtocolAddressSender(), a.ProtocolAddressTarget())
				copy(r.HardwareAddressTarget(), a.HardwareAddressSender())
				copy(r.ProtocolAddressTarget(), a.ProtocolAddressSender())
				p.Send(ethFrame(peerMAC, guestMAC, header.ARPProtocolNumber, r))
			}
		case <-time.After(testWait):
			t.Fatal("no SYN-ACK")
		}
	}
}

// TestJoinPeers: two peers joined directly (their gVisor buffers moved
// across) carry a bulk transfer intact, with and without offloads.
func TestJoinPeers(t *testing.T) {
	for _, offload := range []bool{false, true} {
		a, err := NewPeer(PeerConfig{MAC: [6]byte{2, 0, 0, 0, 0, 0xa}, Addr: netip.MustParsePrefix("10.9.0.1/24"), Offload: offload})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		z, err := NewPeer(PeerConfig{MAC: [6]byte{2, 0, 0, 0, 0, 0xb}, Addr: netip.MustParsePrefix("10.9.0.2/24"), Offload: !offload})
		if err != nil {
			t.Fatal(err)
		}
		defer z.Close()
		if JoinPeers(a, z) == nil {
			t.Fatal("peers with different offloads joined")
		}
		z.Close()
		z, err = NewPeer(PeerConfig{MAC: [6]byte{2, 0, 0, 0, 0, 0xb}, Addr: netip.MustParsePrefix("10.9.0.2/24"), Offload: offload})
		if err != nil {
			t.Fatal(err)
		}
		defer z.Close()
		if err := JoinPeers(a, z); err != nil {
			t.Fatal(err)
		}
		data := bytes.Repeat([]byte("joined "), 200000)
		if b := transfer(t, a, z, data); !bytes.Equal(b, data) {
			t.Fatalf("offload %v: read %d bytes, want the %d written", offload, len(b), len(data))
		}
		if in, _ := z.Frames(); in == 0 {
			t.Fatalf("offload %v: no frame counted into the joined peer", offload)
		}
	}
}

// transfer sends data over TCP from peer a to z's port 5001 (z being
// 10.9.0.2) and returns what z read.
func transfer(t *testing.T, a, z *Peer, data []byte) []byte {
	t.Helper()
	ln, err := z.ListenTCP(5001)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	c, err := a.DialTCP(ctx, netip.MustParseAddrPort("10.9.0.2:5001"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	c.Close()
	return <-got
}

// TestOffloadPeerPairBulk joins two offloading peers directly: large
// segments cross whole, and the bytes arrive intact.
func TestOffloadPeerPairBulk(t *testing.T) {
	a, err := NewPeer(PeerConfig{MAC: [6]byte{2, 0, 0, 0, 0, 0xa}, Addr: netip.MustParsePrefix("10.9.0.1/24"), Offload: true, GSOMaxSize: 0xFFFF})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	z, err := NewPeer(PeerConfig{MAC: [6]byte{2, 0, 0, 0, 0, 0xb}, Addr: netip.MustParsePrefix("10.9.0.2/24"), Offload: true})
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	var large int
	a.SetOffloadedReceiver(func(f []byte) {
		if len(f) > 1514 {
			large++ // a's pump goroutine only
		}
		z.SendOffloaded(f)
	})
	z.SetOffloadedReceiver(a.SendOffloaded)
	data := bytes.Repeat([]byte("gohv-offload "), 100000)
	if b := transfer(t, a, z, data); !bytes.Equal(b, data) {
		t.Fatalf("read %d bytes, want the %d written", len(b), len(data))
	}
	a.Close() // stops a's pump before large is read
	if large == 0 {
		t.Fatal("no frame over the MTU crossed: GSO not in use")
	}
}

// TestLentLSOReachesPeerWhole: a GPA-direct LSO send to an offloading
// peer is read into memory the peer lent and enters its stack whole; the
// bytes the peer's TCP reads are the guest's. A send whose TCP checksum
// field is not the LSOv2 partial sum is not vouched for: it goes through
// Send, where the peer verifies and drops it.
func TestLentLSOReachesPeerWhole(t *testing.T) {
	peer := newOffloadPeer(t)
	n := newNIC(t, Config{Backend: peer})
	n.ready()
	const size = 20000
	got := acceptRead(t, peer, 8080, size)
	// Teach the peer our MAC with an ARP request of our own.
	n.transmit(n.c, guestPacket(arpRequest()))
	n.frames(n.c) // the reply
	const iss = 5000
	n.transmit(n.c, guestPacket(ipv4Frame(6, tcpSegment(40000, 8080, iss, 0, header.TCPFlagSyn, nil), false), ppi{0, csumReqTCP4}))
	frames, _ := n.frames(n.c)
	synack := header.TCP(frames[0][34:])
	if synack.Flags() != header.TCPFlagSyn|header.TCPFlagAck {
		t.Fatalf("SYN-ACK % x", frames[0])
	}
	peerSeq := synack.SequenceNumber() + 1
	n.transmit(n.c, guestPacket(ipv4Frame(6, tcpSegment(40000, 8080, iss+1, peerSeq, header.TCPFlagAck, nil), false), ppi{0, csumReqTCP4}))

	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*5 + 1)
	}
	bad := ipv4Frame(6, tcpSegment(40000, 8080, iss+1, peerSeq, header.TCPFlagAck, data), true) // checksum field 0x0bad
	if r := n.completion(n.sendRNDISDirect(n.c, guestPacket(bad, ppi{2, lsoInfo(1460)}))); get32(r, 4) != 1 {
		t.Fatalf("send completion % x", r)
	}
	if peer.BadChecksums() != 1 {
		t.Fatalf("bad checksums %d: the send without the partial sum should have been verified and dropped", peer.BadChecksums())
	}
	f := ipv4Frame(6, tcpSegment(40000, 8080, iss+1, peerSeq, header.TCPFlagAck|header.TCPFlagPsh, data), true)
	header.TCP(f[34:]).SetChecksum(partialSum(f))
	if r := n.completion(n.sendRNDISDirect(n.c, guestPacket(f, ppi{2, lsoInfo(1460)}))); get32(r, 4) != 1 {
		t.Fatalf("send completion % x", r)
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, data) {
			t.Fatal("peer read different bytes")
		}
	case <-time.After(testWait):
		t.Fatalf("peer got nothing; stats %+v", n.dev.Stats())
	}
	if st := n.dev.Stats(); st.TxLSOWhole != 2 || st.TxLent != 1 || st.TxLSO != 0 {
		t.Fatalf("stats %+v: want 2 whole LSO sends, 1 in lent memory", st)
	}
	noViolations(t, n.g.h)
}
