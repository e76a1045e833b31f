//go:build tamago

package boot

import (
	"unsafe"

	"github.com/gohv/gohv/boot/acpi"
)

// Pre-runtime state. cpuinit (cpuinit_amd64.s) builds its page tables,
// GDT, IDT and stack inside bootArea and then calls early, which must not
// allocate, panic, or use anything that needs package initialisation.

var (
	bootArea [bootAreaSize]byte

	// imageStart and imageEnd bound the kernel (runtime.text..runtime.end),
	// stored by cpuinit.
	imageStart, imageEnd uint64

	// earlyG stands in for a g while early runs: its stack guard (word 2)
	// is 0, so stack checks pass. earlyTLS[0] points at it; FS is set to
	// &earlyTLS[1] because Go reads g at -8(FS).
	earlyG   [32]uintptr
	earlyTLS [2]uintptr

	// boot is what early found, reported and used after the runtime
	// starts.
	boot bootState
)

// bootState is the pre-runtime result.
type bootState struct {
	Err     bootError // first fatal or warning condition
	Header  startInfoHeader
	Mem     memMap
	Layout  Layout
	Plan    pagePlan
	Huge    bool // 1 GiB pages used above 4 GiB
	RDRAND  bool
	InLong  bool // entered in long mode
	StartPA uint64
}

// bootView is an acpi.View of [0, 4 GiB) for the pre-runtime path.
func bootView(addr uint64, n int) []byte {
	if !bootReadWindow.Contains(addr, n) {
		return nil
	}
	return phys(addr, n)
}

// mapZeroPage maps (or unmaps again) physical page 0 in cpuinit's first
// page table, which leaves it out so that nil dereferences fault.
func mapZeroPage(tables uint64, on bool) {
	pt := (*[512]uint64)(unsafe.Pointer(uintptr(tables + tablePT)))
	pt[0] = 0
	if on {
		pt[0] = pageEntry(0)
	}
	reloadCR3()
}

// phys returns n bytes at physical (= virtual, identity map) address pa.
//
//go:nosplit
func phys(pa uint64, n int) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(uintptr(pa))), n)
}

// early is called by cpuinit before the Go runtime starts. It is not
// nosplit (its frame is larger than the nosplit limit): its stack checks
// compare against earlyG's zero guard and pass.
func early() {
	hdr := (*bootHeader)(unsafe.Pointer(&bootArea[0]))
	b := &boot
	b.InLong = hdr.LongMode != 0
	b.StartPA = uint64(hdr.StartInfo)

	// Mask the 8259 PICs: interrupts come through the LAPIC (and tamago
	// enables them only once the IDT is filled); a BIOS may have left the
	// PIT unmasked.
	outb(0x21, 0xff)
	outb(0xa1, 0xff)
	consoleSetup()

	// Page 0 stays mapped until early returns: boot data may live there,
	// and earlyFail's power-off reads the BIOS data area.
	// (No defer: early runs before the runtime.)
	mapZeroPage(hdr.Tables, true)

	// tamago's LAPIC driver is xAPIC MMIO only; firmware may hand over in
	// x2APIC mode (apic.go). Leaving it can fault, silently this early:
	// check what Linux checks first.
	apicBase := rdmsr(msrAPICBase)
	if apicBase&apicBaseEXTD != 0 {
		if e := xapicCheck(apicBase, uint32(rdmsr(msrX2APICID)), x2APICLocked()); e != bootOK {
			earlyFail(e)
		}
	}
	if w, n := xapicWrites(apicBase); n > 0 {
		for i := range n {
			wrmsr(msrAPICBase, w[i])
		}
	}

	if !bootReadWindow.Contains(b.StartPA, 56) {
		earlyFail(errStartInfoAddr)
	}
	h, e := decodeStartInfo(phys(b.StartPA, 56))
	if e != bootOK {
		earlyFail(e)
	}
	b.Header = h
	if !bootReadWindow.Contains(h.MemmapPaddr, h.MemmapBytes()) {
		earlyFail(errMemmapAddr)
	}
	// Copy the map out: tamago reuses low memory (the SMP trampoline at
	// 0x4000-0x6FFF) where loaders keep it.
	if e := b.Mem.Decode(phys(h.MemmapPaddr, h.MemmapBytes())); e != bootOK {
		if e != errMemmapTruncated {
			earlyFail(e)
		}
		b.Err = e
	}

	cfg := defaultLayoutConfig(imageStart, imageEnd)
	l, e := planLayout(&b.Mem, cfg)
	if e == errRAMTooSmall {
		var num [20]byte
		earlyPrint("gohv boot: this kernel needs at least ")
		earlyPrint(formatUint(num[:], (cfg.MinRAM()+mib-1)/mib))
		earlyPrint(" MiB of RAM\r\n")
	}
	if e != bootOK {
		earlyFail(e)
	}
	b.Layout = l

	_, _, _, extEDX := cpuid(0x80000001, 0)
	b.Huge = extEDX&(1<<26) != 0 // Page1GB
	b.Plan = planPages(&b.Mem, b.Huge, highPDPool)
	applyPagePlan(hdr.Tables, &b.Plan)

	_, _, ecx1, _ := cpuid(1, 0)
	b.RDRAND = ecx1&(1<<30) != 0
	if !b.RDRAND {
		// tamago/amd64 owns the runtime's random source and uses RDRAND
		// unconditionally: say so instead of dying on #UD.
		earlyFail(errNoRDRAND)
	}

	ramStart = uint(l.RamStart)
	ramSize = uint(l.RamSize)
	mapZeroPage(hdr.Tables, false)
}

// applyPagePlan edits cpuinit's tables at base (PML4, PDPT, PD0..PD3, ...).
func applyPagePlan(base uint64, p *pagePlan) {
	pdpt := (*[512]uint64)(unsafe.Pointer(uintptr(base + tablePDPT)))
	pd3 := (*[512]uint64)(unsafe.Pointer(uintptr(base + tablePD0 + 3*4096)))
	for i := 0; i < 512; i++ {
		pd3[i] = largePageEntry(uncachedBase+uint64(i)*2*mib, !p.Cached(i))
	}
	for i := 0; i < p.NHigh; i++ {
		slot := uint64(p.High[i])
		if p.Huge {
			pdpt[slot] = largePageEntry(slot<<30, false)
			continue
		}
		pdPA := base + tablePool + uint64(i)*4096
		pd := (*[512]uint64)(unsafe.Pointer(uintptr(pdPA)))
		for j := range pd {
			pd[j] = largePageEntry(slot<<30+uint64(j)*2*mib, false)
		}
		pdpt[slot] = tableEntry(pdPA)
	}
	reloadCR3()
}

// x2APICLocked reads the firmware's x2APIC lock where the CPU reports one.
func x2APICLocked() bool {
	_, _, _, edx := cpuid(7, 0)
	if edx&(1<<29) == 0 { // IA32_ARCH_CAPABILITIES
		return false
	}
	if rdmsr(msrArchCapabilities)&archCapXAPICDisStatus == 0 {
		return false
	}
	return rdmsr(msrXAPICDisableStatus)&xapicLegacyDisabled != 0
}

// earlyFail reports a pre-runtime failure on COM1 and powers the machine
// off: without a usable memory map there is nowhere safe to put the heap,
// and a VM that hangs silently keeps its user (and tests) waiting.
func earlyFail(e bootError) {
	earlyPrint(e.Error())
	earlyPrint("\r\ngohv: cannot start; powering off\r\n")
	earlyPowerOff(boot.Header.RSDP)
}

// earlyPowerOff enters S5 through PM1 control without the runtime, as
// ACPICA's AcpiEnterSleepState does: write SLP_TYP|SLP_EN keeping the
// other bits, wait, write it again, then halt for ever (never reset: a
// reset would boot into the same failure).
func earlyPowerOff(rsdp uint64) {
	p, ok := acpi.FindS5Ports(bootView, rsdp)
	if !ok {
		earlyPrint("gohv: no ACPI power-off found; halting\r\n")
		haltForever()
	}
	for range 2 {
		outw(p.PM1a, acpi.PM1Merge(inw(p.PM1a), p.S5.A))
		if p.PM1b != 0 {
			outw(p.PM1b, acpi.PM1Merge(inw(p.PM1b), p.S5.B))
		}
		// About 10 s at 1–5 GHz: the host carries the power-off out and
		// promises no time.
		spin(20_000_000_000)
	}
	earlyPrint("gohv: still running after ACPI power-off; halting\r\n")
	haltForever()
}
