//go:build tamago

package boot

import (
	"fmt"
	"sync/atomic"
	_ "unsafe"

	"github.com/usbarmory/tamago/dma"

	"github.com/gohv/gohv/boot/acpi"
	"github.com/gohv/gohv/boot/clock"
	"github.com/gohv/gohv/hv"
)

// timeState is Nanotime's source. Fields are written before source is
// published and never after.
type timeState struct {
	source  atomic.Uint32 // ClockSource
	tsc     *clock.Clock
	refPage []byte
	// refOffset turns reference time (100 ns) into the runtime's ns so that
	// the switch from the bootstrap clock does not step backwards.
	refOffset int64
	// refCounter: TIME_REF_COUNT may be read (else it faults).
	refCounter bool
	// lastRef is the last time read from the page, returned while the
	// page is invalid and TIME_REF_COUNT is not allowed.
	lastRef atomic.Int64
	// step is added to every reading: SetTime's forward steps of the
	// wall clock (tamago's wall and monotonic clocks are one).
	step atomic.Int64
}

var tm timeState

// nanotime is the runtime's clock. Until setupClock picks a source, raw TSC
// cycles stand in for nanoseconds: monotonic, wrong rate, and only used
// during start-up.
//
//go:linkname nanotime runtime/goos.Nanotime
//go:nosplit
func nanotime() int64 { return sourceTime() + tm.step.Load() }

// SetTime sets the clock to ns nanoseconds since the Unix epoch, the way
// tamago's boards set theirs: tamago's time.Now reads one clock for wall
// and monotonic time, so the step moves both. Only forward steps are
// taken (monotonic time never goes back); it reports whether it stepped.
// The kernel calls it once, with the host's time sync, before the
// application starts: timers running then fire early.
func SetTime(ns int64) bool {
	d := ns - nanotime()
	if d <= 0 {
		return false
	}
	tm.step.Add(d)
	return true
}

// sourceTime is the selected source's reading, before SetTime's step.
//
//go:nosplit
func sourceTime() int64 {
	switch ClockSource(tm.source.Load()) {
	case ClockReferenceTSC:
		if ref, ok := hv.ReadReferenceTSCPage(tm.refPage, rdtscOrdered); ok {
			ns := int64(ref)*100 + tm.refOffset
			tm.lastRef.Store(ns)
			return ns
		}
		// The host invalidated the page (migration): TIME_REF_COUNT is the
		// same timeline; without it time stands still until the page is
		// valid again.
		if tm.refCounter {
			return int64(rdmsr(uint32(hv.MSRTimeRefCount)))*100 + tm.refOffset
		}
		return tm.lastRef.Load()
	case ClockReferenceCounter:
		return int64(rdmsr(uint32(hv.MSRTimeRefCount)))*100 + tm.refOffset
	case ClockTSCPMTimer, ClockTSCPIT:
		return int64(tm.tsc.Nanotime(rdtsc()))
	}
	return int64(rdtsc())
}

// setupClock picks the best source selectClock offers that works.
func setupClock(m *machine) {
	in := clockInputs{
		HyperV:           m.hyperV,
		ReferenceTSC:     m.hyperV && m.hvInfo.ReferenceTSCAvailable(),
		ReferenceCounter: m.hyperV && m.hvInfo.Privileges.Has(hv.PrivPartitionRefCounter),
		PMTimer:          m.fadt != nil && m.fadt.PMTimer.Present && m.fadt.PMTimer.Space == acpi.AddressSpaceIO && m.fadt.PMTimer.Address != 0 && m.fadt.PMTimer.Address <= 0xffff,
		// Hyper-V Gen2 has no 8254; a FADT without legacy devices on
		// Hyper-V means Gen2.
		PIT: !(m.hyperV && m.fadt != nil && !m.fadt.LegacyDevices),
	}
	tm.refCounter = in.ReferenceCounter
	if m.hyperV && m.hvInfo.InvariantTSCControlAvailable() {
		// Linux does the same: the TSC keeps its rate across migration.
		wrmsr(uint32(hv.MSRTSCInvariantControl), 1)
	}
	for _, src := range selectClock(in) {
		if err := startClock(m, src); err != nil {
			print("gohv: clock: ", src.String(), ": ", err.Error(), "\n")
			continue
		}
		m.clock = src
		return
	}
}

func startClock(m *machine, src ClockSource) error {
	switch src {
	case ClockReferenceTSC:
		return startReferenceTSC()
	case ClockReferenceCounter:
		now := sourceTime()
		tm.refOffset = now - int64(rdmsr(uint32(hv.MSRTimeRefCount)))*100
		tm.source.Store(uint32(src))
		return nil
	case ClockTSCPMTimer:
		hz, err := pmCalibrator(uint16(m.fadt.PMTimer.Address), m.fadt.PMTimer32).calibrate()
		if err != nil {
			return err
		}
		return startTSC(m, src, hz)
	case ClockTSCPIT:
		hz, err := calibratePIT()
		if err != nil {
			return err
		}
		return startTSC(m, src, hz)
	}
	return nil // ClockNone: keep the bootstrap clock
}

func startTSC(m *machine, src ClockSource, hz uint64) error {
	s, err := clock.NewScale(hz)
	if err != nil {
		return err
	}
	now := sourceTime()
	tm.tsc = clock.NewClock(s, rdtsc(), uint64(now))
	m.tscHz = hz
	// tamago's CPU timer (SetAlarm) converts with the same rate.
	AMD64.TimerMultiplier = 1e9 / float64(hz)
	AMD64.TimerOffset = now - int64(float64(rdtsc())*AMD64.TimerMultiplier)
	tm.source.Store(uint32(src))
	return nil
}

// startReferenceTSC maps the reference TSC page (docs/hyperv-protocol.md §1.9) on a page
// of the DMA region (identity-mapped, outside the Go heap).
func startReferenceTSC() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("no page for the reference TSC: %v", r)
		}
	}()
	addr, page := dma.Reserve(hv.PageSize, hv.PageSize)
	clear(page)
	v, err := hv.EncodePageMSR(rdmsr(uint32(hv.MSRReferenceTSC)), uint64(addr)>>hv.PageShift, true)
	if err != nil {
		dma.Release(addr)
		return err
	}
	wrmsr(uint32(hv.MSRReferenceTSC), v)
	ref, ok := hv.ReadReferenceTSCPage(page, rdtscOrdered)
	if !ok {
		wrmsr(uint32(hv.MSRReferenceTSC), v&^1)
		dma.Release(addr)
		return fmt.Errorf("host marked the reference TSC page invalid")
	}
	tm.refPage = page
	tm.refOffset = sourceTime() - int64(ref)*100
	tm.lastRef.Store(int64(ref)*100 + tm.refOffset)
	tm.source.Store(uint32(ClockReferenceTSC))
	return nil
}

// pmCalibrator measures the TSC against the ACPI PM timer at port.
func pmCalibrator(port uint16, is32 bool) calibrator {
	return calibrator{
		ReadTimer: func() uint32 { return inl(port) },
		Elapsed:   func(a, b uint32) uint64 { return clock.PMTimerTicks(a, b, is32) },
		TimerHz:   clock.PMTimerHz,
		Ticks:     PMCalibrationTicks,
		ReadTSC:   rdtsc,
		Limit:     spinLimitCycles,
	}
}

// calibratePIT measures the TSC against PIT channel 2 in mode 0 (counting
// down from 0xFFFF), gated through port 0x61 with the speaker off.
func calibratePIT() (uint64, error) {
	gate := inb(PITGatePort)
	defer outb(PITGatePort, gate)
	outb(PITGatePort, pitGate(gate))
	outb(PITCommandPort, PITChannel2Mode0)
	outb(PITChannel2Port, 0xff)
	outb(PITChannel2Port, 0xff)
	c := calibrator{
		ReadTimer: func() uint32 {
			outb(PITCommandPort, PITLatch2)
			lo := inb(PITChannel2Port)
			hi := inb(PITChannel2Port)
			return uint32(hi)<<8 | uint32(lo)
		},
		Elapsed: func(a, b uint32) uint64 { return clock.PITTicks(uint16(a), uint16(b)) },
		TimerHz: clock.PITHz,
		Ticks:   PITCalibrationTicks,
		ReadTSC: rdtsc,
		Limit:   spinLimitCycles,
	}
	return c.calibrate()
}
