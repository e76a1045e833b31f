// Package vss is the guest side of the Volume Shadow Copy integration
// service (docs/hyperv-protocol.md §9.1): it lets a host backup take
// application-consistent snapshots. It answers the HOT_BACKUP check
// (supported, no auto-recovery), GET_DM_INFO (no direct-mapped devices),
// CREATE, DELETE, BACKUP_COMPLETE and AUTO_RECOVER, and turns FREEZE and
// THAW into calls of the application's hooks and the kernel's Freezer:
//
//   - FREEZE: every registered Hook freezes (in registration order), then
//     the Freezer (the kernel: flush every disk and hold new writes, see
//     WriteGate), all within Config.FreezeTimeout. Any failure thaws what
//     froze and answers E_FAIL.
//   - THAW: the Freezer thaws, then the hooks in reverse order.
//   - If THAW does not come within Config.HoldTimeout, the driver thaws by
//     itself so the guest never stays blocked, and answers the late THAW
//     (or BACKUP_COMPLETE) with E_FAIL: the snapshot may be inconsistent.
//
// FREEZE, THAW and BACKUP_COMPLETE wait for guest work, so vss answers them
// later, from its own worker goroutine; every other message is answered
// at once on the bus dispatch goroutine. For that vss runs its own copy of
// drivers/ic's service loop (runner.go) on the same framing and
// negotiation code. vss owns the VSS message body and the freeze state
// machine; disks, and what holding their writes means, belong to the
// kernel and the block layer.
package vss

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gohv/gohv/drivers/ic"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// Class is the VSS IC's device class GUID (docs/hyperv-protocol.md §5).
var Class = chanmsg.ClassVSS

// Versions are the VSS message versions gohv implements
// (docs/hyperv-protocol.md §8.2): FREEZE and THAW need 5.0; 6.0 adds only
// QUERY_GUEST_CLUSTER_INFO, which gohv, never a cluster member, answers
// StatusNotSupported. 4.0 (Windows Server 2012) has no FREEZE, so gohv
// does not offer it: such a host falls back to a crash-consistent backup.
var Versions = []ic.Version{{Major: 6}, {Major: 5}}

// Freezer quiesces the guest's storage. The kernel implements it: Freeze
// flushes every disk and holds new writes (WriteGate.Hold, then Flush);
// Thaw releases them. Freeze returns within ctx's deadline or with its
// error; after a failed Freeze the driver still calls Thaw, so Thaw must
// be safe on a partly or not frozen guest. Both run on the driver's
// worker goroutine (Thaw also on the hold timer's).
type Freezer interface {
	Freeze(ctx context.Context) error
	Thaw()
}

// Hook is an application's part in a snapshot: Freeze brings its on-disk
// state to a consistent point and stops changing it; Thaw resumes. Same
// goroutines and rules as Freezer.
type Hook = Freezer

// HookFuncs adapts two functions to a Hook; nil functions do nothing.
type HookFuncs struct {
	FreezeFunc func(ctx context.Context) error
	ThawFunc   func()
}

// Freeze calls FreezeFunc.
func (h HookFuncs) Freeze(ctx context.Context) error {
	if h.FreezeFunc == nil {
		return nil
	}
	return h.FreezeFunc(ctx)
}

// Thaw calls ThawFunc.
func (h HookFuncs) Thaw() {
	if h.ThawFunc != nil {
		h.ThawFunc()
	}
}

// Defaults of Config.
const (
	// DefaultFreezeTimeout is how long a FREEZE may take: the time Linux
	// drivers/hv/hv_snapshot.c allows (VSS_FREEZE_TIMEOUT).
	DefaultFreezeTimeout = 15 * time.Minute
	// DefaultHoldTimeout is how long writes stay held waiting for THAW.
	DefaultHoldTimeout = time.Minute
)

// Config configures a Driver. The zero value selects the defaults.
type Config struct {
	// Freezer quiesces storage; nil freezes the hooks only.
	Freezer Freezer
	// FreezeTimeout bounds a FREEZE (hooks and Freezer together).
	FreezeTimeout time.Duration
	// HoldTimeout bounds the time frozen without a THAW.
	HoldTimeout time.Duration
}

// Stats are the VSS counters.
type Stats struct {
	// Operations counts messages by Operation (unknown ones in the last
	// slot).
	Operations [10]uint64
	// Freezes counts successful freezes, FreezeFailures failed ones.
	Freezes, FreezeFailures uint64
	// Thaws counts thaws on THAW or BACKUP_COMPLETE; HoldTimeouts thaws
	// forced because THAW did not come.
	Thaws, HoldTimeouts uint64
	// Busy counts messages refused because two were already waiting.
	Busy uint64
	// Frozen reports whether writes are held now.
	Frozen bool
	// IC are the framework counters of the current channel.
	IC ic.Stats
}

// Driver serves the VSS channel. Create it with New.
type Driver struct {
	cfg Config

	run atomic.Pointer[runner]

	hooksMu sync.Mutex
	hooks   []*hookEntry

	// qmu guards cancelFreeze. It is taken on the dispatch goroutine and
	// never held while waiting.
	qmu          sync.Mutex
	cancelFreeze context.CancelFunc // cancels the freeze in progress

	// opMu serialises freeze and thaw (worker and hold timer); it may be
	// held while hooks run, so the dispatch goroutine never takes it.
	// Lock order: opMu before qmu.
	opMu      sync.Mutex
	frozen    bool
	timedOut  bool // the hold timer thawed; the next THAW reports failure
	holdTimer *time.Timer
	holdGen   uint64
	frozenAt  []Hook // hooks frozen by the current freeze

	ops                                                [10]atomic.Uint64
	freezes, freezeFailures, thaws, holdTimeouts, busy atomic.Uint64
	frozenFlag                                         atomic.Bool
}

type hookEntry struct{ h Hook }

// New returns a VSS driver, not yet attached to a channel.
func New(cfg Config) *Driver {
	if cfg.FreezeTimeout <= 0 {
		cfg.FreezeTimeout = DefaultFreezeTimeout
	}
	if cfg.HoldTimeout <= 0 {
		cfg.HoldTimeout = DefaultHoldTimeout
	}
	return &Driver{cfg: cfg}
}

// Name returns "vss".
func (d *Driver) Name() string { return "vss" }

// AddHook registers an application hook for later freezes and returns a
// function that removes it. Safe from any goroutine.
func (d *Driver) AddHook(h Hook) (remove func()) {
	e := &hookEntry{h: h}
	d.hooksMu.Lock()
	d.hooks = append(d.hooks, e)
	d.hooksMu.Unlock()
	return func() {
		d.hooksMu.Lock()
		defer d.hooksMu.Unlock()
		for i, x := range d.hooks {
			if x == e {
				d.hooks = append(d.hooks[:i:i], d.hooks[i+1:]...)
				return
			}
		}
	}
}

// Stats returns the counters; safe from any goroutine.
func (d *Driver) Stats() Stats {
	var st Stats
	for i := range d.ops {
		st.Operations[i] = d.ops[i].Load()
	}
	st.Freezes, st.FreezeFailures = d.freezes.Load(), d.freezeFailures.Load()
	st.Thaws, st.HoldTimeouts, st.Busy = d.thaws.Load(), d.holdTimeouts.Load(), d.busy.Load()
	st.Frozen = d.frozenFlag.Load()
	if r := d.run.Load(); r != nil {
		st.IC = r.stats()
	}
	return st
}

// Attach opens the VSS channel ch and starts answering the host. It can be
// called again for a channel offered after a rescind.
func (d *Driver) Attach(ctx context.Context, ch vmbus.DriverChannel) error { return d.attach(ctx, ch) }

func (d *Driver) attach(ctx context.Context, ch ic.Channel) error {
	r := newRunner(d, ch)
	if err := r.start(ctx); err != nil {
		return err
	}
	if old := d.run.Swap(r); old != nil {
		// Its worker thaws if the old channel left the guest frozen.
		old.cancel()
	}
	return nil
}

// Close stops answering, thaws if frozen, and closes the current channel.
func (d *Driver) Close(ctx context.Context) error {
	if r := d.run.Load(); r != nil {
		return r.close(ctx)
	}
	return nil
}

// handle answers msg at once (deferred false) or queues it for the worker.
// It runs on the dispatch goroutine and allocates nothing.
func (d *Driver) handle(r *runner, msg []byte, txid uint64, v ic.Version) (ic.Status, bool) {
	if len(msg) < minMessage {
		// Checked here rather than with ParseOperation: no error value.
		d.ops[len(d.ops)-1].Add(1)
		return ic.StatusInvalidArg, false
	}
	op := Operation(msg[offOperation])
	d.ops[min(int(op), len(d.ops)-1)].Add(1)
	if int(op) >= len(opNames) || v.Less(op.since()) {
		return ic.StatusNotSupported, false
	}
	switch op {
	case OpHotBackup:
		if !putFlags(msg, HotBackupFlags) {
			return ic.StatusInvalidArg, false
		}
		return ic.StatusOK, false
	case OpGetDMInfo:
		if !putFlags(msg, 0) {
			return ic.StatusInvalidArg, false
		}
		return ic.StatusOK, false
	case OpCreate, OpDelete, OpAutoRecover:
		// Nothing to do in the guest: the host makes and deletes the
		// shadow copies; auto-recovery was declined in HOT_BACKUP.
		return ic.StatusOK, false
	case OpQueryClusterInfo:
		return ic.StatusNotSupported, false
	}
	// FREEZE, THAW, BACKUP_COMPLETE: the worker answers.
	if !r.enqueue(msg, txid, op) {
		d.busy.Add(1)
		return ic.StatusMachineLocked, false
	}
	if op != OpFreeze {
		// The host gave up on a freeze in progress: stop it, so that the
		// thaw behind it comes quickly.
		d.qmu.Lock()
		if d.cancelFreeze != nil {
			d.cancelFreeze()
		}
		d.qmu.Unlock()
	}
	return 0, true
}

// work answers deferred messages for runner r until it closes or its
// channel is rescinded; then it thaws, so writes are never left held.
func (d *Driver) work(r *runner) {
	defer close(r.done)
	defer d.thawAfterLoss(r)
	for {
		select {
		case <-r.wake:
		case <-r.closed:
			return
		case <-r.ch.Rescinded():
			r.negotiated.Store(false)
			return
		case <-r.ctx.Done():
			return
		}
		for s := r.next(); s != nil; s = r.next() {
			var st ic.Status
			switch s.op {
			case OpFreeze:
				st = d.freeze(r.ctx)
			case OpThaw, OpBackupComplete:
				st = d.thaw()
			}
			r.reply(s.msg[:s.n], s.txid, st)
			r.release(s)
		}
	}
}

func (d *Driver) thawAfterLoss(r *runner) {
	r.cancel()
	// Messages still queued belong to the lost channel: drop them.
	for s := r.next(); s != nil; s = r.next() {
		r.release(s)
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	if d.frozen {
		d.thawLocked()
		d.thaws.Add(1)
	}
}

// freeze runs a FREEZE: hooks, then the Freezer.
func (d *Driver) freeze(parent context.Context) ic.Status {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	if d.frozen {
		// Already frozen: a repeated FREEZE restarts the hold timer.
		d.armHoldLocked()
		return ic.StatusOK
	}
	d.timedOut = false
	ctx, cancel := context.WithTimeout(parent, d.cfg.FreezeTimeout)
	defer cancel()
	d.qmu.Lock()
	d.cancelFreeze = cancel
	d.qmu.Unlock()
	defer func() {
		d.qmu.Lock()
		d.cancelFreeze = nil
		d.qmu.Unlock()
	}()

	d.hooksMu.Lock()
	d.frozenAt = d.frozenAt[:0]
	hooks := make([]Hook, 0, len(d.hooks))
	for _, e := range d.hooks {
		hooks = append(hooks, e.h)
	}
	d.hooksMu.Unlock()

	var err error
	for _, h := range hooks {
		if err = h.Freeze(ctx); err != nil {
			break
		}
		d.frozenAt = append(d.frozenAt, h)
	}
	if err == nil && d.cfg.Freezer != nil {
		err = d.cfg.Freezer.Freeze(ctx)
	}
	if err == nil {
		err = ctx.Err() // a freeze that finished late is not trusted
	}
	d.frozen = true
	if err != nil {
		d.thawLocked()
		d.freezeFailures.Add(1)
		return ic.StatusFail
	}
	d.frozenFlag.Store(true)
	d.freezes.Add(1)
	d.armHoldLocked()
	return ic.StatusOK
}

func (d *Driver) armHoldLocked() {
	if d.holdTimer != nil {
		d.holdTimer.Stop()
	}
	d.holdGen++
	gen := d.holdGen
	d.holdTimer = time.AfterFunc(d.cfg.HoldTimeout, func() { d.holdExpired(gen) })
}

// holdExpired thaws when THAW did not come in time.
func (d *Driver) holdExpired(gen uint64) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	if !d.frozen || gen != d.holdGen {
		return
	}
	d.thawLocked()
	d.timedOut = true
	d.holdTimeouts.Add(1)
}

// thaw runs a THAW or BACKUP_COMPLETE.
func (d *Driver) thaw() ic.Status {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	switch {
	case d.frozen:
		d.thawLocked()
		d.thaws.Add(1)
		return ic.StatusOK
	case d.timedOut:
		// Writes resumed before the host's snapshot finished.
		d.timedOut = false
		return ic.StatusFail
	}
	return ic.StatusOK
}

// thawLocked releases the Freezer, then the frozen hooks in reverse.
func (d *Driver) thawLocked() {
	if d.holdTimer != nil {
		d.holdTimer.Stop()
		d.holdTimer = nil
	}
	d.holdGen++
	if d.cfg.Freezer != nil {
		d.cfg.Freezer.Thaw()
	}
	for i := len(d.frozenAt) - 1; i >= 0; i-- {
		d.frozenAt[i].Thaw()
	}
	d.frozenAt = d.frozenAt[:0]
	d.frozen = false
	d.frozenFlag.Store(false)
}
