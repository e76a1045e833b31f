//go:build tamago

package boot

import (
	"errors"
	"fmt"
	"runtime/goos"
	"sync"
	"sync/atomic"
	"time"
	_ "unsafe"

	"github.com/usbarmory/tamago/amd64"
	"github.com/usbarmory/tamago/dma"

	"github.com/gohv/gohv/boot/acpi"
	"github.com/gohv/gohv/hv"
)

// Runtime memory (tamago runtime/goos). early sets both from the memory
// map before the runtime reads them; the values here are never used, but
// they must be non-zero: an initialised (DATA) symbol is what lets this
// definition win over runtime/goos's own zero (BSS) declaration at link
// time, as in tamago's boards.
var (
	//go:linkname ramStart runtime/goos.RamStart
	ramStart uint = 0x10000000
	//go:linkname ramSize runtime/goos.RamSize
	ramSize uint = 0x10000000
)

// AMD64 is the boot processor (tamago's amd64 driver: IDT, exceptions,
// LAPIC, interrupt service).
var AMD64 = &amd64.CPU{TimerMultiplier: 1}

// sintVectorBase is the IDT vector of SINT0; SINTn uses base+n. Vectors
// 32-254 are the ones tamago hands to CPU.ServiceInterrupts.
const sintVectorBase = 0x40

// machine is what the board learned in init.
type machine struct {
	acpiErr error
	fadt    *acpi.FADT
	s5      acpi.SleepType
	s5Err   error
	madt    *acpi.MADT

	hvInfo    hv.Info
	hvErr     error // nil: Hyper-V with VMBus features
	hyperV    bool  // Hyper-V present (hvInfo valid), VMBus or not
	vendor    string
	clock     ClockSource
	tscHz     uint64
	clockNote string

	rtcTime time.Time // the RTC's reading at boot
	rtcAt   int64     // nanotime when it was read
	rtcErr  error
}

var (
	mach     machine
	machDone atomic.Bool
)

// Hwinit1 runs after the runtime's scheduler exists and before package
// initialisation: the CPU driver and the console. Discovery that needs
// initialised packages (acpi, hv, fmt errors) waits for init.
//
//go:linkname hwinit1 runtime/goos.Hwinit1
func hwinit1() {
	AMD64.Init()
	UART0.Init()
	goos.Exit = exit
}

func init() {
	if boot.Err != bootOK {
		print(boot.Err.Error(), " (", boot.Mem.Dropped, " entries dropped)\n")
	}
	if boot.Plan.Truncated {
		print("gohv: RAM above ", boot.Plan.End>>20, " MiB is not mapped\n")
	}
	AMD64.EnableExceptions()
	AMD64.LAPIC.Enable()
	if err := dma.Init(uint(boot.Layout.DMAStart), int(boot.Layout.DMASize)); err != nil {
		print("gohv: DMA region: ", err.Error(), "\n")
	}
	if start, size := highDMA(&boot.Mem, &boot.Plan); size != 0 {
		r, err := dma.NewRegion(uint(start), int(size), false)
		if err != nil {
			print("gohv: DMA region above 4 GiB: ", err.Error(), "\n")
		} else {
			highRegion = r
		}
	}
	discover(&mach)
	machDone.Store(true)
	// Whether VMBus is missing, and why, is said once by whoever asks for
	// the platform (the kernel's start-up path).
}

// physReader reads identity-mapped physical memory for acpi.
type physReader struct{}

func (physReader) ReadPhys(addr uint64, dst []byte) error {
	if !earlyWindow.Contains(addr, len(dst)) {
		return fmt.Errorf("boot: physical read [%#x,+%d) outside the identity map", addr, len(dst))
	}
	copy(dst, phys(addr, len(dst)))
	return nil
}

func cpuidFunc(leaf, subleaf uint32) hv.CPUIDResult {
	a, b, c, d := cpuid(leaf, subleaf)
	return hv.CPUIDResult{EAX: a, EBX: b, ECX: c, EDX: d}
}

// discover finds ACPI tables, the hypervisor and the clock.
func discover(m *machine) {
	m.vendor = hv.VendorString(cpuidFunc(hv.CPUIDLeafVendor, 0))
	m.hvInfo, m.hvErr = hv.Detect(cpuidFunc)
	m.hyperV = m.hvErr == nil || errors.Is(m.hvErr, hv.ErrMissingFeature)
	if m.hvErr == nil && !m.hvInfo.HasVMBusFeatures() {
		m.hvErr = fmt.Errorf("%w: VMBus privileges missing", hv.ErrMissingFeature)
	}
	discoverACPI(m)
	setupClock(m)
	readRTC(m)
}

func discoverACPI(m *machine) {
	rsdp := boot.Header.RSDP
	if rsdp == 0 {
		var err error
		if rsdp, err = acpi.FindRSDP(physReader{}); err != nil {
			m.acpiErr = err
			return
		}
	}
	t, bad, err := acpi.Load(physReader{}, rsdp)
	if err != nil {
		m.acpiErr = err
		return
	}
	for _, e := range bad {
		print("gohv: ACPI: ", e.Error(), "\n")
	}
	if b, ok := t.Table("FACP"); ok {
		m.fadt, m.acpiErr = acpi.ParseFADT(b)
	}
	if b, ok := t.Table("DSDT"); ok {
		m.s5, m.s5Err = acpi.FindS5(b)
	} else {
		m.s5Err = acpi.ErrNotFound
	}
	if b, ok := t.Table("APIC"); ok {
		m.madt, _ = acpi.ParseMADT(b)
	}
}

// Describe returns what the board found.
func Describe() Machine {
	m := Machine{Layout: boot.Layout}
	if !machDone.Load() {
		return m
	}
	m.HypervisorVendor = mach.vendor
	m.HyperV = mach.hyperV
	m.VMBusErr = mach.hvErr
	m.HV = mach.hvInfo
	m.Clock = mach.clock
	m.TSCHz = mach.tscHz
	if highRegion != nil {
		m.HighDMA = uint64(highRegion.Size())
	}
	if mach.madt != nil {
		m.CPUs = mach.madt.EnabledCPUs()
	}
	return m
}

var platformOnce struct {
	sync.Once
	p   hv.Platform
	err error
}

// Platform returns the bare-metal hv.Platform, set up on first use
// (GUEST_OS_ID, hypercall page, SynIC of the boot processor). It returns an
// error, never panics, when Hyper-V or its VMBus features are absent.
//
// On Generation 2 the UEFI firmware owns VMBus until ExitBootServices
// (docs/hyperv-protocol.md §10); gohv's loader has exited boot services before the kernel
// runs, so the kernel may take VMBus over.
func Platform() (hv.Platform, error) {
	if !machDone.Load() {
		return nil, errors.New("boot: Platform called before the board initialised")
	}
	platformOnce.Do(func() {
		if mach.hvErr != nil {
			platformOnce.err = fmt.Errorf("boot: no VMBus: %w", mach.hvErr)
			return
		}
		platformOnce.p, platformOnce.err = newPlatform(mach.hvInfo)
	})
	return platformOnce.p, platformOnce.err
}
