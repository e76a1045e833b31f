package dhcp4

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Transport carries the client's datagrams for one interface.
type Transport interface {
	// Send transmits payload as one UDP datagram from port 68 to port 67
	// of dst (netip.IPv4Unspecified's broadcast counterpart
	// 255.255.255.255 for broadcast), with IP source src (0.0.0.0 before a
	// lease).
	Send(ctx context.Context, payload []byte, src, dst netip.Addr) error
	// Receive copies the next datagram addressed to UDP port 68 into buf
	// and returns its length; it blocks until one arrives or ctx is done.
	Receive(ctx context.Context, buf []byte) (int, error)
}

// Lease is an address lease granted by a server.
type Lease struct {
	Addr    netip.Prefix // address and subnet
	Routers []netip.Addr
	// Routes are the classless static routes (option 121). When present,
	// RFC 3442 §3 says they replace Routers as the source of the default
	// route.
	Routes     []Route
	DNS        []netip.Addr
	Domain     string
	MTU        int        // 0 when the server sent none
	Server     netip.Addr // server identifier (option 54)
	WireServer netip.Addr // Azure WireServer (option 245), invalid when absent
	Duration   time.Duration
	T1, T2     time.Duration // renewal and rebinding times, from Acquired
	Acquired   time.Time
}

// Config configures a Client.
type Config struct {
	MAC       [6]byte
	Hostname  string // option 12, optional
	Transport Transport
	// OnBound runs on the client's goroutine after every ACK (new lease or
	// renewal); prev is the zero Lease for a new lease.
	OnBound func(prev, l Lease)
	// OnExpired runs on the client's goroutine when a lease is lost
	// (expiry, NAK, or Release).
	OnExpired func(l Lease)
	// Logf, if set, receives one line per state change.
	Logf func(format string, args ...any)
}

// Client is a DHCPv4 client (RFC 2131 §4.4) for one interface.
type Client struct {
	cfg   Config
	now   func() time.Time
	timer func(time.Duration) (<-chan time.Time, func() bool) // channel, stop

	renew chan struct{}

	mu    sync.Mutex
	lease Lease // guarded by mu; zero when not bound
	bound bool  // guarded by mu
	xid   uint32
	buf   []byte
}

// ErrNoLease is returned by Release when the client holds no lease.
var ErrNoLease = errors.New("dhcp4: no lease")

// broadcast is the limited broadcast address, RFC 919.
var broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// paramList is what the client asks servers for (option 55).
var paramList = []byte{OptSubnetMask, OptRouter, OptClasslessRoutes, OptDNS, OptDomainName, OptInterfaceMTU,
	OptLeaseTime, OptRenewalTime, OptRebindingTime, OptAzureWireServer}

// NewClient returns a client; start it with Run.
func NewClient(cfg Config) (*Client, error) {
	if cfg.Transport == nil {
		return nil, errors.New("dhcp4: Config.Transport is nil")
	}
	return &Client{
		cfg: cfg,
		now: time.Now,
		timer: func(d time.Duration) (<-chan time.Time, func() bool) {
			t := time.NewTimer(d)
			return t.C, t.Stop
		},
		renew: make(chan struct{}, 1),
		buf:   make([]byte, MaxMessageSize),
	}, nil
}

// Lease returns the current lease, if bound.
func (c *Client) Lease() (Lease, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lease, c.bound
}

// Renew asks the running client to renew its lease now (for a network-change
// indication). It never blocks.
func (c *Client) Renew() {
	select {
	case c.renew <- struct{}{}:
	default:
	}
}

func (c *Client) logf(format string, args ...any) {
	if c.cfg.Logf != nil {
		c.cfg.Logf(format, args...)
	}
}

func (c *Client) newXID() {
	var b [4]byte
	_, _ = rand.Read(b[:])
	c.xid = binary.BigEndian.Uint32(b[:])
}

// backoff is the retransmission delay before the n-th retry: 4 s doubling
// to 64 s, RFC 2131 §4.1 (without the ±1 s randomisation, which only
// spreads many clients booting together and is left out for determinism).
func backoff(n int) time.Duration {
	return min(4*time.Second<<n, 64*time.Second)
}

// Run acquires and keeps a lease until ctx is done, then returns ctx's
// error. It does not release the lease (see Release).
func (c *Client) Run(ctx context.Context) error {
	for {
		l, err := c.acquire(ctx)
		if err != nil {
			return err
		}
		if err := c.keep(ctx, l); err != nil {
			return err
		}
	}
}

func (c *Client) setBound(l Lease) {
	c.mu.Lock()
	prev := c.lease
	if !c.bound {
		prev = Lease{}
	}
	c.lease, c.bound = l, true
	c.mu.Unlock()
	c.logf("dhcp4: bound %v from %v for %v", l.Addr, l.Server, l.Duration)
	if c.cfg.OnBound != nil {
		c.cfg.OnBound(prev, l)
	}
}

func (c *Client) drop(why string) {
	c.mu.Lock()
	l, was := c.lease, c.bound
	c.lease, c.bound = Lease{}, false
	c.mu.Unlock()
	if was {
		c.logf("dhcp4: lease %v lost: %s", l.Addr, why)
		if c.cfg.OnExpired != nil {
			c.cfg.OnExpired(l)
		}
	}
}

// acquire runs DISCOVER/OFFER/REQUEST/ACK (RFC 2131 §3.1) until bound.
func (c *Client) acquire(ctx context.Context) (Lease, error) {
	for {
		c.newXID()
		offer, err := c.exchange(ctx, Message{Type: Discover}, broadcast, Offer, 0)
		if err != nil {
			return Lease{}, err
		}
		req := Message{Type: Request, RequestedIP: offer.YIAddr, ServerID: offer.ServerID}
		ack, err := c.exchange(ctx, req, broadcast, Ack, 4)
		if errors.Is(err, errGiveUp) || errors.Is(err, errNak) {
			continue
		}
		if err != nil {
			return Lease{}, err
		}
		l, err := c.leaseFrom(ack)
		if err != nil {
			c.logf("dhcp4: %v", err)
			continue
		}
		c.setBound(l)
		return l, nil
	}
}

// keep renews l at T1 (unicast) and rebinds at T2 (broadcast), RFC 2131
// §4.4.5, until ctx is done or the lease is lost.
func (c *Client) keep(ctx context.Context, l Lease) error {
	for {
		t1 := l.Acquired.Add(l.T1)
		ch, stop := c.timer(t1.Sub(c.now()))
		select {
		case <-ch:
		case <-c.renew:
		case <-ctx.Done():
			stop()
			return ctx.Err()
		}
		stop()
		nl, err := c.extend(ctx, l)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.drop(err.Error())
			return nil
		}
		c.setBound(nl)
		l = nl
	}
}

// extend renews, then rebinds, until the lease expires.
func (c *Client) extend(ctx context.Context, l Lease) (Lease, error) {
	c.newXID()
	req := Message{Type: Request, CIAddr: l.Addr.Addr()}
	t2 := l.Acquired.Add(l.T2)
	expiry := l.Acquired.Add(l.Duration)
	for _, p := range []struct {
		dst   netip.Addr
		until time.Time
	}{{l.Server, t2}, {broadcast, expiry}} {
		for {
			left := p.until.Sub(c.now())
			if left <= 0 {
				break
			}
			// RFC 2131 §4.4.5: wait half the remaining time, at least 60 s.
			wait := min(max(left/2, 60*time.Second), left)
			ack, err := c.sendWait(ctx, req, p.dst, Ack, wait)
			if err == nil {
				nl, err := c.leaseFrom(ack)
				if err != nil {
					return Lease{}, err
				}
				return nl, nil
			}
			if errors.Is(err, errNak) {
				return Lease{}, err
			}
			if !errors.Is(err, errTimeout) {
				return Lease{}, err
			}
		}
	}
	return Lease{}, errors.New("lease expired")
}

var (
	errTimeout = errors.New("dhcp4: no answer")
	errGiveUp  = errors.New("dhcp4: no answer after retries")
	errNak     = errors.New("dhcp4: server sent NAK")
)

// exchange sends m and retransmits it with backoff until a reply of type
// want arrives. tries bounds the retransmissions (0: unbounded).
func (c *Client) exchange(ctx context.Context, m Message, dst netip.Addr, want MessageType, tries int) (Message, error) {
	for n := 0; tries == 0 || n < tries; n++ {
		r, err := c.sendWait(ctx, m, dst, want, backoff(n))
		if errors.Is(err, errTimeout) {
			continue
		}
		return r, err
	}
	return Message{}, errGiveUp
}

// sendWait sends m once and waits up to d for a matching reply.
func (c *Client) sendWait(ctx context.Context, m Message, dst netip.Addr, want MessageType, d time.Duration) (Message, error) {
	m.XID = c.xid
	m.CHAddr = c.cfg.MAC
	m.Hostname = c.cfg.Hostname
	if m.Type == Discover || m.Type == Request {
		m.ParamList = paramList
	}
	out, err := m.Append(nil)
	if err != nil {
		return Message{}, err
	}
	src := netip.IPv4Unspecified()
	if m.CIAddr.IsValid() {
		src = m.CIAddr
	}
	if err := c.cfg.Transport.Send(ctx, out, src, dst); err != nil && ctx.Err() == nil {
		c.logf("dhcp4: send %v: %v", m.Type, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer, stop := c.timer(d)
	defer stop()
	go func() {
		select {
		case <-timer:
			cancel()
		case <-wctx.Done():
		}
	}()
	for {
		n, err := c.cfg.Transport.Receive(wctx, c.buf)
		if err != nil {
			if ctx.Err() != nil {
				return Message{}, ctx.Err()
			}
			if wctx.Err() != nil {
				return Message{}, errTimeout
			}
			return Message{}, err
		}
		r, err := Parse(c.buf[:n])
		if err != nil || r.Op != opReply || r.XID != c.xid || r.CHAddr != c.cfg.MAC {
			continue
		}
		if r.Type == Nak && want == Ack {
			return r, errNak
		}
		if r.Type != want {
			continue
		}
		if want == Offer && (!r.YIAddr.Is4() || !r.ServerID.IsValid()) {
			continue
		}
		return r, nil
	}
}

// leaseFrom builds a lease from an ACK, applying RFC 2131 §4.4.5 defaults
// for T1 (0.5 lease) and T2 (0.875 lease).
func (c *Client) leaseFrom(ack Message) (Lease, error) {
	if !ack.YIAddr.Is4() || ack.YIAddr.IsUnspecified() {
		return Lease{}, fmt.Errorf("dhcp4: ACK without an address")
	}
	bits := 24
	if ack.SubnetMask.Is4() {
		m := binary.BigEndian.Uint32(ack.SubnetMask.AsSlice())
		ones := 0
		for m&0x80000000 != 0 {
			ones++
			m <<= 1
		}
		if m != 0 {
			return Lease{}, fmt.Errorf("dhcp4: non-contiguous subnet mask %v", ack.SubnetMask)
		}
		bits = ones
	}
	d := ack.LeaseTime
	if d <= 0 {
		d = 24 * time.Hour
	}
	t1, t2 := ack.T1, ack.T2
	if t1 <= 0 || t1 >= d {
		t1 = d / 2
	}
	if t2 <= t1 || t2 >= d {
		t2 = d * 7 / 8
	}
	server := ack.ServerID
	if !server.IsValid() {
		server = ack.SIAddr
	}
	return Lease{
		Addr:       netip.PrefixFrom(ack.YIAddr, bits),
		Routers:    ack.Routers,
		Routes:     ack.Routes,
		DNS:        ack.DNS,
		Domain:     ack.DomainName,
		MTU:        int(ack.MTU),
		Server:     server,
		WireServer: ack.WireServer,
		Duration:   d,
		T1:         t1,
		T2:         t2,
		Acquired:   c.now(),
	}, nil
}

// Release sends DHCPRELEASE for the current lease (RFC 2131 §4.4.6) and
// forgets it. Call it after Run has returned.
func (c *Client) Release(ctx context.Context) error {
	l, ok := c.Lease()
	if !ok {
		return ErrNoLease
	}
	c.newXID()
	m := Message{Type: Release, XID: c.xid, CIAddr: l.Addr.Addr(), CHAddr: c.cfg.MAC, ServerID: l.Server}
	out, err := m.Append(nil)
	if err != nil {
		return err
	}
	err = c.cfg.Transport.Send(ctx, out, l.Addr.Addr(), l.Server)
	c.drop("released")
	return err
}
