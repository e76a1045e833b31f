package timesync_test

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gohv/gohv/drivers/timesync"
)

// counterClock stands in for the kernel's clock: a reference counter and a
// wall offset.
type counterClock struct{ ref, off atomic.Int64 }

func (c *counterClock) ReferenceCounter() uint64 { return uint64(c.ref.Load()) }
func (c *counterClock) WallOffset() int64        { return c.off.Load() }
func (c *counterClock) SetWallOffset(off int64)  { c.off.Store(off) }

func Example() {
	clk := &counterClock{}
	d := timesync.New(clk, timesync.Config{MaxSlewPPM: 200, StepThreshold: 5 * time.Second})
	// The kernel attaches d to the time sync channel when the bus offers
	// it (d.Attach); until the host sent a time, the wall clock is the
	// kernel's own.
	if !d.HostProvidesTime() {
		fmt.Println("no host time yet; wall clock:", timesync.Now(clk).Year())
	}
	// Output: no host time yet; wall clock: 1601
}
