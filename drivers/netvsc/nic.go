package netvsc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gohv/gohv/drivers/netvsc/nvsp"
	"github.com/gohv/gohv/drivers/netvsc/rndis"
	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/chanmsg"
	"github.com/gohv/gohv/vmbus/ring"
)

// Buffer ids the guest chooses (§7.3; the values Linux uses).
const (
	receiveBufferID = 0xCAFE
	sendBufferID    = 0
)

// Transaction ids: the top byte says what a completion completes.
const (
	txidKindShift = 56
	txidKindData  = 1 << txidKindShift // low 32 bits: tx slot index
	txidKindSetup = 2 << txidKindShift // low 32 bits: setup sequence
	txidKindMask  = 0xFF << txidKindShift
)

// flagCompletionRequested is descriptor flag bit 0 (§4.3).
const flagCompletionRequested = 1

// NIC is one Hyper-V synthetic network adapter. Its methods are safe for
// concurrent use. See the package documentation for the goroutines and
// locks involved.
type NIC struct {
	cfg     Config
	phys    hv.PhysTranslator // nil if cfg.Memory cannot translate
	primary Channel
	subs    []Channel
	queues  []*queue // grows only during Open (under queuesMu), fixed once Open returns
	// queuesMu guards queues while Open adds sub-channel queues; nqueues
	// is its length for the interrupt paths.
	queuesMu sync.Mutex
	nqueues  atomic.Int32
	version  nvsp.Version

	mac      [6]byte
	mtu      int
	maxFrame int // largest non-LSO frame: MTU + Ethernet header + VLAN tag
	offloads Offloads
	rssKey   [rndis.RSSKeySize]byte

	sendTable [nvsp.IndirectionTableSize]atomic.Uint32

	recvBuf, sendBuf     hv.Pages
	recvGPADL, sendGPADL vmbus.GPADL
	haveRecvGPADL        bool
	haveSendGPADL        bool
	recvRevoke           bool // SEND_RECEIVE_BUFFER was accepted: revoke on close
	sendRevoke           bool
	recvLimit            uint64 // receive ranges must end at or below this
	sectionSize          int
	sections             int
	secMap               []atomic.Uint64 // bit set = section in use
	rxSubAllocs          int             // receive sub-allocations, sizes each queue's completion backlog

	bounce bouncePool

	// setup: one NVSP request with a completion at a time (Open only).
	setupMu   sync.Mutex
	setupSeq  uint32
	setupTxid atomic.Uint64 // txid awaited, 0 when none
	setupCh   chan int      // length of setupResp, from queue 0's interrupt
	setupResp [64]byte

	ctl control

	linkUp    atomic.Bool
	linkSpeed atomic.Uint64
	receiver  atomic.Pointer[func(queue int, frame []byte, info RxInfo)]
	linkFn    atomic.Pointer[func(up bool)]
	netFn     atomic.Pointer[func()]
	events    eventQueue

	removed   atomic.Bool
	closed    atomic.Bool
	gone      chan struct{} // closed on rescind or Close
	goneOnce  sync.Once
	closeOnce sync.Once
	closeErr  error
	stop      chan struct{} // stops the NIC's goroutines
	wg        sync.WaitGroup

	ctr nicCounters
}

type nicCounters struct {
	controlMessages, keepalives, linkChanges, networkChanges, tableUpdates atomic.Uint64
	badPackets                                                             atomic.Uint64
}

// MAC returns the adapter's permanent MAC address.
func (n *NIC) MAC() [6]byte { return n.mac }

// MTU returns the IP MTU (frame size without the Ethernet header).
func (n *NIC) MTU() int { return n.mtu }

// Queues returns the number of queues: 1 plus the vRSS sub-channels.
func (n *NIC) Queues() int { return len(n.queues) }

// LinkUp reports the media connect state.
func (n *NIC) LinkUp() bool { return n.linkUp.Load() }

// Offloads returns the offloads the host granted.
func (n *NIC) Offloads() Offloads { return n.offloads }

// Version returns the negotiated NVSP version.
func (n *NIC) Version() nvsp.Version { return n.version }

// SetReceiver installs fn as the receive callback. fn runs on the queue's
// channel dispatch goroutine (one per queue, never concurrently with
// itself for a queue); frame is valid only during the call, after which
// the receive-buffer space is completed back to the host. fn must not
// block. Frames received while no receiver is set are dropped.
func (n *NIC) SetReceiver(fn func(queue int, frame []byte, info RxInfo)) {
	if fn == nil {
		n.receiver.Store(nil)
		return
	}
	n.receiver.Store(&fn)
}

// SetLinkHandler installs fn, called with the new state on every media
// connect or disconnect indication. It runs on the NIC's event goroutine,
// in order, and may block briefly (events queue behind it).
func (n *NIC) SetLinkHandler(fn func(up bool)) {
	if fn == nil {
		n.linkFn.Store(nil)
		return
	}
	n.linkFn.Store(&fn)
}

// SetNetworkChangeHandler installs fn, called when the host indicates a
// network change (the guest should renew its addresses). It runs on the
// NIC's event goroutine.
func (n *NIC) SetNetworkChangeHandler(fn func()) {
	if fn == nil {
		n.netFn.Store(nil)
		return
	}
	n.netFn.Store(&fn)
}

// Removed is closed when the host rescinds the NIC (hot-remove): from
// then on sends and waits fail with ErrRemoved, and the NIC should be taken
// out of use and closed.
func (n *NIC) Removed() <-chan struct{} { return n.primary.Rescinded() }

// Stats returns the NIC's counters.
func (n *NIC) Stats() Stats {
	s := Stats{
		ControlMessages: n.ctr.controlMessages.Load(), Keepalives: n.ctr.keepalives.Load(),
		LinkChanges: n.ctr.linkChanges.Load(), NetworkChanges: n.ctr.networkChanges.Load(),
		SendTableUpdates: n.ctr.tableUpdates.Load(), LinkSpeed: n.linkSpeed.Load(),
		RxBadPackets: n.ctr.badPackets.Load(),
	}
	for _, q := range n.queues {
		c := &q.ctr
		s.TxPackets += c.txPackets.Load()
		s.TxBytes += c.txBytes.Load()
		s.TxCopied += c.txCopied.Load()
		s.TxDirect += c.txDirect.Load()
		s.TxBounced += c.txBounced.Load()
		s.TxBusy += c.txBusy.Load()
		s.TxErrors += c.txErrors.Load()
		s.RxPackets += c.rxPackets.Load()
		s.RxBytes += c.rxBytes.Load()
		s.RxDropped += c.rxDropped.Load()
		s.RxBadPackets += c.rxBad.Load()
		s.RxCompletionsLate += c.rxLate.Load()
	}
	return s
}

// goneErr is the error of an operation on a NIC that is gone.
func (n *NIC) goneErr() error {
	if n.removed.Load() {
		return ErrRemoved
	}
	return ErrClosed
}

func (n *NIC) markGone() {
	n.goneOnce.Do(func() {
		close(n.gone)
		n.queuesMu.Lock()
		defer n.queuesMu.Unlock()
		for _, q := range n.queues {
			q.wake()
		}
	})
}

// Open brings up the NIC on the primary channel ch of a network-class
// offer (§5): it opens the channel, negotiates NVSP, hands the host the
// receive and send buffers, initialises RNDIS, reads the MAC address,
// MTU, link state and offloads, sets up vRSS sub-channels when configured
// and sets the packet filter. It returns once the NIC can send and
// receive. On error everything set up so far is torn down.
func Open(ctx context.Context, ch Channel, cfg Config) (*NIC, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	n := &NIC{
		cfg: cfg, primary: ch, gone: make(chan struct{}), stop: make(chan struct{}),
		setupCh: make(chan int, 1),
	}
	n.phys, _ = cfg.Memory.(hv.PhysTranslator)
	n.rssKey = *cfg.RSSKey
	n.ctl.init()
	n.events.init()
	q0 := newQueue(n, 0, ch)
	n.queues = []*queue{q0}
	n.nqueues.Store(1)
	if err := ch.Open(ctx, vmbus.OpenConfig{SendRingSize: cfg.RingSize, RecvRingSize: cfg.RingSize, OnInterrupt: q0.onInterrupt}); err != nil {
		return nil, fmt.Errorf("netvsc: open channel: %w", err)
	}
	n.wg.Add(2)
	go n.watchRescind()
	go n.runEvents()
	q0.start()
	if err := n.setup(ctx); err != nil {
		n.markGone()
		if cerr := n.teardown(ctx, true); cerr != nil {
			err = errors.Join(err, cerr)
		}
		close(n.stop)
		n.wg.Wait()
		return nil, err
	}
	return n, nil
}

func (c *Config) fill() error {
	if c.Memory == nil {
		return fmt.Errorf("%w: no Memory", ErrBadConfig)
	}
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	if c.Queues == 0 {
		c.Queues = 1
	}
	if c.RingSize == 0 {
		c.RingSize = DefaultRingSize
	}
	if c.ReceiveBufferSize == 0 {
		c.ReceiveBufferSize = DefaultReceiveBufferSize
	}
	if c.SendBufferSize == 0 {
		c.SendBufferSize = DefaultSendBufferSize
	}
	if c.TxSlots == 0 {
		c.TxSlots = DefaultTxSlots
	}
	if c.BounceBuffers == 0 {
		c.BounceBuffers = DefaultBounceBuffers
	}
	if c.RSSKey == nil {
		k := DefaultRSSKey
		c.RSSKey = &k
	}
	switch {
	case c.MTU < MinMTU || c.MTU > MaxMTU:
		return fmt.Errorf("%w: MTU %d not in [%d, %d]", ErrBadConfig, c.MTU, MinMTU, MaxMTU)
	case c.Queues < 1 || c.Queues > maxQueues:
		return fmt.Errorf("%w: %d queues", ErrBadConfig, c.Queues)
	case c.ReceiveBufferSize%hv.PageSize != 0 || c.ReceiveBufferSize <= 0:
		return fmt.Errorf("%w: receive buffer size %d", ErrBadConfig, c.ReceiveBufferSize)
	case c.SendBufferSize%hv.PageSize != 0 || c.SendBufferSize <= 0 || c.SendBufferSize > nvsp.MaxSendBuffer:
		return fmt.Errorf("%w: send buffer size %d", ErrBadConfig, c.SendBufferSize)
	case c.TxSlots < 1 || c.TxSlots > 1<<16 || c.BounceBuffers < 0:
		return fmt.Errorf("%w: %d tx slots, %d bounce buffers", ErrBadConfig, c.TxSlots, c.BounceBuffers)
	}
	return nil
}

// watchRescind marks the NIC removed when the host rescinds the primary
// channel: waits fail with ErrRemoved, sends with ErrRemoved.
func (n *NIC) watchRescind() {
	defer n.wg.Done()
	select {
	case <-n.primary.Rescinded():
		n.removed.Store(true)
		n.markGone()
	case <-n.stop:
	}
}

// Close stops the NIC: it clears the packet filter and sends HALT, waits
// (until ctx is done) for sends in flight, revokes the receive and send
// buffers, closes the channels and tears down the buffers' GPADLs in the
// order the VMBus version requires (§7.4 step 8). After a rescind it only
// releases what the guest still holds. Calling Close again returns the
// first result.
func (n *NIC) Close(ctx context.Context) error {
	n.closeOnce.Do(func() {
		n.closed.Store(true)
		// The rescind may not have reached watchRescind yet (a caller
		// woken by Removed closes at once): look at the channel itself.
		select {
		case <-n.primary.Rescinded():
			n.removed.Store(true)
		default:
		}
		graceful := !n.removed.Load()
		if graceful {
			n.quiesce(ctx)
		}
		n.markGone()
		n.closeErr = n.teardown(ctx, graceful)
		close(n.stop)
		n.wg.Wait()
	})
	return n.closeErr
}

// quiesceMax bounds quiesce when Close's context has no deadline.
const quiesceMax = 2 * time.Second

// quiesce stops the host from delivering (filter 0), halts RNDIS and
// waits for outstanding sends. Failures are not fatal: teardown follows.
// It uses at most half of the time ctx leaves (quiesceMax without a
// deadline): sends whose completions the host never writes (lost, or a
// host that stopped answering) must not use up the time teardown needs to
// revoke the buffers and close the channels.
func (n *NIC) quiesce(ctx context.Context) {
	limit := quiesceMax
	if dl, ok := ctx.Deadline(); ok {
		limit = time.Until(dl) / 2
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var info [4]byte
	_ = n.setOID(ctx, rndis.OIDGenCurrentPacketFilter, info[:])
	var halt [rndis.HaltSize]byte
	rndis.PutHalt(halt[:], n.ctl.newID())
	_ = n.queues[0].sendControl(ctx, halt[:])
	for _, q := range n.queues {
		_ = q.drain(ctx)
	}
}

// teardown revokes the buffers (if revoke), closes the channels and tears
// down the GPADLs, then frees the memory whose GPADL is gone.
func (n *NIC) teardown(ctx context.Context, revoke bool) error {
	// Barrier: a Send in progress finishes; later ones see the NIC gone.
	for _, q := range n.queues {
		q.sendMu.Lock()
		q.stopped = true
		q.sendMu.Unlock()
	}
	var errs []error
	var msg [nvsp.MessageSize]byte
	if revoke && !n.removed.Load() {
		// Revoke messages before any GPADL teardown (Linux
		// drivers/net/hyperv/netvsc.c netvsc_revoke_buf, then
		// netvsc_teardown_gpadl). A rescind that lands meanwhile makes
		// them moot, not a failure.
		if n.recvRevoke {
			if err := n.primary.SendWithHeader(ctx, ring.TypeDataInband, 0, 0, nil, nvsp.PutRevokeReceiveBuffer(msg[:], receiveBufferID)); err != nil && !errors.Is(err, vmbus.ErrRescinded) {
				errs = append(errs, fmt.Errorf("netvsc: REVOKE_RECEIVE_BUFFER: %w", err))
			}
		}
		if n.sendRevoke {
			if err := n.primary.SendWithHeader(ctx, ring.TypeDataInband, 0, 0, nil, nvsp.PutRevokeSendBuffer(msg[:], sendBufferID)); err != nil && !errors.Is(err, vmbus.ErrRescinded) {
				errs = append(errs, fmt.Errorf("netvsc: REVOKE_SEND_BUFFER: %w", err))
			}
		}
	}
	legacy := n.cfg.VMBusVersion != 0 && n.cfg.VMBusVersion < chanmsg.Version4_0
	if legacy {
		errs = append(errs, n.teardownGPADLs(ctx)...)
	}
	closed := true
	for i := len(n.queues) - 1; i >= 0; i-- {
		if err := n.queues[i].ch.Close(ctx); err != nil && !errors.Is(err, vmbus.ErrClosed) {
			errs = append(errs, fmt.Errorf("netvsc: close queue %d: %w", i, err))
			closed = false
		}
	}
	if !legacy {
		errs = append(errs, n.teardownGPADLs(ctx)...)
	}
	if !closed {
		// The host may still use the rings' GPA-direct pages and the
		// buffers: keep the memory rather than hand it out again.
		return errors.Join(errs...)
	}
	// Memory goes only now that no interrupt runs any more.
	if !n.haveRecvGPADL && n.recvBuf.Mem != nil {
		n.cfg.Memory.FreePages(n.recvBuf)
		n.recvBuf = hv.Pages{}
	}
	if !n.haveSendGPADL && n.sendBuf.Mem != nil {
		n.cfg.Memory.FreePages(n.sendBuf)
		n.sendBuf = hv.Pages{}
	}
	for _, q := range n.queues {
		q.free() // also gives back bounce buffers of sends never completed
	}
	if err := n.bounce.close(); err != nil {
		errs = append(errs, fmt.Errorf("netvsc: bounce buffers: %w", err))
	}
	return errors.Join(errs...)
}

func (n *NIC) teardownGPADLs(ctx context.Context) []error {
	var errs []error
	if n.haveRecvGPADL {
		if err := n.primary.TeardownGPADL(ctx, n.recvGPADL); err != nil {
			errs = append(errs, fmt.Errorf("netvsc: receive buffer GPADL: %w", err))
		} else {
			n.haveRecvGPADL = false
		}
	}
	if n.haveSendGPADL {
		if err := n.primary.TeardownGPADL(ctx, n.sendGPADL); err != nil {
			errs = append(errs, fmt.Errorf("netvsc: send buffer GPADL: %w", err))
		} else {
			n.haveSendGPADL = false
		}
	}
	return errs
}
