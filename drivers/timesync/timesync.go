// Package timesync is the time synchronisation integration service
// (docs/hyperv-protocol.md §8.5): it turns the host's time messages into
// corrections of the guest's wall clock. A SYNC message (the first after
// boot or restore) steps the wall clock; a SAMPLE (periodic) slews it by at
// most a bounded rate, and steps only when the error exceeds a threshold;
// a probe (no flag) changes nothing.
//
// The wall clock is a Clock: the partition reference counter, which
// timesync only reads, plus a wall-clock offset, which it reads and sets.
// Monotonic time is the reference counter and is never touched, so
// corrections move wall time only. The kernel supplies the real Clock;
// tests supply a fake.
//
// timesync owns only the time sync message body and the correction policy.
// Framing, negotiation and the channel belong to drivers/ic; the reference
// counter and the wall clock itself to the kernel.
package timesync

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/gohv/gohv/drivers/ic"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// Class is the time sync IC's device class GUID (docs/hyperv-protocol.md
// §5).
var Class = chanmsg.ClassTimeSync

// Versions are the time sync message versions gohv implements
// (docs/hyperv-protocol.md §8.2).
var Versions = []ic.Version{{Major: 4}, {Major: 3}, {Major: 1}}

// ErrTimeRange reports a time that does not fit the clock arithmetic.
var ErrTimeRange = errors.New("timesync: time out of range")

// Clock is the guest's time base. UTC, in 100 ns units since 1601-01-01,
// is ReferenceCounter() + WallOffset(). Implementations must be safe for
// concurrent use and must not block: the driver calls them on the bus
// dispatch goroutine.
type Clock interface {
	// ReferenceCounter returns the partition reference counter
	// (docs/hyperv-protocol.md §1.9): 100 ns units, monotonic.
	ReferenceCounter() uint64
	// WallOffset returns the current wall-clock offset.
	WallOffset() int64
	// SetWallOffset replaces it. Only wall time moves.
	SetWallOffset(off int64)
}

// Now returns c's wall time.
func Now(c Clock) time.Time { return Time(int64(c.ReferenceCounter()) + c.WallOffset()) }

// Defaults of Config.
const (
	DefaultMaxSlewPPM    = 500
	DefaultStepThreshold = time.Second
)

// Config is the correction policy. The zero value selects the defaults.
type Config struct {
	// MaxSlewPPM bounds a SAMPLE correction to this many parts per
	// million of the reference time elapsed since the previous correction
	// (500 ppm: at most 0.5 ms per second). 0 means DefaultMaxSlewPPM.
	MaxSlewPPM uint32
	// StepThreshold: a SAMPLE whose error exceeds it steps the clock
	// instead. 0 means DefaultStepThreshold.
	StepThreshold time.Duration
}

// Stats are the time sync counters.
type Stats struct {
	// Syncs, Samples and Probes count messages by kind.
	Syncs, Samples, Probes uint64
	// Steps counts corrections applied at once, Slews rate-bounded ones.
	Steps, Slews uint64
	// Invalid counts messages refused as malformed.
	Invalid uint64
	// LastError is host time minus guest wall time when the last SYNC or
	// SAMPLE arrived, before correcting.
	LastError time.Duration
	// IC are the framework counters of the current channel.
	IC ic.Stats
}

// Driver keeps the guest wall clock in step with the host. Create it with
// New.
type Driver struct {
	clock         Clock
	maxSlewPPM    int64
	stepThreshold int64 // 100 ns units

	att ic.Attachment

	// Written on the dispatch goroutine, read anywhere.
	lastSync  atomic.Int64 // host UTC of the last SYNC/SAMPLE, 100 ns since 1601
	synced    atomic.Bool  // a SYNC or SAMPLE was applied
	lastError atomic.Int64 // 100 ns units

	// Only on the dispatch goroutine.
	lastAdjust uint64 // reference counter at the last correction

	syncs, samples, probes, steps, slews, invalid atomic.Uint64
}

// New returns a time sync driver correcting clock, not yet attached to a
// channel.
func New(clock Clock, cfg Config) *Driver {
	if cfg.MaxSlewPPM == 0 {
		cfg.MaxSlewPPM = DefaultMaxSlewPPM
	}
	if cfg.StepThreshold <= 0 {
		cfg.StepThreshold = DefaultStepThreshold
	}
	return &Driver{clock: clock, maxSlewPPM: int64(min(cfg.MaxSlewPPM, 1e6)), stepThreshold: int64(cfg.StepThreshold / 100)}
}

// Name returns "timesync".
func (d *Driver) Name() string { return "timesync" }

// LastSync returns the host's UTC carried by the last SYNC or SAMPLE
// applied (corrected to the moment it arrived), or the zero Time if none
// was.
func (d *Driver) LastSync() time.Time {
	if !d.synced.Load() {
		return time.Time{}
	}
	return Time(d.lastSync.Load())
}

// Offset returns the clock's current wall-clock offset as a Duration: wall
// time since the Unix epoch minus monotonic (reference counter) time, so
// that wall time = time.Unix(0, 0) + reference counter + Offset. (Counted
// from 1601 the offset would not fit a Duration.)
func (d *Driver) Offset() time.Duration {
	return time.Duration(d.clock.WallOffset()-Epoch1601) * 100
}

// HostProvidesTime reports whether the host is a time source now: the IC
// is negotiated and at least one SYNC or SAMPLE was applied.
func (d *Driver) HostProvidesTime() bool { return d.synced.Load() && d.att.Stats().Negotiated }

// Stats returns the counters; safe from any goroutine.
func (d *Driver) Stats() Stats {
	return Stats{
		Syncs: d.syncs.Load(), Samples: d.samples.Load(), Probes: d.probes.Load(),
		Steps: d.steps.Load(), Slews: d.slews.Load(), Invalid: d.invalid.Load(),
		LastError: time.Duration(d.lastError.Load()) * 100,
		IC:        d.att.Stats(),
	}
}

func (d *Driver) config() ic.Config {
	return ic.Config{Name: d.Name(), Type: ic.TypeTimeSync, Versions: Versions, Handle: d.handle}
}

// handle applies one time message. The body goes back as received
// (docs/hyperv-protocol.md §8.5: reply like any IC message).
func (d *Driver) handle(msg []byte, v ic.Version) ic.Status {
	s, err := ParseSample(msg, v)
	if err != nil {
		d.invalid.Add(1)
		return ic.StatusInvalidArg
	}
	now := d.clock.ReferenceCounter()
	if now > 1<<62 {
		// A reference counter this large is centuries of uptime: a broken
		// clock, not something to correct against.
		d.invalid.Add(1)
		return ic.StatusFail
	}
	ref := now
	if s.HasReference {
		// 4.0: UTC now = parent time + (counter now − VM reference time),
		// so the wanted offset is parent time − VM reference time.
		ref = s.VMReferenceTime
	}
	switch {
	case s.Flags&FlagSync != 0:
		d.syncs.Add(1)
	case s.Flags&FlagSample != 0:
		d.samples.Add(1)
	default:
		d.probes.Add(1)
		return ic.StatusOK
	}
	target := int64(s.ParentTime) - int64(ref)
	cur := d.clock.WallOffset()
	diff := target - cur
	d.lastError.Store(diff)
	switch {
	case s.Flags&FlagSync != 0 || !d.synced.Load() || abs(diff) > d.stepThreshold:
		// SYNC, the first time message at all, or too far off to slew.
		d.clock.SetWallOffset(target)
		d.steps.Add(1)
	default:
		// Bound the correction by the reference time elapsed since the
		// last one; cap the interval so the product cannot overflow.
		elapsed := int64(min(now-d.lastAdjust, uint64(10*time.Minute/100)))
		limit := elapsed * d.maxSlewPPM / 1e6
		d.clock.SetWallOffset(cur + max(-limit, min(diff, limit)))
		d.slews.Add(1)
	}
	d.lastAdjust = now
	d.lastSync.Store(target + int64(now))
	d.synced.Store(true)
	return ic.StatusOK
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
