package hv

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
	"unsafe"
)

// Reference time and the reference TSC page (docs/hyperv-protocol.md §1.9).

// ReferenceHz is the reference-time frequency: one tick is 100 ns.
const ReferenceHz = 10_000_000

// Reference TSC page layout (docs/hyperv-protocol.md §1.9).
const (
	tscPageSequenceOffset = 0
	tscPageScaleOffset    = 8
	tscPageOffsetOffset   = 16
	// TSCPageInvalidSequence marks the page unusable: read TIME_REF_COUNT
	// instead. It is 0, not the 0xFFFFFFFF of TLFS ≤ 4.0b (docs/hyperv-protocol.md §11 #1).
	TSCPageInvalidSequence uint32 = 0
	// TSCPageMaxRetries bounds ReadReferenceTSCPage's loop; the host
	// updates the page rarely (migration), so a few retries suffice.
	TSCPageMaxRetries = 8
)

// ReferenceTime converts a TSC value: ((tsc × scale) >> 64) + offset, with
// a 128-bit product (docs/hyperv-protocol.md §1.9). Overflow wraps as on the hardware.
func ReferenceTime(tsc, scale uint64, offset int64) uint64 {
	hi, _ := bits.Mul64(tsc, scale)
	return hi + uint64(offset)
}

// TSCScale is the scale a host publishes for a TSC of tscHz:
// (10_000_000 << 64) / tscHz (docs/hyperv-protocol.md §1.9). It returns 0, which no valid
// page holds, for tscHz ≤ 10 MHz, where the scale would not fit.
func TSCScale(tscHz uint64) uint64 {
	if tscHz <= ReferenceHz {
		return 0
	}
	q, _ := bits.Div64(ReferenceHz, 0, tscHz)
	return q
}

func tscPageWord32(page []byte, off int) *uint32 {
	return (*uint32)(unsafe.Pointer(&page[off]))
}

func tscPageWord64(page []byte, off int) *uint64 {
	return (*uint64)(unsafe.Pointer(&page[off]))
}

func tscPageUsable(page []byte) bool {
	return len(page) >= tscPageOffsetOffset+8 && uintptr(unsafe.Pointer(&page[0]))%8 == 0
}

// ReadReferenceTSCPage reads reference time through the TSC page with the
// sequence protocol of docs/hyperv-protocol.md §1.9: it returns ok = false when the
// sequence is 0 (invalid: use TIME_REF_COUNT), when the sequence keeps
// changing for TSCPageMaxRetries reads, or when page is shorter than the
// header or not 8-byte aligned. rdtsc must be ordered against the loads
// around it (RDTSCP, or LFENCE; RDTSC), as Linux's rdtsc_ordered is.
func ReadReferenceTSCPage(page []byte, rdtsc func() uint64) (refTime uint64, ok bool) {
	if !tscPageUsable(page) {
		return 0, false
	}
	seq := tscPageWord32(page, tscPageSequenceOffset)
	scalep := tscPageWord64(page, tscPageScaleOffset)
	offp := tscPageWord64(page, tscPageOffsetOffset)
	for range TSCPageMaxRetries {
		s1 := atomic.LoadUint32(seq)
		if s1 == TSCPageInvalidSequence {
			return 0, false
		}
		scale := atomic.LoadUint64(scalep)
		offset := int64(atomic.LoadUint64(offp))
		tsc := rdtsc()
		if atomic.LoadUint32(seq) == s1 {
			return ReferenceTime(tsc, scale, offset), true
		}
	}
	return 0, false
}

// UpdateReferenceTSCPage is the host side: it invalidates the page, writes
// scale and offset, and publishes the next sequence number (never 0), which
// it returns. page must be at least 24 bytes and 8-byte aligned (a real
// page is).
func UpdateReferenceTSCPage(page []byte, scale uint64, offset int64) uint32 {
	if !tscPageUsable(page) {
		panic("hv: reference TSC page too short or misaligned")
	}
	seq := tscPageWord32(page, tscPageSequenceOffset)
	next := atomic.LoadUint32(seq) + 1
	if next == TSCPageInvalidSequence {
		next++
	}
	atomic.StoreUint32(seq, TSCPageInvalidSequence)
	atomic.StoreUint64(tscPageWord64(page, tscPageScaleOffset), scale)
	atomic.StoreUint64(tscPageWord64(page, tscPageOffsetOffset), uint64(offset))
	atomic.StoreUint32(seq, next)
	return next
}

// InvalidateReferenceTSCPage is the host side: it sets the sequence to 0 so
// guests fall back to TIME_REF_COUNT.
func InvalidateReferenceTSCPage(page []byte) {
	if !tscPageUsable(page) {
		panic("hv: reference TSC page too short or misaligned")
	}
	atomic.StoreUint32(tscPageWord32(page, tscPageSequenceOffset), TSCPageInvalidSequence)
}

// ticksPerDuration is the number of time.Duration units (ns) in one
// reference tick.
const ticksPerDuration = int64(time.Second) / ReferenceHz

// RefTimeToDuration converts reference time (100 ns units) to a Duration,
// saturating at the largest Duration.
func RefTimeToDuration(t uint64) time.Duration {
	if t > math.MaxInt64/uint64(ticksPerDuration) {
		return math.MaxInt64
	}
	return time.Duration(int64(t) * ticksPerDuration)
}

// DurationToRefTime converts a Duration to reference time, truncating to
// 100 ns; negative durations give 0.
func DurationToRefTime(d time.Duration) uint64 {
	if d < 0 {
		return 0
	}
	return uint64(int64(d) / ticksPerDuration)
}
