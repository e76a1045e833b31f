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
	// Offload gives the peer's link GSO and checksum offload, like a VM
	// behind a Hyper-V vSwitch port with offloads: its stack sends TCP
	// segments of up to GSOMaxSize bytes and leaves TCP/UDP checksums to
	// the link, which the peer completes (segmenting large sends to MTU
	// frames) before a frame leaves for the NIC; it takes a guest's large
	// sends whole (the Peer is then an OffloadBackend) and trusts the
	// checksums of frames the host vouches for (SendOffloaded), verifying
	// all others itself.
	Offload bool
	// GSOMaxSize bounds the TCP segments an offloading peer's stack sends
	// (default PeerGSOMaxSize, gVisor's channel endpoint's; at most 65535).
	GSOMaxSize int
	// TCPSendBuffer is each TCP connection's send buffer, bytes (0:
	// gVisor's default, 1 MiB).
	TCPSendBuffer int
}

// Peer is an in-process gVisor TCP/IP stack on the far side of the wire:
// a Backend whose frames reach a real TCP/IP implementation, with an
// address and TCP/UDP endpoints tests can use. Without PeerConfig.Offload
// it computes and verifies every checksum itself (its link endpoint offers
// no offloads), so a checksum the NIC got wrong is dropped there, as on a
// real network; with it, it still verifies every frame the host does not
// vouch for.
type Peer struct {
	cfg    PeerConfig
	stack  *stack.Stack
	ep     *channel.Endpoint
	recv   atomic.Pointer[func([]byte)]
	whole  atomic.Bool // recv takes the link's frames as they are
	direct atomic.Pointer[Peer]
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	seg    []byte // pump's segment scratch (Offload)

	framesIn, framesOut, badCsum atomic.Uint64
}

// PeerGSOMaxSize is the default largest TCP segment an offloading Peer's
// stack sends: gVisor's channel endpoint's fixed GSO size.
const PeerGSOMaxSize = 1 << 15

// gsoEndpoint is a channel endpoint with a chosen GSO size.
type gsoEndpoint struct {
	*channel.Endpoint
	max uint32
}

// GSOMaxSize implements stack.GSOEndpoint.
func (e gsoEndpoint) GSOMaxSize() uint32 { return e.max }

const (
	peerNIC       = 1
	peerTCPBuffer = 4 << 20
	peerQueue     = 4096
)

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
	if cfg.GSOMaxSize == 0 {
		cfg.GSOMaxSize = PeerGSOMaxSize
	}
	if cfg.GSOMaxSize < cfg.MTU || cfg.GSOMaxSize > 0xFFFF {
		return nil, fmt.Errorf("netvsp: peer GSO size %d out of range", cfg.GSOMaxSize)
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
	})
	// The outbound queue holds more than a 4 MiB TCP window of MTU frames
	// (about 2800): gVisor drops what does not fit, and a pump that falls
	// behind must cost time, not retransmissions.
	ep := channel.New(peerQueue, uint32(cfg.MTU), tcpip.LinkAddress(cfg.MAC[:]))
	if cfg.Offload {
		ep.LinkEPCapabilities = stack.CapabilityTXChecksumOffload | stack.CapabilityRXChecksumOffload
		ep.SupportedGSOKind = stack.HostGSOSupported
	}
	var link stack.LinkEndpoint = ep
	if cfg.GSOMaxSize != PeerGSOMaxSize {
		link = gsoEndpoint{ep, uint32(cfg.GSOMaxSize)}
	}
	if err := s.CreateNIC(peerNIC, ethernet.New(link)); err != nil {
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
	// The receive buffer grows with use up to 4 MiB, as Linux's
	// autotuning does (tcp_rmem), where gVisor's default stays at 1 MiB:
	// a receiving peer is then no tighter a bottleneck than a Linux host.
	rb := tcpip.TCPReceiveBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: tcp.DefaultReceiveBufferSize, Max: peerTCPBuffer}
	mod := tcpip.TCPModerateReceiveBufferOption(true)
	sndBuf := cfg.TCPSendBuffer
	if sndBuf <= 0 {
		sndBuf = tcp.DefaultSendBufferSize
	}
	sb := tcpip.TCPSendBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: sndBuf, Max: max(sndBuf, tcp.MaxBufferSize)}
	for _, o := range []tcpip.SettableTransportProtocolOption{&rb, &mod, &sb} {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, o); err != nil {
			s.Close()
			return nil, fmt.Errorf("netvsp: peer TCP buffers: %s", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Peer{cfg: cfg, stack: s, ep: ep, cancel: cancel}
	if cfg.Offload {
		p.seg = make([]byte, ethHdrLen+cfg.MTU)
	}
	p.wg.Add(1)
	go func() { defer p.wg.Done(); p.pump(ctx) }()
	return p, nil
}

// pump moves the stack's outbound frames to the receiver (the NIC). With
// Offload it first does what the link offered the stack: it cuts a large
// TCP segment into MTU frames and completes TCP and UDP checksums.
func (p *Peer) pump(ctx context.Context) {
	for {
		pkt := p.ep.ReadContext(ctx)
		if pkt == nil {
			return
		}
		if q := p.direct.Load(); q != nil {
			// Joined directly: the packet's buffer moves across, as
			// between two channel endpoints pumped into each other.
			p.framesOut.Add(1)
			q.framesIn.Add(1)
			in := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: pkt.ToBuffer()})
			q.ep.InjectInbound(0, in)
			in.DecRef()
			pkt.DecRef()
			continue
		}
		v := pkt.ToView()
		if fn := p.recv.Load(); fn != nil {
			p.out(*fn, v.AsSlice(), pkt.GSOOptions)
		}
		v.Release()
		pkt.DecRef()
	}
}

// out hands one outbound frame to fn, finishing the link's offloads first.
func (p *Peer) out(fn func([]byte), frame []byte, gso stack.GSO) {
	if !p.cfg.Offload || p.whole.Load() {
		p.framesOut.Add(1)
		fn(frame)
		return
	}
	if (gso.Type == stack.GSOTCPv4 || gso.Type == stack.GSOTCPv6) && len(frame) > ethHdrLen+p.cfg.MTU {
		if h, ok := parseHeaders(frame, false); ok && h.Proto == protoTCP {
			info := uint32(gso.MSS)&lsoMSSMask | uint32(h.L4)<<lsoTCPOffSh | lsoTypeV2
			if h.IPv6 {
				info |= lsoIPv6
			}
			n, err := segmentLSO(frame, info, ethHdrLen+p.cfg.MTU, p.seg, fn)
			if err == nil {
				p.framesOut.Add(uint64(n))
				return
			}
		}
		return // cannot be cut: a NIC would drop it too
	}
	if h, ok := parseHeaders(frame, false); ok && (h.Proto == protoTCP || h.Proto == protoUDP) {
		setL4Csum(frame, h)
	}
	p.framesOut.Add(1)
	fn(frame)
}

// Send implements Backend: the guest's frame enters the peer stack. With
// Offload, whose link tells the stack that checksums were verified, the
// peer verifies them here first and drops (and counts) a frame that fails.
func (p *Peer) Send(frame []byte) {
	p.framesIn.Add(1)
	if p.cfg.Offload && !checksumsOK(frame) {
		p.badCsum.Add(1)
		return
	}
	p.inject(frame)
}

// SendOffloaded implements OffloadBackend: the host vouches for the
// frame's checksums, which a peer with Offload does not verify. A peer
// without Offload treats the frame as Send does.
func (p *Peer) SendOffloaded(frame []byte) {
	if !p.cfg.Offload {
		p.Send(frame)
		return
	}
	p.framesIn.Add(1)
	p.inject(frame)
}

// LendFrame implements FrameLender: with Offload, n bytes of a pooled
// gVisor buffer (at most buffer.MaxChunkSize).
func (p *Peer) LendFrame(n int) ([]byte, Lent, bool) {
	if !p.cfg.Offload || n <= headChunk || n > buffer.MaxChunkSize {
		return nil, Lent{}, false
	}
	v := buffer.NewViewSize(n)
	return v.AsSlice(), Lent{v}, true
}

// SendLent implements FrameLender: frame enters the stack in the lent
// buffer itself, past a copy of its first headChunk bytes (see inject).
func (p *Peer) SendLent(l Lent, buf, frame []byte) {
	off := cap(buf) - cap(frame) // frame is buf[off:off+len(frame)]
	if l.v == nil || off < 0 || off+len(frame) > len(buf) || len(frame) <= headChunk ||
		len(buf) != l.v.Size() || &buf[0] != &l.v.AsSlice()[0] || &buf[off] != &frame[0] {
		p.SendOffloaded(frame) // not as promised: copy
		p.ReturnLent(l)
		return
	}
	p.framesIn.Add(1)
	head := buffer.NewViewWithData(frame[:headChunk])
	l.v.TrimFront(off + headChunk)
	l.v.CapLength(len(frame) - headChunk)
	b := buffer.MakeWithView(head)
	b.Append(l.v)
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: b})
	p.ep.InjectInbound(0, pkt)
	pkt.DecRef()
}

// ReturnLent implements FrameLender.
func (p *Peer) ReturnLent(l Lent) {
	if l.v != nil {
		l.v.Release()
	}
}

// TakesOffloaded implements OffloadBackend: true with PeerConfig.Offload.
func (p *Peer) TakesOffloaded() bool { return p.cfg.Offload }

// headChunk is where inject splits a frame: the Ethernet, IP and TCP
// headers of ordinary frames fit the first chunk. gVisor copies a whole
// chunk when it reads a header from one the packet shares (ipv4's
// HandlePacket does, holding a view of the header while it reads it
// again), so the payload must not be in that chunk.
const headChunk = 128

func (p *Peer) inject(frame []byte) {
	buf := buffer.MakeWithView(buffer.NewViewWithData(frame[:min(len(frame), headChunk)]))
	if len(frame) > headChunk {
		buf.Append(buffer.NewViewWithData(frame[headChunk:]))
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buf})
	p.ep.InjectInbound(0, pkt)
	pkt.DecRef()
}

// checksumsOK verifies the IPv4 header checksum and the TCP or UDP
// checksum of frame, as the receive side of a NIC does; frames without
// them pass.
func checksumsOK(frame []byte) bool {
	r := rxChecksum(frame, &allOffloads)
	return r&(RxCsumIPFailed|RxCsumTCPFailed|RxCsumUDPFailed) == 0
}

// SetReceiver implements Backend.
func (p *Peer) SetReceiver(fn func(frame []byte)) {
	p.whole.Store(false)
	p.recv.Store(&fn)
}

// SetOffloadedReceiver is SetReceiver for a receiver that takes the
// frames of a Peer with Offload as its link got them: large TCP segments
// whole and TCP/UDP checksums left incomplete, as another offloading
// Peer's SendOffloaded does. Two such peers so joined are two gVisor
// stacks on channel endpoints with GSO and checksum offload.
func (p *Peer) SetOffloadedReceiver(fn func(frame []byte)) {
	p.whole.Store(true)
	p.recv.Store(&fn)
}

// JoinPeers joins two peers' links directly, with nothing in between and
// no copy: each outbound packet's gVisor buffer becomes the other stack's
// inbound packet, as between two gVisor channel endpoints pumped into each
// other. Both must have the same PeerConfig.Offload. Receivers set with
// SetReceiver no longer see their frames; a peer stays joined until Close.
func JoinPeers(a, b *Peer) error {
	if a.cfg.Offload != b.cfg.Offload {
		return fmt.Errorf("netvsp: joining a peer with offloads to one without")
	}
	a.direct.Store(b)
	b.direct.Store(a)
	return nil
}

// Stack is the peer's gVisor stack, for anything the helpers below do not
// cover.
func (p *Peer) Stack() *stack.Stack { return p.stack }

// Addr is the peer's IPv4 address.
func (p *Peer) Addr() netip.Addr { return p.cfg.Addr.Addr() }

// MAC is the peer's Ethernet address.
func (p *Peer) MAC() [6]byte { return p.cfg.MAC }

// Frames counts frames into the peer (from the guest) and out of it.
func (p *Peer) Frames() (in, out uint64) { return p.framesIn.Load(), p.framesOut.Load() }

// BadChecksums counts frames an offloading peer verified and dropped.
func (p *Peer) BadChecksums() uint64 { return p.badCsum.Load() }

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

var _ FrameLender = (*Peer)(nil)
