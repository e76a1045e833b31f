// Package clock holds the arithmetic of the kernel's time source when the
// Hyper-V reference TSC page is not available (QEMU TCG, or before the page
// is mapped): calibrating the TSC against a timer of known frequency (the
// 8254 PIT on Gen1 and PCs, the ACPI PM timer from the FADT otherwise) and
// converting TSC cycles to nanoseconds without overflow.
//
// The board (boot/, //go:build tamago) reads the ports and RDTSC; everything
// here is pure and tested hosted. Nothing here assumes an invariant TSC or
// kvmclock, which is why tamago's stock boards panic under TCG and Hyper-V.
package clock

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
)

// Reference timer frequencies.
const (
	// PITHz is the 8254 input clock (1.193182 MHz).
	PITHz = 1193182
	// PMTimerHz is the ACPI power-management timer frequency (ACPI 4.8.3.3).
	PMTimerHz = 3579545
)

// ErrCalibration is returned when samples are unusable.
var ErrCalibration = errors.New("clock: TSC calibration failed")

// FrequencyFrom returns the TSC frequency in Hz given the TSC cycles that
// elapsed while a reference timer of refHz advanced refTicks.
func FrequencyFrom(tscCycles, refTicks, refHz uint64) (uint64, error) {
	if refTicks == 0 || refHz == 0 || tscCycles == 0 {
		return 0, fmt.Errorf("%w: %d cycles over %d ticks of %d Hz", ErrCalibration, tscCycles, refTicks, refHz)
	}
	hi, lo := bits.Mul64(tscCycles, refHz)
	if hi >= refTicks {
		return 0, fmt.Errorf("%w: frequency overflows", ErrCalibration)
	}
	q, _ := bits.Div64(hi, lo, refTicks)
	return q, nil
}

// PMTimerTicks returns the ticks between two PM timer readings, allowing
// for one wrap of a 24- or 32-bit counter (FADT TMR_VAL_EXT).
func PMTimerTicks(start, end uint32, is32bit bool) uint64 {
	mask := uint32(1<<24 - 1)
	if is32bit {
		mask = ^uint32(0)
	}
	return uint64((end - start) & mask)
}

// PITTicks returns the ticks a down-counting PIT channel advanced from
// start to end, both read as 16-bit counts (0 means 65536).
func PITTicks(start, end uint16) uint64 {
	return uint64(uint16(start - end))
}

// Median combines several calibration runs: it drops runs that failed
// (zero) and returns the median, which ignores a run disturbed by an SMI or
// a host preemption far better than a mean. At least three good runs are
// required, and they must agree within tolerancePPM of the median.
func Median(samples []uint64, tolerancePPM uint64) (uint64, error) {
	good := make([]uint64, 0, len(samples))
	for _, s := range samples {
		if s != 0 {
			good = append(good, s)
		}
	}
	if len(good) < 3 {
		return 0, fmt.Errorf("%w: %d usable runs, need 3", ErrCalibration, len(good))
	}
	slices.Sort(good)
	m := good[len(good)/2]
	agree := 0
	for _, s := range good {
		d := s - m
		if s < m {
			d = m - s
		}
		if d*1_000_000 <= m*tolerancePPM {
			agree++
		}
	}
	if agree*2 <= len(good) {
		return 0, fmt.Errorf("%w: runs disagree (median %d Hz, %d of %d within %d ppm)", ErrCalibration, m, agree, len(good), tolerancePPM)
	}
	return m, nil
}

// Scale converts TSC cycles to nanoseconds as ns = cycles × (Int +
// Frac/2^64), with 128-bit products: no overflow for any cycle count and an
// error below one part in 2^64 from the arithmetic itself.
type Scale struct {
	Int  uint64 // whole nanoseconds per cycle (0 for TSCs above 1 GHz)
	Frac uint64 // fractional nanoseconds per cycle, in units of 2^-64
	Hz   uint64
}

// NewScale returns the scale for a TSC of hz.
func NewScale(hz uint64) (Scale, error) {
	if hz < 1_000_000 {
		return Scale{}, fmt.Errorf("%w: %d Hz is not a plausible TSC frequency", ErrCalibration, hz)
	}
	whole, rem := uint64(1_000_000_000)/hz, uint64(1_000_000_000)%hz
	frac, _ := bits.Div64(rem, 0, hz) // rem < hz, so the quotient fits
	return Scale{Int: whole, Frac: frac, Hz: hz}, nil
}

// Nanoseconds converts cycles (truncating).
func (s Scale) Nanoseconds(cycles uint64) uint64 {
	hi, _ := bits.Mul64(cycles, s.Frac)
	return cycles*s.Int + hi
}

// Clock is a monotonic nanosecond clock over the TSC: the board reads
// RDTSC and asks the clock what time it is.
type Clock struct {
	scale   Scale
	baseTSC uint64
	baseNS  uint64
}

// NewClock starts a clock reading baseNS at TSC value baseTSC.
func NewClock(s Scale, baseTSC, baseNS uint64) *Clock {
	return &Clock{scale: s, baseTSC: baseTSC, baseNS: baseNS}
}

// Nanotime returns the time at TSC value tsc. A TSC reading behind the
// base (an unsynchronised TSC on another CPU) returns the base, never a
// time in the past.
func (c *Clock) Nanotime(tsc uint64) uint64 {
	if tsc < c.baseTSC {
		return c.baseNS
	}
	return c.baseNS + c.scale.Nanoseconds(tsc-c.baseTSC)
}
