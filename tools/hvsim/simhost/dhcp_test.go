package simhost

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

type sink struct{ frames [][]byte }

func (s *sink) Send(f []byte)                  { s.frames = append(s.frames, append([]byte(nil), f...)) }
func (s *sink) SetReceiver(func(frame []byte)) {}
func (s *sink) last() []byte                   { return s.frames[len(s.frames)-1] }

// discover builds a client's DHCP message of type typ as a broadcast frame,
// by the offsets of RFC 2131 §2, independently of the server's encoder.
func discover(typ byte, opts ...byte) []byte {
	msg := make([]byte, 240)
	msg[0], msg[1], msg[2] = 1, 1, 6
	copy(msg[4:], []byte{0xde, 0xad, 0xbe, 0xef})  // xid
	copy(msg[28:], []byte{0, 0x15, 0x5d, 1, 2, 3}) // chaddr
	copy(msg[236:], []byte{99, 130, 83, 99})
	msg = append(msg, 53, 1, typ)
	msg = append(msg, opts...)
	msg = append(msg, 255)
	f := make([]byte, 14+20+8+len(msg))
	copy(f, []byte{255, 255, 255, 255, 255, 255, 0, 0x15, 0x5d, 1, 2, 3, 8, 0})
	ip := f[14:]
	ip[0], ip[9] = 0x45, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	copy(ip[16:], []byte{255, 255, 255, 255})
	udp := ip[20:]
	binary.BigEndian.PutUint16(udp[0:], 68)
	binary.BigEndian.PutUint16(udp[2:], 67)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(msg)))
	copy(udp[8:], msg)
	return f
}

func TestDHCPServer(t *testing.T) {
	var got sink
	next := &sink{}
	s := &dhcpServer{next: next, serverMAC: peerMAC, server: netip.MustParseAddr("192.168.200.1"),
		client: netip.MustParseAddr("192.168.200.10"), prefix: 24, leaseSecs: 3600, deliver: got.Send}

	s.Send(discover(1))
	if len(got.frames) != 1 || len(next.frames) != 0 {
		t.Fatalf("DISCOVER: %d replies, %d frames passed on", len(got.frames), len(next.frames))
	}
	f := got.last()
	msg := f[14+20+8:]
	for _, c := range []struct {
		name string
		at   int
		want []byte
		from []byte
	}{
		{"destination MAC", 0, []byte{255, 255, 255, 255, 255, 255}, f},
		{"source MAC", 6, peerMAC[:], f},
		{"UDP ports 67 -> 68", 34, []byte{0, 67, 0, 68}, f},
		{"op BOOTREPLY", 0, []byte{2}, msg},
		{"xid", 4, []byte{0xde, 0xad, 0xbe, 0xef}, msg},
		{"yiaddr", 16, []byte{192, 168, 200, 10}, msg},
		{"chaddr", 28, []byte{0, 0x15, 0x5d, 1, 2, 3}, msg},
		{"magic cookie", 236, []byte{99, 130, 83, 99}, msg},
		{"message type OFFER", 240, []byte{53, 1, 2}, msg},
		{"server id", 243, []byte{54, 4, 192, 168, 200, 1}, msg},
		{"lease 3600 s", 249, []byte{51, 4, 0, 0, 0x0e, 0x10}, msg},
		{"mask /24", 255, []byte{1, 4, 255, 255, 255, 0}, msg},
	} {
		if got := c.from[c.at : c.at+len(c.want)]; string(got) != string(c.want) {
			t.Errorf("%s at %d: % x, want % x", c.name, c.at, got, c.want)
		}
	}
	// The IPv4 header checksum and the UDP checksum verify.
	if onesSum(0, f[14:34]) != 0xffff {
		t.Error("IPv4 header checksum does not verify")
	}
	udp := f[34:]
	sum := onesSum(0, f[26:34])
	sum = onesSum(sum, []byte{0, 17})
	sum = onesSum(sum, udp[4:6])
	if onesSum(sum, udp) != 0xffff {
		t.Error("UDP checksum does not verify")
	}

	// REQUEST for the offered address: ACK; for another address: silence.
	s.Send(discover(3, 50, 4, 192, 168, 200, 10, 54, 4, 192, 168, 200, 1))
	if len(got.frames) != 2 || got.last()[14+20+8+242] != 5 {
		t.Fatalf("REQUEST: %d replies, want an ACK", len(got.frames))
	}
	s.Send(discover(3, 50, 4, 192, 168, 200, 99))
	if len(got.frames) != 2 {
		t.Error("answered a REQUEST for an address it does not give")
	}
	// Anything else goes on to the peer.
	other := discover(1)
	other[14+20+3] = 53 // UDP to port 53
	s.Send(other)
	if len(next.frames) != 1 {
		t.Error("a non-DHCP frame was not passed on")
	}
	if offers, acks := s.offers, s.acks; offers != 1 || acks != 1 {
		t.Errorf("counted %d offers, %d acks", offers, acks)
	}
}

func FuzzDHCPServer(f *testing.F) {
	f.Add(discover(1))
	f.Add(discover(3, 50, 4, 192, 168, 200, 10))
	f.Fuzz(func(t *testing.T, frame []byte) {
		s := &dhcpServer{next: &sink{}, serverMAC: peerMAC, server: netip.MustParseAddr("10.0.0.1"),
			client: netip.MustParseAddr("10.0.0.2"), prefix: 24, deliver: func([]byte) {}}
		s.Send(frame)
	})
}
