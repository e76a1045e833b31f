package netstack_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/gohv/gohv/netstack"
	"github.com/gohv/gohv/netstack/nic"
	"github.com/gohv/gohv/netstack/nictest"
)

// TestSendStallHonoursDeadline: a host that stops completing sends (the
// peer's receiver never returns, so the NIC's one transmit slot stays in
// flight) must not hold a writer past its deadline. gVisor sends with the
// connection's lock held, so only the link endpoint's bounded wait lets
// the deadline fire; the stalled packets are dropped and counted.
func TestSendStallHonoursDeadline(t *testing.T) {
	na, nb := nictest.Pair(nictest.Config{MAC: macA, Slots: 1}, nictest.Config{MAC: macB, Slots: 1})
	defer na.Close()
	defer nb.Close()
	mk := func(n *nictest.NIC, opts netstack.NICOptions) (*netstack.Stack, *netstack.Interface) {
		s, err := netstack.New(netstack.Config{DisableIPv6: true})
		if err != nil {
			t.Fatal(err)
		}
		ifc, err := s.AddNIC(n, opts)
		if err != nil {
			t.Fatal(err)
		}
		return s, ifc
	}
	a, ifcA := mk(na, netstack.NICOptions{Static: []netip.Prefix{ipA}, TxStallTimeout: 200 * time.Millisecond})
	b, _ := mk(nb, netstack.NICOptions{Static: []netip.Prefix{ipB}})
	l, err := b.Listen("tcp4", ":5001")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if c, err := l.Accept(); err == nil {
			io.Copy(io.Discard, c)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := a.Dial(ctx, "tcp4", ipB.Addr().String()+":5001")
	if err != nil {
		t.Fatal(err)
	}

	block := make(chan struct{})
	nb.SetReceiver(func(int, []byte, nic.RxInfo) { <-block })
	c.SetWriteDeadline(time.Now().Add(time.Second))
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) && !(errors.As(err, &ne) && ne.Timeout()) {
			t.Errorf("write ended with %v, want its deadline", err)
		}
	case <-ctx.Done():
		t.Fatal("a write through a stalled NIC is still blocked long after its deadline")
	}
	if s := ifcA.LinkStats(); s.TxStalled == 0 {
		t.Errorf("no send counted as stalled: %+v", s)
	}
	close(block)
	// Shut down in order: the stacks first, then the NICs they use.
	c.Close()
	l.Close()
	a.Close()
	b.Close()
}
