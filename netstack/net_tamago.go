//go:build tamago

package netstack

import (
	"context"
	"net"
	"net/netip"
)

// InstallNet makes Go's own net package use this stack on GOOS=tamago:
// net.Dial, net.Listen, net/http and the resolver all go through Socket.
// It sets net.SocketFunc and keeps net's default name servers (used in the
// absence of /etc/resolv.conf) equal to DNSServers until the stack closes.
// Call it once per program: net.SocketFunc is process-wide.
func (st *Stack) InstallNet() {
	net.SocketFunc = st.Socket
	setNS(st.DNSServers())
	w := st.Watch()
	go func() {
		defer w.Close()
		for {
			ev, err := w.Next(context.Background())
			if err != nil {
				return
			}
			if ev.Kind == DNSChanged {
				setNS(st.DNSServers())
			}
		}
	}()
}

func setNS(servers []netip.Addr) {
	ns := make([]string, 0, len(servers))
	for _, s := range servers {
		ns = append(ns, netip.AddrPortFrom(s, 53).String())
	}
	net.SetDefaultNS(ns)
}
