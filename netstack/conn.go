package netstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
)

// parseHostPort splits address into an IP (zero for an empty host) and a
// port. Host names are resolved through the stack's resolver.
func (st *Stack) parseHostPort(ctx context.Context, network, address string) ([]netip.AddrPort, error) {
	host, ps, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadAddress, err)
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		p, lerr := net.LookupPort(network, ps)
		if lerr != nil {
			return nil, fmt.Errorf("%w: port %q", ErrBadAddress, ps)
		}
		port = uint64(p)
	}
	if host == "" {
		return []netip.AddrPort{netip.AddrPortFrom(netip.Addr{}, uint16(port))}, nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.AddrPort{netip.AddrPortFrom(ip.Unmap(), uint16(port))}, nil
	}
	fam := "ip"
	switch network[len(network)-1] {
	case '4':
		fam = "ip4"
	case '6':
		fam = "ip6"
	}
	ips, err := st.Resolver().LookupNetIP(ctx, fam, host)
	if err != nil {
		return nil, err
	}
	out := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range ips {
		out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(port)))
	}
	return out, nil
}

// fullAddr converts ap to gVisor's form and picks the network protocol:
// from the address, or from the network suffix for an unspecified one
// (plain "tcp"/"udp" with no host means IPv4).
func fullAddr(network string, ap netip.AddrPort) (tcpip.FullAddress, tcpip.NetworkProtocolNumber, error) {
	var fa tcpip.FullAddress
	fa.Port = ap.Port()
	ip := ap.Addr()
	want6 := network[len(network)-1] == '6'
	want4 := network[len(network)-1] == '4'
	switch {
	case !ip.IsValid():
		if want6 {
			return fa, ipv6.ProtocolNumber, nil
		}
		return fa, ipv4.ProtocolNumber, nil
	case ip.Is4():
		if want6 {
			return fa, 0, fmt.Errorf("%w: %v on %s", ErrBadAddress, ip, network)
		}
		if !ip.IsUnspecified() {
			fa.Addr = tcpip.AddrFrom4(ip.As4())
		}
		return fa, ipv4.ProtocolNumber, nil
	default:
		if want4 {
			return fa, 0, fmt.Errorf("%w: %v on %s", ErrBadAddress, ip, network)
		}
		if !ip.IsUnspecified() {
			fa.Addr = tcpip.AddrFrom16(ip.As16())
		}
		return fa, ipv6.ProtocolNumber, nil
	}
}

func checkNetwork(network string, tcp bool) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
		if tcp {
			return nil
		}
	case "udp", "udp4", "udp6":
		if !tcp {
			return nil
		}
	}
	return net.UnknownNetworkError(network)
}

// Listen announces on the stack: network "tcp", "tcp4" or "tcp6"; address
// "host:port" with a literal IP or an empty host.
func (st *Stack) Listen(network, address string) (net.Listener, error) {
	if err := checkNetwork(network, true); err != nil {
		return nil, err
	}
	aps, err := st.parseHostPort(context.Background(), network, address)
	if err != nil {
		return nil, err
	}
	fa, proto, err := fullAddr(network, aps[0])
	if err != nil {
		return nil, err
	}
	l, err := gonet.ListenTCP(st.s, fa, proto)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// ListenPacket opens an unconnected UDP socket: network "udp", "udp4" or
// "udp6".
func (st *Stack) ListenPacket(network, address string) (net.PacketConn, error) {
	if err := checkNetwork(network, false); err != nil {
		return nil, err
	}
	aps, err := st.parseHostPort(context.Background(), network, address)
	if err != nil {
		return nil, err
	}
	fa, proto, err := fullAddr(network, aps[0])
	if err != nil {
		return nil, err
	}
	c, err := gonet.DialUDP(st.s, &fa, nil, proto)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Dial connects over the stack: TCP or UDP networks, "host:port" where host
// is an IP literal or a name resolved with Resolver. Each resolved address
// is tried in turn until one connects or ctx is done.
func (st *Stack) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	tcp := network != "" && network[0] == 't'
	if err := checkNetwork(network, tcp); err != nil {
		return nil, err
	}
	aps, err := st.parseHostPort(ctx, network, address)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, ap := range aps {
		if !ap.Addr().IsValid() {
			errs = append(errs, fmt.Errorf("%w: no host in %q", ErrBadAddress, address))
			continue
		}
		fa, proto, err := fullAddr(network, ap)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if tcp {
			c, err := gonet.DialContextTCP(ctx, st.s, fa, proto)
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
		} else {
			c, err := gonet.DialUDP(st.s, nil, &fa, proto)
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, &net.OpError{Op: "dial", Net: network, Err: errors.Join(errs...)}
}

// Resolver returns a pure-Go resolver whose queries go through this stack
// to its DNS servers (DNSServers), whatever resolv.conf says.
func (st *Stack) Resolver() *net.Resolver {
	var next atomic.Uint32
	return &net.Resolver{
		PreferGo:     true,
		StrictErrors: false,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			servers := st.DNSServers()
			if len(servers) == 0 {
				return nil, ErrNoDNS
			}
			s := servers[int(next.Add(1)-1)%len(servers)]
			return st.Dial(ctx, network, netip.AddrPortFrom(s, 53).String())
		},
	}
}

// Socket implements the tamago net.SocketFunc hook (see InstallNet): it
// returns a net.Conn, net.PacketConn or net.Listener for Go's net package.
// family is syscall.AF_INET or AF_INET6; sotype SOCK_STREAM or SOCK_DGRAM;
// a local address without a remote one means listen (TCP) or an unconnected
// socket (UDP).
func (st *Stack) Socket(ctx context.Context, network string, family, sotype int, laddr, raddr net.Addr) (any, error) {
	var proto tcpip.NetworkProtocolNumber
	switch family {
	case syscall.AF_INET:
		proto = ipv4.ProtocolNumber
	case syscall.AF_INET6:
		proto = ipv6.ProtocolNumber
	default:
		return nil, syscall.EAFNOSUPPORT
	}
	la, err := sockAddr(laddr, proto)
	if err != nil {
		return nil, err
	}
	ra, err := sockAddr(raddr, proto)
	if err != nil {
		return nil, err
	}
	var (
		c  any
		ok bool
	)
	switch sotype {
	case syscall.SOCK_STREAM:
		switch {
		case ra == nil:
			if la == nil {
				la = &tcpip.FullAddress{}
			}
			l, lerr := gonet.ListenTCP(st.s, *la, proto)
			c, ok, err = l, lerr == nil, lerr
		case la != nil && (la.Addr.Len() > 0 || la.Port != 0):
			conn, derr := gonet.DialTCPWithBind(ctx, st.s, *la, *ra, proto)
			c, ok, err = conn, derr == nil, derr
		default:
			conn, derr := gonet.DialContextTCP(ctx, st.s, *ra, proto)
			c, ok, err = conn, derr == nil, derr
		}
	case syscall.SOCK_DGRAM:
		conn, derr := gonet.DialUDP(st.s, la, ra, proto)
		c, ok, err = conn, derr == nil, derr
	default:
		return nil, syscall.ESOCKTNOSUPPORT
	}
	if !ok {
		return nil, err // no typed nil inside the interface
	}
	return c, nil
}

// sockAddr converts a *net.TCPAddr or *net.UDPAddr; nil stays nil.
func sockAddr(a net.Addr, proto tcpip.NetworkProtocolNumber) (*tcpip.FullAddress, error) {
	var (
		ip   net.IP
		port int
	)
	switch a := a.(type) {
	case nil:
		return nil, nil
	case *net.TCPAddr:
		if a == nil {
			return nil, nil
		}
		ip, port = a.IP, a.Port
	case *net.UDPAddr:
		if a == nil {
			return nil, nil
		}
		ip, port = a.IP, a.Port
	default:
		return nil, fmt.Errorf("%w: %T", ErrBadAddress, a)
	}
	fa := &tcpip.FullAddress{Port: uint16(port)}
	if len(ip) == 0 || ip.IsUnspecified() {
		return fa, nil
	}
	if proto == ipv4.ProtocolNumber {
		v4 := ip.To4()
		if v4 == nil {
			return nil, fmt.Errorf("%w: %v is not IPv4", ErrBadAddress, ip)
		}
		fa.Addr = tcpip.AddrFrom4Slice(v4)
		return fa, nil
	}
	fa.Addr = tcpip.AddrFrom16Slice(ip.To16())
	return fa, nil
}
