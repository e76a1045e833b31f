package netstack_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/gohv/gohv/netstack"
	"github.com/gohv/gohv/netstack/nic"
	"github.com/gohv/gohv/netstack/nictest"
)

var (
	macA = [6]byte{0x02, 0, 0, 0, 0, 0xa}
	macB = [6]byte{0x02, 0, 0, 0, 0, 0xb}
	ipA  = netip.MustParsePrefix("10.0.0.1/24")
	ipB  = netip.MustParsePrefix("10.0.0.2/24")
	ip6A = netip.MustParsePrefix("fd00:1::a/64")
	ip6B = netip.MustParsePrefix("fd00:1::b/64")
)

var fullOffloads = nic.Offloads{
	TxCsumIPv4: true, TxCsumTCP4: true, TxCsumUDP4: true, TxCsumTCP6: true, TxCsumUDP6: true,
	RxCsum: true, LSOv4: true, LSOv6: true, LSOMaxSize: 62780,
}

type pairConfig struct {
	offloads nic.Offloads
	queues   int
	slots    int
}

// pair returns two stacks with static addresses ipA and ipB joined by fake
// NICs, closed at test end.
func pair(tb testing.TB, pc pairConfig) (a, b *netstack.Stack, na, nb *nictest.NIC) {
	tb.Helper()
	na, nb = nictest.Pair(
		nictest.Config{MAC: macA, Queues: pc.queues, Slots: pc.slots, Offloads: pc.offloads},
		nictest.Config{MAC: macB, Queues: pc.queues, Slots: pc.slots, Offloads: pc.offloads})
	mk := func(n *nictest.NIC, p netip.Prefix) *netstack.Stack {
		s, err := netstack.New(netstack.Config{})
		if err != nil {
			tb.Fatal(err)
		}
		p6 := ip6A
		if p == ipB {
			p6 = ip6B
		}
		if _, err := s.AddNIC(n, netstack.NICOptions{Static: []netip.Prefix{p, p6}, DisableSLAAC: true}); err != nil {
			tb.Fatal(err)
		}
		return s
	}
	a, b = mk(na, ipA), mk(nb, ipB)
	tb.Cleanup(func() {
		a.Close()
		b.Close()
		na.Close()
		nb.Close()
	})
	return a, b, na, nb
}

func checkNICs(t *testing.T, nics ...*nictest.NIC) {
	t.Helper()
	for _, n := range nics {
		if s := n.Stats(); s.BadMeta != 0 || s.BadPartialCsum != 0 {
			t.Errorf("fake NIC %x saw bad transmit metadata: %+v", n.MAC(), s)
		}
	}
}

// bulk sends size random bytes from a to b over TCP and checks them byte
// for byte.
func bulk(t *testing.T, a, b *netstack.Stack, size int) {
	t.Helper()
	bulkTo(t, a, b, ipB.Addr(), size)
}

func bulkTo(t *testing.T, a, b *netstack.Stack, to netip.Addr, size int) {
	t.Helper()
	dst := netip.AddrPortFrom(to, 5001).String()
	network := "tcp4"
	if to.Is6() {
		network = "tcp6"
	}
	l, err := b.Listen(network, ":5001") // the IPv6 address may still be tentative
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	data := make([]byte, size)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(data)
	got := make(chan []byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := a.Dial(ctx, "tcp", dst)
	for err != nil && to.Is6() && ctx.Err() == nil {
		// A static IPv6 address is tentative until duplicate address
		// detection (one probe, one second) completes.
		time.Sleep(100 * time.Millisecond)
		c, err = a.Dial(ctx, "tcp", dst)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	c.Close()
	rx := <-got
	if !bytes.Equal(rx, data) {
		t.Fatalf("received %d bytes (sha256 %x), sent %d (sha256 %x)", len(rx), sha256.Sum256(rx), len(data), sha256.Sum256(data))
	}
}

func TestTCPBulk(t *testing.T) {
	for _, tc := range []struct {
		name string
		pc   pairConfig
		gso  bool
	}{
		{"no offloads", pairConfig{}, false},
		{"checksum offload", pairConfig{offloads: nic.Offloads{TxCsumTCP4: true, TxCsumUDP4: true, RxCsum: true}}, false},
		{"checksum offload tcp only", pairConfig{offloads: nic.Offloads{TxCsumTCP6: true}}, false},
		{"LSO", pairConfig{offloads: fullOffloads}, true},
		{"LSO 4 queues", pairConfig{offloads: fullOffloads, queues: 4}, true},
		{"tiny queue back-pressure", pairConfig{slots: 2}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b, na, nb := pair(t, tc.pc)
			bulk(t, a, b, 4<<20)
			checkNICs(t, na, nb)
			s := na.Stats()
			if tc.gso && s.TxGSO == 0 {
				t.Errorf("LSO offered but no GSO frame sent: %+v", s)
			}
			if !tc.gso && s.TxGSO != 0 {
				t.Errorf("GSO frames sent without LSO: %+v", s)
			}
			if tc.pc.slots == 2 && s.TxBusy == 0 {
				t.Errorf("two-slot queue never reported busy: %+v", s)
			}
		})
	}
}

func TestTCPBulkIPv6(t *testing.T) {
	for _, tc := range []struct {
		name string
		off  nic.Offloads
	}{
		{"no offloads", nic.Offloads{}},
		{"LSO", fullOffloads},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b, na, nb := pair(t, pairConfig{offloads: tc.off, queues: 2})
			bulkTo(t, a, b, ip6B.Addr(), 2<<20)
			checkNICs(t, na, nb)
			if s := na.Stats(); (s.TxGSO != 0) != (tc.off.LSOv6) {
				t.Errorf("GSO frames %d with LSOv6 %v", s.TxGSO, tc.off.LSOv6)
			}
		})
	}
}

func TestEventsAndClose(t *testing.T) {
	na, nb := nictest.Pair(nictest.Config{MAC: macA}, nictest.Config{MAC: macB})
	defer na.Close()
	defer nb.Close()
	st, err := netstack.New(netstack.Config{DisableIPv6: true})
	if err != nil {
		t.Fatal(err)
	}
	w := st.Watch()
	ifc, err := st.AddNIC(na, netstack.NICOptions{Static: []netip.Prefix{ipA}, Gateway: netip.MustParseAddr("10.0.0.254"),
		DNS:    []netip.Addr{netip.MustParseAddr("10.0.0.53")},
		Routes: []netstack.Route{{Dst: netip.MustParsePrefix("172.16.0.0/12"), Via: netip.MustParseAddr("10.0.0.253")}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	next := func(want netstack.EventKind) netstack.Event {
		t.Helper()
		for {
			ev, err := w.Next(ctx)
			if err != nil {
				t.Fatalf("waiting for %v: %v", want, err)
			}
			if ev.Kind == want {
				return ev
			}
		}
	}
	if ev := next(netstack.AddressAdded); ev.Address != (netstack.Address{NIC: ifc.ID(), Prefix: ipA, Origin: netstack.Static}) {
		t.Errorf("event %+v", ev)
	}
	if a, err := st.WaitAddress(ctx); err != nil || a.Prefix != ipA {
		t.Errorf("WaitAddress = %+v, %v", a, err)
	}
	if got := st.Addresses(); len(got) != 1 || got[0].Prefix != ipA || got[0].Origin != netstack.Static {
		t.Errorf("Addresses() = %+v", got)
	}
	if dns := st.DNSServers(); len(dns) != 1 || dns[0] != netip.MustParseAddr("10.0.0.53") {
		t.Errorf("DNSServers() = %v", dns)
	}
	wantRoutes := []netstack.Route{
		{NIC: 1, Dst: netip.MustParsePrefix("10.0.0.0/24"), Origin: netstack.Static},
		{NIC: 1, Dst: netip.MustParsePrefix("172.16.0.0/12"), Via: netip.MustParseAddr("10.0.0.253"), Origin: netstack.Static},
		{NIC: 1, Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.0.0.254"), Origin: netstack.Static},
	}
	if got := st.Routes(); !slices.Equal(got, wantRoutes) {
		t.Errorf("Routes() = %v, want %v", got, wantRoutes)
	}
	na.SetLink(false)
	next(netstack.LinkDown)
	na.SetLink(true)
	next(netstack.LinkUp)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := w.Next(ctx); err != netstack.ErrClosed {
		t.Fatalf("watcher after Close: %v", err)
	}
	if _, err := st.WaitAddress(ctx); err != netstack.ErrClosed {
		t.Fatalf("WaitAddress after Close: %v", err)
	}
	if _, err := st.AddNIC(nb, netstack.NICOptions{}); err != netstack.ErrClosed {
		t.Fatalf("AddNIC after Close: %v", err)
	}
}

func TestHTTP(t *testing.T) {
	a, b, na, nb := pair(t, pairConfig{offloads: fullOffloads, queues: 2})
	l, err := b.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("gohv "), 100000)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s\n", r.Method, r.URL.Path)
		w.Write(body)
	})}
	go srv.Serve(l)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DialContext: a.Dial}}
	for i := range 3 { // keep-alive: the second and third reuse the connection
		resp, err := client.Get(fmt.Sprintf("http://%v/x%d", ipB.Addr(), i))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		want := append([]byte(fmt.Sprintf("GET /x%d\n", i)), body...)
		if !bytes.Equal(got, want) {
			t.Fatalf("request %d: got %d bytes, want %d", i, len(got), len(want))
		}
	}
	checkNICs(t, na, nb)
}

func TestUDPAndSocket(t *testing.T) {
	a, b, _, _ := pair(t, pairConfig{offloads: nic.Offloads{TxCsumUDP4: true, RxCsum: true}})
	pc, err := b.ListenPacket("udp4", ":9000")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	// Through the net.SocketFunc hook, as Go's net package calls it on tamago.
	ctx := context.Background()
	c, err := a.Socket(ctx, "udp4", 2 /* AF_INET */, 2 /* SOCK_DGRAM */, nil, &net.UDPAddr{IP: ipB.Addr().AsSlice(), Port: 9000})
	if err != nil {
		t.Fatal(err)
	}
	conn := c.(net.Conn)
	defer conn.Close()
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 16)
	n, from, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:n]) != "ping" || from.(*net.UDPAddr).IP.String() != ipA.Addr().String() {
		t.Fatalf("got %q from %v", buf[:n], from)
	}
	if _, err := pc.WriteTo([]byte("pong"), from); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err = conn.Read(buf)
	if err != nil || string(buf[:n]) != "pong" {
		t.Fatalf("reply %q, %v", buf[:n], err)
	}
	// A read deadline in the past fails at once with a timeout.
	conn.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := conn.Read(buf); err == nil {
		t.Fatal("read past deadline succeeded")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("read past deadline: %v, want a timeout", err)
	}
}

func TestSocketTCPListen(t *testing.T) {
	a, b, _, _ := pair(t, pairConfig{})
	ctx := context.Background()
	l, err := b.Socket(ctx, "tcp", 2, 1 /* SOCK_STREAM */, &net.TCPAddr{Port: 7}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln := l.(net.Listener)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(c, c)
			c.Close()
		}
	}()
	c, err := a.Socket(ctx, "tcp", 2, 1, nil, &net.TCPAddr{IP: ipB.Addr().AsSlice(), Port: 7})
	if err != nil {
		t.Fatal(err)
	}
	conn := c.(net.Conn)
	defer conn.Close()
	conn.Write([]byte("echo"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "echo" {
		t.Fatalf("echo %q %v", buf, err)
	}
}

func TestAddNICBadConfig(t *testing.T) {
	na, nb := nictest.Pair(nictest.Config{MAC: macA}, nictest.Config{MAC: macB})
	defer na.Close()
	defer nb.Close()
	st, err := netstack.New(netstack.Config{DisableIPv6: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = st.AddNIC(na, netstack.NICOptions{Static: []netip.Prefix{ipA}, Routes: []netstack.Route{{}}})
	if !errors.Is(err, netstack.ErrBadAddress) {
		t.Fatalf("AddNIC with an invalid route: %v, want ErrBadAddress", err)
	}
	if a := st.Addresses(); len(a) != 0 {
		t.Fatalf("failed AddNIC left addresses %v", a)
	}
	if _, err := st.AddNIC(na, netstack.NICOptions{Static: []netip.Prefix{ipA}}); err != nil {
		t.Fatalf("AddNIC after a failed one: %v", err)
	}
}
