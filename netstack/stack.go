package netstack

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/gohv/gohv/netstack/dhcp4"
	"github.com/gohv/gohv/netstack/nic"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// NIC is the network interface contract; see package nic.
type NIC = nic.NIC

// Lease is a DHCPv4 lease; see package dhcp4.
type Lease = dhcp4.Lease

// Errors.
var (
	// ErrClosed: the Stack is closed.
	ErrClosed = errors.New("netstack: closed")
	// ErrBadAddress: an address string or prefix the stack cannot use.
	ErrBadAddress = errors.New("netstack: bad address")
	// ErrNoDNS: no DNS server is configured.
	ErrNoDNS = errors.New("netstack: no DNS server configured")
	// ErrUnknownInterface: the interface is not (or no longer) part of
	// the stack.
	ErrUnknownInterface = errors.New("netstack: unknown interface")
)

// TCPIPError wraps a gVisor tcpip.Error so it can travel as a Go error.
type TCPIPError struct {
	Op  string
	Err tcpip.Error
}

func (e *TCPIPError) Error() string { return "netstack: " + e.Op + ": " + e.Err.String() }

func tcpipErr(op string, err tcpip.Error) error {
	if err == nil {
		return nil
	}
	return &TCPIPError{Op: op, Err: err}
}

// Config configures a Stack.
type Config struct {
	// Hostname is sent to DHCP servers (option 12). Optional.
	Hostname string
	// DisableIPv6 leaves IPv6 (and SLAAC) out of the stack.
	DisableIPv6 bool
	// Logf, if set, receives one line per configuration change.
	Logf func(format string, args ...any)
	// TCPSendBuffer is each TCP connection's send buffer, bytes: the
	// most data a connection holds unacknowledged or unsent. 0 means
	// DefaultTCPSendBuffer.
	TCPSendBuffer int
}

// DefaultTCPSendBuffer is gVisor's default send buffer, 1 MiB. A larger
// one (Linux's autotuning reaches 4 MiB) did not speed up the simulated
// bulk path once the receiver's window could grow (kernel
// BenchmarkBulkTCP), and made the known peer→guest stall of the NetVSP
// fault suite (kernel/netfault_test.go) show up about three times as
// often.
const DefaultTCPSendBuffer = 1 << 20

// NICOptions configures one interface.
type NICOptions struct {
	// Static addresses, configured at once. With any IPv4 address here,
	// DHCPv4 is not started.
	Static []netip.Prefix
	// Gateway is the default router for static configuration.
	Gateway netip.Addr
	// DNS servers for static configuration.
	DNS []netip.Addr
	// DisableDHCP keeps DHCPv4 off even without a static IPv4 address.
	DisableDHCP bool
	// DisableSLAAC keeps IPv6 stateless autoconfiguration of global
	// addresses off (the link-local address is still configured).
	DisableSLAAC bool
	// Routes are extra static routes.
	Routes []Route
	// TxStallTimeout bounds how long a send waits for the NIC's full
	// queue before the packet is dropped (LinkStats.TxStalled); zero means
	// DefaultTxStallTimeout.
	TxStallTimeout time.Duration
}

// Route is one routing table entry. An invalid Via means on link.
type Route struct {
	NIC    int
	Dst    netip.Prefix
	Via    netip.Addr
	Origin Origin
}

// Origin says where an address came from.
type Origin uint8

// Origins.
const (
	Static Origin = iota + 1
	DHCP
	SLAAC
	LinkLocal
)

func (o Origin) String() string {
	switch o {
	case Static:
		return "static"
	case DHCP:
		return "dhcp"
	case SLAAC:
		return "slaac"
	case LinkLocal:
		return "link-local"
	}
	return fmt.Sprintf("Origin(%d)", uint8(o))
}

// Address is one configured address.
type Address struct {
	NIC    int
	Prefix netip.Prefix
	Origin Origin
}

// Stack is a gVisor TCP/IP stack over gohv NICs, with DHCPv4, SLAAC, static
// configuration, a DNS resolver and net.Listener/net.Conn adapters.
//
// Lock order: Stack.mu before Watcher.mu. gVisor is never called with
// Stack.mu held except for route table updates.
type Stack struct {
	cfg Config
	s   *stack.Stack

	mu       sync.Mutex
	ifaces   map[tcpip.NICID]*Interface // guarded by mu
	nextID   tcpip.NICID                // guarded by mu
	origins  map[netip.Prefix]Address   // guarded by mu: addresses we added or were told about
	watchers map[*Watcher]struct{}      // guarded by mu
	changed  chan struct{}              // guarded by mu: closed and replaced on every address change
	closed   bool                       // guarded by mu

	work      *serializer // runs NDP reactions outside gVisor's locks
	ndpConfig ipv6.NDPConfigurations
}

// New returns a Stack with no interfaces.
func New(cfg Config) (*Stack, error) {
	st := &Stack{
		cfg:      cfg,
		ifaces:   map[tcpip.NICID]*Interface{},
		nextID:   1,
		origins:  map[netip.Prefix]Address{},
		watchers: map[*Watcher]struct{}{},
		changed:  make(chan struct{}),
		work:     newSerializer(),
	}
	opts := stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
		HandleLocal:        true,
	}
	st.ndpConfig = ipv6.NDPConfigurations{
		MaxRtrSolicitations:     3,
		RtrSolicitationInterval: 4 * time.Second,
		MaxRtrSolicitationDelay: time.Second,
		HandleRAs:               ipv6.HandlingRAsEnabledWhenForwardingDisabled,
		DiscoverDefaultRouters:  true,
		DiscoverOnLinkPrefixes:  true,
		AutoGenGlobalAddresses:  true,
	}
	if !cfg.DisableIPv6 {
		opts.NetworkProtocols = append(opts.NetworkProtocols, ipv6.NewProtocolWithOptions(ipv6.Options{
			AutoGenLinkLocal: true,
			NDPDisp:          (*ndpDispatcher)(st),
			NDPConfigs:       st.ndpConfig,
			DADConfigs:       stack.DADConfigurations{DupAddrDetectTransmits: 1, RetransmitTimer: time.Second},
		}))
		opts.TransportProtocols = append(opts.TransportProtocols, icmp.NewProtocol6)
	}
	st.s = stack.New(opts)
	// Selective acknowledgements (RFC 2018), negotiated only if the peer offers them.
	sack := tcpip.TCPSACKEnabled(true)
	st.s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
	sndBuf := cfg.TCPSendBuffer
	if sndBuf <= 0 {
		sndBuf = DefaultTCPSendBuffer
	}
	sb := tcpip.TCPSendBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: sndBuf, Max: max(sndBuf, tcp.MaxBufferSize)}
	if err := st.s.SetTransportProtocolOption(tcp.ProtocolNumber, &sb); err != nil {
		st.s.Close()
		return nil, fmt.Errorf("netstack: TCP send buffer %d: %s", sndBuf, err)
	}
	return st, nil
}

// GVisor returns the underlying gVisor stack, for callers that need raw
// endpoints. Configuration made through it is not tracked by Addresses.
func (st *Stack) GVisor() *stack.Stack { return st.s }

func (st *Stack) logf(format string, args ...any) {
	if st.cfg.Logf != nil {
		st.cfg.Logf(format, args...)
	}
}

// Interface is one NIC attached to a Stack.
type Interface struct {
	st   *Stack
	id   tcpip.NICID
	nic  nic.NIC
	ep   *linkEndpoint
	opts NICOptions

	dhcp    *dhcp4.Client
	dhcpT   *dhcpTransport
	cancel  context.CancelFunc
	done    chan struct{}
	routes  map[routeKey]tcpip.Route  // guarded by st.mu
	dns     map[routeKey][]netip.Addr // guarded by st.mu, by source
	wireSrv netip.Addr                // guarded by st.mu
}

// routeKey names the source of a route or DNS list so it can be replaced.
type routeKey struct {
	origin Origin
	dst    tcpip.Subnet
	gw     tcpip.Address
}

// ID is the interface's number in the stack (gVisor NIC id).
func (i *Interface) ID() int { return int(i.id) }

// LinkStats returns the link endpoint's counters.
func (i *Interface) LinkStats() LinkStats { return i.ep.Stats() }

// Lease returns the current DHCPv4 lease, if any.
func (i *Interface) Lease() (Lease, bool) {
	if i.dhcp == nil {
		return Lease{}, false
	}
	return i.dhcp.Lease()
}

// AddNIC attaches n to the stack and configures it: static addresses at
// once, DHCPv4 and SLAAC in the background. Watch or WaitAddress for the
// result.
func (st *Stack) AddNIC(n NIC, opts NICOptions) (*Interface, error) {
	ifc, err := st.addNIC(n, opts)
	if err != nil && ifc != nil {
		// Undo a half-configured interface.
		st.mu.Lock()
		var added []Address
		for _, a := range st.origins {
			if a.NIC == int(ifc.id) {
				added = append(added, a)
			}
		}
		st.mu.Unlock()
		for _, a := range added {
			st.noteAddress(a, false)
		}
		st.mu.Lock()
		delete(st.ifaces, ifc.id)
		st.rebuildRoutesLocked()
		st.mu.Unlock()
		st.s.RemoveNIC(ifc.id)
		ifc.ep.Close()
		n.SetLinkHandler(nil)
		n.SetNetworkChangeHandler(nil)
		return nil, err
	}
	return ifc, err
}

// RemoveInterface takes ifc out of the stack, for a NIC that is gone (the
// host rescinded it). The NIC can no longer send, so its DHCP client stops
// without releasing the lease. Its addresses, routes and DNS servers go
// (AddressRemoved and DNSChanged events, then InterfaceRemoved); dials to
// destinations only it reached fail at once for want of a route; and
// connections using one of its addresses are aborted, so that reads and
// writes blocked on them fail now rather than at their deadlines or after
// TCP's retransmission timeout. Listeners on the unspecified address stay
// and keep serving the other interfaces. It does not close the NIC.
func (st *Stack) RemoveInterface(ifc *Interface) error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return ErrClosed
	}
	if ifc == nil || st.ifaces[ifc.id] != ifc {
		st.mu.Unlock()
		return ErrUnknownInterface
	}
	st.mu.Unlock()

	// Stop the DHCP client first, so no lease lands after the removal.
	if ifc.cancel != nil {
		ifc.cancel()
		<-ifc.done
	}
	ifc.nic.SetLinkHandler(nil)
	ifc.nic.SetNetworkChangeHandler(nil)
	local := map[tcpip.Address]bool{}
	for _, pa := range st.s.AllAddresses()[ifc.id] {
		local[pa.AddressWithPrefix.Address] = true
	}

	st.mu.Lock()
	if st.closed || st.ifaces[ifc.id] != ifc {
		st.mu.Unlock()
		return ErrUnknownInterface
	}
	delete(st.ifaces, ifc.id)
	st.rebuildRoutesLocked()
	hadDNS := len(ifc.dns) > 0
	var gone []Address
	for _, a := range st.origins {
		if a.NIC == int(ifc.id) {
			gone = append(gone, a)
		}
	}
	st.mu.Unlock()

	// RemoveNIC closes the link endpoint: senders waiting for a writable
	// queue give up and the NIC's receiver is cleared.
	_ = st.s.RemoveNIC(ifc.id)
	ifc.ep.Close()
	for _, e := range st.s.RegisteredEndpoints() {
		ie, ok := e.(interface{ Info() tcpip.EndpointInfo })
		if !ok {
			continue
		}
		info, ok := ie.Info().(*stack.TransportEndpointInfo)
		if !ok {
			continue
		}
		if info.BindNICID == ifc.id || local[info.ID.LocalAddress] {
			e.Abort()
		}
	}
	for _, a := range gone {
		st.noteAddress(a, false)
	}
	if hadDNS {
		st.emit(Event{Kind: DNSChanged, NIC: int(ifc.id)})
	}
	st.logf("netstack: nic %d removed", ifc.id)
	st.emit(Event{Kind: InterfaceRemoved, NIC: int(ifc.id)})
	return nil
}

func (st *Stack) addNIC(n NIC, opts NICOptions) (*Interface, error) {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return nil, ErrClosed
	}
	id := st.nextID
	st.nextID++
	st.mu.Unlock()

	ep := newLinkEndpoint(n, opts.TxStallTimeout)
	ifc := &Interface{st: st, id: id, nic: n, ep: ep, opts: opts,
		routes: map[routeKey]tcpip.Route{}, dns: map[routeKey][]netip.Addr{}}
	if err := st.s.CreateNICWithOptions(id, ep, stack.NICOptions{Disabled: true}); err != nil {
		ep.Close()
		return nil, tcpipErr("create NIC", err)
	}
	st.mu.Lock()
	st.ifaces[id] = ifc
	st.mu.Unlock()

	n.SetLinkHandler(func(up bool) {
		kind := LinkDown
		if up {
			kind = LinkUp
			if ifc.dhcp != nil {
				ifc.dhcp.Renew()
			}
		}
		st.emit(Event{Kind: kind, NIC: int(id)})
	})
	n.SetNetworkChangeHandler(func() {
		if ifc.dhcp != nil {
			ifc.dhcp.Renew()
		}
	})

	if !st.cfg.DisableIPv6 {
		// fe80::/64 is on link (RFC 4291 §2.5.6).
		ll := netip.MustParsePrefix("fe80::/64")
		st.setRoute(ifc, routeKey{origin: LinkLocal, dst: subnet(ll)}, tcpip.Route{Destination: subnet(ll), NIC: id})
		if opts.DisableSLAAC {
			if ep, err := st.s.GetNetworkEndpoint(id, ipv6.ProtocolNumber); err == nil {
				if c, ok := ep.(interface {
					SetNDPConfigurations(ipv6.NDPConfigurations)
				}); ok {
					cfg := st.ndpConfig
					cfg.AutoGenGlobalAddresses = false
					c.SetNDPConfigurations(cfg)
				}
			}
		}
	}
	hasV4 := false
	for _, p := range opts.Static {
		if !p.IsValid() {
			return ifc, fmt.Errorf("%w: %v", ErrBadAddress, p)
		}
		if err := st.addAddress(ifc, p, Static); err != nil {
			return ifc, err
		}
		hasV4 = hasV4 || p.Addr().Is4()
		st.setRoute(ifc, routeKey{origin: Static, dst: subnet(p.Masked())}, tcpip.Route{Destination: subnet(p.Masked()), NIC: id})
	}
	if opts.Gateway.IsValid() {
		def := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if opts.Gateway.Is6() {
			def = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		gw := tcpip.AddrFromSlice(opts.Gateway.AsSlice())
		st.setRoute(ifc, routeKey{origin: Static, dst: subnet(def), gw: gw}, tcpip.Route{Destination: subnet(def), Gateway: gw, NIC: id})
	}
	for _, r := range opts.Routes {
		if !r.Dst.IsValid() {
			return ifc, fmt.Errorf("%w: route %v", ErrBadAddress, r.Dst)
		}
		tr := tcpip.Route{Destination: subnet(r.Dst), NIC: id}
		if r.Via.IsValid() && !r.Via.IsUnspecified() {
			tr.Gateway = tcpip.AddrFromSlice(r.Via.AsSlice())
		}
		st.setRoute(ifc, routeKey{origin: Static, dst: tr.Destination, gw: tr.Gateway}, tr)
	}
	if len(opts.DNS) > 0 {
		st.setDNS(ifc, routeKey{origin: Static}, opts.DNS)
	}
	if err := st.s.EnableNIC(id); err != nil {
		return ifc, tcpipErr("enable NIC", err)
	}

	ifc.done = make(chan struct{})
	if hasV4 || opts.DisableDHCP {
		close(ifc.done)
		return ifc, nil
	}
	ifc.dhcpT = newDHCPTransport(ep)
	c, err := dhcp4.NewClient(dhcp4.Config{
		MAC:       n.MAC(),
		Hostname:  st.cfg.Hostname,
		Transport: ifc.dhcpT,
		OnBound:   func(prev, l dhcp4.Lease) { st.applyLease(ifc, prev, l) },
		OnExpired: func(l dhcp4.Lease) { st.dropLease(ifc, l) },
		Logf:      st.cfg.Logf,
	})
	if err != nil {
		return ifc, err
	}
	ifc.dhcp = c
	ctx, cancel := context.WithCancel(context.Background())
	ifc.cancel = cancel
	go func() {
		defer close(ifc.done)
		_ = c.Run(ctx)
	}()
	return ifc, nil
}

func subnet(p netip.Prefix) tcpip.Subnet {
	p = p.Masked()
	a := tcpip.AddrFromSlice(p.Addr().AsSlice())
	bits := p.Bits()
	n := p.Addr().BitLen()
	mask := make([]byte, n/8)
	for i := range mask {
		switch {
		case bits >= 8:
			mask[i] = 0xff
			bits -= 8
		case bits > 0:
			mask[i] = byte(0xff << (8 - bits))
			bits = 0
		}
	}
	s, err := tcpip.NewSubnet(a, tcpip.MaskFromBytes(mask))
	if err != nil {
		panic(err) // unreachable: a masked netip.Prefix is a valid subnet
	}
	return s
}

func toPrefix(a tcpip.AddressWithPrefix) netip.Prefix {
	ip, _ := netip.AddrFromSlice(a.Address.AsSlice())
	return netip.PrefixFrom(ip, a.PrefixLen)
}

func (st *Stack) addAddress(ifc *Interface, p netip.Prefix, o Origin) error {
	proto := ipv4.ProtocolNumber
	if p.Addr().Is6() {
		proto = ipv6.ProtocolNumber
	}
	pa := tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: tcpip.AddressWithPrefix{
		Address: tcpip.AddrFromSlice(p.Addr().AsSlice()), PrefixLen: p.Bits()}}
	if err := st.s.AddProtocolAddress(ifc.id, pa, stack.AddressProperties{}); err != nil {
		return tcpipErr("add address "+p.String(), err)
	}
	st.noteAddress(Address{NIC: int(ifc.id), Prefix: p, Origin: o}, true)
	return nil
}

func (st *Stack) removeAddress(ifc *Interface, p netip.Prefix, o Origin) {
	_ = st.s.RemoveAddress(ifc.id, tcpip.AddrFromSlice(p.Addr().AsSlice()))
	st.noteAddress(Address{NIC: int(ifc.id), Prefix: p, Origin: o}, false)
}

// noteAddress records an address change and tells watchers and waiters.
func (st *Stack) noteAddress(a Address, added bool) {
	st.mu.Lock()
	if added {
		st.origins[a.Prefix] = a
	} else {
		delete(st.origins, a.Prefix)
	}
	close(st.changed)
	st.changed = make(chan struct{})
	st.mu.Unlock()
	kind := AddressRemoved
	if added {
		kind = AddressAdded
	}
	st.logf("netstack: nic %d: %v %v (%v)", a.NIC, kind, a.Prefix, a.Origin)
	st.emit(Event{Kind: kind, NIC: a.NIC, Address: a})
}

// setRoute adds or replaces (r zero: removes) one route and rebuilds the
// gVisor route table: more specific prefixes first.
func (st *Stack) setRoute(ifc *Interface, k routeKey, r tcpip.Route) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if r == (tcpip.Route{}) {
		delete(ifc.routes, k)
	} else {
		ifc.routes[k] = r
	}
	st.rebuildRoutesLocked()
}

// rebuildRoutesLocked installs the union of all interfaces' routes in
// gVisor, more specific prefixes first. st.mu is held.
func (st *Stack) rebuildRoutesLocked() {
	var table []tcpip.Route
	for _, i := range st.ifaces {
		for _, r := range i.routes {
			table = append(table, r)
		}
	}
	sortRoutes(table)
	st.s.SetRouteTable(table)
}

func sortRoutes(t []tcpip.Route) {
	less := func(a, b tcpip.Route) bool {
		if a.Destination.Prefix() != b.Destination.Prefix() {
			return a.Destination.Prefix() > b.Destination.Prefix()
		}
		return a.NIC < b.NIC
	}
	for i := 1; i < len(t); i++ {
		for j := i; j > 0 && less(t[j], t[j-1]); j-- {
			t[j], t[j-1] = t[j-1], t[j]
		}
	}
}

func (st *Stack) setDNS(ifc *Interface, k routeKey, servers []netip.Addr) {
	st.mu.Lock()
	if len(servers) == 0 {
		delete(ifc.dns, k)
	} else {
		ifc.dns[k] = append([]netip.Addr(nil), servers...)
	}
	st.mu.Unlock()
	st.emit(Event{Kind: DNSChanged, NIC: int(ifc.id)})
}

// applyLease runs on the DHCP client's goroutine after each ACK. The
// address goes in last, so that whoever waits for it (WaitAddress) finds
// the routes, DNS servers, MTU and WireServer of the lease already in place.
func (st *Stack) applyLease(ifc *Interface, prev, l dhcp4.Lease) {
	if prev.Addr.IsValid() && prev.Addr != l.Addr {
		st.removeAddress(ifc, prev.Addr, DHCP)
	}
	if l.MTU >= 576 && l.MTU < ifc.nic.MTU() {
		ifc.ep.SetMTU(uint32(l.MTU))
	} else {
		ifc.ep.SetMTU(uint32(ifc.nic.MTU()))
	}
	st.mu.Lock()
	ifc.wireSrv = l.WireServer
	st.mu.Unlock()
	st.setDNS(ifc, routeKey{origin: DHCP}, l.DNS)
	st.replaceRoutes(ifc, DHCP, leaseRoutes(ifc.id, l))
	if prev.Addr != l.Addr {
		if err := st.addAddress(ifc, l.Addr, DHCP); err != nil {
			st.logf("netstack: %v", err)
			return
		}
	}
	st.emit(Event{Kind: LeaseBound, NIC: int(ifc.id), Lease: l})
}

// leaseRoutes is the on-link route of the lease's subnet plus either its
// classless static routes or, without them, a default route via the first
// router (RFC 3442 §3).
func leaseRoutes(id tcpip.NICID, l dhcp4.Lease) []tcpip.Route {
	rs := []tcpip.Route{{Destination: subnet(l.Addr), NIC: id}}
	if len(l.Routes) > 0 {
		for _, r := range l.Routes {
			tr := tcpip.Route{Destination: subnet(r.Dst), NIC: id}
			if r.Via.Is4() && !r.Via.IsUnspecified() {
				tr.Gateway = tcpip.AddrFrom4(r.Via.As4())
			}
			rs = append(rs, tr)
		}
		return rs
	}
	if len(l.Routers) > 0 && l.Routers[0].Is4() {
		rs = append(rs, tcpip.Route{Destination: subnet(netip.PrefixFrom(netip.IPv4Unspecified(), 0)),
			Gateway: tcpip.AddrFrom4(l.Routers[0].As4()), NIC: id})
	}
	return rs
}

// replaceRoutes replaces all of ifc's routes of origin o.
func (st *Stack) replaceRoutes(ifc *Interface, o Origin, rs []tcpip.Route) {
	st.mu.Lock()
	for k := range ifc.routes {
		if k.origin == o {
			delete(ifc.routes, k)
		}
	}
	for _, r := range rs {
		ifc.routes[routeKey{origin: o, dst: r.Destination, gw: r.Gateway}] = r
	}
	st.rebuildRoutesLocked()
	st.mu.Unlock()
}

// Routes returns the routing table, most specific first.
func (st *Stack) Routes() []Route {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []Route
	for _, ifc := range st.ifaces {
		for k, r := range ifc.routes {
			id := r.Destination.ID()
			ip, _ := netip.AddrFromSlice(id.AsSlice())
			rt := Route{NIC: int(r.NIC), Dst: netip.PrefixFrom(ip, r.Destination.Prefix()), Origin: k.origin}
			if gw := r.Gateway; gw.Len() > 0 {
				rt.Via, _ = netip.AddrFromSlice(gw.AsSlice())
			}
			out = append(out, rt)
		}
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && (out[j].Dst.Bits() > out[j-1].Dst.Bits() ||
			out[j].Dst.Bits() == out[j-1].Dst.Bits() && out[j].Dst.Addr().Less(out[j-1].Dst.Addr())); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func (st *Stack) dropLease(ifc *Interface, l dhcp4.Lease) {
	st.mu.Lock()
	ifc.wireSrv = netip.Addr{}
	st.mu.Unlock()
	st.replaceRoutes(ifc, DHCP, nil)
	st.setDNS(ifc, routeKey{origin: DHCP}, nil)
	st.removeAddress(ifc, l.Addr, DHCP)
	ifc.ep.SetMTU(uint32(ifc.nic.MTU()))
}

// Addresses returns every address assigned to the stack's interfaces.
func (st *Stack) Addresses() []Address {
	all := st.s.AllAddresses()
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []Address
	for id, list := range all {
		for _, pa := range list {
			p := toPrefix(pa.AddressWithPrefix)
			if p.Addr() == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
				continue // gVisor's IPv4 endpoint holds the limited broadcast address
			}
			a, ok := st.origins[p]
			if !ok {
				a = Address{NIC: int(id), Prefix: p, Origin: SLAAC}
				if p.Addr().IsLinkLocalUnicast() {
					a.Origin = LinkLocal
				}
			}
			out = append(out, a)
		}
	}
	return out
}

// DNSServers returns the configured DNS servers, static ones first.
func (st *Stack) DNSServers() []netip.Addr {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, o := range []Origin{Static, DHCP, SLAAC} {
		for id := tcpip.NICID(1); id < st.nextID; id++ {
			ifc := st.ifaces[id]
			if ifc == nil {
				continue
			}
			for k, list := range ifc.dns {
				if k.origin != o {
					continue
				}
				for _, a := range list {
					if !seen[a] {
						seen[a] = true
						out = append(out, a)
					}
				}
			}
		}
	}
	return out
}

// WireServer returns the Azure WireServer address from DHCP option 245 of
// any interface, if a server sent one.
func (st *Stack) WireServer() (netip.Addr, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, ifc := range st.ifaces {
		if ifc.wireSrv.IsValid() {
			return ifc.wireSrv, true
		}
	}
	return netip.Addr{}, false
}

// WaitAddress waits until an interface has an IPv4 address or a global
// IPv6 address, and returns it.
func (st *Stack) WaitAddress(ctx context.Context) (Address, error) {
	for {
		st.mu.Lock()
		ch, closed := st.changed, st.closed
		st.mu.Unlock()
		if closed {
			return Address{}, ErrClosed
		}
		for _, a := range st.Addresses() {
			if a.Prefix.Addr().Is4() || a.Prefix.Addr().IsGlobalUnicast() && a.Origin != LinkLocal {
				return a, nil
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return Address{}, ctx.Err()
		}
	}
}

// Close releases DHCP leases (waiting at most a second for each send),
// removes the interfaces and stops the stack. Close is idempotent.
func (st *Stack) Close() error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return nil
	}
	st.closed = true
	ifaces := make([]*Interface, 0, len(st.ifaces))
	for _, i := range st.ifaces {
		ifaces = append(ifaces, i)
	}
	close(st.changed)
	st.changed = make(chan struct{})
	st.mu.Unlock()
	var errs []error
	for _, ifc := range ifaces {
		if ifc.cancel != nil {
			ifc.cancel()
			<-ifc.done
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if err := ifc.dhcp.Release(ctx); err != nil && !errors.Is(err, dhcp4.ErrNoLease) {
				errs = append(errs, fmt.Errorf("netstack: release lease on nic %d: %w", ifc.id, err))
			}
			cancel()
		}
		ifc.nic.SetLinkHandler(nil)
		ifc.nic.SetNetworkChangeHandler(nil)
	}
	for _, ifc := range ifaces {
		ifc.ep.cancel() // senders waiting for a writable queue give up
	}
	st.s.Close()
	for _, ifc := range ifaces {
		ifc.ep.Close()
	}
	st.s.Wait()
	st.work.close()
	st.mu.Lock()
	for w := range st.watchers {
		w.closeLocked()
	}
	st.mu.Unlock()
	return errors.Join(errs...)
}
