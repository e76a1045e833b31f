package kernel

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/netstack"
	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/simhost"
)

// TestNICRescindRemovesInterface: when the host rescinds the NIC, a read
// blocked on a connection through it fails at once (no deadline set), the
// address leaves the stack and KVP's list, a new dial fails without
// waiting for its deadline, and the kernel still shuts down cleanly.
func TestNICRescindRemovesInterface(t *testing.T) {
	m, err := simhost.New(simhost.Config{Profile: hvsim.WS2022})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k, err := Start(ctx, Config{Platform: func() (hv.Platform, error) { return m.Host.Platform(), nil }, Log: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Net().WaitAddress(ctx); err != nil {
		t.Fatalf("no address: %v", err)
	}
	ln, err := m.Peer.ListenTCP(7001)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	peer := fmt.Sprintf("%s:7001", simhost.PeerAddr.Addr())
	g, err := k.Dial(ctx, "tcp", peer)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	readErr := make(chan error, 1)
	go func() {
		_, err := g.Read(make([]byte, 1))
		readErr <- err
	}()
	w := k.Net().Watch()
	defer w.Close()

	if err := m.NIC.Rescind(); err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for the interface to go: %v", err)
		}
		if ev.Kind == netstack.InterfaceRemoved {
			break
		}
	}
	select {
	case err := <-readErr:
		if err == nil {
			t.Error("read through the rescinded NIC succeeded")
		}
	case <-ctx.Done():
		t.Fatal("read through the rescinded NIC still blocked")
	}
	if a := k.Net().Addresses(); len(a) != 0 {
		t.Errorf("addresses after the only NIC went: %+v", a)
	}
	if a := k.addrs.Load(); a != nil && len(*a) != 0 {
		t.Errorf("KVP still lists %v", *a)
	}
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	start := time.Now()
	if c, err := k.Dial(dctx, "tcp", peer); err == nil {
		c.Close()
		t.Error("dial after the rescind succeeded")
	} else if dctx.Err() != nil {
		t.Errorf("dial after the rescind waited for its deadline: %v", err)
	}
	dcancel()
	t.Logf("dial after the rescind failed in %v", time.Since(start))
	if err := k.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
