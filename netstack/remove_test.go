package netstack_test

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/gohv/gohv/netstack"
	"github.com/gohv/gohv/netstack/nictest"
)

// TestRemoveInterface removes one of two interfaces, as the kernel does
// when the host rescinds a NIC: a connection through it fails at once,
// its configuration goes with events, and the other interface still
// serves a listener on the unspecified address.
func TestRemoveInterface(t *testing.T) {
	var (
		macC = [6]byte{0x02, 0, 0, 0, 0, 0xc}
		macD = [6]byte{0x02, 0, 0, 0, 0, 0xd}
		ipC  = netip.MustParsePrefix("10.1.0.1/24")
		ipD  = netip.MustParsePrefix("10.1.0.2/24")
		dns  = netip.MustParseAddr("10.0.0.53")
	)
	na, nb := nictest.Pair(nictest.Config{MAC: macA}, nictest.Config{MAC: macB})
	nc, nd := nictest.Pair(nictest.Config{MAC: macC}, nictest.Config{MAC: macD})
	for _, n := range []*nictest.NIC{na, nb, nc, nd} {
		defer n.Close()
	}
	newStack := func() *netstack.Stack {
		s, err := netstack.New(netstack.Config{DisableIPv6: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b, d := newStack(), newStack(), newStack()
	ifcA, err := a.AddNIC(na, netstack.NICOptions{Static: []netip.Prefix{ipA}, DNS: []netip.Addr{dns}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddNIC(nc, netstack.NICOptions{Static: []netip.Prefix{ipC}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddNIC(nb, netstack.NICOptions{Static: []netip.Prefix{ipB}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddNIC(nd, netstack.NICOptions{Static: []netip.Prefix{ipD}}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lb, err := b.Listen("tcp4", ":5001")
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	go func() {
		c, err := lb.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c) // holds the connection open
		}
	}()
	conn, err := a.Dial(ctx, "tcp4", ipB.Addr().String()+":5001")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	readErr := make(chan error, 1)
	go func() {
		_, err := conn.Read(make([]byte, 1))
		readErr <- err
	}()
	la, err := a.Listen("tcp4", ":80")
	if err != nil {
		t.Fatal(err)
	}
	defer la.Close()

	w := a.Watch()
	defer w.Close()
	if err := a.RemoveInterface(ifcA); err != nil {
		t.Fatalf("RemoveInterface: %v", err)
	}
	var kinds []netstack.EventKind
	for len(kinds) == 0 || kinds[len(kinds)-1] != netstack.InterfaceRemoved {
		ev, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("events so far %v: %v", kinds, err)
		}
		if ev.NIC != ifcA.ID() {
			t.Errorf("event %+v names another interface", ev)
		}
		if ev.Kind == netstack.AddressRemoved && ev.Address.Prefix != ipA {
			t.Errorf("removed address %v, want %v", ev.Address.Prefix, ipA)
		}
		kinds = append(kinds, ev.Kind)
	}
	want := []netstack.EventKind{netstack.AddressRemoved, netstack.DNSChanged, netstack.InterfaceRemoved}
	if len(kinds) != len(want) || kinds[0] != want[0] || kinds[1] != want[1] {
		t.Errorf("events %v, want %v", kinds, want)
	}

	// The blocked read fails now, long before any TCP timeout.
	select {
	case err := <-readErr:
		if err == nil {
			t.Error("read on a connection through the removed interface succeeded")
		}
	case <-ctx.Done():
		t.Fatal("read on a connection through the removed interface still blocked")
	}
	if _, err := conn.Write([]byte("x")); err == nil {
		t.Error("write on an aborted connection succeeded")
	}
	for _, got := range a.Addresses() {
		if got.NIC == ifcA.ID() {
			t.Errorf("address %+v left on the removed interface", got)
		}
	}
	for _, r := range a.Routes() {
		if r.NIC == ifcA.ID() {
			t.Errorf("route %+v left on the removed interface", r)
		}
	}
	if got := a.DNSServers(); len(got) != 0 {
		t.Errorf("DNS servers %v after their interface went", got)
	}
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = a.Dial(dctx, "tcp4", ipB.Addr().String()+":5001")
	dcancel()
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("dial through the removed interface: %v, want an immediate error", err)
	}
	if err := a.RemoveInterface(ifcA); !errors.Is(err, netstack.ErrUnknownInterface) {
		t.Errorf("second RemoveInterface: %v, want ErrUnknownInterface", err)
	}

	// The other interface still serves the listener on the unspecified address.
	go func() {
		c, err := la.Accept()
		if err == nil {
			c.Write([]byte("still here"))
			c.Close()
		}
	}()
	c, err := d.Dial(ctx, "tcp4", ipC.Addr().String()+":80")
	if err != nil {
		t.Fatalf("dial through the remaining interface: %v", err)
	}
	got, err := io.ReadAll(c)
	c.Close()
	if string(got) != "still here" {
		t.Fatalf("read %q, %v through the remaining interface", got, err)
	}
}
