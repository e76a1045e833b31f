package storvsc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/hv/dma"
	"github.com/gohv/gohv/vmbus"
)

// Config configures a controller. Zero fields take the defaults noted.
type Config struct {
	// Memory provides the bounce buffers (required). When it also
	// implements PhysTranslator, buffers it reports as host-visible are
	// sent GPA-direct without a copy.
	Memory hv.Memory
	// Channels is the number of channels wanted, primary included: one
	// per CPU. Sub-channels are requested only when the host supports
	// multi-channel, up to its maximum. Default 1.
	Channels int
	// QueueDepth is the number of requests in flight per channel, further
	// bounded by what the send ring holds. Default 128.
	QueueDepth int
	// RingSize is the size of each ring including its header page.
	// Default 128 KiB (docs/hyperv-protocol.md §4.6: Linux's storvsc).
	RingSize int
	// BounceSize is the bounce buffer per request slot, a multiple of
	// 4096; requests that bounce are split at it. Default 64 KiB. Each
	// channel holds depth × BounceSize bytes of host-visible memory
	// (8 MiB with the defaults).
	BounceSize int
	// Timeout is the per-request timeout before RESET_LUN. Default 30 s.
	Timeout time.Duration
	// ResetTimeout is the wait after each reset before escalating.
	// Default 5 s.
	ResetTimeout time.Duration
	// PollTime is how long the channel goroutine keeps polling the
	// inbound ring for completions, with the channel's interrupt masked
	// (docs/hyperv-protocol.md §4.6), after the last completion while
	// requests are still at the host: a stream of I/O then costs no
	// interrupt and no goroutine wake-up per completion, at the price of
	// at most PollTime of CPU when the host goes quiet. Default 10 µs;
	// negative: never poll.
	PollTime time.Duration
	// Retries bounds the retries of one request (UNIT ATTENTION, BUSY,
	// TASK SET FULL, aborted by a reset). Default 5.
	Retries int
	// MaxTargets is the number of SCSI targets scanned on a SCSI
	// controller (Linux: 2). Default 2. IDE scans its one target.
	MaxTargets int
	// MaxLUNs bounds a sequential LUN probe when REPORT LUNS fails.
	// Default 8 (IDE: 1).
	MaxLUNs int
	// Versions are tried in order (default DefaultVersions).
	Versions []Version
	// TargetVP, if set, gives the target VP of channel i (0 = primary).
	TargetVP func(i int) uint32
	// OnEvent receives disk arrivals, removals and changes. It runs on
	// the goroutine that scans (Attach's caller for the first scan, then
	// the controller's rescan goroutine); it may block briefly (e.g.
	// block.Registry.Add) but must not call back into the controller's
	// Rescan or Close.
	OnEvent func(Event)
}

// DefaultRingSize is the default Config.RingSize.
const DefaultRingSize = 128 << 10

func (c Config) withDefaults() Config {
	if c.Channels <= 0 {
		c.Channels = 1
	}
	if c.QueueDepth <= 0 {
		c.QueueDepth = 128
	}
	if c.RingSize <= 0 {
		c.RingSize = DefaultRingSize
	}
	if c.BounceSize <= 0 {
		c.BounceSize = 64 << 10
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.ResetTimeout <= 0 {
		c.ResetTimeout = 5 * time.Second
	}
	if c.PollTime == 0 {
		c.PollTime = 10 * time.Microsecond
	}
	if c.Retries <= 0 {
		c.Retries = 5
	}
	if c.MaxTargets <= 0 {
		c.MaxTargets = 2
	}
	if c.MaxLUNs <= 0 {
		c.MaxLUNs = 8
	}
	if len(c.Versions) == 0 {
		c.Versions = DefaultVersions
	}
	return c
}

// EventKind says what happened to a disk.
type EventKind uint8

// Event kinds.
const (
	DiskAdded EventKind = iota + 1
	DiskRemoved
	DiskChanged // capacity, read-only or cache state changed
)

func (k EventKind) String() string {
	switch k {
	case DiskAdded:
		return "added"
	case DiskRemoved:
		return "removed"
	case DiskChanged:
		return "changed"
	}
	return "event?"
}

// Event reports a disk arriving, leaving or changing.
type Event struct {
	Kind EventKind
	Disk *Disk
}

// Limits on what the host may announce.
const (
	minMaxTransfer     = hv.PageSize
	maxMaxTransfer     = 2 << 20
	defaultMaxTransfer = 256 << 10 // OpenVMM's value (§6.6) when the host says 0
)

// Controller is one storage controller (a SCSI controller or an IDE
// accelerator offer) with its channels and disks.
//
// Lock order: scanMu, then mu, then any queue.mu. Fields set during Attach
// (version, limits, queues, pools) are read-only afterwards.
type Controller struct {
	cfg     Config
	primary Channel
	ide     bool
	idePath uint8
	ideTgt  uint8

	version      Version
	maxTransfer  int
	multiChannel bool
	maxSubChans  int

	translator PhysTranslator
	queues     []*queue
	pools      []*dma.Pool // one per queue: its slots' bounce buffers
	rr         atomic.Uint32

	scanMu sync.Mutex // serialises scans

	mu      sync.Mutex
	disks   map[addr]*Disk // guarded by mu
	closed  bool           // guarded by mu
	scanErr error          // last scan's error; guarded by mu

	rescan chan struct{}
	stop   chan struct{}
	wg     sync.WaitGroup
	gone   atomic.Bool
}

// Attach opens the controller's primary channel ch (a SCSI controller or
// IDE accelerator offer), negotiates the protocol, opens sub-channels,
// scans for disks and starts watching for changes. Disks found are
// reported through cfg.OnEvent before Attach returns. ctx bounds the
// set-up; the controller runs until Close or the channel's rescind.
func Attach(ctx context.Context, ch Channel, cfg Config) (*Controller, error) {
	cfg = cfg.withDefaults()
	if cfg.Memory == nil {
		return nil, fmt.Errorf("storvsc: Config.Memory is required")
	}
	if cfg.BounceSize%hv.PageSize != 0 {
		return nil, fmt.Errorf("storvsc: BounceSize %d not a multiple of %d", cfg.BounceSize, hv.PageSize)
	}
	c := &Controller{cfg: cfg, primary: ch, disks: map[addr]*Disk{},
		rescan: make(chan struct{}, 1), stop: make(chan struct{})}
	c.translator, _ = cfg.Memory.(PhysTranslator)
	o := ch.Offer()
	if o.InterfaceType == IDEClass {
		c.ide = true
		c.idePath, c.ideTgt, _ = ideAddress(o.UserDefined[:])
		c.cfg.MaxLUNs = 1
	}
	// The primary's queue is created before the rings open so its
	// interrupt handler exists; its slots are sized after negotiation.
	q0 := newQueue(c, 0, ch)
	if err := ch.Open(ctx, c.openConfig(0, q0)); err != nil {
		return nil, fmt.Errorf("storvsc: open primary: %w", err)
	}
	if err := c.negotiate(ctx, q0); err != nil {
		ch.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	if err := c.setupQueue(q0); err != nil {
		ch.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	c.queues = []*queue{q0}
	if err := c.openSubChannels(ctx, q0); err != nil {
		c.shutdown(context.WithoutCancel(ctx), ErrRemoved)
		return nil, err
	}
	c.wg.Add(2)
	go c.watchRescind()
	go c.rescanLoop()
	// A failed first scan (some LUN could not be probed) leaves the
	// controller running with the disks it found; ScanError reports it
	// and the next rescan retries.
	c.Rescan(ctx)
	return c, nil
}

// ScanError returns the error of the last scan (nil if it succeeded): a
// LUN that answered REPORT LUNS but could not be probed.
func (c *Controller) ScanError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.scanErr
}

func (c *Controller) openConfig(i int, q *queue) vmbus.OpenConfig {
	oc := vmbus.OpenConfig{SendRingSize: c.cfg.RingSize, RecvRingSize: c.cfg.RingSize, OnInterrupt: q.interrupt}
	if c.cfg.TargetVP != nil {
		oc.TargetVP = c.cfg.TargetVP(i)
	}
	return oc
}

// negotiate runs the init sequence (§6.4) on the primary.
func (c *Controller) negotiate(ctx context.Context, q *queue) error {
	var buf [packetSizeWin8]byte
	// Until a version is agreed, packets have the pre-Win8 size (Linux
	// drivers/scsi/storvsc_drv.c starts from the same assumption).
	if _, err := q.control(ctx, encodeOp(buf[:], packetSizePreWin8, OpBeginInit)); err != nil {
		return fmt.Errorf("storvsc: begin initialization: %w", err)
	}
	ok := false
	for _, v := range c.cfg.Versions {
		_, err := q.control(ctx, encodeQueryVersion(buf[:], packetSizePreWin8, v))
		if err == nil {
			c.version, ok = v, true
			break
		}
		if !errors.Is(err, ErrHostStatus) {
			return fmt.Errorf("storvsc: query version %v: %w", v, err)
		}
	}
	if !ok {
		return ErrNoVersion
	}
	cmp, err := q.control(ctx, encodeOp(buf[:], c.version.packetSize(), OpQueryProperties))
	if err != nil {
		return fmt.Errorf("storvsc: query properties: %w", err)
	}
	c.multiChannel = cmp.propFlags&propFlagMultiChannel != 0 && c.version >= VersionWin8
	c.maxSubChans = int(cmp.maxSubChannels)
	mt := int(cmp.maxTransfer)
	if mt == 0 {
		mt = defaultMaxTransfer
	}
	mt = min(max(mt, minMaxTransfer), maxMaxTransfer)
	c.maxTransfer = mt &^ (hv.PageSize - 1)
	if _, err := q.control(ctx, encodeOp(buf[:], c.version.packetSize(), OpEndInit)); err != nil {
		return fmt.Errorf("storvsc: end initialization: %w", err)
	}
	return nil
}

// depth is the slots per channel: the configured depth, bounded by how
// many largest EXECUTE_SRB packets the send ring holds.
func (c *Controller) depth() int {
	maxPkt := 16 + gpaHeaderSize(c.maxPFN()) + packetSizeWin8 + 8
	ring := (c.cfg.RingSize - hv.PageSize - 8) / maxPkt
	return max(1, min(c.cfg.QueueDepth, ring))
}

// maxPFN is the longest PFN list of one request: max transfer plus one
// page for an unaligned start.
func (c *Controller) maxPFN() int {
	return max(c.maxTransfer, c.cfg.BounceSize)/hv.PageSize + 1
}

// setupQueue gives q its slots and bounce buffers.
func (c *Controller) setupQueue(q *queue) error {
	d := c.depth()
	pool, err := dma.NewPool(c.cfg.Memory, c.cfg.BounceSize, d)
	if err != nil {
		return fmt.Errorf("storvsc: bounce buffers: %w", err)
	}
	c.pools = append(c.pools, pool)
	q.initSlots(d, pool, c.maxPFN())
	return nil
}

// openSubChannels asks for Channels−1 sub-channels (bounded by the host)
// and opens those that arrive (§6.4 step 6).
func (c *Controller) openSubChannels(ctx context.Context, q0 *queue) error {
	want := min(c.cfg.Channels-1, c.maxSubChans)
	if !c.multiChannel || want <= 0 {
		return nil
	}
	var buf [packetSizeWin8]byte
	if _, err := q0.control(ctx, encodeSubChannels(buf[:], c.version.packetSize(), uint16(want))); err != nil {
		return fmt.Errorf("storvsc: create sub-channels: %w", err)
	}
	subs, err := c.primary.WaitSubChannels(ctx, want)
	if err != nil && len(subs) == 0 {
		// The host may offer them later or never; run on the primary.
		return nil
	}
	for i, sc := range subs {
		q := newQueue(c, i+1, sc)
		if err := c.setupQueue(q); err != nil {
			return err
		}
		if err := sc.Open(ctx, c.openConfig(i+1, q)); err != nil {
			continue // use the channels that opened
		}
		c.queues = append(c.queues, q)
	}
	return nil
}

// Version returns the negotiated VSTOR protocol version.
func (c *Controller) Version() Version { return c.version }

// MaxTransfer returns the largest transfer of one request, in bytes.
func (c *Controller) MaxTransfer() int { return c.maxTransfer }

// Queues returns the number of open channels.
func (c *Controller) Queues() int { return len(c.queues) }

// IDE reports whether this is an IDE accelerator.
func (c *Controller) IDE() bool { return c.ide }

// Disks returns the controller's disks.
func (c *Controller) Disks() []*Disk {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Disk, 0, len(c.disks))
	for _, d := range c.disks {
		out = append(out, d)
	}
	sortDisks(out)
	return out
}

// kickRescan asks the rescan goroutine for a scan; it never blocks.
func (c *Controller) kickRescan() {
	select {
	case c.rescan <- struct{}{}:
	default:
	}
}

func (c *Controller) rescanLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case <-c.rescan:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 4*c.cfg.Timeout)
		go func() {
			select {
			case <-c.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		_ = c.Rescan(ctx)
		cancel()
	}
}

// watchRescind fails everything with ErrRemoved when the host rescinds
// the primary channel.
func (c *Controller) watchRescind() {
	defer c.wg.Done()
	select {
	case <-c.stop:
	case <-c.primary.Rescinded():
		c.gone.Store(true)
		for _, q := range c.queues {
			q.kill(ErrRemoved)
		}
		c.removeAll()
	}
}

// removeAll removes every disk and reports it.
func (c *Controller) removeAll() {
	c.scanMu.Lock()
	defer c.scanMu.Unlock()
	c.mu.Lock()
	ds := make([]*Disk, 0, len(c.disks))
	for a, d := range c.disks {
		d.removed.Store(true)
		ds = append(ds, d)
		delete(c.disks, a)
	}
	c.mu.Unlock()
	sortDisks(ds)
	for _, d := range ds {
		c.emit(Event{Kind: DiskRemoved, Disk: d})
	}
}

func (c *Controller) emit(e Event) {
	if c.cfg.OnEvent != nil {
		c.cfg.OnEvent(e)
	}
}

// Close fails outstanding requests with ErrRemoved, removes the disks
// (reporting them), closes every channel and frees the bounce buffers.
func (c *Controller) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	return c.shutdown(ctx, ErrRemoved)
}

func (c *Controller) shutdown(ctx context.Context, cause error) error {
	close(c.stop)
	c.wg.Wait()
	var err error
	for i := len(c.queues) - 1; i >= 0; i-- {
		if e := c.queues[i].ch.Close(ctx); e != nil && !errors.Is(e, vmbus.ErrRescinded) && err == nil {
			err = e
		}
	}
	for _, q := range c.queues {
		q.kill(cause)
	}
	c.removeAll()
	for _, q := range c.queues {
		q.releaseBounce()
	}
	for _, p := range c.pools {
		p.Close()
	}
	return err
}

// physAddr translates b when the platform allows zero-copy I/O.
func (c *Controller) physAddr(b []byte) (uint64, bool) {
	if c.translator == nil || len(b) == 0 {
		return 0, false
	}
	return c.translator.PhysAddr(b)
}

// pickQueue maps a request's queue number to a channel.
func (c *Controller) pickQueue(n int) *queue {
	return c.queues[uint(n)%uint(len(c.queues))]
}

// Stats are a controller's counters, summed over its channels.
type Stats struct {
	Submitted, Completed, Errors, Retries, Timeouts, Resets uint64
	ProtocolErrors, Unsolicited, Bounced, Direct            uint64
}

// Stats returns the controller's counters.
func (c *Controller) Stats() Stats {
	var s Stats
	for _, q := range c.queues {
		s.Submitted += q.stats.submitted.Load()
		s.Completed += q.stats.completed.Load()
		s.Errors += q.stats.errors.Load()
		s.Retries += q.stats.retries.Load()
		s.Timeouts += q.stats.timeouts.Load()
		s.Resets += q.stats.resets.Load()
		s.ProtocolErrors += q.stats.protocolErrors.Load()
		s.Unsolicited += q.stats.unsolicited.Load()
		s.Bounced += q.stats.bounced.Load()
		s.Direct += q.stats.direct.Load()
	}
	return s
}

// Driver binds SCSI controller and IDE accelerator offers (kernel.Driver
// shape): one Controller per attached channel, all with Config.
type Driver struct {
	Config Config

	mu    sync.Mutex
	ctrls []*Controller
}

// Name identifies the driver.
func (d *Driver) Name() string { return "storvsc" }

// Attach starts a controller on ch.
func (d *Driver) Attach(ctx context.Context, ch Channel) error {
	c, err := Attach(ctx, ch, d.Config)
	if c != nil {
		d.mu.Lock()
		d.ctrls = append(d.ctrls, c)
		d.mu.Unlock()
	}
	return err
}

// Controllers returns the controllers attached so far.
func (d *Driver) Controllers() []*Controller {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*Controller(nil), d.ctrls...)
}
