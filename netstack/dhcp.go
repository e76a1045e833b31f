package netstack

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"

	"github.com/gohv/gohv/netstack/dhcp4"
	"github.com/gohv/gohv/netstack/nic"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// DHCP runs beside gVisor, not through it: before a lease the interface has
// no address gVisor could send from or receive on. dhcpTransport builds the
// Ethernet/IPv4/UDP frames itself and sends them on NIC queue 0; the link
// endpoint's intercept hook hands it every received IPv4 UDP datagram to
// port 68 before gVisor sees it (gVisor has no socket there).

// UDP ports, RFC 2131 §4.1.
const (
	dhcpServerPort = 67
	dhcpClientPort = 68
)

// dhcpRxSlots bounds datagrams queued for the client; more are dropped
// (the client retransmits).
const dhcpRxSlots = 8

type dhcpTransport struct {
	ep   *linkEndpoint
	rx   chan []byte // filled datagrams
	free chan []byte // empty buffers

	mu        sync.Mutex
	serverMAC map[netip.Addr][6]byte // guarded by mu: source MAC of each server's replies
	txbuf     []byte                 // guarded by mu
}

func newDHCPTransport(ep *linkEndpoint) *dhcpTransport {
	t := &dhcpTransport{
		ep:        ep,
		rx:        make(chan []byte, dhcpRxSlots),
		free:      make(chan []byte, dhcpRxSlots),
		serverMAC: map[netip.Addr][6]byte{},
	}
	for range dhcpRxSlots {
		t.free <- make([]byte, 0, dhcp4.MaxMessageSize)
	}
	fn := t.intercept
	ep.intercept.Store(&fn)
	return t
}

// intercept runs on the NIC's receive goroutine; it never blocks.
func (t *dhcpTransport) intercept(f []byte, info nic.RxInfo) bool {
	if tcpip.NetworkProtocolNumber(binary.BigEndian.Uint16(f[12:])) != header.IPv4ProtocolNumber {
		return false
	}
	ip := header.IPv4(f[header.EthernetMinimumSize:])
	if !ip.IsValid(len(ip)) || ip.TransportProtocol() != header.UDPProtocolNumber || ip.More() || ip.FragmentOffset() != 0 {
		return false
	}
	u := header.UDP(ip[ip.HeaderLength():ip.TotalLength()])
	if len(u) < header.UDPMinimumSize || u.DestinationPort() != dhcpClientPort {
		return false
	}
	// Ours from here on: consume it even when it is bad.
	if int(u.Length()) < header.UDPMinimumSize || int(u.Length()) > len(u) {
		return true
	}
	u = u[:u.Length()]
	verified := info.CsumChecked && info.IPCsumOK && info.L4CsumOK
	if info.CsumChecked && !verified || !verified && !ip.IsChecksumValid() {
		return true
	}
	if !verified && u.Checksum() != 0 && checksum.Checksum(u, header.PseudoHeaderChecksum(header.UDPProtocolNumber,
		ip.SourceAddress(), ip.DestinationAddress(), uint16(len(u)))) != 0xffff {
		return true
	}
	var buf []byte
	select {
	case buf = <-t.free:
	default:
		return true
	}
	buf = append(buf[:0], u[header.UDPMinimumSize:]...)
	src := netip.AddrFrom4(ip.SourceAddress().As4())
	t.mu.Lock()
	if len(t.serverMAC) < 16 {
		t.serverMAC[src] = [6]byte(f[6:12])
	}
	t.mu.Unlock()
	t.rx <- buf // never blocks: buffers come from free
	return true
}

// Receive implements dhcp4.Transport.
func (t *dhcpTransport) Receive(ctx context.Context, b []byte) (int, error) {
	select {
	case buf := <-t.rx:
		n := copy(b, buf)
		t.free <- buf
		return n, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

var broadcastMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// Send implements dhcp4.Transport.
func (t *dhcpTransport) Send(ctx context.Context, payload []byte, src, dst netip.Addr) error {
	if !src.Is4() || !dst.Is4() {
		return ErrBadAddress
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	dmac := broadcastMAC
	if m, ok := t.serverMAC[dst]; ok {
		dmac = m
	}
	const hl = header.EthernetMinimumSize + header.IPv4MinimumSize + header.UDPMinimumSize
	n := hl + len(payload)
	if cap(t.txbuf) < n {
		t.txbuf = make([]byte, n)
	}
	f := t.txbuf[:n]
	mac := t.ep.nic.MAC()
	header.Ethernet(f).Encode(&header.EthernetFields{
		SrcAddr: tcpip.LinkAddress(mac[:]), DstAddr: tcpip.LinkAddress(dmac[:]), Type: header.IPv4ProtocolNumber})
	s, d := tcpip.AddrFrom4(src.As4()), tcpip.AddrFrom4(dst.As4())
	ip := header.IPv4(f[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(n - header.EthernetMinimumSize),
		TTL:         64,
		Protocol:    uint8(header.UDPProtocolNumber),
		SrcAddr:     s,
		DstAddr:     d,
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	u := header.UDP(ip[header.IPv4MinimumSize:])
	u.Encode(&header.UDPFields{SrcPort: dhcpClientPort, DstPort: dhcpServerPort, Length: uint16(header.UDPMinimumSize + len(payload))})
	copy(u[header.UDPMinimumSize:], payload)
	x := ^checksum.Checksum(u, header.PseudoHeaderChecksum(header.UDPProtocolNumber, s, d, uint16(len(u))))
	if x == 0 {
		x = 0xffff
	}
	u.SetChecksum(x)
	t.ep.txq[0].mu.Lock()
	defer t.ep.txq[0].mu.Unlock()
	for {
		err := t.ep.nic.Send(0, [][]byte{f}, nic.TxInfo{})
		if !errors.Is(err, nic.ErrBusy) {
			return err
		}
		if err := t.ep.nic.WaitWritable(ctx, 0); err != nil {
			return err
		}
	}
}
