package netstack

import (
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// ndpDispatcher receives gVisor's NDP events (router advertisements, SLAAC)
// and applies them through the stack's serializer: gVisor calls it with
// its own locks held and forbids calling back into the stack.
type ndpDispatcher Stack

var _ ipv6.NDPDispatcher = (*ndpDispatcher)(nil)

func (d *ndpDispatcher) st() *Stack { return (*Stack)(d) }

func (d *ndpDispatcher) iface(id tcpip.NICID) *Interface {
	st := d.st()
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.ifaces[id]
}

func (d *ndpDispatcher) route(id tcpip.NICID, k routeKey, r tcpip.Route) {
	d.st().work.do(func() {
		if ifc := d.iface(id); ifc != nil {
			d.st().setRoute(ifc, k, r)
		}
	})
}

func (d *ndpDispatcher) OnDuplicateAddressDetectionResult(tcpip.NICID, tcpip.Address, stack.DADResult) {
}

func (d *ndpDispatcher) OnOffLinkRouteUpdated(id tcpip.NICID, s tcpip.Subnet, gw tcpip.Address, _ header.NDPRoutePreference) {
	d.route(id, routeKey{origin: SLAAC, dst: s, gw: gw}, tcpip.Route{Destination: s, Gateway: gw, NIC: id})
}

func (d *ndpDispatcher) OnOffLinkRouteInvalidated(id tcpip.NICID, s tcpip.Subnet, gw tcpip.Address) {
	d.route(id, routeKey{origin: SLAAC, dst: s, gw: gw}, tcpip.Route{})
}

func (d *ndpDispatcher) OnOnLinkPrefixDiscovered(id tcpip.NICID, s tcpip.Subnet) {
	d.route(id, routeKey{origin: SLAAC, dst: s}, tcpip.Route{Destination: s, NIC: id})
}

func (d *ndpDispatcher) OnOnLinkPrefixInvalidated(id tcpip.NICID, s tcpip.Subnet) {
	d.route(id, routeKey{origin: SLAAC, dst: s}, tcpip.Route{})
}

func (d *ndpDispatcher) OnAutoGenAddress(id tcpip.NICID, a tcpip.AddressWithPrefix) stack.AddressDispatcher {
	p := toPrefix(a)
	o := SLAAC
	if p.Addr().IsLinkLocalUnicast() {
		o = LinkLocal
	}
	d.st().work.do(func() { d.st().noteAddress(Address{NIC: int(id), Prefix: p, Origin: o}, true) })
	return nil
}

func (d *ndpDispatcher) OnAutoGenAddressDeprecated(tcpip.NICID, tcpip.AddressWithPrefix) {}

func (d *ndpDispatcher) OnAutoGenAddressInvalidated(id tcpip.NICID, a tcpip.AddressWithPrefix) {
	p := toPrefix(a)
	o := SLAAC
	if p.Addr().IsLinkLocalUnicast() {
		o = LinkLocal
	}
	d.st().work.do(func() { d.st().noteAddress(Address{NIC: int(id), Prefix: p, Origin: o}, false) })
}

func (d *ndpDispatcher) OnRecursiveDNSServerOption(id tcpip.NICID, addrs []tcpip.Address, _ time.Duration) {
	list := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.AsSlice()); ok {
			list = append(list, ip)
		}
	}
	d.st().work.do(func() {
		if ifc := d.iface(id); ifc != nil {
			d.st().setDNS(ifc, routeKey{origin: SLAAC}, list)
		}
	})
}

func (d *ndpDispatcher) OnDNSSearchListOption(tcpip.NICID, []string, time.Duration) {}

func (d *ndpDispatcher) OnDHCPv6Configuration(tcpip.NICID, ipv6.DHCPv6ConfigurationFromNDPRA) {}
