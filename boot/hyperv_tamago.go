//go:build tamago

package boot

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/usbarmory/tamago/dma"

	"github.com/gohv/gohv/hv"
)

// The bare-metal hv.Platform: MSRs and hypercalls on the boot processor
// (the board runs on it alone), memory from tamago's DMA region, which is
// identity-mapped, physically contiguous and outside the Go heap.

var (
	_ hv.Platform = (*platform)(nil)
	_ hv.SynIC    = (*synic)(nil)
	_ hv.Memory   = dmaMemory{}

	_ hv.PhysTranslator = dmaMemory{}
)

// dmaMemory is hv.Memory over the DMA regions: RAM above 4 GiB first when
// the VM has it (the heap cannot use it, host-visible buffers can), then the
// region below the kernel.
type dmaMemory struct{}

// highRegion is the DMA region above 4 GiB, nil without one (set once in
// init).
var highRegion *dma.Region

var errPages = errors.New("boot: bad page count")

// AllocPages returns n zeroed, page-aligned, contiguous pages; PFN is the
// physical address >> 12 (identity map).
func (dmaMemory) AllocPages(n int) (p hv.Pages, err error) {
	if n <= 0 || n > 1<<20 {
		return hv.Pages{}, fmt.Errorf("%w: %d", errPages, n)
	}
	if highRegion != nil {
		if p, err := reserve(highRegion, n); err == nil {
			return p, nil
		}
	}
	return reserve(dma.Default(), n)
}

// reserve takes n zeroed pages from r.
func reserve(r *dma.Region, n int) (p hv.Pages, err error) {
	defer func() {
		// tamago's allocator panics when the region is exhausted.
		if x := recover(); x != nil {
			p, err = hv.Pages{}, fmt.Errorf("boot: DMA region cannot hold %d pages: %v", n, x)
		}
	}()
	addr, buf := r.Reserve(n*hv.PageSize, hv.PageSize)
	clear(buf)
	return hv.Pages{Mem: buf, PFN: uint64(addr) >> hv.PageShift}, nil
}

// FreePages returns p to the region.
func (dmaMemory) FreePages(p hv.Pages) {
	if len(p.Mem) == 0 {
		return
	}
	addr := uint(p.PFN << hv.PageShift)
	if highRegion != nil && addr >= highRegion.Start() && addr < highRegion.End() {
		highRegion.Release(addr)
		return
	}
	dma.Release(addr)
}

// PhysAddr implements hv.PhysTranslator: guest memory is identity-mapped
// and a non-isolated guest's host sees all of it, so any buffer's address
// is its guest-physical address and it is contiguous.
func (dmaMemory) PhysAddr(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))), true
}

type platform struct {
	dmaMemory
	hcPage uintptr // hypercall page (identity-mapped, executable)

	// mu guards input, the boot processor's HvPostMessage input block
	// (256-byte aligned: it starts a page).
	mu       sync.Mutex
	input    hv.Pages
	inputGPA uint64

	synics []hv.SynIC
}

// newPlatform performs the guest side of docs/hyperv-protocol.md §1.6, §1.7 and §2:
// GUEST_OS_ID, the hypercall page, the SynIC of the boot processor.
func newPlatform(info hv.Info) (*platform, error) {
	p := &platform{}
	wrmsr(uint32(hv.MSRGuestOSID), hv.GohvGuestOSID)

	hc, err := p.AllocPages(1)
	if err != nil {
		return nil, err
	}
	v, err := hv.EncodeHypercallMSR(rdmsr(uint32(hv.MSRHypercall)), hc.PFN, true)
	if err != nil {
		return nil, err
	}
	wrmsr(uint32(hv.MSRHypercall), v)
	if gpn, on := hv.DecodePageMSR(rdmsr(uint32(hv.MSRHypercall))); !on || gpn != hc.PFN {
		return nil, fmt.Errorf("boot: hypervisor did not enable the hypercall page (HYPERCALL MSR gpn %#x enabled %v)", gpn, on)
	}
	p.hcPage = uintptr(hc.PFN << hv.PageShift)

	if p.input, err = p.AllocPages(1); err != nil {
		return nil, err
	}
	p.inputGPA = p.input.PFN << hv.PageShift

	s, err := newSynIC(p, info)
	if err != nil {
		return nil, err
	}
	p.synics = []hv.SynIC{s}
	return p, nil
}

// SynICs returns the boot processor's SynIC.
func (p *platform) SynICs() []hv.SynIC { return p.synics }

// TimeRefCount reads the partition reference counter (TIME_REF_COUNT,
// docs/hyperv-protocol.md §1.9: 100 ns units since the partition started),
// the timeline of the time sync service's samples. Without the privilege
// the MSR would fault; the board's clock, which follows the same
// timeline, stands in.
func (p *platform) TimeRefCount() uint64 {
	if tm.refCounter {
		return rdmsr(uint32(hv.MSRTimeRefCount))
	}
	return uint64(sourceTime()) / 100
}

// PostMessage is HvPostMessage with the retry policy of docs/hyperv-protocol.md §1.8.
func (p *platform) PostMessage(connectionID uint32, messageType uint32, payload []byte) error {
	var encErr error
	err := postWithRetry(func() hv.Status {
		p.mu.Lock()
		defer p.mu.Unlock()
		blk := (*[hv.PostMessageInputSize]byte)(p.input.Mem[:hv.PostMessageInputSize])
		if encErr = hv.EncodePostMessage(blk, connectionID, messageType, payload); encErr != nil {
			return hv.StatusSuccess
		}
		return hv.Result(hypercall(p.hcPage, hv.PostMessageControl, p.inputGPA, 0)).Status()
	}, pause)
	if encErr != nil {
		return encErr
	}
	return err
}

// SignalEvent is the fast HvSignalEvent: the input travels in RDX.
func (p *platform) SignalEvent(connectionID uint32, flag uint16) error {
	r := hv.Result(hypercall(p.hcPage, hv.SignalEventFastControl, hv.SignalEventFastInput(connectionID, flag), 0))
	return r.Status().Err()
}

// pause waits d: spinning for short waits (the caller may be the SynIC
// handler goroutine), sleeping for long ones.
func pause(d time.Duration) {
	if d < time.Millisecond {
		end := nanotime() + int64(d)
		for nanotime() < end {
		}
		return
	}
	time.Sleep(d)
}

// synic is the boot processor's SynIC (docs/hyperv-protocol.md §2).
type synic struct {
	vp    uint32
	simp  hv.Pages
	siefp hv.Pages
	mu    sync.Mutex // serialises SINT MSR updates
}

func newSynIC(mem hv.Memory, info hv.Info) (*synic, error) {
	s := &synic{}
	if info.Privileges.Has(hv.PrivVPIndex) {
		// Without the privilege the MSR faults; the boot processor is VP 0.
		s.vp = uint32(rdmsr(uint32(hv.MSRVPIndex)))
	}
	var err error
	if s.simp, err = mem.AllocPages(1); err != nil {
		return nil, err
	}
	if s.siefp, err = mem.AllocPages(1); err != nil {
		return nil, err
	}
	// Order as Linux's hv_synic_enable_regs: SIMP, SIEFP, SINTs, SCONTROL.
	for _, r := range []struct {
		msr hv.MSR
		gpn uint64
	}{{hv.MSRSIMP, s.simp.PFN}, {hv.MSRSIEFP, s.siefp.PFN}} {
		v, err := hv.EncodePageMSR(rdmsr(uint32(r.msr)), r.gpn, true)
		if err != nil {
			return nil, err
		}
		wrmsr(uint32(r.msr), v)
	}
	// VMBus's SINT starts masked with its vector set; SetHandler unmasks.
	if err := s.program(hv.VMBusSINT, true); err != nil {
		return nil, err
	}
	wrmsr(uint32(hv.MSRSControl), rdmsr(uint32(hv.MSRSControl))|hv.SControlEnable)
	return s, nil
}

func (s *synic) VPIndex() uint32        { return s.vp }
func (s *synic) MessagePage() []byte    { return s.simp.Mem }
func (s *synic) EventFlagsPage() []byte { return s.siefp.Mem }

// EndOfMessage writes the EOM MSR (docs/hyperv-protocol.md §2.3).
func (s *synic) EndOfMessage() { wrmsr(uint32(hv.MSREOM), hv.EOMValue) }

// SetHandler routes sint's IDT vector to fn and unmasks the SINT (fn ==
// nil masks it). fn runs on the goroutine serving interrupts (tamago's
// CPU.ServiceInterrupts). SINTs are programmed without AutoEOI whatever the
// host recommends: tamago's interrupt loop writes the LAPIC EOI after every
// interrupt, and the TLFS forbids a guest that uses AutoEOI to EOI (Linux
// likewise drops AutoEOI when the host deprecates it); that one EOI is the
// only one.
func (s *synic) SetHandler(sint uint8, fn func()) error {
	if sint >= hv.SINTCount {
		return fmt.Errorf("boot: SINT %d out of range", sint)
	}
	setVectorHandler(sintVectorBase+int(sint), fn)
	return s.program(sint, fn == nil)
}

func (s *synic) program(sint uint8, masked bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	msr := uint32(hv.SINTMSR(sint))
	v, err := hv.SINT{Vector: uint8(sintVectorBase + int(sint)), Masked: masked, AutoEOI: false}.Encode(rdmsr(msr))
	if err != nil {
		return err
	}
	wrmsr(msr, v)
	return nil
}

// Interrupt dispatch: tamago delivers every vector 32-254 to the one
// goroutine blocked in CPU.ServiceInterrupts; the board fans out by vector.
var (
	irqHandlers [256]atomic.Pointer[func()]
	irqStart    sync.Once
)

// SetInterruptHandler routes IDT vector (32-254, outside the SINT vectors
// 0x40-0x4F the SynIC uses) to fn, run on the board's interrupt-service
// goroutine; nil removes it. Drivers needing an interrupt use this instead
// of calling CPU.ServiceInterrupts themselves (only one caller can).
func SetInterruptHandler(vector int, fn func()) error {
	if vector < 32 || vector > 254 || (vector >= sintVectorBase && vector < sintVectorBase+hv.SINTCount) {
		return fmt.Errorf("boot: vector %d not available", vector)
	}
	setVectorHandler(vector, fn)
	return nil
}

func setVectorHandler(vector int, fn func()) {
	if fn == nil {
		irqHandlers[vector].Store(nil)
		return
	}
	irqHandlers[vector].Store(&fn)
	irqStart.Do(func() {
		go AMD64.ServiceInterrupts(dispatchIRQ)
		// Let the loop reach its signal.Notify before the caller (SetHandler)
		// unmasks a SINT: an interrupt relayed before that may be lost, and
		// the host sends nothing more to a slot that is never emptied.
		runtime.Gosched()
	})
}

func dispatchIRQ(vector int) {
	if vector < 0 || vector >= len(irqHandlers) {
		return
	}
	if fn := irqHandlers[vector].Load(); fn != nil {
		(*fn)()
	}
}
