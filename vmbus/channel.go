package vmbus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/vmbus/chanmsg"
	"github.com/gohv/gohv/vmbus/ring"
)

// Offer is what the host said about a channel in OFFERCHANNEL (§3.6).
type Offer struct {
	InterfaceType, InterfaceInstance chanmsg.GUID
	RelID, ConnectionID              uint32
	SubChannelIndex, Flags           uint16
	MMIOMegabytes                    uint16
	MonitorID                        uint8
	MonitorAllocated                 bool
	DedicatedInterrupt               bool
	UserDefined                      [chanmsg.UserDataSize]byte
}

func offerFrom(m chanmsg.OfferChannel) Offer {
	return Offer{
		InterfaceType: m.InterfaceType, InterfaceInstance: m.InterfaceInstance,
		RelID: m.RelID, ConnectionID: m.ConnectionID,
		SubChannelIndex: m.SubChannelIndex, Flags: m.Flags, MMIOMegabytes: m.MMIOMegabytes,
		MonitorID: m.MonitorID, MonitorAllocated: m.MonitorAllocated&1 != 0,
		DedicatedInterrupt: m.DedicatedInterrupt&1 != 0,
		UserDefined:        m.UserDefined,
	}
}

// DefaultRingSize is the default size of each ring of a channel: 4 pages,
// one header page and three data pages, as Linux uses for the integration
// services (docs/hyperv-protocol.md §4.6).
const DefaultRingSize = 4 * hv.PageSize

// OpenConfig configures Channel.Open.
type OpenConfig struct {
	// SendRingSize and RecvRingSize are the bytes of each ring including
	// its 4096-byte header page: multiples of 4096, at least 8192. 0
	// means DefaultRingSize.
	SendRingSize, RecvRingSize int
	// TargetVP is the VP index the host interrupts for this channel.
	TargetVP uint32
	// UserData is passed to the device in OPENCHANNEL (≤ 120 bytes).
	UserData []byte
	// OnInterrupt runs when the host signals the channel and from the
	// polling fallback, on the channel's own dispatch goroutine (started
	// by Open, ended by Close, the rescind or Bus.Close): never
	// concurrently with itself, concurrently with other channels'. It
	// must not block for long (it holds up only this channel); it
	// typically drains ReadPacket, or masks the interrupt and hands the
	// draining to a goroutine of its own (MaskInterrupt). A run in
	// progress when the channel closes finishes, its ReadPacket calls
	// returning ErrClosed from then on; no new one starts.
	OnInterrupt func()
}

// GPADL is a guest buffer described to the host (docs/hyperv-protocol.md §3.9).
type GPADL struct {
	ID    uint32
	Pages hv.Pages
}

// ownedGPADL is a GPADL of a channel. created is non-nil while its
// GPADL_CREATED is outstanding after the caller stopped waiting (deadline
// or rescind): the host may still create it, so it must be resolved, and
// torn down if created, before its pages are freed or the relid released.
type ownedGPADL struct {
	GPADL
	created *waiter
}

type chanState uint8

const (
	stateOffered chanState = iota
	stateOpening
	stateOpen
	stateClosing
	stateReleased
)

var stateNames = [...]string{"offered", "opening", "open", "closing", "released"}

func (s chanState) String() string { return stateNames[s] }

// ChannelStats are a channel's counters.
type ChannelStats struct {
	PacketsSent, BytesSent         uint64
	PacketsReceived, BytesReceived uint64
	SignalsSent, SignalErrors      uint64
	Interrupts                     uint64 // OnInterrupt runs (host signals and polls)
	RingFull                       uint64 // TrySend found the ring full
	SendWaits                      uint64 // Send slept for space
	GPADLs                         uint64 // GPADLs created
	// Errors counts packets the rings refused other than for space or
	// emptiness: a corrupt ring (host-written index or descriptor) or a
	// malformed send.
	Errors uint64
	// SendRingUsed and RecvRingUsed are the bytes in use in the outbound
	// and inbound ring's data area when Stats was called, of
	// SendRingData and RecvRingData bytes (all 0 unless open).
	SendRingUsed, SendRingData int
	RecvRingUsed, RecvRingData int
}

type chanCounters struct {
	packetsSent, bytesSent, packetsReceived, bytesReceived atomic.Uint64
	signals, signalErrors, interrupts, ringFull, sendWaits atomic.Uint64
	gpadls, errors                                         atomic.Uint64
}

// Channel is one offered VMBus channel (a primary or a sub-channel).
type Channel struct {
	bus     *Bus
	offer   Offer
	primary *Channel
	subs    []*Channel    // under bus.mu
	subsCh  chan struct{} // under bus.mu: closed and replaced when a sub-channel is offered

	// opMu serialises Open, Close and the release after a rescind or at
	// bus shutdown: the operations that wait for the host.
	opMu sync.Mutex

	mu        sync.Mutex // guards the fields below
	state     chanState
	pages     hv.Pages // ring pages, while the host may use them
	sendData  int      // data bytes of the outbound ring, while open
	recvData  int      // data bytes of the inbound ring, while open
	ringGPADL uint32
	gpadls    []ownedGPADL // created (or maybe created) on this channel, not yet torn down
	abandoned *waiter      // OPENCHANNEL_RESULT nobody waits for any more

	rescinded   chan struct{}
	isRescinded atomic.Bool

	sendMu sync.Mutex
	w      *ring.Writer // nil unless open
	readMu sync.Mutex
	r      *ring.Reader // nil unless open

	inbound atomic.Pointer[byte] // inbound ring header, for the poller

	// kickCh wakes the dispatch goroutine (capacity 1: one pending kick
	// stands for any number of signals). dispatchStop, under mu, ends
	// the current dispatch goroutine; nil when none runs.
	kickCh       chan struct{}
	dispatchStop chan struct{}

	// gpadlMu serialises GPADL teardowns: a driver's TeardownGPADL racing
	// with the rescind or bus clean-up must not post a second
	// GPADL_TEARDOWN for the same id.
	gpadlMu sync.Mutex

	spaceMu     sync.Mutex
	spaceCh     chan struct{} // closed and replaced to wake Send
	sendWaiters atomic.Int32

	stats chanCounters
}

func newChannel(b *Bus, o Offer) *Channel {
	return &Channel{bus: b, offer: o, rescinded: make(chan struct{}), spaceCh: make(chan struct{}),
		kickCh: make(chan struct{}, 1), subsCh: make(chan struct{})}
}

// Offer returns the channel's offer.
func (c *Channel) Offer() Offer { return c.offer }

// Primary returns the primary channel of a sub-channel, nil for a primary.
func (c *Channel) Primary() *Channel { return c.primary }

// SubChannels returns the sub-channels offered for a primary channel.
func (c *Channel) SubChannels() []*Channel {
	c.bus.mu.Lock()
	defer c.bus.mu.Unlock()
	return append([]*Channel(nil), c.subs...)
}

// WaitSubChannels waits until the host has offered the sub-channels with
// indices 1..n of this primary channel (docs/hyperv-protocol.md §3.11; a driver asks its
// device for them in its own protocol first, e.g. VSTOR or NVSP) and
// returns them in index order. When ctx ends or the primary is rescinded
// first it returns those of 1..n offered so far, in index order, with the
// ctx error or ErrRescinded. On a sub-channel it returns ErrBadConfig.
func (c *Channel) WaitSubChannels(ctx context.Context, n int) ([]DriverChannel, error) {
	if c.offer.SubChannelIndex != 0 {
		return nil, fmt.Errorf("%w: WaitSubChannels on sub-channel %d of relid %d", ErrBadConfig, c.offer.SubChannelIndex, c.offer.RelID)
	}
	for {
		b := c.bus
		b.mu.Lock()
		got := make([]DriverChannel, 0, n)
		for i := 1; i <= n; i++ {
			for _, s := range c.subs {
				if int(s.offer.SubChannelIndex) == i {
					got = append(got, s)
					break
				}
			}
		}
		wake := c.subsCh
		b.mu.Unlock()
		if len(got) == n {
			return got, nil
		}
		select {
		case <-wake:
		case <-c.rescinded:
			return got, ErrRescinded
		case <-ctx.Done():
			return got, ctx.Err()
		}
	}
}

// Rescinded returns a channel closed when the host rescinds the offer.
func (c *Channel) Rescinded() <-chan struct{} { return c.rescinded }

// markRescinded reports false if the channel was already rescinded.
func (c *Channel) markRescinded() bool {
	if c.isRescinded.Swap(true) {
		return false
	}
	close(c.rescinded)
	c.wakeSenders()
	return true
}

// Stats returns the channel's counters.
func (c *Channel) Stats() ChannelStats {
	s := &c.stats
	st := ChannelStats{
		PacketsSent: s.packetsSent.Load(), BytesSent: s.bytesSent.Load(),
		PacketsReceived: s.packetsReceived.Load(), BytesReceived: s.bytesReceived.Load(),
		SignalsSent: s.signals.Load(), SignalErrors: s.signalErrors.Load(),
		Interrupts: s.interrupts.Load(), RingFull: s.ringFull.Load(),
		SendWaits: s.sendWaits.Load(), GPADLs: s.gpadls.Load(), Errors: s.errors.Load(),
	}
	c.mu.Lock()
	sd, rd := c.sendData, c.recvData
	c.mu.Unlock()
	c.sendMu.Lock()
	if c.w != nil {
		st.SendRingData = sd
		st.SendRingUsed = sd - c.w.Writable()
	}
	c.sendMu.Unlock()
	c.readMu.Lock()
	if c.r != nil {
		st.RecvRingData = rd
		st.RecvRingUsed = c.r.Readable()
	}
	c.readMu.Unlock()
	return st
}

// State returns a one-line description of the channel for diagnosis.
func (c *Channel) State() string {
	c.mu.Lock()
	st, ng := c.state, len(c.gpadls)
	c.mu.Unlock()
	name := chanmsg.ClassName(c.offer.InterfaceType)
	if name == "" {
		name = c.offer.InterfaceType.String()
	}
	s := c.Stats()
	return fmt.Sprintf("relid=%d class=%s sub=%d conn=%d state=%v rescinded=%v gpadls=%d out=%d/%dB in=%d/%dB sent=%d/%dB recv=%d/%dB signals=%d interrupts=%d ringfull=%d errors=%d",
		c.offer.RelID, name, c.offer.SubChannelIndex, c.offer.ConnectionID, st, c.isRescinded.Load(), ng,
		s.SendRingUsed, s.SendRingData, s.RecvRingUsed, s.RecvRingData,
		s.PacketsSent, s.BytesSent, s.PacketsReceived, s.BytesReceived, s.SignalsSent, s.Interrupts, s.RingFull, s.Errors)
}

func (c *Channel) setState(s chanState) {
	c.mu.Lock()
	c.state = s
	c.mu.Unlock()
}

// ---- open and close ----

func ringPages(n int) (int, error) {
	if n == 0 {
		n = DefaultRingSize
	}
	if n%hv.PageSize != 0 || n < 2*hv.PageSize {
		return 0, fmt.Errorf("%w: ring size %d", ErrBadConfig, n)
	}
	return n / hv.PageSize, nil
}

// Open allocates the ring pages, describes them to the host in a GPADL
// and opens the channel (docs/hyperv-protocol.md §3.8, §3.11 step 5).
func (c *Channel) Open(ctx context.Context, cfg OpenConfig) error {
	sp, err := ringPages(cfg.SendRingSize)
	if err != nil {
		return err
	}
	rp, err := ringPages(cfg.RecvRingSize)
	if err != nil {
		return err
	}
	if len(cfg.UserData) > chanmsg.UserDataSize {
		return fmt.Errorf("%w: %d bytes of user data", ErrBadConfig, len(cfg.UserData))
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if c.isRescinded.Load() {
		return ErrRescinded
	}
	if c.bus.isClosing() {
		return ErrClosed
	}
	c.mu.Lock()
	switch c.state {
	case stateOffered:
	case stateReleased:
		c.mu.Unlock()
		return ErrClosed
	default:
		c.mu.Unlock()
		return ErrAlreadyOpen
	}
	c.state = stateOpening
	c.mu.Unlock()

	// A ring GPADL left by an earlier Open whose GPADL_CREATED never came
	// goes first: it may exist at the host.
	if err := c.teardownRing(ctx); err != nil {
		c.setState(stateOffered)
		return fmt.Errorf("vmbus: open relid %d: earlier %w", c.offer.RelID, err)
	}
	pages, err := c.bus.p.AllocPages(sp + rp)
	if err != nil {
		c.setState(stateOffered)
		return fmt.Errorf("vmbus: ring pages: %w", err)
	}
	w, err := ring.NewWriter(pages.Mem[:sp*hv.PageSize])
	if err == nil {
		var r *ring.Reader
		r, err = ring.NewReader(pages.Mem[sp*hv.PageSize:])
		if err == nil {
			c.sendMu.Lock()
			c.w = w
			c.sendMu.Unlock()
			c.readMu.Lock()
			c.r = r
			c.readMu.Unlock()
		}
	}
	if err != nil {
		c.bus.p.FreePages(pages)
		c.setState(stateOffered)
		return fmt.Errorf("vmbus: ring: %w", err)
	}
	g, fate, err := c.createGPADL(ctx, pages)
	if err != nil {
		c.detach()
		switch fate {
		case gpadlNotCreated:
			c.bus.p.FreePages(pages) // the host never had it, or refused it
		case gpadlPending:
			// The host may still create it: the ring pages stay with the
			// channel until the GPADL is resolved and torn down, by the
			// clean-up after a rescind, by the next Open, or now in the
			// background.
			c.mu.Lock()
			c.pages, c.ringGPADL = pages, g.ID
			c.mu.Unlock()
			if !c.isRescinded.Load() {
				c.cleanupLater(g.ID)
			}
		default:
			// Created under another relid: the host may use the pages
			// and we cannot tear it down on this channel; leak rather
			// than share.
		}
		c.setState(stateOffered)
		return err
	}
	c.mu.Lock()
	c.pages, c.ringGPADL = pages, g.ID
	c.sendData, c.recvData = (sp-1)*hv.PageSize, (rp-1)*hv.PageSize
	c.mu.Unlock()
	c.startDispatch(cfg.OnInterrupt)
	c.inbound.Store(&pages.Mem[sp*hv.PageSize])

	m := chanmsg.OpenChannel{
		RelID: c.offer.RelID, OpenID: c.offer.RelID, GPADL: g.ID,
		TargetVP: cfg.TargetVP, DownstreamPageOffset: uint32(sp),
	}
	copy(m.UserData[:], cfg.UserData)
	wt := c.bus.register(chanmsg.TypeOpenChannelResult, c.offer.RelID, c.offer.RelID)
	abandoned := false
	err = wt.err
	if err == nil && c.isRescinded.Load() {
		// A rescind handled before register did not fail wt: do not open
		// a channel the host has withdrawn.
		err = ErrRescinded
	}
	if err == nil {
		err = c.bus.postMsg(ctx, &m)
	}
	if err != nil {
		c.bus.unregister(wt)
	} else {
		// Not bus.wait: on a deadline the waiter stays registered, so that
		// the clean-up learns whether the host opened the channel after all.
		select {
		case r := <-wt.ch:
			err = r.err
			if err == nil {
				if res := r.msg.(chanmsg.OpenChannelResult); res.Status != 0 {
					err = &OpenError{RelID: c.offer.RelID, Status: res.Status}
				}
			}
		case <-ctx.Done():
			err = ctx.Err()
			abandoned = true
		}
	}
	if err == nil {
		c.setState(stateOpen)
		return nil
	}
	c.detach()
	var oe *OpenError
	if errors.As(err, &oe) {
		// Not open: tear the ring GPADL down now, with the caller's ctx.
		if terr := c.teardownRing(ctx); terr != nil {
			c.bus.logf("vmbus: relid %d: %v", c.offer.RelID, terr)
		}
		c.setState(stateOffered)
		return err
	}
	if !abandoned {
		// Rescinded, bus closed or the post failed: the host did not open
		// the channel.
		if terr := c.teardownRing(ctx); terr != nil {
			c.bus.logf("vmbus: relid %d: %v", c.offer.RelID, terr)
		}
		c.setState(stateOffered)
		return fmt.Errorf("vmbus: open relid %d: %w", c.offer.RelID, err)
	}
	// No answer yet: the host may still open the channel. Wait for the
	// answer in the background (or in release, whichever comes first)
	// and close or just tear down accordingly; the channel stays
	// "closing" until then.
	c.mu.Lock()
	c.state, c.abandoned = stateClosing, wt
	c.mu.Unlock()
	c.bus.cleanups.Add(1)
	go func() {
		defer c.bus.cleanups.Done()
		cctx, cancel := context.WithTimeout(context.Background(), 2*c.bus.cfg.CleanupTimeout)
		defer cancel()
		c.opMu.Lock()
		defer c.opMu.Unlock()
		if err := c.finishAbandonedOpen(cctx); err != nil {
			c.bus.logf("vmbus: relid %d: clean-up after failed open: %v", c.offer.RelID, err)
		}
	}()
	return fmt.Errorf("vmbus: open relid %d: %w", c.offer.RelID, err)
}

// cleanupLater tears down the ring GPADL id left by a failed Open in the
// background, under opMu and within the bus's clean-up timeout, unless
// the next Open or a rescind's clean-up got there first.
func (c *Channel) cleanupLater(id uint32) {
	c.bus.cleanups.Add(1)
	go func() {
		defer c.bus.cleanups.Done()
		ctx, cancel := context.WithTimeout(context.Background(), c.bus.cfg.CleanupTimeout)
		defer cancel()
		c.opMu.Lock()
		defer c.opMu.Unlock()
		c.mu.Lock()
		mine := c.pages.Mem != nil && c.ringGPADL == id && c.state == stateOffered
		c.mu.Unlock()
		if !mine {
			return
		}
		if err := c.teardownRing(ctx); err != nil {
			c.bus.logf("vmbus: relid %d: clean-up after failed open: %v", c.offer.RelID, err)
		}
	}()
}

// finishAbandonedOpen closes and tears down after an Open that got no
// answer. Called with opMu held; a no-op unless the channel is still in
// that state.
func (c *Channel) finishAbandonedOpen(ctx context.Context) error {
	c.mu.Lock()
	wt := c.abandoned
	c.abandoned = nil
	c.mu.Unlock()
	if wt == nil {
		return nil
	}
	opened := false
	wctx, cancel := context.WithTimeout(ctx, c.bus.cfg.CleanupTimeout)
	msg, err := c.bus.wait(wctx, wt)
	cancel()
	if err == nil {
		opened = msg.(chanmsg.OpenChannelResult).Status == 0
	}
	if opened {
		// Rescinded or not: the host opened it, so close before the ring
		// GPADL's teardown and RELID_RELEASED (docs/hyperv-protocol.md §3.10, §3.11).
		if err := c.bus.postMsg(ctx, &chanmsg.CloseChannel{RelID: c.offer.RelID}); err != nil {
			c.setState(stateOpen) // as closeLocked: detached, Close retries
			return fmt.Errorf("CLOSECHANNEL: %w", err)
		}
	}
	err = c.teardownRing(ctx)
	c.setState(stateOffered)
	return err
}

// detach stops the data path: sends and reads fail with ErrClosed from
// here on, and no more OnInterrupt runs are started.
func (c *Channel) detach() {
	c.mu.Lock()
	if c.dispatchStop != nil {
		close(c.dispatchStop)
		c.dispatchStop = nil
	}
	c.mu.Unlock()
	c.inbound.Store(nil)
	c.sendMu.Lock()
	c.w = nil
	c.sendMu.Unlock()
	c.readMu.Lock()
	c.r = nil
	c.readMu.Unlock()
	c.wakeSenders()
}

// teardownRing tears down the ring GPADL and frees the ring pages once the
// host confirmed. Called with opMu held.
func (c *Channel) teardownRing(ctx context.Context) error {
	c.mu.Lock()
	id, pages := c.ringGPADL, c.pages
	c.mu.Unlock()
	if pages.Mem == nil {
		return nil
	}
	if err := c.teardown(ctx, id); err != nil {
		return fmt.Errorf("ring GPADL %#x (pages not freed): %w", id, err)
	}
	c.mu.Lock()
	c.pages, c.ringGPADL = hv.Pages{}, 0
	c.mu.Unlock()
	c.bus.p.FreePages(pages)
	return nil
}

// Close closes an open channel: CLOSECHANNEL, then the ring GPADL's
// teardown (after the close, as 4.0 hosts require, docs/hyperv-protocol.md §3.3), then
// the ring pages are freed. GPADLs the driver created stay; tear them down
// with TeardownGPADL after Close. Closing a rescinded channel that was
// already cleaned up returns nil. If CLOSECHANNEL cannot be posted, the
// data path is stopped but the channel stays open for the host (rings and
// GPADLs in place); Close may be retried.
func (c *Channel) Close(ctx context.Context) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	c.mu.Lock()
	st := c.state
	c.mu.Unlock()
	if st != stateOpen {
		if c.isRescinded.Load() {
			return nil
		}
		return ErrClosed
	}
	return c.closeLocked(ctx)
}

func (c *Channel) closeLocked(ctx context.Context) error {
	c.setState(stateClosing)
	c.detach()
	if err := c.bus.postMsg(ctx, &chanmsg.CloseChannel{RelID: c.offer.RelID}); err != nil {
		// Leave the ring GPADL in place and the channel open (detached): a
		// host that did not see the close still uses the rings, and Close
		// may be retried.
		c.setState(stateOpen)
		return fmt.Errorf("vmbus: CLOSECHANNEL relid %d: %w", c.offer.RelID, err)
	}
	err := c.teardownRing(ctx)
	c.setState(stateOffered)
	if err != nil {
		return fmt.Errorf("vmbus: close relid %d: %w", c.offer.RelID, err)
	}
	return nil
}

// release is the clean-up after a rescind (docs/hyperv-protocol.md §3.11 step 6) and at
// bus shutdown: close if open, tear down every GPADL of the channel and, if
// rescinded, send RELID_RELEASED and forget the channel.
func (c *Channel) release(ctx context.Context) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	c.mu.Lock()
	st := c.state
	c.mu.Unlock()
	if st == stateReleased {
		return nil
	}
	var errs []error
	switch st {
	case stateOpen:
		if err := c.closeLocked(ctx); err != nil {
			// Still open for the host: no GPADL may go (docs/hyperv-protocol.md §3.3, 4.0).
			return err
		}
	case stateClosing:
		if err := c.finishAbandonedOpen(ctx); err != nil {
			c.mu.Lock()
			st = c.state
			c.mu.Unlock()
			if st == stateOpen { // its CLOSECHANNEL failed, as above
				return err
			}
			errs = append(errs, err)
		}
	}
	if err := c.teardownRing(ctx); err != nil {
		errs = append(errs, err)
	}
	c.mu.Lock()
	rest := append([]ownedGPADL(nil), c.gpadls...)
	c.mu.Unlock()
	for _, g := range rest {
		if err := c.teardown(ctx, g.ID); err != nil {
			errs = append(errs, fmt.Errorf("GPADL %#x: %w", g.ID, err))
		}
	}
	if c.isRescinded.Load() && len(errs) == 0 {
		// Allowed only once the channel is closed (§3.10).
		if err := c.bus.postMsg(ctx, &chanmsg.RelIDReleased{RelID: c.offer.RelID}); err != nil {
			errs = append(errs, fmt.Errorf("RELID_RELEASED: %w", err))
		} else {
			c.setState(stateReleased)
			c.bus.forget(c)
		}
	}
	return errors.Join(errs...)
}

// ---- GPADLs ----

// maxGPADLPages is the most pages one GPADL range can describe: the range
// buffer length 8 + 8 × PFNs is a 16-bit field (docs/hyperv-protocol.md §3.9).
const maxGPADLPages = (0xFFFF - 8) / 8

// gpadlFate says what became of a GPADL whose creation failed.
type gpadlFate uint8

const (
	// gpadlNotCreated: the host never saw it, or refused it: the pages
	// are free to reuse.
	gpadlNotCreated gpadlFate = iota
	// gpadlPending: GPADL_HEADER went out and the answer is outstanding;
	// the GPADL is recorded on the channel and teardown resolves it.
	gpadlPending
	// gpadlUnknown: the host answered for another relid; it may have
	// created the GPADL and nothing can tear it down.
	gpadlUnknown
)

// CreateGPADL describes p to the host as a GPADL of this channel (docs/hyperv-protocol.md
// §3.9): a GPADL_HEADER with up to 26 PFNs, GPADL_BODY messages with up to
// 28 more each, then it waits for GPADL_CREATED. The pages stay the
// caller's; they must not be freed before TeardownGPADL succeeded.
//
// If it fails after the host got the request (ctx done, or the channel
// rescinded, while GPADL_CREATED is outstanding), the host may still create
// the GPADL: then the error comes with g.ID ≠ 0, the GPADL stays recorded
// on the channel and the pages must not be freed until TeardownGPADL(ctx,
// g) returned nil (after a rescind the channel's clean-up does that
// teardown itself, and TeardownGPADL then returns nil too).
func (c *Channel) CreateGPADL(ctx context.Context, p hv.Pages) (GPADL, error) {
	g, fate, err := c.createGPADL(ctx, p)
	if err != nil && fate != gpadlPending {
		g = GPADL{}
	}
	return g, err
}

func (c *Channel) createGPADL(ctx context.Context, p hv.Pages) (GPADL, gpadlFate, error) {
	n := p.Count()
	if n == 0 || len(p.Mem)%hv.PageSize != 0 {
		return GPADL{}, gpadlNotCreated, fmt.Errorf("%w: GPADL of %d bytes", ErrBadConfig, len(p.Mem))
	}
	if n > maxGPADLPages {
		return GPADL{}, gpadlNotCreated, fmt.Errorf("%w: %d pages (max %d)", ErrGPADLTooLarge, n, maxGPADLPages)
	}
	if c.isRescinded.Load() {
		return GPADL{}, gpadlNotCreated, ErrRescinded
	}
	b := c.bus
	id := b.nextGPADL.Add(1)
	if id == 0 {
		id = b.nextGPADL.Add(1)
	}
	relID := c.offer.RelID
	// Not tied to the relid: a host answers GPADL_CREATED, with success,
	// even when it rescinds the channel meanwhile, and that answer must
	// find its waiter (see teardown).
	wt := b.register(chanmsg.TypeGPADLCreated, id, 0)
	if wt.err != nil {
		return GPADL{}, gpadlNotCreated, wt.err
	}
	if c.isRescinded.Load() { // nothing posted yet
		b.unregister(wt)
		return GPADL{}, gpadlNotCreated, ErrRescinded
	}
	var pfns [chanmsg.MaxBodyPFNs]uint64
	k := min(n, chanmsg.MaxHeaderPFNs)
	for i := range k {
		pfns[i] = p.PFNAt(i)
	}
	h := chanmsg.NewGPADLHeader(relID, id, n, pfns[:k])
	err := b.postMsg(ctx, &h)
	for msgNum := uint32(1); err == nil && k < n; msgNum++ {
		m := min(n-k, chanmsg.MaxBodyPFNs)
		for i := range m {
			pfns[i] = p.PFNAt(k + i)
		}
		err = b.postMsg(ctx, &chanmsg.GPADLBody{MsgNumber: msgNum, GPADL: id, PFNs: pfns[:m]})
		k += m
	}
	if err != nil {
		// An incomplete GPADL is never created (§3.9).
		b.unregister(wt)
		return GPADL{}, gpadlNotCreated, fmt.Errorf("vmbus: GPADL %#x on relid %d: %w", id, relID, err)
	}
	g := GPADL{ID: id, Pages: p}
	var r result
	select {
	case r = <-wt.ch:
	case <-ctx.Done():
		err = ctx.Err()
	case <-c.rescinded:
		err = ErrRescinded
	}
	if err != nil {
		// The answer may still come: keep the waiter and record the
		// GPADL, so that whoever tears it down first learns whether the
		// host created it.
		c.mu.Lock()
		c.gpadls = append(c.gpadls, ownedGPADL{GPADL: g, created: wt})
		c.mu.Unlock()
		return g, gpadlPending, fmt.Errorf("vmbus: GPADL_CREATED %#x on relid %d: %w", id, relID, err)
	}
	if r.err != nil {
		return GPADL{}, gpadlUnknown, fmt.Errorf("vmbus: GPADL_CREATED %#x on relid %d: %w", id, relID, r.err)
	}
	if m := r.msg.(chanmsg.GPADLCreated); m.Status != 0 || m.RelID != relID {
		fate := gpadlNotCreated
		if m.Status == 0 {
			fate = gpadlUnknown
		}
		return GPADL{}, fate, &GPADLError{RelID: m.RelID, GPADL: id, Status: m.Status}
	}
	c.mu.Lock()
	c.gpadls = append(c.gpadls, ownedGPADL{GPADL: g})
	c.mu.Unlock()
	c.stats.gpadls.Add(1)
	return g, gpadlNotCreated, nil
}

// TeardownGPADL tears down a GPADL created on this channel and waits for
// GPADL_TORNDOWN; afterwards the caller may free g.Pages. A GPADL already
// torn down by the clean-up after a rescind or by Bus.Close gives nil, as
// does one CreateGPADL left pending that the host then refused.
func (c *Channel) TeardownGPADL(ctx context.Context, g GPADL) error {
	c.mu.Lock()
	ring := c.pages.Mem != nil && g.ID == c.ringGPADL
	c.mu.Unlock()
	if ring {
		return fmt.Errorf("%w: GPADL %#x is the ring's; use Close", ErrBadConfig, g.ID)
	}
	err := c.teardown(ctx, g.ID)
	if errors.Is(err, ErrUnknownGPADL) && (c.isRescinded.Load() || c.bus.isClosing()) {
		return nil
	}
	return err
}

// teardown tears GPADL id down. One whose GPADL_CREATED is outstanding is
// resolved first: the answer is awaited (within ctx); refused, it is just
// forgotten; created, it is torn down like any other.
func (c *Channel) teardown(ctx context.Context, id uint32) error {
	c.gpadlMu.Lock()
	defer c.gpadlMu.Unlock()
	c.mu.Lock()
	var pending *waiter
	found := false
	for _, g := range c.gpadls {
		if g.ID == id {
			found, pending = true, g.created
		}
	}
	c.mu.Unlock()
	if !found {
		return fmt.Errorf("%w: %#x on relid %d", ErrUnknownGPADL, id, c.offer.RelID)
	}
	b := c.bus
	if pending != nil {
		var r result
		select {
		case r = <-pending.ch:
		case <-ctx.Done():
			return fmt.Errorf("vmbus: GPADL_CREATED %#x still outstanding: %w", id, ctx.Err())
		}
		if r.err != nil {
			c.forgetGPADL(id, false)
			return fmt.Errorf("vmbus: GPADL_CREATED %#x: %w", id, r.err)
		}
		m := r.msg.(chanmsg.GPADLCreated)
		if m.Status != 0 {
			c.forgetGPADL(id, true) // never created: nothing to tear down
			return nil
		}
		c.mu.Lock()
		for i := range c.gpadls {
			if c.gpadls[i].ID == id {
				c.gpadls[i].created = nil
			}
		}
		c.mu.Unlock()
		c.stats.gpadls.Add(1)
	}
	wt := b.register(chanmsg.TypeGPADLTorndown, id, 0)
	if wt.err != nil {
		return wt.err
	}
	if err := b.postMsg(ctx, &chanmsg.GPADLTeardown{RelID: c.offer.RelID, GPADL: id}); err != nil {
		b.unregister(wt)
		return fmt.Errorf("vmbus: GPADL_TEARDOWN %#x: %w", id, err)
	}
	if _, err := b.wait(ctx, wt); err != nil {
		return fmt.Errorf("vmbus: GPADL_TORNDOWN %#x: %w", id, err)
	}
	c.forgetGPADL(id, true)
	return nil
}

// forgetGPADL drops id from the channel's list. With gone false (the bus
// shut down before the host answered) the entry stays, as created, so
// that its pages are never freed.
func (c *Channel) forgetGPADL(id uint32, gone bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, g := range c.gpadls {
		if g.ID != id {
			continue
		}
		if gone {
			c.gpadls = append(c.gpadls[:i], c.gpadls[i+1:]...)
		} else {
			c.gpadls[i].created = nil
		}
		return
	}
}

// ---- data path ----

// TrySend writes one packet with payload parts to the outbound ring and
// signals the host if the ring was empty and the host is not masked
// (docs/hyperv-protocol.md §4.6, §3.12). It returns ErrRingFull if the packet does not
// fit now. It does not allocate. It reads hdr and parts only before the
// packet becomes visible to the host: a caller may reuse them as soon as
// the host's completion arrives, even before TrySend returns.
func (c *Channel) TrySend(typ ring.PacketType, flags uint16, txid uint64, parts ...[]byte) error {
	return c.trySend(typ, flags, txid, nil, parts)
}

func (c *Channel) trySend(typ ring.PacketType, flags uint16, txid uint64, hdr []byte, parts [][]byte) error {
	if c.isRescinded.Load() {
		return ErrRescinded
	}
	// Count before writing: once the packet is in the ring the host may
	// complete it and the caller reuse parts (storvsc's slots do) before
	// this call returns.
	n := len(hdr)
	for _, p := range parts {
		n += len(p)
	}
	c.sendMu.Lock()
	if c.w == nil {
		c.sendMu.Unlock()
		return ErrClosed
	}
	signal, err := c.w.TryWrite(typ, flags, txid, hdr, parts...)
	c.sendMu.Unlock()
	if err != nil {
		if err == ring.ErrFull {
			c.stats.ringFull.Add(1)
		} else {
			c.stats.errors.Add(1)
		}
		return err
	}
	c.stats.packetsSent.Add(1)
	c.stats.bytesSent.Add(uint64(n))
	if signal {
		c.signalHost()
	}
	return nil
}

// signalHost rings the host's doorbell for this channel (docs/hyperv-protocol.md §3.12).
func (c *Channel) signalHost() {
	b := c.bus
	conn := c.offer.ConnectionID
	if v := b.Version(); v < chanmsg.Version1_1 {
		setSendBit(b.intPage.Mem, c.offer.RelID)
		conn = connEvent013
	} else if !c.offer.DedicatedInterrupt && v < chanmsg.Version5_0 {
		setSendBit(b.intPage.Mem, c.offer.RelID)
	}
	c.stats.signals.Add(1)
	if err := b.p.SignalEvent(conn, 0); err != nil {
		c.stats.signalErrors.Add(1)
		b.stats.signalErrors.Add(1)
	}
}

// Send is TrySend that waits, until ctx is done, for ring space: it stores
// the pending send size so that the host signals when enough space is
// free (docs/hyperv-protocol.md §4.6).
func (c *Channel) Send(ctx context.Context, typ ring.PacketType, flags uint16, txid uint64, parts ...[]byte) error {
	return c.send(ctx, typ, flags, txid, nil, parts)
}

// SendWithHeader is Send with a type-specific header hdr (length a
// multiple of 8), e.g. the GPA-direct range list of docs/hyperv-protocol.md §4.5.
func (c *Channel) SendWithHeader(ctx context.Context, typ ring.PacketType, flags uint16, txid uint64, hdr []byte, parts ...[]byte) error {
	return c.send(ctx, typ, flags, txid, hdr, parts)
}

func (c *Channel) send(ctx context.Context, typ ring.PacketType, flags uint16, txid uint64, hdr []byte, parts [][]byte) error {
	err := c.trySend(typ, flags, txid, hdr, parts)
	if err != ring.ErrFull {
		return err
	}
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	need := ring.SpaceNeeded(len(hdr), n)
	c.sendWaiters.Add(1)
	defer c.doneWaiting()
	for {
		c.spaceMu.Lock()
		wakeCh := c.spaceCh
		c.spaceMu.Unlock()
		c.setPendingSend(need)
		// Re-check after publishing the pending size: the host may have
		// freed the space before it could see it (docs/hyperv-protocol.md §4.6).
		err := c.trySend(typ, flags, txid, hdr, parts)
		if err != ring.ErrFull {
			return err
		}
		c.stats.sendWaits.Add(1)
		select {
		case <-wakeCh:
		case <-c.rescinded:
			return ErrRescinded
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *Channel) setPendingSend(n int) {
	c.sendMu.Lock()
	if c.w != nil {
		c.w.SetPendingSend(n)
	}
	c.sendMu.Unlock()
}

// doneWaiting ends one Send's wait for space and clears the pending send
// size when no other Send waits: clearing it while another sender sleeps
// on it would leave that sender without a signal from the host. Under
// sendMu, so that a sender registering now stores its size after the
// clear.
func (c *Channel) doneWaiting() {
	c.sendMu.Lock()
	if c.sendWaiters.Add(-1) == 0 && c.w != nil {
		c.w.SetPendingSend(0)
	}
	c.sendMu.Unlock()
}

// wakeSenders wakes every Send waiting for space.
func (c *Channel) wakeSenders() {
	if c.sendWaiters.Load() == 0 {
		return
	}
	c.spaceMu.Lock()
	close(c.spaceCh)
	c.spaceCh = make(chan struct{})
	c.spaceMu.Unlock()
}

// ReadPacket copies the next inbound packet into buf and returns it
// (Header and Payload alias buf), or ErrEmpty. It publishes the read index
// at once and signals the host if it was waiting for space. Call it from
// OnInterrupt or from one goroutine; it does not allocate except for a
// *ring.BufferTooSmallError.
func (c *Channel) ReadPacket(buf []byte) (ring.Packet, error) {
	c.readMu.Lock()
	if c.r == nil {
		c.readMu.Unlock()
		if c.isRescinded.Load() {
			return ring.Packet{}, ErrRescinded
		}
		return ring.Packet{}, ErrClosed
	}
	p, err := c.r.Read(buf)
	signal := false
	if err == nil {
		signal = c.r.Commit()
	}
	c.readMu.Unlock()
	if err != nil {
		if err != ring.ErrEmpty {
			c.stats.errors.Add(1)
		}
		return p, err
	}
	c.stats.packetsReceived.Add(1)
	c.stats.bytesReceived.Add(uint64(len(p.Header) + len(p.Payload)))
	if signal {
		c.signalHost()
	}
	return p, nil
}

// kick wakes the channel's dispatch goroutine without waiting: it is
// called from the SynIC handler and the poller.
func (c *Channel) kick() {
	select {
	case c.kickCh <- struct{}{}:
	default:
	}
}

// startDispatch starts the channel's dispatch goroutine, which runs fn
// (may be nil) and wakes waiting senders on every kick.
func (c *Channel) startDispatch(fn func()) {
	stop := make(chan struct{})
	c.mu.Lock()
	c.dispatchStop = stop
	c.mu.Unlock()
	b := c.bus
	b.dispatchers.Add(1)
	go func() {
		defer b.dispatchers.Done()
		for {
			select {
			case <-c.kickCh:
			case <-stop:
				return
			case <-c.rescinded:
				return
			case <-b.stop:
				return
			}
			select {
			case <-stop: // detached meanwhile: start no new run
				return
			default:
			}
			c.interrupt(fn)
		}
	}()
}

// interrupt runs on the dispatch goroutine for a host signal or a poll.
func (c *Channel) interrupt(fn func()) {
	c.stats.interrupts.Add(1)
	c.wakeSenders()
	if fn != nil {
		fn()
	}
}

// MaskInterrupt sets the inbound ring's interrupt mask (docs/hyperv-protocol.md §4.2,
// §4.6): the host stops signalling new packets, for a driver that drains
// by polling. End with UnmaskInterrupt. No-op on a channel that is not
// open.
func (c *Channel) MaskInterrupt() {
	c.readMu.Lock()
	if c.r != nil {
		c.r.MaskInterrupts()
	}
	c.readMu.Unlock()
}

// UnmaskInterrupt clears the inbound ring's interrupt mask and then
// reports whether packets are pending: one written while the mask was set
// was not signalled, so on true the caller drains again (and may mask
// again), else it would wait for a signal that never comes (docs/hyperv-protocol.md
// §4.6). False on a channel that is not open.
func (c *Channel) UnmaskInterrupt() bool {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.r == nil {
		return false
	}
	return c.r.UnmaskInterrupts()
}

// TrySendWithHeader is TrySend with a type-specific header hdr (length a
// multiple of 8), e.g. the GPA-direct range list of docs/hyperv-protocol.md §4.5. It
// does not allocate.
func (c *Channel) TrySendWithHeader(typ ring.PacketType, flags uint16, txid uint64, hdr []byte, parts ...[]byte) error {
	return c.trySend(typ, flags, txid, hdr, parts)
}

// needsPoll reports whether the poller should run the channel: it is open
// and its inbound ring holds data, or a sender waits for space.
func (c *Channel) needsPoll() bool {
	if c.sendWaiters.Load() > 0 {
		return true
	}
	h := c.inbound.Load()
	if h == nil {
		return false
	}
	w := atomic.LoadUint32((*uint32)(unsafe.Pointer(h)))
	r := atomic.LoadUint32((*uint32)(unsafe.Add(unsafe.Pointer(h), ring.OffReadIndex)))
	return w != r
}

// ModifyTargetVP asks the host to interrupt another VP for this channel
// (MODIFYCHANNEL, 4.1+, docs/hyperv-protocol.md §3.10). From 5.3 on it waits for
// MODIFYCHANNEL_RESPONSE; before, the host does not answer.
func (c *Channel) ModifyTargetVP(ctx context.Context, vp uint32) error {
	b := c.bus
	v := b.Version()
	if v < chanmsg.Version4_1 {
		return fmt.Errorf("%w: MODIFYCHANNEL needs 4.1, have %v", ErrBadConfig, v)
	}
	if v < chanmsg.Version5_3 {
		return b.postMsg(ctx, &chanmsg.ModifyChannel{RelID: c.offer.RelID, TargetVP: vp})
	}
	wt := b.register(chanmsg.TypeModifyChannelResponse, c.offer.RelID, c.offer.RelID)
	if wt.err != nil {
		return wt.err
	}
	if err := b.postMsg(ctx, &chanmsg.ModifyChannel{RelID: c.offer.RelID, TargetVP: vp}); err != nil {
		b.unregister(wt)
		return err
	}
	msg, err := b.wait(ctx, wt)
	if err != nil {
		return err
	}
	if r := msg.(chanmsg.ModifyChannelResponse); r.Status != 0 {
		return &ModifyError{RelID: c.offer.RelID, Status: r.Status}
	}
	return nil
}
