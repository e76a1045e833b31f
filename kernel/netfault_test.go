package kernel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gohv/gohv/drivers/netvsc"
	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/simhost"
)

// The NetVSP fault suite (issue 8): the whole guest stack (kernel, gVisor
// netstack, netvsc, VMBus) against the simulated host's NetVSP with each of
// its faults injected, checked with TCP transfers to the in-process peer.
// Every wait is bounded by faultWait; a test that reaches it fails.

const (
	faultWait     = 8 * time.Second // bound on every operation
	faultTransfer = 1 << 20         // bytes each way
	faultPort     = 5002
)

// faultMachine is a simulated machine with a started kernel that has its
// DHCP address.
type faultMachine struct {
	m    *simhost.Machine
	k    *Kernel
	port uint16 // the next connPair's peer port
}

func startFaultMachine(t *testing.T) *faultMachine {
	t.Helper()
	m, err := simhost.New(simhost.Config{Profile: hvsim.WS2022})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), faultWait)
	defer cancel()
	k, err := Start(ctx, Config{Platform: func() (hv.Platform, error) { return m.Host.Platform(), nil }, Log: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	fm := &faultMachine{m: m, k: k, port: faultPort}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), faultWait)
		defer cancel()
		if err := k.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	a, err := k.Net().WaitAddress(ctx)
	if err != nil {
		t.Fatalf("no address: %v", err)
	}
	if a.Prefix.Addr() != simhost.GuestAddr {
		t.Fatalf("address %v, want %v", a.Prefix, simhost.GuestAddr)
	}
	return fm
}

// pattern returns n bytes of a position-dependent pattern seeded by seed, so
// that lost, duplicated or reordered bytes show.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// connPair dials from the guest to the peer and returns both ends (guest,
// peer), each with a deadline of faultWait from now.
func (fm *faultMachine) connPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	port := fm.port
	fm.port++
	ln, err := fm.m.Peer.ListenTCP(port)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	ctx, cancel := context.WithTimeout(context.Background(), faultWait)
	defer cancel()
	g, err := fm.k.Dial(ctx, "tcp", fmt.Sprintf("%s:%d", simhost.PeerAddr.Addr(), port))
	if err != nil {
		t.Fatalf("guest dial: %v", err)
	}
	t.Cleanup(func() { g.Close() })
	var p net.Conn
	select {
	case p = <-accepted:
	case <-ctx.Done():
	}
	if p == nil {
		t.Fatal("peer accept failed or timed out")
	}
	t.Cleanup(func() { p.Close() })
	dl := time.Now().Add(faultWait)
	g.SetDeadline(dl)
	p.SetDeadline(dl)
	return g, p
}

// send writes data on w and reads it on r concurrently, and returns an
// error unless every byte arrived intact. hook, if not nil, runs once after
// the first half has been read (to inject a fault mid-stream) and its error
// ends the transfer.
func send(w, r net.Conn, data []byte, hook func() error) error {
	werr := make(chan error, 1)
	go func() {
		_, err := w.Write(data)
		werr <- err
	}()
	got := make([]byte, len(data))
	half := len(data) / 2
	if _, err := io.ReadFull(r, got[:half]); err != nil {
		return fmt.Errorf("read first half: %w", err)
	}
	if hook != nil {
		if err := hook(); err != nil {
			return err
		}
	}
	if _, err := io.ReadFull(r, got[half:]); err != nil {
		return fmt.Errorf("read second half: %w", err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if i := firstDiff(got, data); i >= 0 {
		return fmt.Errorf("byte %d: got %#x, want %#x", i, got[i], data[i])
	}
	return nil
}

func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}

// transfer moves faultTransfer bytes each way (guest→peer and peer→guest
// at once) over a fresh connection; hook runs mid-stream in the
// guest→peer direction.
func (fm *faultMachine) transfer(t *testing.T, hook func() error) {
	t.Helper()
	g, p := fm.connPair(t)
	up, down := make(chan error, 1), make(chan error, 1)
	go func() { up <- send(g, p, pattern(faultTransfer, 1), hook) }()
	go func() { down <- send(p, g, pattern(faultTransfer, 2), nil) }()
	if err := <-up; err != nil {
		t.Errorf("guest→peer: %v", err)
	}
	if err := <-down; err != nil {
		t.Errorf("peer→guest: %v", err)
	}
}

// hasAddress checks that the guest still holds its DHCP address.
func (fm *faultMachine) hasAddress(t *testing.T) {
	t.Helper()
	for _, a := range fm.k.Net().Addresses() {
		if a.Prefix.Addr() == simhost.GuestAddr {
			return
		}
	}
	t.Errorf("guest lost %v: addresses %v", simhost.GuestAddr, fm.k.Net().Addresses())
}

func (fm *faultMachine) noViolations(t *testing.T) {
	t.Helper()
	for _, v := range fm.m.Host.Violations() {
		t.Errorf("host violation: %v", v)
	}
}

// waitFor polls cond (a counter or state the host or guest exposes) until
// it holds or faultWait passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(faultWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestNetFaults(t *testing.T) {
	t.Run("none", func(t *testing.T) {
		fm := startFaultMachine(t)
		fm.transfer(t, nil)
		fm.noViolations(t)
	})
	t.Run("drop-completions", func(t *testing.T) {
		fm := startFaultMachine(t)
		// Fewer than the NIC's bounce buffers: a lost completion leaks the
		// bounce buffer of its send for good, and with every one of them
		// leaked the guest's large sends would wait forever (netvsc
		// cannot reclaim a buffer the host may still read), holding
		// gVisor's endpoint lock in the link's WritePackets, so that even
		// the connection's deadlines never fire.
		n := netvsc.DefaultBounceBuffers / 2
		fm.transfer(t, func() error {
			fm.m.NIC.Faults().DropCompletions(n)
			return nil
		})
		if got := fm.m.NIC.Stats().CompletionsLost; got != uint64(n) {
			t.Errorf("completions lost %d, want %d", got, n)
		}
		// A second transfer after the loss still completes.
		fm.transfer(t, nil)
		fm.noViolations(t)
		// The lost sends never complete: Close must not spend its whole
		// context waiting for them, and still tears everything down.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := fm.k.Close(ctx); err != nil {
			t.Errorf("Close with lost completions: %v", err)
		}
		if ctx.Err() != nil {
			t.Error("Close with lost completions used up its context")
		}
	})
	t.Run("reorder-completions", func(t *testing.T) {
		fm := startFaultMachine(t)
		fm.m.NIC.Faults().ReorderCompletions(true)
		g, p := fm.connPair(t)
		if err := send(g, p, pattern(faultTransfer, 7), nil); err != nil {
			t.Errorf("guest→peer: %v", err)
		}
		if err := send(p, g, pattern(faultTransfer, 8), nil); err != nil {
			t.Errorf("peer→guest: %v", err)
		}
		// The host holds the last completion until the next: with the
		// fault off, more traffic on the same flow releases it, so that
		// Close finds no send outstanding.
		fm.m.NIC.Faults().ReorderCompletions(false)
		if err := send(g, p, pattern(64<<10, 9), nil); err != nil {
			t.Errorf("guest→peer after reordering: %v", err)
		}
		fm.noViolations(t)
	})
	t.Run("starve-receive-buffer", func(t *testing.T) {
		fm := startFaultMachine(t)
		f := fm.m.NIC.Faults()
		fm.transfer(t, func() error {
			before := fm.m.NIC.Stats().RxBufferWaits
			f.StarveReceiveBuffer(true)
			// The guest keeps sending; its ACKs from the peer are held.
			waitFor(t, "a held frame", func() bool { return fm.m.NIC.Stats().RxBufferWaits > before })
			f.StarveReceiveBuffer(false)
			return nil
		})
		fm.noViolations(t)
	})
	t.Run("link-flap", func(t *testing.T) {
		fm := startFaultMachine(t)
		nic := fm.k.NICs.NICs()[0]
		g, p := fm.connPair(t)
		if err := send(g, p, pattern(64<<10, 3), nil); err != nil {
			t.Fatalf("before the flap: %v", err)
		}
		fm.m.NIC.SetLink(false)
		waitFor(t, "the guest to see link down", func() bool { return !nic.LinkUp() })
		// Written while the link is down: acknowledged only after it is up.
		data := pattern(1<<20, 4)
		werr := make(chan error, 1)
		go func() { _, err := g.Write(data); werr <- err }()
		fm.m.NIC.SetLink(true)
		waitFor(t, "the guest to see link up", func() bool { return nic.LinkUp() })
		got := make([]byte, len(data))
		if _, err := io.ReadFull(p, got); err != nil {
			t.Fatalf("after the flap: %v", err)
		}
		if err := <-werr; err != nil {
			t.Fatalf("guest write across the flap: %v", err)
		}
		if i := firstDiff(got, data); i >= 0 {
			t.Fatalf("after the flap: byte %d differs", i)
		}
		fm.transfer(t, nil)
		fm.hasAddress(t)
		fm.noViolations(t)
	})
	t.Run("fill-guest-ring", func(t *testing.T) {
		fm := startFaultMachine(t)
		fm.transfer(t, func() error {
			if n := fm.m.NIC.FillGuestRing(0); n == 0 {
				return errors.New("FillGuestRing wrote nothing")
			}
			return nil
		})
		fm.noViolations(t)
	})
	t.Run("network-change", func(t *testing.T) {
		fm := startFaultMachine(t)
		_, acks := fm.m.DHCPStats()
		fm.m.NIC.IndicateNetworkChange()
		waitFor(t, "a DHCP renewal", func() bool { _, a := fm.m.DHCPStats(); return a > acks })
		fm.hasAddress(t)
		fm.transfer(t, nil)
		fm.noViolations(t)
	})
	t.Run("rescind", func(t *testing.T) {
		fm := startFaultMachine(t)
		g, p := fm.connPair(t)
		if err := send(g, p, pattern(64<<10, 5), nil); err != nil {
			t.Fatalf("before the rescind: %v", err)
		}
		if err := fm.m.NIC.Rescind(); err != nil {
			t.Fatal(err)
		}
		// The guest's data can no longer leave: a write of more than the
		// socket buffers, a read, and a new dial all end with an error
		// (the deadline at the latest), never hang.
		g.SetDeadline(time.Now().Add(time.Second))
		start := time.Now()
		done := make(chan error, 1)
		go func() {
			_, err := g.Write(pattern(16<<20, 6))
			done <- err
		}()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if c, err := fm.k.Dial(ctx, "tcp", fmt.Sprintf("%s:%d", simhost.PeerAddr.Addr(), faultPort)); err == nil {
			c.Close()
			t.Error("dial after rescind succeeded")
		} else {
			t.Logf("dial after rescind: %v after %v", err, time.Since(start))
		}
		select {
		case err := <-done:
			if err == nil {
				t.Error("write after rescind succeeded")
			}
			t.Logf("write after rescind: %v after %v", err, time.Since(start))
		case <-time.After(faultWait + time.Second):
			t.Fatal("write after rescind hung past its deadline")
		}
		closed := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), faultWait)
			defer cancel()
			closed <- fm.k.Close(ctx)
		}()
		select {
		case err := <-closed:
			if err != nil {
				t.Errorf("Close after rescind: %v", err)
			}
		case <-time.After(faultWait + time.Second):
			t.Fatal("Close after rescind hung")
		}
		fm.noViolations(t)
	})
}
