package boot

import (
	"errors"
	"testing"
	"time"

	"github.com/gohv/gohv/boot/clock"
	"github.com/gohv/gohv/hv"
)

// simMachine is a TSC and a timer driven by one simulated clock that
// advances a little on every read, as real reads take time.
type simMachine struct {
	ns      float64 // simulated time
	step    float64 // ns per read
	tscHz   float64
	timerHz float64
	mask    uint32
	dead    bool
}

func (m *simMachine) tsc() uint64 {
	m.ns += m.step
	return uint64(m.ns * m.tscHz / 1e9)
}

func (m *simMachine) timer() uint32 {
	m.ns += m.step
	if m.dead {
		return 0xffffffff
	}
	return uint32(uint64(m.ns*m.timerHz/1e9)) & m.mask
}

func TestCalibratorPMTimer(t *testing.T) {
	// Start near the 24-bit wrap so that a run crosses it.
	m := &simMachine{ns: float64(0xfff000) / clock.PMTimerHz * 1e9, step: 700, tscHz: 2_893_000_000, timerHz: clock.PMTimerHz, mask: 0xffffff}
	c := calibrator{
		ReadTimer: m.timer,
		Elapsed:   func(a, b uint32) uint64 { return clock.PMTimerTicks(a, b, false) },
		TimerHz:   clock.PMTimerHz, Ticks: PMCalibrationTicks, ReadTSC: m.tsc, Limit: spinLimitCycles,
	}
	hz, err := c.calibrate()
	if err != nil {
		t.Fatal(err)
	}
	if d := float64(hz)/2_893_000_000 - 1; d > 1e-3 || d < -1e-3 {
		t.Errorf("calibrated %d Hz, want 2.893 GHz within 0.1%%", hz)
	}
}

func TestCalibratorPIT(t *testing.T) {
	m := &simMachine{step: 1500, tscHz: 1_000_000_000, timerHz: clock.PITHz, mask: 0xffff}
	down := func() uint32 { return 0xffff - m.timer() } // the PIT counts down
	c := calibrator{
		ReadTimer: down,
		Elapsed:   func(a, b uint32) uint64 { return clock.PITTicks(uint16(a), uint16(b)) },
		TimerHz:   clock.PITHz, Ticks: PITCalibrationTicks, ReadTSC: m.tsc, Limit: spinLimitCycles,
	}
	hz, err := c.calibrate()
	if err != nil {
		t.Fatal(err)
	}
	if d := float64(hz)/1e9 - 1; d > 1e-3 || d < -1e-3 {
		t.Errorf("calibrated %d Hz, want 1 GHz within 0.1%%", hz)
	}
}

func TestCalibratorDeadTimer(t *testing.T) {
	m := &simMachine{step: 1e6, tscHz: 3e9, timerHz: clock.PMTimerHz, mask: 0xffffff, dead: true}
	c := calibrator{
		ReadTimer: m.timer,
		Elapsed:   func(a, b uint32) uint64 { return clock.PMTimerTicks(a, b, false) },
		TimerHz:   clock.PMTimerHz, Ticks: PMCalibrationTicks, ReadTSC: m.tsc, Limit: 1 << 30,
	}
	if _, ok := c.Run(); ok {
		t.Fatal("a timer that never moves calibrated")
	}
	start := m.tsc()
	if _, err := c.calibrate(); !errors.Is(err, clock.ErrCalibration) {
		t.Errorf("calibrate: %v, want ErrCalibration", err)
	}
	// Median needs 3 good runs of 5: after the third time-out calibrate
	// must give up rather than spin through two more.
	if runs := float64(m.tsc()-start) / float64(c.Limit); runs > CalibrationRuns-minCalibrationRuns+1.5 {
		t.Errorf("dead timer cost %.1f runs of Limit cycles, want %d", runs, CalibrationRuns-minCalibrationRuns+1)
	}
}

func TestCalibratorOneBadRunTolerated(t *testing.T) {
	m := &simMachine{step: 1000, tscHz: 2.5e9, timerHz: clock.PMTimerHz, mask: 0xffffff}
	var firstStart uint32
	seen, runs := false, map[uint32]bool{}
	c := calibrator{
		ReadTimer: m.timer,
		// The first run (identified by its start reading) sees no ticks
		// and times out; the others are good.
		Elapsed: func(a, b uint32) uint64 {
			if !seen {
				firstStart, seen = a, true
			}
			runs[a] = true
			if a == firstStart {
				return 0
			}
			return clock.PMTimerTicks(a, b, false)
		},
		TimerHz: clock.PMTimerHz, Ticks: PMCalibrationTicks, ReadTSC: m.tsc, Limit: 1 << 26,
	}
	hz, err := c.calibrate()
	if err != nil {
		t.Fatal(err)
	}
	if d := float64(hz)/2.5e9 - 1; d > 1e-3 || d < -1e-3 {
		t.Errorf("calibrated %d Hz, want 2.5 GHz within 0.1%%", hz)
	}
	if len(runs) != CalibrationRuns {
		t.Errorf("%d runs made, want all %d after one failure", len(runs), CalibrationRuns)
	}
}

func TestPostWithRetry(t *testing.T) {
	t.Run("transient then success", func(t *testing.T) {
		seq := []hv.Status{hv.StatusInsufficientMemory, hv.StatusInsufficientBuffers, hv.StatusSuccess}
		var waits []time.Duration
		err := postWithRetry(func() hv.Status { s := seq[0]; seq = seq[1:]; return s }, func(d time.Duration) { waits = append(waits, d) })
		if err != nil || len(waits) != 2 || waits[0] != time.Microsecond || waits[1] != 2*time.Microsecond {
			t.Errorf("err %v waits %v", err, waits)
		}
	})
	t.Run("permanent failure is not retried", func(t *testing.T) {
		calls := 0
		err := postWithRetry(func() hv.Status { calls++; return hv.StatusInvalidConnectionID }, func(time.Duration) { t.Fatal("waited") })
		if !errors.Is(err, hv.StatusInvalidConnectionID) || calls != 1 {
			t.Errorf("err %v after %d calls", err, calls)
		}
	})
	t.Run("gives up after the policy's attempts", func(t *testing.T) {
		calls := 0
		err := postWithRetry(func() hv.Status { calls++; return hv.StatusInsufficientMemory }, func(time.Duration) {})
		if !errors.Is(err, hv.StatusInsufficientMemory) || calls != hv.PostMessageMaxAttempts {
			t.Errorf("err %v after %d calls, want %d", err, calls, hv.PostMessageMaxAttempts)
		}
	})
}
