package netvsp

import (
	"bytes"
	"encoding/hex"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Checksums are verified with gVisor's header and checksum packages, an
// implementation independent of frame.go.

func validTCP4(t *testing.T, f []byte) header.TCP {
	t.Helper()
	ip := header.IPv4(f[14:])
	if !ip.IsChecksumValid() {
		t.Fatalf("IPv4 header checksum wrong: % x", f[14:34])
	}
	tcp := header.TCP(ip.Payload())
	plen := uint16(len(tcp))
	if !tcp.IsChecksumValid(ip.SourceAddress(), ip.DestinationAddress(), checksum.Checksum(tcp.Payload(), 0), plen-uint16(tcp.DataOffset())) {
		t.Fatalf("TCP checksum wrong")
	}
	return tcp
}

func TestTxChecksum(t *testing.T) {
	f := ipv4Frame(6, tcpSegment(1, 2, 3, 4, header.TCPFlagAck, []byte("payload!")), false)
	if err := txChecksum(f, csumReqTCP4); err != nil {
		t.Fatal(err)
	}
	validTCP4(t, f)

	u := header.UDP(make([]byte, 8+3))
	u.Encode(&header.UDPFields{SrcPort: 9, DstPort: 10, Length: 11, Checksum: 0x1234})
	f = ipv4Frame(17, u, false)
	if err := txChecksum(f, csumReqUDP4); err != nil {
		t.Fatal(err)
	}
	ip := header.IPv4(f[14:])
	udp := header.UDP(ip.Payload())
	if !ip.IsChecksumValid() || !udp.IsChecksumValid(ip.SourceAddress(), ip.DestinationAddress(), checksum.Checksum(udp.Payload(), 0)) {
		t.Fatal("UDP/IPv4 checksums wrong")
	}

	// IPv6/TCP.
	tcp := tcpSegment(5, 6, 7, 8, header.TCPFlagAck, []byte("v6 data"))
	ip6 := header.IPv6(make([]byte, 40+len(tcp)))
	src, dst := tcpip.AddrFrom16([16]byte{0xfe, 0x80, 15: 1}), tcpip.AddrFrom16([16]byte{0xfe, 0x80, 15: 2})
	ip6.Encode(&header.IPv6Fields{PayloadLength: uint16(len(tcp)), TransportProtocol: 6, HopLimit: 64, SrcAddr: src, DstAddr: dst})
	copy(ip6[40:], tcp)
	f = ethFrame(peerMAC, guestMAC, header.IPv6ProtocolNumber, ip6)
	if err := txChecksum(f, 1<<1|1<<2|54<<16); err != nil {
		t.Fatal(err)
	}
	seg := header.TCP(f[54:])
	if !seg.IsChecksumValid(src, dst, checksum.Checksum(seg.Payload(), 0), uint16(len(seg.Payload()))) {
		t.Fatal("TCP/IPv6 checksum wrong")
	}

	for name, c := range map[string]struct {
		f    []byte
		info uint32
	}{
		"TCP request on UDP":     {ipv4Frame(17, u, false), csumReqTCP4},
		"IPv6 bit on IPv4":       {ipv4Frame(6, tcpSegment(1, 2, 3, 4, 0, nil), false), 1<<1 | 1<<2},
		"wrong TCP offset":       {ipv4Frame(6, tcpSegment(1, 2, 3, 4, 0, nil), false), 1 | 1<<2 | 40<<16},
		"ARP with a TCP request": {arpRequest(), csumReqTCP4},
	} {
		if err := txChecksum(c.f, c.info); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestRxChecksum(t *testing.T) {
	f := ipv4Frame(6, tcpSegment(1, 2, 3, 4, header.TCPFlagAck, []byte("x")), false)
	txChecksum(f, csumReqTCP4)
	o := allOffloads
	if got := rxChecksum(f, &o); got != RxCsumIPOK|RxCsumTCPOK {
		t.Fatalf("good frame: %#x", got)
	}
	f[len(f)-1] ^= 1
	if got := rxChecksum(f, &o); got != RxCsumIPOK|RxCsumTCPFailed {
		t.Fatalf("corrupt payload: %#x", got)
	}
	f[14+8] ^= 1 // TTL
	if got := rxChecksum(f, &o); got != RxCsumIPFailed|RxCsumTCPFailed {
		t.Fatalf("corrupt header: %#x", got)
	}
	o.RxTCP4, o.RxIPv4 = false, false
	if got := rxChecksum(f, &o); got != 0 {
		t.Fatalf("offload off: %#x", got)
	}
}

func TestSegmentLSO(t *testing.T) {
	data := make([]byte, 3000)
	for i := range data {
		data[i] = byte(i)
	}
	f := ipv4Frame(6, tcpSegment(40000, 80, 1000, 55, header.TCPFlagAck|header.TCPFlagPsh|header.TCPFlagFin|header.TCPFlagCwr, data), true)
	var segs [][]byte
	n, err := segmentLSO(f, lsoInfo(1400), 1514, make([]byte, 1514), func(s []byte) { segs = append(segs, bytes.Clone(s)) })
	if err != nil || n != 3 || len(segs) != 3 {
		t.Fatalf("%d segments, %v", n, err)
	}
	var got []byte
	for i, s := range segs {
		tcp := validTCP4(t, s)
		ip := header.IPv4(s[14:])
		if int(ip.TotalLength()) != len(s)-14 || ip.ID() != uint16(7+i) {
			t.Errorf("segment %d: total length %d of %d, id %d", i, ip.TotalLength(), len(s)-14, ip.ID())
		}
		if tcp.SequenceNumber() != 1000+uint32(len(got)) || tcp.AckNumber() != 55 {
			t.Errorf("segment %d: seq %d ack %d", i, tcp.SequenceNumber(), tcp.AckNumber())
		}
		last := i == 2
		if (tcp.Flags()&header.TCPFlagFin != 0) != last || (tcp.Flags()&header.TCPFlagPsh != 0) != last ||
			(tcp.Flags()&header.TCPFlagCwr != 0) != (i == 0) {
			t.Errorf("segment %d flags %v", i, tcp.Flags())
		}
		got = append(got, tcp.Payload()...)
	}
	if !bytes.Equal(got, data) || len(segs[0]) != 14+20+20+1400 || len(segs[2]) != 14+40+200 {
		t.Fatal("segments do not reassemble to the data")
	}
	if _, err := segmentLSO(f, lsoInfo(1500), 1514, make([]byte, 1600), func([]byte) {}); err == nil {
		t.Error("MSS beyond the MTU accepted")
	}
	if _, err := segmentLSO(f, 1400|20<<20|1<<30, 1514, make([]byte, 1514), func([]byte) {}); err == nil {
		t.Error("wrong TCP offset accepted")
	}
}

// The Toeplitz verification vector of Microsoft's RSS documentation
// ("Verifying the RSS Hash Calculation"): 66.9.149.187:2794 →
// 161.142.100.80:1766.
func TestToeplitz(t *testing.T) {
	var key [40]byte
	k, _ := hex.DecodeString("6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa")
	copy(key[:], k)
	in := []byte{66, 9, 149, 187, 161, 142, 100, 80}
	if h := toeplitz(&key, in); h != 0x323e8fc2 {
		t.Errorf("IPv4 only: %#x, want 0x323e8fc2", h)
	}
	in = append(in, 2794>>8, 2794&0xff, 1766>>8, 1766&0xff)
	if h := toeplitz(&key, in); h != 0x51ccc178 {
		t.Errorf("IPv4/TCP: %#x, want 0x51ccc178", h)
	}
}

func TestRecvBufferAccounting(t *testing.T) {
	r := newAccounting(40, 100)
	slot, got := r.alloc(30, false, 0)
	if got != 24 { // 40 minus the 16 kept for control
		t.Fatalf("got %d data sub-allocations", got)
	}
	if _, g := r.alloc(1, false, 0); g != 0 {
		t.Fatal("data allocation past the data part")
	}
	c, g := r.alloc(1, true, 0)
	if g != 1 || r.sub(c, 0) >= ctrlReserve {
		t.Fatalf("control allocation %d", g)
	}
	id := r.txid(slot)
	if s, ok := r.lookup(id); !ok || s != slot {
		t.Fatal("lookup of a live id failed")
	}
	if _, ok := r.lookup(id + 1<<32); ok {
		t.Fatal("stale generation accepted")
	}
	r.release(slot)
	if _, ok := r.lookup(id); ok {
		t.Fatal("completed id accepted twice")
	}
	if _, g := r.alloc(24, false, 1); g != 24 {
		t.Fatal("freed sub-allocations not reusable")
	}
	r.releaseQueue(1)
	if r.outstanding() != 1 {
		t.Fatalf("%d outstanding, want the control batch", r.outstanding())
	}
}

func TestSegmentLSOIPv6(t *testing.T) {
	data := make([]byte, 2500)
	for i := range data {
		data[i] = byte(i * 3)
	}
	tcp := tcpSegment(40000, 80, 5000, 1, header.TCPFlagAck|header.TCPFlagPsh, data)
	ip6 := header.IPv6(make([]byte, 40+len(tcp)))
	src, dst := tcpip.AddrFrom16([16]byte{0xfe, 0x80, 15: 1}), tcpip.AddrFrom16([16]byte{0xfe, 0x80, 15: 2})
	ip6.Encode(&header.IPv6Fields{PayloadLength: 0, TransportProtocol: 6, HopLimit: 64, SrcAddr: src, DstAddr: dst})
	copy(ip6[40:], tcp)
	f := ethFrame(peerMAC, guestMAC, header.IPv6ProtocolNumber, ip6)
	var got []byte
	segs := 0
	_, err := segmentLSO(f, 1200|54<<20|1<<30|1<<31, 1514, make([]byte, 1514), func(s []byte) {
		ip := header.IPv6(s[14:])
		seg := header.TCP(ip.Payload())
		if int(ip.PayloadLength()) != len(s)-54 || seg.SequenceNumber() != 5000+uint32(len(got)) {
			t.Errorf("segment %d: payload length %d, seq %d", segs, ip.PayloadLength(), seg.SequenceNumber())
		}
		if !seg.IsChecksumValid(src, dst, checksum.Checksum(seg.Payload(), 0), uint16(len(seg.Payload()))) {
			t.Errorf("segment %d: TCP checksum wrong", segs)
		}
		got = append(got, seg.Payload()...)
		segs++
	})
	if err != nil || segs != 3 || !bytes.Equal(got, data) {
		t.Fatalf("%d segments, %v", segs, err)
	}
}
