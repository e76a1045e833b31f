package netstack_test

import (
	"context"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/gohv/gohv/netstack"
	"github.com/gohv/gohv/netstack/dhcp4"
	"github.com/gohv/gohv/netstack/nic"
	"github.com/gohv/gohv/netstack/nictest"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// fakeDHCPServer answers DHCP on the far end of a fake NIC pair, writing
// its frames by hand with gVisor's header package (not netstack's code).
type fakeDHCPServer struct {
	n    *nictest.NIC
	ip   netip.Addr
	seen chan dhcp4.Message
}

func (s *fakeDHCPServer) receive(_ int, f []byte, _ nic.RxInfo) {
	if len(f) < 14+20+8 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
		return
	}
	ip := header.IPv4(f[14:])
	if ip.Protocol() != 17 {
		return
	}
	u := header.UDP(ip[ip.HeaderLength():])
	if u.DestinationPort() != 67 {
		return
	}
	m, err := dhcp4.Parse(u[8:u.Length()])
	if err != nil {
		return
	}
	s.seen <- m
	var typ dhcp4.MessageType
	switch m.Type {
	case dhcp4.Discover:
		typ = dhcp4.Offer
	case dhcp4.Request:
		typ = dhcp4.Ack
	default:
		return
	}
	r := dhcp4.Message{Op: 2, Type: typ, XID: m.XID, CHAddr: m.CHAddr, YIAddr: netip.MustParseAddr("10.5.0.9"),
		ServerID: s.ip, SubnetMask: netip.MustParseAddr("255.255.0.0"), Routers: []netip.Addr{s.ip},
		DNS: []netip.Addr{s.ip}, LeaseTime: time.Hour, MTU: 1400, WireServer: netip.MustParseAddr("168.63.129.16")}
	payload, _ := r.Append(nil)
	out := make([]byte, 14+20+8+len(payload))
	mac := s.n.MAC()
	header.Ethernet(out).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(mac[:]), DstAddr: tcpip.LinkAddress(m.CHAddr[:]), Type: header.IPv4ProtocolNumber})
	src, dst := tcpip.AddrFrom4(s.ip.As4()), tcpip.AddrFrom4([4]byte{10, 5, 0, 9})
	oip := header.IPv4(out[14:])
	oip.Encode(&header.IPv4Fields{TotalLength: uint16(len(out) - 14), TTL: 64, Protocol: 17, SrcAddr: src, DstAddr: dst})
	oip.SetChecksum(^oip.CalculateChecksum())
	ou := header.UDP(oip[20:])
	ou.Encode(&header.UDPFields{SrcPort: 67, DstPort: 68, Length: uint16(8 + len(payload))})
	copy(ou[8:], payload)
	ou.SetChecksum(^checksum.Checksum(ou, header.PseudoHeaderChecksum(17, src, dst, uint16(len(ou)))))
	s.n.Send(0, [][]byte{out}, nic.TxInfo{})
}

// TestDHCPFake runs the DHCP client end to end over fake NICs (the
// dnsmasq test covers a real server when run as root): lease, options
// applied to the stack, release at Close.
func TestDHCPFake(t *testing.T) {
	na, nb := nictest.Pair(nictest.Config{MAC: macA}, nictest.Config{MAC: macB})
	defer na.Close()
	defer nb.Close()
	srv := &fakeDHCPServer{n: nb, ip: netip.MustParseAddr("10.5.0.1"), seen: make(chan dhcp4.Message, 16)}
	nb.SetReceiver(srv.receive)
	st, err := netstack.New(netstack.Config{DisableIPv6: true, Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	ifc, err := st.AddNIC(na, netstack.NICOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := st.WaitAddress(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a != (netstack.Address{NIC: ifc.ID(), Prefix: netip.MustParsePrefix("10.5.0.9/16"), Origin: netstack.DHCP}) {
		t.Errorf("address %+v", a)
	}
	if ws, ok := st.WireServer(); !ok || ws != netip.MustParseAddr("168.63.129.16") {
		t.Errorf("WireServer %v %v", ws, ok)
	}
	if dns := st.DNSServers(); len(dns) != 1 || dns[0] != srv.ip {
		t.Errorf("DNS %v", dns)
	}
	if mtu := st.GVisor().NICInfo()[tcpip.NICID(ifc.ID())].MTU; mtu != 1400 {
		t.Errorf("MTU %d after a lease with option 26 = 1400", mtu)
	}
	// The link counts an intercepted frame after the client has taken it,
	// so the ACK's count may land just after the lease.
	for deadline := time.Now().Add(5 * time.Second); ifc.LinkStats().RxIntercepted < 2 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if got := ifc.LinkStats().RxIntercepted; got < 2 {
		t.Errorf("%d frames intercepted, want OFFER and ACK", got)
	}
	for _, want := range []dhcp4.MessageType{dhcp4.Discover, dhcp4.Request} {
		if m := <-srv.seen; m.Type != want || m.CHAddr != macA || m.Hostname != "h" {
			t.Errorf("server saw %v from %x (%q), want %v", m.Type, m.CHAddr, m.Hostname, want)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if m := <-srv.seen; m.Type != dhcp4.Release || m.CIAddr != a.Prefix.Addr() || m.ServerID != srv.ip {
		t.Errorf("after Close the server saw %v ciaddr %v server %v, want RELEASE", m.Type, m.CIAddr, m.ServerID)
	}
}
