package boot

// ClockSource is where Nanotime's time comes from.
type ClockSource uint8

// Clock sources, best first.
const (
	// ClockNone: nothing calibrated yet; raw TSC cycles stand in for
	// nanoseconds (monotonic, wrong rate) until Hwinit1 picks a source.
	ClockNone ClockSource = iota
	// ClockReferenceTSC: the Hyper-V reference TSC page (docs/hyperv-protocol.md §1.9),
	// 100 ns units scaled to ns.
	ClockReferenceTSC
	// ClockReferenceCounter: the Hyper-V TIME_REF_COUNT MSR (every read is
	// an intercept: slow but right).
	ClockReferenceCounter
	// ClockTSCPMTimer: TSC calibrated against the ACPI PM timer.
	ClockTSCPMTimer
	// ClockTSCPIT: TSC calibrated against PIT channel 2.
	ClockTSCPIT
)

var clockSourceNames = [...]string{
	ClockNone:             "uncalibrated TSC",
	ClockReferenceTSC:     "Hyper-V reference TSC page",
	ClockReferenceCounter: "Hyper-V TIME_REF_COUNT MSR",
	ClockTSCPMTimer:       "TSC calibrated against the ACPI PM timer",
	ClockTSCPIT:           "TSC calibrated against PIT channel 2",
}

// String names the source.
func (s ClockSource) String() string {
	if int(s) < len(clockSourceNames) {
		return clockSourceNames[s]
	}
	return "unknown clock source"
}

// clockInputs is what the board knows when it picks a clock.
type clockInputs struct {
	// HyperV: hv.Detect found Hyper-V (VMBus features not required).
	HyperV bool
	// ReferenceTSC: the partition may use the reference TSC page.
	ReferenceTSC bool
	// ReferenceCounter: the partition may read TIME_REF_COUNT.
	ReferenceCounter bool
	// PMTimer: the FADT names an I/O-port PM timer.
	PMTimer bool
	// PIT: an 8254 is there to calibrate against (legacy PC: QEMU, Gen1;
	// Hyper-V Gen2 has none).
	PIT bool
}

// selectClock returns the sources to try, best first. The board tries them
// in order (a reference TSC page whose sequence is 0 — the host says "do not
// use" — or a calibration whose runs disagree falls through to the next).
// Nothing here requires an invariant TSC or kvmclock.
func selectClock(in clockInputs) []ClockSource {
	var out []ClockSource
	if in.HyperV && in.ReferenceTSC {
		out = append(out, ClockReferenceTSC)
	}
	if in.HyperV && in.ReferenceCounter {
		out = append(out, ClockReferenceCounter)
	}
	if in.PMTimer {
		out = append(out, ClockTSCPMTimer)
	}
	if in.PIT {
		out = append(out, ClockTSCPIT)
	}
	return append(out, ClockNone)
}

// PIT channel 2 calibration (8254 datasheet; the gate is port 0x61 bit 0,
// the output is read back on bit 5).
const (
	PITChannel2Port = 0x42
	PITCommandPort  = 0x43
	PITGatePort     = 0x61
	// PITChannel2Mode0 selects channel 2, lobyte/hibyte access, mode 0
	// (interrupt on terminal count), binary.
	PITChannel2Mode0 = 0b10_11_000_0
	// PITLatch2 latches channel 2's count for reading.
	PITLatch2 = 0b10_00_000_0
	// PITCalibrationTicks is one calibration run: 11932 ticks ≈ 10 ms.
	PITCalibrationTicks = 11932
	// PMCalibrationTicks is one PM timer run: 35795 ticks ≈ 10 ms.
	PMCalibrationTicks = 35795
	// CalibrationRuns and CalibrationTolerancePPM feed clock.Median.
	CalibrationRuns         = 5
	CalibrationTolerancePPM = 2000
)

// pitGate returns the port 0x61 value that enables channel 2's gate and
// disconnects the speaker, from the current value.
func pitGate(cur uint8) uint8 { return cur&^0b10 | 0b01 }
