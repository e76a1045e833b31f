package kernel

import (
	"sync/atomic"
	"time"

	"github.com/gohv/gohv/hv"
)

// refCounter is implemented by platforms that can read the partition
// reference counter (the TIME_REF_COUNT MSR, docs/hyperv-protocol.md §1.9):
// the board and the simulated host.
type refCounter interface{ TimeRefCount() uint64 }

// guestClock is the time sync driver's clock (timesync.Clock): the
// platform's reference counter (100 ns units) and a wall-clock offset the
// host's samples adjust. Without a counter it counts 100 ns units of the
// monotonic clock since the kernel started.
type guestClock struct {
	ref    refCounter
	start  time.Time
	offset atomic.Int64
}

func newGuestClock(p hv.Platform) *guestClock {
	c := &guestClock{start: time.Now()}
	c.ref, _ = p.(refCounter)
	// Until the host speaks, wall time is the system's.
	c.offset.Store(time.Now().UnixNano()/100 + unixTo1601 - int64(c.ReferenceCounter()))
	return c
}

// unixTo1601 is 1970-01-01 in 100 ns units since 1601-01-01 (the epoch of
// Hyper-V's time samples, docs/hyperv-protocol.md §8.5).
const unixTo1601 = 116444736000000000

func (c *guestClock) ReferenceCounter() uint64 {
	if c.ref != nil {
		return c.ref.TimeRefCount()
	}
	return uint64(time.Since(c.start) / 100)
}

func (c *guestClock) WallOffset() int64       { return c.offset.Load() }
func (c *guestClock) SetWallOffset(off int64) { c.offset.Store(off) }
