package boot

import (
	"time"

	"github.com/gohv/gohv/boot/clock"
	"github.com/gohv/gohv/hv"
)

// calibrator measures the TSC rate against a reference timer of known
// frequency: it reads both, busy-waits until the timer has advanced Ticks,
// and reads both again. The board supplies port and RDTSC readers; tests
// supply a simulated machine.
type calibrator struct {
	// ReadTimer returns the reference counter; Elapsed converts two
	// readings into ticks (clock.PMTimerTicks, clock.PITTicks).
	ReadTimer func() uint32
	Elapsed   func(start, end uint32) uint64
	TimerHz   uint64
	Ticks     uint64
	ReadTSC   func() uint64
	// Limit bounds one run in TSC cycles, so that a dead timer (a port
	// that reads constant) fails instead of hanging the boot.
	Limit uint64
}

// Run performs one measurement and returns the TSC rate in Hz.
func (c calibrator) Run() (uint64, bool) {
	t0 := c.ReadTimer()
	c0 := c.ReadTSC()
	for {
		t1 := c.ReadTimer()
		c1 := c.ReadTSC()
		if ticks := c.Elapsed(t0, t1); ticks >= c.Ticks {
			hz, err := clock.FrequencyFrom(c1-c0, ticks, c.TimerHz)
			return hz, err == nil
		}
		if c1-c0 > c.Limit {
			return 0, false
		}
	}
}

// calibrate runs CalibrationRuns measurements and returns their median
// (clock.Median: failed runs dropped, disagreement beyond
// CalibrationTolerancePPM rejected). It stops as soon as too many runs
// failed for Median to accept the rest: a missing timer (a port reading
// constant) then costs minCalibrationRuns time-outs of Limit cycles, not
// CalibrationRuns of them.
func (c calibrator) calibrate() (uint64, error) {
	var hz [CalibrationRuns]uint64
	failed := 0
	for i := range hz {
		if f, ok := c.Run(); ok {
			hz[i] = f
			continue
		}
		if failed++; CalibrationRuns-failed < minCalibrationRuns {
			break
		}
	}
	return clock.Median(hz[:], CalibrationTolerancePPM)
}

// minCalibrationRuns is the number of good runs clock.Median requires.
const minCalibrationRuns = 3

// postWithRetry runs an HvPostMessage attempt until it succeeds, fails for
// good, or the retry policy of docs/hyperv-protocol.md §1.8 (hv.PostMessageBackoff) gives
// up; wait sleeps between attempts. The last status is returned.
func postWithRetry(attempt func() hv.Status, wait func(time.Duration)) error {
	for n := 0; ; n++ {
		st := attempt()
		if st == hv.StatusSuccess {
			return nil
		}
		if !st.Transient() {
			return st
		}
		d, ok := hv.PostMessageBackoff(n)
		if !ok {
			return st
		}
		wait(d)
	}
}

// spinLimitCycles bounds a calibration run (about 4 s at 4 GHz).
const spinLimitCycles = 1 << 34
