package vmbus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// Connection ids of docs/hyperv-protocol.md §2.5.
const (
	connMessage  = 1 // message connection below 5.0
	connEvent013 = 2 // event connection of protocol 0.13
	connContact5 = 4 // INITIATE_CONTACT from 5.0 on
)

// DefaultVersions returns the version list Connect tries by default, newest
// first (Linux's list, docs/hyperv-protocol.md §3.3).
func DefaultVersions() []chanmsg.Version {
	return []chanmsg.Version{
		chanmsg.Version5_3, chanmsg.Version5_2, chanmsg.Version5_1, chanmsg.Version5_0,
		chanmsg.Version4_1, chanmsg.Version4_0, chanmsg.Version3_0, chanmsg.Version2_4,
	}
}

// Default intervals.
const (
	DefaultPollInterval   = 10 * time.Millisecond
	DefaultCleanupTimeout = 5 * time.Second
	firstGPADLID          = 0xE1E10 // Linux's first id (docs/hyperv-protocol.md §3.9)
	maxPostAttempts       = 100     // Linux's retry budget (docs/hyperv-protocol.md §1.8)
)

// Config configures Connect. The zero value is usable.
type Config struct {
	// Versions to try, newest first; nil means DefaultVersions().
	Versions []chanmsg.Version
	// Logf, if set, receives diagnostics.
	Logf func(format string, args ...any)
	// PollInterval is the period of the polling fallback for lost
	// interrupts: 0 means DefaultPollInterval, < 0 turns it off.
	PollInterval time.Duration
	// CleanupTimeout bounds the host's answers during clean-up that no
	// caller waits for (after a rescind, after a failed Open): 0 means
	// DefaultCleanupTimeout.
	CleanupTimeout time.Duration
}

// BusStats are a Bus's counters.
type BusStats struct {
	MessagesIn, MessagesOut uint64
	BadMessages             uint64 // undecodable or invalid for the state
	UnexpectedMessages      uint64 // valid but nobody waited for them
	ForeignMessages         uint64 // SynIC messages of a type other than VMBus
	QueueOverflows          uint64 // handler found the message queue full
	EOMs                    uint64
	Interrupts, Polls       uint64
	Events                  uint64 // scans that found channel event flags
	PostRetries             uint64
	SignalErrors            uint64
}

type busCounters struct {
	messagesIn, messagesOut, badMessages, unexpected, foreignMessages atomic.Uint64
	queueOverflows, eoms, interrupts, polls, events                   atomic.Uint64
	postRetries, signalErrors                                         atomic.Uint64
}

// Bus is a connection to the host's VMBus server.
type Bus struct {
	p       hv.Platform
	synic   hv.SynIC
	cfg     Config
	logf    func(string, ...any)
	version atomic.Uint32
	msgConn atomic.Uint32

	// pages: interrupt page, then the two monitor pages (docs/hyperv-protocol.md §3.4).
	pages   hv.Pages
	intPage hv.Pages

	// Interrupt side (synic.go).
	scanning, again, overflowed atomic.Bool
	q                           msgQueue
	msgWake                     chan struct{}

	// relids maps relid → channel for lock-free lookup by the interrupt
	// path; it is
	// written under mu.
	relids [chanmsg.MaxRelID + 1]atomic.Pointer[Channel]

	mu           sync.Mutex
	waiters      []*waiter
	allOffers    bool
	allOffersCh  chan struct{}
	offerHandler func(*Channel)
	closing      bool

	// postMu orders every post against UNLOAD: posts hold it shared and
	// unload takes it exclusively to set unloaded, so that nothing but
	// UNLOAD itself reaches the host after it (docs/hyperv-protocol.md §3.11 step 7). A
	// rescind clean-up or a driver call racing with Close gets ErrClosed
	// instead of talking to a host that has already reset.
	postMu   sync.RWMutex
	unloaded bool // under postMu

	nextGPADL atomic.Uint32
	stop      chan struct{}
	stopped   bool // under mu: goroutines gone, no answer can arrive
	loops     sync.WaitGroup
	// dispatchers counts the channels' dispatch goroutines (channel.go).
	dispatchers sync.WaitGroup
	cleanups    sync.WaitGroup
	stats       busCounters
}

// Connect connects to the host's VMBus server through p (docs/hyperv-protocol.md §3.11):
// it installs SINT 2 handlers (control messages arrive on the boot SynIC,
// the target VP of INITIATE_CONTACT; channel events on whichever VP a
// channel targets), negotiates a version newest first, requests the offers
// and returns once ALLOFFERS_DELIVERED arrived. ctx bounds the whole
// handshake.
func Connect(ctx context.Context, p hv.Platform, cfg Config) (*Bus, error) {
	synics := p.SynICs()
	if len(synics) == 0 {
		return nil, fmt.Errorf("%w: platform has no SynIC", ErrBadConfig)
	}
	if cfg.Versions == nil {
		cfg.Versions = DefaultVersions()
	}
	if len(cfg.Versions) == 0 {
		return nil, fmt.Errorf("%w: empty version list", ErrBadConfig)
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.CleanupTimeout <= 0 {
		cfg.CleanupTimeout = DefaultCleanupTimeout
	}
	b, err := newBus(p, synics[0], cfg)
	if err != nil {
		return nil, err
	}
	pages := b.pages
	for i, s := range synics {
		h := b.handler
		if i > 0 {
			h = b.otherHandler(s)
		}
		if err := s.SetHandler(hv.VMBusSINT, h); err != nil {
			for _, s := range synics[:i] {
				_ = s.SetHandler(hv.VMBusSINT, nil)
			}
			p.FreePages(pages)
			return nil, fmt.Errorf("vmbus: SINT %d handler on VP %d: %w", hv.VMBusSINT, s.VPIndex(), err)
		}
	}
	b.loops.Add(1)
	go b.messageLoop()
	// A message may have arrived before the handler was installed.
	b.scan()

	if err := b.negotiate(ctx); err != nil {
		b.shutdown(false)
		return nil, err
	}
	if err := b.postMsg(ctx, chanmsg.RequestOffers{}); err != nil {
		b.abortConnect()
		return nil, fmt.Errorf("vmbus: REQUESTOFFERS: %w", err)
	}
	select {
	case <-b.allOffersCh:
	case <-ctx.Done():
		b.abortConnect()
		return nil, fmt.Errorf("vmbus: waiting for offers: %w", ctx.Err())
	}
	return b, nil
}

// abortConnect undoes a Connect that failed after the host accepted a
// version: without an UNLOAD the host stays connected and ignores the
// next INITIATE_CONTACT. Nothing was opened yet, so UNLOAD is all.
func (b *Bus) abortConnect() {
	b.mu.Lock()
	b.closing = true
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.CleanupTimeout)
	defer cancel()
	err := b.unload(ctx)
	if err != nil {
		b.logf("vmbus: unload after failed connect: %v", err)
	}
	b.shutdown(err == nil)
}

// newBus allocates a Bus and its interrupt and monitor pages; nothing runs
// yet.
func newBus(p hv.Platform, synic hv.SynIC, cfg Config) (*Bus, error) {
	b := &Bus{
		p: p, synic: synic, cfg: cfg,
		logf:        cfg.Logf,
		msgWake:     make(chan struct{}, 1),
		allOffersCh: make(chan struct{}),
		stop:        make(chan struct{}),
	}
	if b.logf == nil {
		b.logf = func(string, ...any) {}
	}
	b.nextGPADL.Store(firstGPADLID - 1)
	pages, err := p.AllocPages(3)
	if err != nil {
		return nil, fmt.Errorf("vmbus: interrupt and monitor pages: %w", err)
	}
	b.pages, b.intPage = pages, pages.Slice(0, 1)
	return b, nil
}

// negotiate tries the versions newest first (docs/hyperv-protocol.md §3.3–§3.5).
func (b *Bus) negotiate(ctx context.Context) error {
	vp := b.synic.VPIndex()
	for _, v := range b.cfg.Versions {
		m := chanmsg.InitiateContact{
			Version:      v,
			TargetVP:     vp,
			MonitorPage1: b.pages.PFNAt(1) << hv.PageShift,
			MonitorPage2: b.pages.PFNAt(2) << hv.PageShift,
		}
		conn := uint32(connMessage)
		if v >= chanmsg.Version5_0 {
			conn = connContact5
			m.SINT = hv.VMBusSINT
		} else {
			m.InterruptPage = b.intPage.PFN << hv.PageShift
		}
		w := b.register(chanmsg.TypeVersionResponse, 0, 0)
		if w.err != nil {
			return w.err
		}
		err := b.post(ctx, conn, &m)
		if err != nil {
			b.unregister(w)
			var st hv.Status
			if conn == connContact5 && errors.As(err, &st) && st == hv.StatusInvalidConnectionID {
				b.logf("vmbus: host has no connection 4, stepping down from %v", v)
				continue
			}
			return fmt.Errorf("vmbus: INITIATE_CONTACT %v: %w", v, err)
		}
		msg, err := b.wait(ctx, w)
		if err != nil {
			return fmt.Errorf("vmbus: VERSION_RESPONSE for %v: %w", v, err)
		}
		r := msg.(chanmsg.VersionResponse)
		if r.VersionSupported == 0 {
			b.logf("vmbus: host rejected version %v", v)
			continue
		}
		if r.ConnectionState != 0 {
			return fmt.Errorf("%w: version %v, connection state %d", ErrConnection, v, r.ConnectionState)
		}
		if v >= chanmsg.Version5_0 {
			if r.ConnectionID == 0 {
				return fmt.Errorf("%w: version %v, message connection id 0", ErrConnection, v)
			}
			b.msgConn.Store(r.ConnectionID)
		} else {
			b.msgConn.Store(connMessage)
		}
		b.version.Store(uint32(v))
		b.logf("vmbus: connected, version %v, message connection %d", v, b.msgConn.Load())
		return nil
	}
	return ErrNoVersion
}

// Version returns the negotiated protocol version.
func (b *Bus) Version() chanmsg.Version { return chanmsg.Version(b.version.Load()) }

// Channels returns all channels offered so far and not released, primaries
// and sub-channels, in relid order.
func (b *Bus) Channels() []*Channel {
	var out []*Channel
	for i := range b.relids {
		if c := b.relids[i].Load(); c != nil {
			out = append(out, c)
		}
	}
	return out
}

// SetOfferHandler sets fn to be called for each offer that arrives after
// ALLOFFERS_DELIVERED (hot-add). fn runs on the bus's message goroutine and
// must not block: in particular it must not wait for the host (Open); start
// a goroutine for that.
func (b *Bus) SetOfferHandler(fn func(*Channel)) {
	b.mu.Lock()
	b.offerHandler = fn
	b.mu.Unlock()
}

// Stats returns the bus counters.
func (b *Bus) Stats() BusStats {
	s := &b.stats
	return BusStats{
		MessagesIn: s.messagesIn.Load(), MessagesOut: s.messagesOut.Load(),
		BadMessages: s.badMessages.Load(), UnexpectedMessages: s.unexpected.Load(),
		ForeignMessages: s.foreignMessages.Load(), QueueOverflows: s.queueOverflows.Load(),
		EOMs: s.eoms.Load(), Interrupts: s.interrupts.Load(), Polls: s.polls.Load(),
		Events: s.events.Load(), PostRetries: s.postRetries.Load(), SignalErrors: s.signalErrors.Load(),
	}
}

// Close shuts the connection down (docs/hyperv-protocol.md §3.11 step 7): it closes open
// channels, tears down the remaining GPADLs, sends UNLOAD and waits for
// UNLOAD_RESPONSE, then removes the SINT handler. Pages the host may still
// use (after an unanswered teardown or unload) are not freed.
func (b *Bus) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return ErrClosed
	}
	b.closing = true
	b.mu.Unlock()
	var errs []error
	for _, c := range b.Channels() {
		if err := c.release(ctx); err != nil {
			errs = append(errs, fmt.Errorf("relid %d: %w", c.offer.RelID, err))
		}
	}
	err := b.unload(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	b.shutdown(err == nil && len(errs) == 0)
	return errors.Join(errs...)
}

// unload sends UNLOAD, the last message the host gets, and waits for
// UNLOAD_RESPONSE (from 1.1 on, docs/hyperv-protocol.md §3.2). nil means the host let
// go of everything.
func (b *Bus) unload(ctx context.Context) error {
	b.postMu.Lock()
	b.unloaded = true
	b.postMu.Unlock()
	w := b.register(chanmsg.TypeUnloadResponse, 0, 0)
	if err := b.postMsg(ctx, chanmsg.Unload{}); err != nil {
		b.unregister(w)
		return fmt.Errorf("vmbus: UNLOAD: %w", err)
	}
	if b.Version() < chanmsg.Version1_1 {
		b.unregister(w) // no UNLOAD_RESPONSE before 1.1 (§3.2)
		return nil
	}
	if _, err := b.wait(ctx, w); err != nil {
		return fmt.Errorf("vmbus: UNLOAD_RESPONSE: %w", err)
	}
	return nil
}

// shutdown stops the goroutines and removes the handler; free says whether
// the host is known to have let go of the interrupt and monitor pages.
func (b *Bus) shutdown(free bool) {
	b.mu.Lock()
	b.closing = true
	b.mu.Unlock()
	for _, s := range b.p.SynICs() {
		if err := s.SetHandler(hv.VMBusSINT, nil); err != nil {
			b.logf("vmbus: masking SINT on VP %d: %v", s.VPIndex(), err)
		}
	}
	close(b.stop)
	b.loops.Wait()
	b.dispatchers.Wait()
	b.mu.Lock()
	b.stopped = true
	for _, w := range b.waiters {
		w.ch <- result{err: ErrClosed}
	}
	b.waiters = nil
	b.mu.Unlock()
	b.cleanups.Wait()
	if free || b.Version() == 0 {
		b.p.FreePages(b.pages)
	}
}

func (b *Bus) isClosing() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closing
}

// ---- waiting for host answers ----

type result struct {
	msg chanmsg.Message
	err error
}

// waiter is one expected host answer: typ with key (relid, GPADL id or 0).
// relID ≠ 0 ties it to a channel so that a rescind fails it.
type waiter struct {
	typ   chanmsg.Type
	key   uint32
	relID uint32
	ch    chan result
	// err is set by register when no answer can come (bus closing);
	// callers check it before posting the request.
	err error
}

// register announces an expected answer; call it before posting the
// request, since the answer may arrive before wait.
func (b *Bus) register(typ chanmsg.Type, key, relID uint32) *waiter {
	w := &waiter{typ: typ, key: key, relID: relID, ch: make(chan result, 1)}
	b.mu.Lock()
	if b.stopped || b.closing && typ != chanmsg.TypeUnloadResponse && typ != chanmsg.TypeGPADLTorndown {
		// Close itself still needs teardown and unload answers.
		w.err = ErrClosed
	} else {
		b.waiters = append(b.waiters, w)
	}
	b.mu.Unlock()
	return w
}

func (b *Bus) unregister(w *waiter) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, x := range b.waiters {
		if x == w {
			b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
			return
		}
	}
}

func (b *Bus) wait(ctx context.Context, w *waiter) (chanmsg.Message, error) {
	if w.err != nil {
		return nil, w.err
	}
	select {
	case r := <-w.ch:
		return r.msg, r.err
	case <-ctx.Done():
		b.unregister(w)
		select {
		case r := <-w.ch: // answered meanwhile
			return r.msg, r.err
		default:
		}
		return nil, ctx.Err()
	}
}

// deliver hands m to the waiter for (typ, key) and reports whether there
// was one.
func (b *Bus) deliver(typ chanmsg.Type, key uint32, m chanmsg.Message) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, w := range b.waiters {
		if w.typ == typ && w.key == key {
			b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
			w.ch <- result{msg: m}
			return true
		}
	}
	return false
}

// failWaiters fails every waiter tied to relID.
func (b *Bus) failWaiters(relID uint32, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	keep := b.waiters[:0]
	for _, w := range b.waiters {
		if w.relID == relID {
			w.ch <- result{err: err}
		} else {
			keep = append(keep, w)
		}
	}
	clear(b.waiters[len(keep):])
	b.waiters = keep
}

// ---- posting ----

type encoder interface {
	Encode(b []byte) (int, error)
}

// postMsg sends m on the negotiated message connection.
func (b *Bus) postMsg(ctx context.Context, m encoder) error {
	return b.post(ctx, b.msgConn.Load(), m)
}

// post encodes m and posts it to conn, retrying transient statuses (see
// retryPost) with exponential back-off, at most maxPostAttempts times and
// while ctx lasts (docs/hyperv-protocol.md §1.8). Once unload has begun, every
// message but UNLOAD gives ErrClosed.
func (b *Bus) post(ctx context.Context, conn uint32, m encoder) error {
	var buf [chanmsg.MaxSize]byte
	n, err := m.Encode(buf[:])
	if err != nil {
		return err
	}
	_, isUnload := m.(chanmsg.Unload)
	delay := time.Microsecond
	for attempt := 1; ; attempt++ {
		b.postMu.RLock()
		if b.unloaded && !isUnload {
			b.postMu.RUnlock()
			return ErrClosed
		}
		err := b.p.PostMessage(conn, hv.MessageTypeVMBus, buf[:n])
		b.postMu.RUnlock()
		if err == nil {
			b.stats.messagesOut.Add(1)
			return nil
		}
		var st hv.Status
		if !errors.As(err, &st) || !retryPost(st, m) || attempt >= maxPostAttempts {
			return err
		}
		b.stats.postRetries.Add(1)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last status: %w)", ctx.Err(), err)
		}
		delay = min(2*delay, 10*time.Millisecond)
	}
}

// retryPost says whether a post that failed with st is retried: the
// transient statuses, and INVALID_CONNECTION_ID, which a busy host returns
// too (Linux vmbus_post_msg), except for INITIATE_CONTACT, where it means
// "no connection 4 before 5.0" and negotiate steps down at once
// (docs/hyperv-protocol.md §1.8, §3.3).
func retryPost(st hv.Status, m encoder) bool {
	if st == hv.StatusInvalidConnectionID {
		_, contact := m.(*chanmsg.InitiateContact)
		return !contact
	}
	return st.Transient()
}

// ---- goroutines ----

func (b *Bus) messageLoop() {
	defer b.loops.Done()
	var tick <-chan time.Time
	if b.cfg.PollInterval > 0 {
		t := time.NewTicker(b.cfg.PollInterval)
		defer t.Stop()
		tick = t.C
	}
	var buf [hv.MaxMessagePayload]byte
	for {
		select {
		case <-b.stop:
			return
		case <-b.msgWake:
		case <-tick:
			b.stats.polls.Add(1)
			b.scan()
			for _, s := range b.p.SynICs()[1:] {
				b.scanEvents(s)
			}
			b.pokeOpenChannels()
		}
		for {
			n := b.q.pop(&buf)
			if n < 0 {
				if b.overflowed.Swap(false) {
					b.scan() // the slot may hold a message we left there
					continue
				}
				break
			}
			b.stats.messagesIn.Add(1)
			b.handle(buf[:n])
		}
	}
}

// pokeOpenChannels is the channel half of the polling fallback: open
// channels with unread data or a waiting sender get a run of their
// dispatch goroutine.
func (b *Bus) pokeOpenChannels() {
	for i := 1; i < len(b.relids); i++ {
		if c := b.relids[i].Load(); c != nil && c.needsPoll() {
			c.kick()
		}
	}
}

// handle runs the control-plane state machines for one host message.
func (b *Bus) handle(raw []byte) {
	m, err := chanmsg.Decode(raw)
	if err != nil {
		b.stats.badMessages.Add(1)
		b.logf("vmbus: bad message from host: %v", err)
		return
	}
	ok := true
	switch m := m.(type) {
	case chanmsg.VersionResponse:
		ok = b.deliver(chanmsg.TypeVersionResponse, 0, m)
	case chanmsg.OfferChannel:
		b.onOffer(m)
	case chanmsg.AllOffersDelivered:
		b.mu.Lock()
		if !b.allOffers {
			b.allOffers = true
			close(b.allOffersCh)
		} else {
			ok = false
		}
		b.mu.Unlock()
	case chanmsg.RescindChannelOffer:
		b.onRescind(m.RelID)
	case chanmsg.OpenChannelResult:
		ok = b.deliver(chanmsg.TypeOpenChannelResult, m.RelID, m)
	case chanmsg.GPADLCreated:
		ok = b.deliver(chanmsg.TypeGPADLCreated, m.GPADL, m)
	case chanmsg.GPADLTorndown:
		ok = b.deliver(chanmsg.TypeGPADLTorndown, m.GPADL, m)
	case chanmsg.UnloadResponse:
		ok = b.deliver(chanmsg.TypeUnloadResponse, 0, m)
	case chanmsg.ModifyChannelResponse:
		ok = b.deliver(chanmsg.TypeModifyChannelResponse, m.RelID, m)
	}
	if !ok {
		b.stats.unexpected.Add(1)
		b.logf("vmbus: unexpected %v", m.Type())
	}
}

func (b *Bus) onOffer(m chanmsg.OfferChannel) {
	c := newChannel(b, offerFrom(m))
	b.mu.Lock()
	if b.relids[m.RelID].Load() != nil {
		b.mu.Unlock()
		b.stats.badMessages.Add(1)
		b.logf("vmbus: duplicate offer for relid %d", m.RelID)
		return
	}
	if c.offer.SubChannelIndex != 0 {
		for i := range b.relids {
			p := b.relids[i].Load()
			if p != nil && p.offer.SubChannelIndex == 0 &&
				p.offer.InterfaceType == c.offer.InterfaceType &&
				p.offer.InterfaceInstance == c.offer.InterfaceInstance {
				c.primary = p
				p.subs = append(p.subs, c)
				close(p.subsCh) // wakes WaitSubChannels
				p.subsCh = make(chan struct{})
				break
			}
		}
	}
	b.relids[m.RelID].Store(c)
	hotAdd := b.allOffers
	fn := b.offerHandler
	b.mu.Unlock()
	if hotAdd && fn != nil {
		fn(c)
	}
}

func (b *Bus) onRescind(relID uint32) {
	c := b.relids[relID].Load()
	if c == nil {
		b.stats.badMessages.Add(1)
		b.logf("vmbus: rescind of unknown relid %d", relID)
		return
	}
	if !c.markRescinded() {
		b.stats.badMessages.Add(1) // second rescind
		return
	}
	b.failWaiters(relID, ErrRescinded)
	b.cleanups.Add(1)
	go func() {
		defer b.cleanups.Done()
		ctx, cancel := context.WithTimeout(context.Background(), b.cfg.CleanupTimeout)
		defer cancel()
		if err := c.release(ctx); err != nil {
			b.logf("vmbus: clean-up of rescinded relid %d: %v", relID, err)
		}
	}()
}

// forget removes a released channel so that its relid can be offered again.
func (b *Bus) forget(c *Channel) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.relids[c.offer.RelID].CompareAndSwap(c, nil)
	if p := c.primary; p != nil {
		for i, s := range p.subs {
			if s == c {
				p.subs = append(p.subs[:i], p.subs[i+1:]...)
				break
			}
		}
	}
}
