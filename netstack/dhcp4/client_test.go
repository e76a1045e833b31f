package dhcp4

import (
	"context"
	"net/netip"
	"sort"
	"sync"
	"testing"
	"time"
)

// fakeClock replaces the client's time: timers fire only when the test
// calls fireNext.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []fakeTimer
	changed chan struct{} // signalled on each new timer
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), changed: make(chan struct{}, 100)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Timer(d time.Duration) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.timers = append(c.timers, fakeTimer{c.now.Add(d), ch})
	c.changed <- struct{}{}
	return ch, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, t := range c.timers {
			if t.ch == ch {
				c.timers = append(c.timers[:i], c.timers[i+1:]...)
				return true
			}
		}
		return false
	}
}

// fireNext waits for a pending timer, advances the clock to the earliest
// one and fires it; it returns the new time.
func (c *fakeClock) fireNext(t *testing.T) time.Time {
	t.Helper()
	for {
		c.mu.Lock()
		if len(c.timers) > 0 {
			sort.Slice(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
			ft := c.timers[0]
			c.timers = c.timers[1:]
			if ft.at.After(c.now) {
				c.now = ft.at
			}
			now := c.now
			c.mu.Unlock()
			ft.ch <- now
			return now
		}
		c.mu.Unlock()
		select {
		case <-c.changed:
		case <-time.After(10 * time.Second):
			t.Fatal("no timer armed")
		}
	}
}

type sent struct {
	m        Message
	src, dst netip.Addr
}

// fakeTransport connects the client to the test, which plays the server.
type fakeTransport struct {
	out chan sent
	in  chan []byte
}

func (f *fakeTransport) Send(ctx context.Context, b []byte, src, dst netip.Addr) error {
	m, err := Parse(b)
	if err != nil {
		panic(err)
	}
	f.out <- sent{m, src, dst}
	return nil
}

func (f *fakeTransport) Receive(ctx context.Context, b []byte) (int, error) {
	select {
	case m := <-f.in:
		return copy(b, m), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

var (
	serverIP = netip.MustParseAddr("10.0.0.1")
	leaseIP  = netip.MustParseAddr("10.0.0.50")
	bcast    = netip.MustParseAddr("255.255.255.255")
	zero     = netip.MustParseAddr("0.0.0.0")
)

func (f *fakeTransport) expect(t *testing.T, typ MessageType, src, dst netip.Addr) Message {
	t.Helper()
	select {
	case s := <-f.out:
		if s.m.Type != typ || s.src != src || s.dst != dst {
			t.Fatalf("client sent %v %v->%v, want %v %v->%v", s.m.Type, s.src, s.dst, typ, src, dst)
		}
		if s.m.CHAddr != testMAC {
			t.Fatalf("chaddr %x", s.m.CHAddr)
		}
		return s.m
	case <-time.After(10 * time.Second):
		t.Fatalf("client sent no %v", typ)
	}
	return Message{}
}

func (f *fakeTransport) reply(t *testing.T, req Message, typ MessageType) {
	t.Helper()
	m := Message{Op: opReply, Type: typ, XID: req.XID, CHAddr: req.CHAddr, ServerID: serverIP}
	if typ != Nak {
		m.YIAddr = leaseIP
		m.SubnetMask = netip.MustParseAddr("255.255.255.0")
		m.Routers = []netip.Addr{serverIP}
		m.DNS = []netip.Addr{serverIP}
		m.LeaseTime, m.T1, m.T2 = 1000*time.Second, 500*time.Second, 875*time.Second
		m.WireServer = netip.MustParseAddr("168.63.129.16")
	}
	// A reply for someone else first: the client must ignore it.
	other := m
	other.XID++
	b, _ := other.Append(nil)
	f.in <- b
	b, _ = m.Append(nil)
	f.in <- b
}

type bound struct{ prev, l Lease }

func startClient(t *testing.T) (*Client, *fakeTransport, *fakeClock, chan bound, chan Lease, context.CancelFunc, chan error) {
	ft := &fakeTransport{out: make(chan sent, 10), in: make(chan []byte, 10)}
	clk := newFakeClock()
	bounds, expired := make(chan bound, 10), make(chan Lease, 10)
	c, err := NewClient(Config{MAC: testMAC, Transport: ft,
		OnBound:   func(p, l Lease) { bounds <- bound{p, l} },
		OnExpired: func(l Lease) { expired <- l }})
	if err != nil {
		t.Fatal(err)
	}
	c.now, c.timer = clk.Now, clk.Timer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, ft, clk, bounds, expired, cancel, done
}

func (f *fakeTransport) acquire(t *testing.T) {
	d := f.expect(t, Discover, zero, bcast)
	if !bytesContain(d.ParamList, OptAzureWireServer) || !bytesContain(d.ParamList, OptDNS) {
		t.Errorf("parameter list %v lacks DNS or 245", d.ParamList)
	}
	f.reply(t, d, Offer)
	r := f.expect(t, Request, zero, bcast)
	if r.RequestedIP != leaseIP || r.ServerID != serverIP || r.XID != d.XID {
		t.Fatalf("REQUEST asks for %v from %v (xid %x), want %v from %v (xid %x)", r.RequestedIP, r.ServerID, r.XID, leaseIP, serverIP, d.XID)
	}
	f.reply(t, r, Ack)
}

func bytesContain(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

func TestClientLifecycle(t *testing.T) {
	c, ft, clk, bounds, expired, cancel, done := startClient(t)
	ft.acquire(t)
	b := <-bounds
	if b.prev.Addr.IsValid() || b.l.Addr != netip.MustParsePrefix("10.0.0.50/24") || b.l.Server != serverIP ||
		b.l.WireServer != netip.MustParseAddr("168.63.129.16") || b.l.T1 != 500*time.Second || len(b.l.DNS) != 1 {
		t.Fatalf("lease %+v", b)
	}
	start := b.l.Acquired

	// T1: renewal, unicast to the server from the leased address.
	if now := clk.fireNext(t); now.Sub(start) != 500*time.Second {
		t.Fatalf("renewal at %v, want T1 = 500s", now.Sub(start))
	}
	r := ft.expect(t, Request, leaseIP, serverIP)
	if r.CIAddr != leaseIP || r.RequestedIP.IsValid() || r.ServerID.IsValid() {
		t.Fatalf("renewal REQUEST ciaddr %v requested %v server %v", r.CIAddr, r.RequestedIP, r.ServerID)
	}
	// No answer: retransmit until T2, then rebind by broadcast.
	for {
		now := clk.fireNext(t)
		s := <-ft.out
		if s.dst == bcast {
			if now.Sub(start) < 875*time.Second {
				t.Fatalf("rebinding at %v, before T2", now.Sub(start))
			}
			if s.m.Type != Request || s.src != leaseIP {
				t.Fatalf("rebinding sent %v from %v", s.m.Type, s.src)
			}
			ft.reply(t, s.m, Ack)
			break
		}
		if now.Sub(start) >= 875*time.Second {
			t.Fatalf("still unicasting at %v", now.Sub(start))
		}
	}
	b = <-bounds
	if b.prev.Addr != b.l.Addr || !b.l.Acquired.After(start) {
		t.Fatalf("rebound lease %+v", b)
	}

	// Release after Run stops.
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run returned %v", err)
	}
	done <- nil // for the cleanup
	if err := c.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	rel := ft.expect(t, Release, leaseIP, serverIP)
	if rel.CIAddr != leaseIP || rel.ServerID != serverIP {
		t.Fatalf("RELEASE %+v", rel)
	}
	if l := <-expired; l.Addr.Addr() != leaseIP {
		t.Fatalf("expired %v", l.Addr)
	}
	if err := c.Release(context.Background()); err != ErrNoLease {
		t.Fatalf("second Release: %v", err)
	}
}

func TestClientExpiryAndNak(t *testing.T) {
	_, ft, clk, bounds, expired, _, _ := startClient(t)
	ft.acquire(t)
	start := (<-bounds).l.Acquired
	// Never answer: the lease expires at 1000 s and the client starts over.
	for {
		now := clk.fireNext(t)
		select {
		case l := <-expired:
			if now.Sub(start) != 1000*time.Second || l.Addr.Addr() != leaseIP {
				t.Fatalf("expired %v at %v, want at 1000s", l.Addr, now.Sub(start))
			}
			d := ft.expect(t, Discover, zero, bcast)
			// A NAK to the REQUEST sends the client back to DISCOVER.
			ft.reply(t, d, Offer)
			r := ft.expect(t, Request, zero, bcast)
			ft.reply(t, r, Nak)
			ft.expect(t, Discover, zero, bcast)
			return
		case <-ft.out:
		}
	}
}

func TestClientRenewNow(t *testing.T) {
	c, ft, _, bounds, _, _, _ := startClient(t)
	ft.acquire(t)
	<-bounds
	c.Renew() // network change: renew before T1
	r := ft.expect(t, Request, leaseIP, serverIP)
	ft.reply(t, r, Ack)
	if b := <-bounds; b.l.Addr.Addr() != leaseIP {
		t.Fatalf("renewed %+v", b)
	}
}
