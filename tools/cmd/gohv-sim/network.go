package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gohv/gohv/kernel"
	"github.com/gohv/gohv/tools/hvsim/simhost"
)

// showNetwork shows the guest's network at work: the address the
// simulated host's DHCP server gave it, an HTTP server in the guest that
// the host's peer stack fetches a page from, and an HTTP request from the
// guest to a server on the peer. With -tap there is no in-process peer;
// the guest's address is shown and its server keeps running for curl.
func showNetwork(ctx context.Context, w io.Writer, k *kernel.Kernel, m *simhost.Machine) (stop func(), err error) {
	st := k.Net()
	if st == nil || m.NIC == nil {
		return func() {}, nil
	}
	var addr netip.Addr
	for _, a := range st.Addresses() {
		if a.Prefix.Addr().Is4() {
			addr = a.Prefix.Addr()
		}
	}
	if !addr.IsValid() {
		return nil, errors.New("guest: no IPv4 address")
	}
	fmt.Fprintf(w, "guest: network: address %s, DNS %v\n", addr, st.DNSServers())

	// A net/http server in the guest, on the guest's stack.
	ln, err := st.Listen("tcp", ":80")
	if err != nil {
		return nil, fmt.Errorf("guest: listen :80: %w", err)
	}
	srv := &http.Server{Handler: helloHandler(addr.String())}
	go srv.Serve(ln) //nolint:errcheck // ends with Shutdown
	stop = func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx) //nolint:errcheck // best effort at the end of the demo
	}
	if m.Peer == nil {
		fmt.Fprintf(w, "guest: serving HTTP on %s:80 (try curl from the TAP side)\n", addr)
		return stop, nil
	}

	// The peer fetches the guest's page.
	peerClient := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, a string) (net.Conn, error) {
		return m.Peer.DialTCP(ctx, netip.MustParseAddrPort(a))
	}}, Timeout: 10 * time.Second}
	body, err := get(ctx, peerClient, "http://"+addr.String()+":80/")
	if err != nil {
		stop()
		return nil, fmt.Errorf("host: fetching the guest's page: %w", err)
	}
	fmt.Fprintf(w, "host: GET http://%s/ from the peer: %q\n", addr, body)

	// The guest fetches a page from a server on the peer.
	pln, err := m.Peer.ListenTCP(8080)
	if err != nil {
		stop()
		return nil, err
	}
	psrv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, "hello from the host's peer, you are %s\n", r.RemoteAddr)
	})}
	go psrv.Serve(pln) //nolint:errcheck // ends with Close
	defer psrv.Close()
	guestClient := &http.Client{Transport: &http.Transport{DialContext: st.Dial}, Timeout: 10 * time.Second}
	url := "http://" + simhost.PeerAddr.Addr().String() + ":8080/"
	body, err = get(ctx, guestClient, url)
	if err != nil {
		stop()
		return nil, fmt.Errorf("guest: fetching %s: %w", url, err)
	}
	fmt.Fprintf(w, "guest: GET %s: %q\n", url, body)
	return stop, nil
}

// helloHandler is the guest's HTTP handler.
func helloHandler(addr string) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, "hello from the gohv guest at %s\n", addr)
	})
}

// serveLinux serves helloHandler with Go's net package on Linux's own
// stack at addr until ctx is done: no VM, the baseline
// tools/scripts/bench-http.sh measures the guest's server against.
func serveLinux(ctx context.Context, w io.Writer, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(ln.Addr().String())
	srv := &http.Server{Handler: helloHandler(host)}
	go srv.Serve(ln) //nolint:errcheck // ends with Shutdown
	fmt.Fprintf(w, "linux: serving HTTP on %s\n", ln.Addr())
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

func get(ctx context.Context, c *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s", resp.Status)
	}
	return strings.TrimSpace(string(b)), nil
}
