//go:build tamago

package boot

import (
	"unsafe"
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
	Err     BootError // first fatal or warning condition
	Header  StartInfoHeader
	Mem     MemMap
	Layout  Layout
	Plan    PagePlan
	Huge    bool // 1 GiB pages used above 4 GiB
	RDRAND  bool
	InLong  bool // entered in long mode
	StartPA uint64
}

// earlyWindow is what cpuinit mapped: [4 KiB, 4 GiB).
var earlyWindow = PhysWindow{Low: 4096, High: lowMapEnd}

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

	// tamago's LAPIC driver is xAPIC MMIO only; firmware may hand over in
	// x2APIC mode (apic.go).
	if w, n := XAPICWrites(rdmsr(MSRAPICBase)); n > 0 {
		for i := range n {
			wrmsr(MSRAPICBase, w[i])
		}
	}

	if !earlyWindow.Contains(b.StartPA, 56) {
		earlyFail(ErrStartInfoAddr)
	}
	h, e := DecodeStartInfo(phys(b.StartPA, 56))
	if e != BootOK {
		earlyFail(e)
	}
	b.Header = h
	if !earlyWindow.Contains(h.MemmapPaddr, h.MemmapBytes()) {
		earlyFail(ErrMemmapAddr)
	}
	// Copy the map out: tamago reuses low memory (the SMP trampoline at
	// 0x4000-0x6FFF) where loaders keep it.
	if e := b.Mem.Decode(phys(h.MemmapPaddr, h.MemmapBytes())); e != BootOK {
		if e != ErrMemmapTruncated {
			earlyFail(e)
		}
		b.Err = e
	}

	l, e := PlanLayout(&b.Mem, DefaultLayoutConfig(imageStart, imageEnd))
	if e != BootOK {
		earlyFail(e)
	}
	b.Layout = l

	_, _, _, extEDX := cpuid(0x80000001, 0)
	b.Huge = extEDX&(1<<26) != 0 // Page1GB
	b.Plan = PlanPages(&b.Mem, b.Huge, highPDPool)
	applyPagePlan(hdr.Tables, &b.Plan)

	_, _, ecx1, _ := cpuid(1, 0)
	b.RDRAND = ecx1&(1<<30) != 0
	if !b.RDRAND {
		// tamago/amd64 owns the runtime's random source and uses RDRAND
		// unconditionally: say so instead of dying on #UD.
		earlyPrint("gohv: this CPU has no RDRAND, which tamago/amd64 requires (QEMU: -cpu max)\r\n")
		haltForever()
	}

	ramStart = uint(l.RamStart)
	ramSize = uint(l.RamSize)
}

// applyPagePlan edits cpuinit's tables at base (PML4, PDPT, PD0..PD3, ...).
func applyPagePlan(base uint64, p *PagePlan) {
	pdpt := (*[512]uint64)(unsafe.Pointer(uintptr(base + tablePDPT)))
	pd3 := (*[512]uint64)(unsafe.Pointer(uintptr(base + tablePD0 + 3*4096)))
	for i := 0; i < 512; i++ {
		pd3[i] = LargePageEntry(uncachedBase+uint64(i)*2*mib, !p.Cached(i))
	}
	for i := 0; i < p.NHigh; i++ {
		slot := uint64(p.High[i])
		if p.Huge {
			pdpt[slot] = LargePageEntry(slot<<30, false)
			continue
		}
		pdPA := base + tablePool + uint64(i)*4096
		pd := (*[512]uint64)(unsafe.Pointer(uintptr(pdPA)))
		for j := range pd {
			pd[j] = LargePageEntry(slot<<30+uint64(j)*2*mib, false)
		}
		pdpt[slot] = TableEntry(pdPA)
	}
	reloadCR3()
}

// earlyFail reports a pre-runtime failure on COM1 and stops: without a
// usable memory map there is nowhere safe to put the heap.
func earlyFail(e BootError) {
	earlyPrint(e.Error())
	earlyPrint("\r\n")
	haltForever()
}
