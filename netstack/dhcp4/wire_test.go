package dhcp4

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

var testMAC = [6]byte{0x00, 0x15, 0x5d, 0x01, 0x02, 0x03}

// TestAppendDiscover checks an encoded DISCOVER byte for byte against a
// message written by hand from RFC 2131 §2 and RFC 2132.
func TestAppendDiscover(t *testing.T) {
	m := Message{Type: Discover, XID: 0x11223344, Flags: flagBroadcast, CHAddr: testMAC, Hostname: "vm", ParamList: []byte{1, 3}}
	got, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 240)
	want[0], want[1], want[2], want[3] = 1, 1, 6, 0 // op BOOTREQUEST, htype Ethernet, hlen 6, hops
	copy(want[4:], []byte{0x11, 0x22, 0x33, 0x44})  // xid
	// secs 8..9 zero; flags 10..11
	want[10] = 0x80
	// ciaddr 12, yiaddr 16, siaddr 20, giaddr 24: zero
	copy(want[28:], testMAC[:])               // chaddr
	copy(want[236:], []byte{99, 130, 83, 99}) // magic cookie
	want = append(want, 53, 1, 1)             // message type DISCOVER
	want = append(want, 12, 2, 'v', 'm')      // hostname
	want = append(want, 55, 2, 1, 3)          // parameter request list
	want = append(want, 57, 2, 0x05, 0xc0)    // max message size 1472
	want = append(want, 255)                  // end
	if !bytes.Equal(got, want) {
		t.Fatalf("DISCOVER\n got %x\nwant %x", got, want)
	}
}

// ackBytes is an ACK written by hand: yiaddr 10.1.2.3, options subnet,
// router, DNS x2, domain, MTU, lease, T1, T2, server id, option 245.
func ackBytes() []byte {
	b := make([]byte, 240)
	b[0], b[1], b[2] = 2, 1, 6
	copy(b[4:], []byte{0xde, 0xad, 0xbe, 0xef})
	copy(b[16:], []byte{10, 1, 2, 3}) // yiaddr
	copy(b[20:], []byte{10, 1, 2, 1}) // siaddr
	copy(b[28:], testMAC[:])
	copy(b[236:], []byte{99, 130, 83, 99})
	b = append(b, 0, 0) // pads are skipped
	b = append(b, 53, 1, 5)
	b = append(b, 1, 4, 255, 255, 252, 0)
	b = append(b, 3, 4, 10, 1, 0, 1)
	b = append(b, 6, 8, 8, 8, 8, 8, 1, 1, 1, 1)
	b = append(b, 15, 7, 'e', 'x', '.', 'n', 'e', 't', '.')
	b = append(b, 26, 2, 0x05, 0xdc)
	b = append(b, 51, 4, 0, 0, 0x0e, 0x10) // 3600 s
	b = append(b, 58, 4, 0, 0, 0x03, 0x84) // 900 s
	b = append(b, 59, 4, 0, 0, 0x0a, 0x8c) // 2700 s
	b = append(b, 54, 4, 10, 1, 2, 1)
	b = append(b, 245, 4, 168, 63, 129, 16)
	// option 121: 168.63.129.16/32 via 10.1.0.1, 0.0.0.0/0 via 10.1.0.1, 10.8.0.0/13 on link
	b = append(b, 121, 21, 32, 168, 63, 129, 16, 10, 1, 0, 1, 0, 10, 1, 0, 1, 13, 10, 8, 0, 0, 0, 0)
	b = append(b, 99, 3, 1, 2, 3) // unknown option, skipped
	b = append(b, 255)
	return b
}

func TestParseAck(t *testing.T) {
	m, err := Parse(ackBytes())
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr
	checks := []struct {
		name      string
		got, want any
	}{
		{"op", m.Op, uint8(opReply)},
		{"xid", m.XID, uint32(0xdeadbeef)},
		{"type", m.Type, Ack},
		{"yiaddr", m.YIAddr, ip("10.1.2.3")},
		{"siaddr", m.SIAddr, ip("10.1.2.1")},
		{"chaddr", m.CHAddr, testMAC},
		{"mask", m.SubnetMask, ip("255.255.252.0")},
		{"routers", len(m.Routers) == 1 && m.Routers[0] == ip("10.1.0.1"), true},
		{"dns", len(m.DNS) == 2 && m.DNS[0] == ip("8.8.8.8") && m.DNS[1] == ip("1.1.1.1"), true},
		{"domain", m.DomainName, "ex.net."},
		{"mtu", m.MTU, uint16(1500)},
		{"lease", m.LeaseTime, time.Hour},
		{"t1", m.T1, 15 * time.Minute},
		{"t2", m.T2, 45 * time.Minute},
		{"server", m.ServerID, ip("10.1.2.1")},
		{"wireserver", m.WireServer, ip("168.63.129.16")},
		{"routes", len(m.Routes), 3},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	wantRoutes := []Route{
		{netip.MustParsePrefix("168.63.129.16/32"), ip("10.1.0.1")},
		{netip.MustParsePrefix("0.0.0.0/0"), ip("10.1.0.1")},
		{netip.MustParsePrefix("10.8.0.0/13"), ip("0.0.0.0")},
	}
	for i, r := range wantRoutes {
		if i < len(m.Routes) && m.Routes[i] != r {
			t.Errorf("route %d = %v, want %v", i, m.Routes[i], r)
		}
	}
	// Re-encoding the routes gives the option's bytes back.
	if got := appendRoutes(nil, m.Routes); !bytes.Equal(got, []byte{32, 168, 63, 129, 16, 10, 1, 0, 1, 0, 10, 1, 0, 1, 13, 10, 8, 0, 0, 0, 0}) {
		t.Errorf("routes re-encoded as %v", got)
	}
}

func TestParseErrors(t *testing.T) {
	ack := ackBytes()
	badCookie := append([]byte(nil), ack...)
	badCookie[236] = 0
	overrun := append(append([]byte(nil), ack[:240]...), 53, 5, 1)
	badLen := append(append([]byte(nil), ack[:240]...), 51, 3, 0, 0, 1, 255)
	badList := append(append([]byte(nil), ack[:240]...), 3, 5, 1, 2, 3, 4, 5, 255)
	badWidth := append(append([]byte(nil), ack[:240]...), 121, 5, 33, 1, 2, 3, 4, 255)
	shortRoute := append(append([]byte(nil), ack[:240]...), 121, 4, 8, 10, 1, 2, 255)
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"short", ack[:239]},
		{"cookie", badCookie},
		{"overrun", overrun},
		{"lease length", badLen},
		{"router list length", badList},
		{"route width", badWidth},
		{"route truncated", shortRoute},
	} {
		if _, err := Parse(tc.b); err == nil {
			t.Errorf("%s: Parse succeeded", tc.name)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	m := Message{Op: opReply, Type: Offer, XID: 7, CHAddr: testMAC, YIAddr: netip.MustParseAddr("192.168.1.9"),
		ServerID: netip.MustParseAddr("192.168.1.1"), SubnetMask: netip.MustParseAddr("255.255.255.0"),
		Routers: []netip.Addr{netip.MustParseAddr("192.168.1.1")}, LeaseTime: time.Minute, T1: 30 * time.Second,
		T2: 50 * time.Second, MTU: 1400, DomainName: "d", WireServer: netip.MustParseAddr("168.63.129.16")}
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.YIAddr != m.YIAddr || got.ServerID != m.ServerID || got.LeaseTime != m.LeaseTime || got.T1 != m.T1 ||
		got.T2 != m.T2 || got.MTU != m.MTU || got.WireServer != m.WireServer || got.DomainName != m.DomainName ||
		got.Type != Offer || got.SubnetMask != m.SubnetMask {
		t.Fatalf("round trip: got %+v, want %+v", got, m)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(ackBytes())
	d, _ := (&Message{Type: Discover, XID: 1, CHAddr: testMAC}).Append(nil)
	f.Add(d)
	f.Add(make([]byte, 240))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		// Whatever parsed must re-encode within limits or fail cleanly.
		m.Op = opReply
		if out, err := m.Append(nil); err == nil && len(out) < HeaderSize {
			t.Fatalf("encoded %d bytes", len(out))
		}
	})
}
