package hv

import (
	"bytes"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestTSCScale(t *testing.T) {
	for _, c := range []struct {
		hz   uint64
		want uint64
	}{
		// (10^7 << 64) / 2.5e9 = 2^64 / 250 = 73786976294838206.46 (by hand).
		{2_500_000_000, 73786976294838206},
		// 20 MHz: exactly half a reference tick per TSC tick.
		{20_000_000, 0x8000000000000000},
		// 1 GHz: 2^64 / 100.
		{1_000_000_000, 184467440737095516},
		{10_000_001, 0xFFFFFE5280D924C8},
		{10_000_000, 0},
		{0, 0},
	} {
		if got := TSCScale(c.hz); got != c.want {
			t.Errorf("TSCScale(%d) = %d (%#x), want %d", c.hz, got, got, c.want)
		}
	}
}

func TestReferenceTime(t *testing.T) {
	for _, c := range []struct {
		name   string
		tsc    uint64
		scale  uint64
		offset int64
		want   uint64
	}{
		// One second at 2.5 GHz: 2.5e9 × 73786976294838206 / 2^64 =
		// 9999999.99999999997, truncated.
		{"1 s at 2.5 GHz", 2_500_000_000, 73786976294838206, 0, 9_999_999},
		{"with negative offset", 2_500_000_000, 73786976294838206, -5, 9_999_994},
		{"half scale", 1000, 0x8000000000000000, 7, 507},
		// 128-bit product: 2^63 × 2^63 >> 64 = 2^62.
		{"large product", 1 << 63, 1 << 63, 0, 1 << 62},
		{"zero tsc", 0, 73786976294838206, 42, 42},
	} {
		if got := ReferenceTime(c.tsc, c.scale, c.offset); got != c.want {
			t.Errorf("%s: ReferenceTime = %d, want %d", c.name, got, c.want)
		}
	}
}

// tscPage builds a page from literal bytes laid out per docs/hyperv-protocol.md §1.9.
func tscPage(seq []byte) []byte {
	page := newPage()
	copy(page[0:], seq)                                                     // @0 sequence
	copy(page[8:], []byte{0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80})  // @8 scale 2^63
	copy(page[16:], []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}) // @16 offset -1
	return page
}

func TestReadReferenceTSCPage(t *testing.T) {
	rdtsc := func() uint64 { return 2000 }
	got, ok := ReadReferenceTSCPage(tscPage([]byte{0x01, 0, 0, 0}), rdtsc)
	if !ok || got != 999 { // 2000/2 - 1
		t.Errorf("valid page: %d, %v, want 999, true", got, ok)
	}
	// Sequence 0 is the invalid marker (docs/hyperv-protocol.md §1.9, §11 #1).
	if _, ok := ReadReferenceTSCPage(tscPage([]byte{0, 0, 0, 0}), rdtsc); ok {
		t.Errorf("sequence 0 accepted")
	}
	// 0xFFFFFFFF is NOT invalid, despite TLFS ≤ 4.0b.
	got, ok = ReadReferenceTSCPage(tscPage([]byte{0xFF, 0xFF, 0xFF, 0xFF}), rdtsc)
	if !ok || got != 999 {
		t.Errorf("sequence 0xFFFFFFFF: %d, %v, want 999, true", got, ok)
	}
	if _, ok := ReadReferenceTSCPage(newPage()[:23], rdtsc); ok {
		t.Errorf("short page accepted")
	}
	misaligned := misalignedPage()
	copy(misaligned, []byte{1})
	if _, ok := ReadReferenceTSCPage(misaligned, rdtsc); ok {
		t.Errorf("misaligned page accepted")
	}
}

func TestReadReferenceTSCPageRetry(t *testing.T) {
	page := tscPage([]byte{0x05, 0, 0, 0})
	calls := 0
	// The host updates the page between the guest's loads: the first read
	// must be discarded and the second must use the new values.
	got, ok := ReadReferenceTSCPage(page, func() uint64 {
		calls++
		if calls == 1 {
			UpdateReferenceTSCPage(page, 1<<62, 3)
		}
		return 4000
	})
	if !ok || got != 1003 || calls != 2 {
		t.Errorf("got %d, %v after %d rdtsc, want 1003, true after 2", got, ok, calls)
	}

	// A page whose sequence changes on every read is given up on.
	calls = 0
	_, ok = ReadReferenceTSCPage(page, func() uint64 {
		calls++
		UpdateReferenceTSCPage(page, 1<<62, 3)
		return 0
	})
	if ok || calls != TSCPageMaxRetries {
		t.Errorf("unstable page: ok %v after %d reads", ok, calls)
	}

	// The host invalidates the page mid-read: no value is returned.
	page = tscPage([]byte{0x05, 0, 0, 0})
	_, ok = ReadReferenceTSCPage(page, func() uint64 {
		InvalidateReferenceTSCPage(page)
		return 0
	})
	if ok {
		t.Errorf("invalidated page accepted")
	}
}

func TestUpdateReferenceTSCPage(t *testing.T) {
	page := newPage()
	if seq := UpdateReferenceTSCPage(page, 0x0102030405060708, -2); seq != 1 {
		t.Errorf("first sequence = %d", seq)
	}
	want := []byte{
		0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
		0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
	}
	if !bytes.Equal(page[:24], want) {
		t.Errorf("page = % x", page[:24])
	}
	copy(page, []byte{0xFE, 0xFF, 0xFF, 0xFF})
	if seq := UpdateReferenceTSCPage(page, 1, 1); seq != 0xFFFFFFFF {
		t.Errorf("after 0xFFFFFFFE: %#x", seq)
	}
	if seq := UpdateReferenceTSCPage(page, 1, 1); seq != 1 {
		t.Errorf("after 0xFFFFFFFF: %#x, want 1 (0 skipped)", seq)
	}
	InvalidateReferenceTSCPage(page)
	if !bytes.Equal(page[:4], []byte{0, 0, 0, 0}) {
		t.Errorf("invalidate: % x", page[:4])
	}
}

// TestReferenceTSCPageConcurrent: a host rewrites (scale, offset) pairs
// while a guest reads; a torn pair would break the k+1000k pattern.
func TestReferenceTSCPageConcurrent(t *testing.T) {
	page := newPage()
	UpdateReferenceTSCPage(page, 0, 0)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := uint64(0); !stop.Load(); k = (k + 1) % 1000 {
			UpdateReferenceTSCPage(page, k<<32, int64(1000*k))
		}
	}()
	// rdtsc = 2^32, so ref = scale>>32 + offset = k + 1000k.
	reads := 0
	for range 20000 {
		ref, ok := ReadReferenceTSCPage(page, func() uint64 { return 1 << 32 })
		if !ok {
			continue
		}
		reads++
		if ref%1001 != 0 {
			t.Fatalf("torn read: %d", ref)
		}
	}
	stop.Store(true)
	wg.Wait()
	if reads == 0 {
		t.Log("no successful read (host too fast); the torn-read check did not run")
	}
}

func TestRefTimeDuration(t *testing.T) {
	for _, c := range []struct {
		t    uint64
		want time.Duration
	}{
		{0, 0},
		{1, 100 * time.Nanosecond},
		{10_000_000, time.Second},
		{math.MaxInt64 / 100, time.Duration(math.MaxInt64 / 100 * 100)},
		{math.MaxInt64/100 + 1, math.MaxInt64},
		{math.MaxUint64, math.MaxInt64},
	} {
		if got := RefTimeToDuration(c.t); got != c.want {
			t.Errorf("RefTimeToDuration(%d) = %v, want %v", c.t, got, c.want)
		}
	}
	for _, c := range []struct {
		d    time.Duration
		want uint64
	}{
		{time.Second, 10_000_000},
		{199 * time.Nanosecond, 1},
		{99 * time.Nanosecond, 0},
		{-time.Second, 0},
		{math.MaxInt64, math.MaxInt64 / 100},
	} {
		if got := DurationToRefTime(c.d); got != c.want {
			t.Errorf("DurationToRefTime(%v) = %d, want %d", c.d, got, c.want)
		}
	}
}

func TestReadReferenceTSCPageAllocs(t *testing.T) {
	page := tscPage([]byte{1})
	rdtsc := func() uint64 { return 12345 }
	if n := testing.AllocsPerRun(100, func() { ReadReferenceTSCPage(page, rdtsc) }); n != 0 {
		t.Errorf("allocs per run = %v, want 0", n)
	}
}
