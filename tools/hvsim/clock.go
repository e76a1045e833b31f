package hvsim

import (
	"sync"
	"time"

	"github.com/gohv/gohv/hv"
)

// Clock is the host's sense of time: its UTC wall clock, which the time
// sync IC sends as "parent time", and the partition reference counter
// (TIME_REF_COUNT, 100 ns units since the partition started, docs/hyperv-protocol.md
// §1.9), which it sends as "VM reference time" and which the guest reads
// through the platform (see TimeRefCount). Implementations are safe for
// concurrent use.
type Clock interface {
	// Now returns the host's wall-clock time.
	Now() time.Time
	// Uptime returns the time the partition has run: the reference
	// counter is Uptime in 100 ns units. It never goes backwards.
	Uptime() time.Duration
}

// NewSystemClock returns the clock of a real host: the system's wall clock
// and a reference counter started now, driven by the monotonic clock.
func NewSystemClock() Clock { return systemClock{start: time.Now()} }

type systemClock struct{ start time.Time }

func (c systemClock) Now() time.Time        { return time.Now() }
func (c systemClock) Uptime() time.Duration { return time.Since(c.start) }

// ManualClock is a Clock that moves only when told to, so that tests decide
// what the host's time is and can check that the guest's clock follows.
// The zero value is not usable; use NewManualClock.
type ManualClock struct {
	mu     sync.Mutex
	now    time.Time
	uptime time.Duration
}

// NewManualClock returns a clock reading wall time now and reference
// counter 0.
func NewManualClock(now time.Time) *ManualClock { return &ManualClock{now: now} }

// Now implements Clock.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Uptime implements Clock.
func (c *ManualClock) Uptime() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.uptime
}

// Advance lets d pass: wall clock and reference counter both move by d
// (d < 0 is ignored, time does not run backwards).
func (c *ManualClock) Advance(d time.Duration) {
	if d < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.uptime += d
}

// SetWall steps the host's wall clock to t (an administrator or NTP
// setting the host's time) without moving the reference counter.
func (c *ManualClock) SetWall(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Clock returns the host's clock (Config.Clock).
func (h *Host) Clock() Clock { return h.cfg.Clock }

// ReferenceTime returns the partition reference counter now: 100 ns units
// since the partition started (TIME_REF_COUNT, docs/hyperv-protocol.md §1.9), from
// Config.Clock.
func (h *Host) ReferenceTime() uint64 { return hv.DurationToRefTime(h.cfg.Clock.Uptime()) }

// TimeRefCount is the guest's read of the TIME_REF_COUNT MSR
// (hv.MSRTimeRefCount, docs/hyperv-protocol.md §1.9) on the simulated platform. It is not
// part of hv.Platform: a guest driver that needs the reference counter
// asserts the platform to interface{ TimeRefCount() uint64 }. It reads the
// same counter the time sync IC samples as "VM reference time".
func (p *platform) TimeRefCount() uint64 { return (*Host)(p).ReferenceTime() }
