package azurefabric

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Fabric is a WireServer and an IMDS served on a gVisor stack at Azure's
// addresses, as a VM's default gateway reaches them.
type Fabric struct {
	Wire    *WireServer
	IMDS    *IMDS
	servers []*http.Server
}

// Attach adds WireServerAddr and IMDSAddr to NIC nic of s and serves a
// new WireServer and IMDS on port 80 of each. Close stops them.
func Attach(s *stack.Stack, nic tcpip.NICID) (*Fabric, error) {
	f := &Fabric{Wire: NewWireServer(), IMDS: &IMDS{}}
	for _, ep := range []struct {
		addr netip.Addr
		h    http.Handler
	}{{WireServerAddr, f.Wire}, {IMDSAddr, f.IMDS}} {
		a := tcpip.AddrFrom4(ep.addr.As4())
		if err := s.AddProtocolAddress(nic, tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: a.WithPrefix()},
			stack.AddressProperties{}); err != nil {
			f.Close()
			return nil, fmt.Errorf("azurefabric: add %v: %s", ep.addr, err)
		}
		l, err := gonet.ListenTCP(s, tcpip.FullAddress{NIC: nic, Addr: a, Port: 80}, ipv4.ProtocolNumber)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("azurefabric: listen on %v:80: %w", ep.addr, err)
		}
		srv := &http.Server{Handler: ep.h}
		f.servers = append(f.servers, srv)
		go srv.Serve(l) //nolint:errcheck // ends with Close
	}
	return f, nil
}

// Close stops serving.
func (f *Fabric) Close() error {
	var errs []error
	for _, s := range f.servers {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}
