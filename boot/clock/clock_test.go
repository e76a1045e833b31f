package clock

import (
	"errors"
	"testing"
)

func TestFrequencyFrom(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		cycles, ticks, refHz uint64
		want                 uint64
	}{
		// 10 ms of PIT (11932 ticks) on a 2.5 GHz TSC is 25_000_000 cycles,
		// modulo the PIT's rounding: 25e6 * 1193182 / 11932 = 2_499_962_286.
		{"PIT 10ms", 25_000_000, 11932, PITHz, 2_499_962_286},
		// 50 ms of PM timer: 178977 ticks; 3 GHz → 150e6 cycles.
		{"PM timer 50ms", 150_000_000, 178977, PMTimerHz, 3_000_004_190},
		// Large products must not overflow 64 bits.
		{"large", 1 << 40, 1 << 30, 1 << 30, 1 << 40},
	} {
		got, err := FrequencyFrom(tc.cycles, tc.ticks, tc.refHz)
		if err != nil || got != tc.want {
			t.Errorf("%s: FrequencyFrom = %d, %v; want %d", tc.name, got, err, tc.want)
		}
	}
	if _, err := FrequencyFrom(100, 0, PITHz); !errors.Is(err, ErrCalibration) {
		t.Errorf("zero ticks: %v", err)
	}
}

func TestTimerWrap(t *testing.T) {
	if got := PMTimerTicks(0xFFFFF0, 0x10, false); got != 0x20 {
		t.Errorf("24-bit wrap = %#x", got)
	}
	if got := PMTimerTicks(0xFFFFFFF0, 0x10, true); got != 0x20 {
		t.Errorf("32-bit wrap = %#x", got)
	}
	if got := PITTicks(100, 65500); got != 136 {
		t.Errorf("PIT wrap = %d", got)
	}
	if got := PITTicks(65535, 53603); got != 11932 {
		t.Errorf("PIT = %d", got)
	}
}

func TestMedian(t *testing.T) {
	got, err := Median([]uint64{2_500_000_000, 0, 2_500_100_000, 9_000_000_000, 2_499_900_000}, 1000)
	if err != nil || got != 2_500_100_000 {
		t.Errorf("Median = %d, %v", got, err)
	}
	if _, err := Median([]uint64{1, 0, 0}, 1000); !errors.Is(err, ErrCalibration) {
		t.Errorf("too few: %v", err)
	}
	if _, err := Median([]uint64{1e9, 2e9, 3e9, 4e9}, 100); !errors.Is(err, ErrCalibration) {
		t.Errorf("disagreeing: %v", err)
	}
}

func TestScale(t *testing.T) {
	s, err := NewScale(2_500_000_000)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ cycles, ns uint64 }{
		{2_500_000_000, 1_000_000_000},
		{2_500, 1_000},
		// A year of cycles at 2.5 GHz must not overflow.
		{2_500_000_000 * 31_536_000, 31_536_000 * 1_000_000_000},
	} {
		got := s.Nanoseconds(tc.cycles)
		// Truncation may lose at most one nanosecond.
		if got != tc.ns && got+1 != tc.ns {
			t.Errorf("Nanoseconds(%d) = %d, want %d", tc.cycles, got, tc.ns)
		}
	}
	c := NewClock(s, 1000, 5)
	if c.Nanotime(500) != 5 || c.Nanotime(1000+2_500_000) < 5+999_999 || c.Nanotime(1000+2_500_000) > 5+1_000_000 {
		t.Errorf("clock: %d %d", c.Nanotime(500), c.Nanotime(1000+2_500_000))
	}
	// A slow (500 MHz) TSC has two whole nanoseconds per cycle.
	if s, _ := NewScale(500_000_000); s.Int != 2 || s.Frac != 0 || s.Nanoseconds(500_000_000) != 1_000_000_000 {
		t.Errorf("500 MHz scale = %+v", s)
	}
	if _, err := NewScale(10); !errors.Is(err, ErrCalibration) {
		t.Errorf("10 Hz: %v", err)
	}
}
