package netvsp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// PeerConfig configures a Peer.
type PeerConfig struct {
	// MAC is the peer's Ethernet address (default 02:00:00:00:00:02).
	MAC [6]byte
	// Addr is the peer's IPv4 address and prefix, e.g. 10.0.0.1/24
	// (required). Addr6, when valid, adds an IPv6 address.
	Addr, Addr6 netip.Prefix
	// MTU is the IP MTU (default 1500).
	MTU int
}

// Peer is an in-process gVisor TCP/IP stack on the far side of the wire:
// a Backend whose frames reach a real TCP/IP implementation, with an
// address and TCP/UDP endpoints tests can use. It computes and verifies
// every checksum itself (its link endpoint offers no offloads), so a
// checksum the NIC got wrong is dropped there, as on a real network.
type Peer struct {
	cfg    PeerConfig
	stack  *stack.Stack
	ep     *channel.Endpoint
	recv   atomic.Pointer[func([]byte)]
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	framesIn, framesOut atomic.Uint64
}

const peerNIC = 1

// NewPeer creates and starts a peer stack.
func NewPeer(cfg PeerConfig) (*Peer, error) {
	if !cfg.Addr.IsValid() || !cfg.Addr.Addr().Is4() {
		return nil, fmt.Errorf("netvsp: peer address %v: want an IPv4 prefix", cfg.Addr)
	}
	if cfg.MAC == ([6]byte{}) {
		cfg.MAC = [6]byte{0x02, 0, 0, 0, 0, 0x02}
	}
	if cfg.MTU == 0 {
		cfg.MTU = defaultMTU
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
	})
	ep := channel.New(1024, uint32(cfg.MTU), tcpip.LinkAddress(cfg.MAC[:]))
	if err := s.CreateNIC(peerNIC, ethernet.New(ep)); err != nil {
		s.Close()
		return nil, fmt.Errorf("netvsp: peer NIC: %s", err)
	}
	add := func(p netip.Prefix, proto tcpip.NetworkProtocolNumber) error {
		a := tcpip.AddrFromSlice(p.Addr().AsSlice())
		if err := s.AddProtocolAddress(peerNIC, tcpip.ProtocolAddress{Protocol: proto,
			AddressWithPrefix: tcpip.AddressWithPrefix{Address: a, PrefixLen: p.Bits()}}, stack.AddressProperties{}); err != nil {
			return fmt.Errorf("netvsp: peer address %v: %s", p, err)
		}
		return nil
	}
	if err := add(cfg.Addr, ipv4.ProtocolNumber); err != nil {
		s.Close()
		return nil, err
	}
	routes := []tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: peerNIC}}
	if cfg.Addr6.IsValid() {
		if err := add(cfg.Addr6, ipv6.ProtocolNumber); err != nil {
			s.Close()
			return nil, err
		}
		routes = append(routes, tcpip.Route{Destination: header.IPv6EmptySubnet, NIC: peerNIC})
	}
	s.SetRouteTable(routes)
	ctx, cancel := context.WithCancel(context.Background())
	p := &Peer{cfg: cfg, stack: s, ep: ep, cancel: cancel}
	p.wg.Add(1)
	go func() { defer p.wg.Done(); p.pump(ctx) }()
	return p, nil
}

// pump moves the stack's outbound frames to the receiver (the NIC).
func (p *Peer) pump(ctx context.Context) {
	for {
		pkt := p.ep.ReadContext(ctx)
		if pkt == nil {
			return
		}
		v := pkt.ToView()
		if fn := p.recv.Load(); fn != nil {
			p.framesOut.Add(1)
			(*fn)(v.AsSlice())
		}
		v.Release()
		pkt.DecRef()
	}
}

// Send implements Backend: the guest's frame enters the peer stack.
func (p *Peer) Send(frame []byte) {
	p.framesIn.Add(1)
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(append([]byte(nil), frame...))})
	p.ep.InjectInbound(0, pkt)
	pkt.DecRef()
}

// SetReceiver implements Backend.
func (p *Peer) SetReceiver(fn func(frame []byte)) { p.recv.Store(&fn) }

// Stack is the peer's gVisor stack, for anything the helpers below do not
// cover.
func (p *Peer) Stack() *stack.Stack { return p.stack }

// Addr is the peer's IPv4 address.
func (p *Peer) Addr() netip.Addr { return p.cfg.Addr.Addr() }

// MAC is the peer's Ethernet address.
func (p *Peer) MAC() [6]byte { return p.cfg.MAC }

// Frames counts frames into the peer (from the guest) and out of it.
func (p *Peer) Frames() (in, out uint64) { return p.framesIn.Load(), p.framesOut.Load() }

func fullAddr(a netip.AddrPort) (tcpip.FullAddress, tcpip.NetworkProtocolNumber) {
	proto := tcpip.NetworkProtocolNumber(ipv4.ProtocolNumber)
	if a.Addr().Is6() && !a.Addr().Is4In6() {
		proto = ipv6.ProtocolNumber
	}
	return tcpip.FullAddress{NIC: peerNIC, Addr: tcpip.AddrFromSlice(a.Addr().Unmap().AsSlice()), Port: a.Port()}, proto
}

// ListenTCP listens on the peer's IPv4 address at port.
func (p *Peer) ListenTCP(port uint16) (net.Listener, error) {
	fa, proto := fullAddr(netip.AddrPortFrom(p.Addr(), port))
	return gonet.ListenTCP(p.stack, fa, proto)
}

// DialTCP connects from the peer to addr (the guest's address).
func (p *Peer) DialTCP(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	fa, proto := fullAddr(addr)
	fa.NIC = 0
	return gonet.DialContextTCP(ctx, p.stack, fa, proto)
}

// ListenUDP binds a UDP endpoint on the peer's IPv4 address at port.
func (p *Peer) ListenUDP(port uint16) (net.PacketConn, error) {
	fa, proto := fullAddr(netip.AddrPortFrom(p.Addr(), port))
	return gonet.DialUDP(p.stack, &fa, nil, proto)
}

// Close stops the peer stack.
func (p *Peer) Close() error {
	p.once.Do(func() {
		p.cancel()
		p.ep.Close()
		p.wg.Wait()
		p.stack.Close()
	})
	return nil
}

var _ Backend = (*Peer)(nil)
