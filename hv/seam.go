package hv

// This file is the seam between gohv's upper layers and the machine
// (architecture note, "The seam that makes it testable without Hyper-V").
// Nothing above hv/ executes a privileged instruction or touches a physical
// address: it reaches the hypervisor only through these interfaces. Two
// implementations exist: the bare-metal one in boot/ (//go:build tamago) and
// the simulated host in tools/hvsim.

// PageSize is the Hyper-V page size; a PFN (GPN) is a guest physical address
// shifted right by 12 (docs/hyperv-protocol.md, Conventions).
const PageSize = 4096

// PageShift is log2(PageSize).
const PageShift = 12

// Pages is a run of physically contiguous, page-aligned guest memory that the
// host can see: ring buffers, GPADL-described buffers, SynIC pages, DMA.
//
// Mem is shared with the host. Fields the host may write concurrently (ring
// indices, SynIC slot headers, event flags) must be accessed with
// sync/atomic; bulk data is copied out before it is validated.
type Pages struct {
	// Mem is the memory; len(Mem) is a non-zero multiple of PageSize.
	Mem []byte
	// PFN is the guest page frame number of Mem[0].
	PFN uint64
}

// Count returns the number of pages in p.
func (p Pages) Count() int { return len(p.Mem) / PageSize }

// PFNAt returns the page frame number of page i of p.
func (p Pages) PFNAt(i int) uint64 { return p.PFN + uint64(i) }

// Slice returns pages [from, to) of p as a Pages value.
func (p Pages) Slice(from, to int) Pages {
	return Pages{Mem: p.Mem[from*PageSize : to*PageSize], PFN: p.PFN + uint64(from)}
}

// Memory hands out host-visible memory. Implementations are safe for
// concurrent use. Allocation is a set-up path, never a per-packet one.
type Memory interface {
	// AllocPages returns n zeroed, physically contiguous pages.
	AllocPages(n int) (Pages, error)
	// FreePages returns pages obtained from AllocPages. The caller must be
	// sure the host no longer uses them (GPADL torn down, SynIC disabled).
	FreePages(p Pages)
}

// PhysTranslator is implemented by a Memory (or Platform) that can name the
// guest-physical address of memory it did not hand out itself, so that I/O
// can go GPA-direct (docs/hyperv-protocol.md §4.5) from a caller's buffer without a copy.
// Bare metal implements it for every buffer (guest memory is identity
// mapped and all of it is visible to a non-isolated guest's host); the
// simulator only for memory inside its arena. Where it reports false,
// bounce the data through pages from AllocPages (package hv/dma).
type PhysTranslator interface {
	// PhysAddr returns the guest-physical address of b[0] and true when
	// all of b is host-visible and physically contiguous; 0 and false
	// otherwise (including for an empty b). It does not allocate.
	PhysAddr(b []byte) (gpa uint64, ok bool)
}

// Hypercalls are the two hypercalls VMBus needs (docs/hyperv-protocol.md §1.8). Both are
// safe to call from any goroutine, including a SynIC handler, and neither
// allocates. A failed call returns a Status.
type Hypercalls interface {
	// PostMessage is HvPostMessage (call code 0x005C): send payload
	// (at most MaxMessagePayload bytes) as a message of messageType (bit
	// 31 clear, non-zero; VMBus uses 1) to connectionID.
	PostMessage(connectionID uint32, messageType uint32, payload []byte) error
	// SignalEvent is HvSignalEvent (call code 0x005D): set event flag
	// number flag on the port behind connectionID.
	SignalEvent(connectionID uint32, flag uint16) error
}

// MaxMessagePayload is the largest SynIC message payload (docs/hyperv-protocol.md §1.8,
// §2.1).
const MaxMessagePayload = 240

// SynIC is one virtual processor's synthetic interrupt controller as VMBus
// sees it (docs/hyperv-protocol.md §2). The implementation owns the SIMP and SIEFP pages
// and programs the SINT; the VMBus client only reads and clears them.
type SynIC interface {
	// VPIndex is the hypervisor's index of this processor (VP_INDEX MSR),
	// the value used for target VPs in VMBus messages.
	VPIndex() uint32
	// MessagePage returns the SIMP: 16 slots of 256 bytes, slot n for
	// SINTn (docs/hyperv-protocol.md §2.1). The host writes it concurrently.
	MessagePage() []byte
	// EventFlagsPage returns the SIEFP: 16 areas of 256 bytes, area n for
	// SINTn (docs/hyperv-protocol.md §2.2). The host sets bits concurrently.
	EventFlagsPage() []byte
	// EndOfMessage writes the EOM MSR (docs/hyperv-protocol.md §2.3): the hypervisor
	// rescans its queue and delivers the next pending message.
	EndOfMessage()
	// SetHandler installs fn as the handler of interrupts on sint and
	// unmasks it (fn == nil masks it again).
	//
	// fn runs in interrupt context: on bare metal, from the goroutine that
	// serves the SINT's IDT vector; in the simulator, from the host's
	// delivery goroutine. It is never run concurrently with itself for the
	// same SynIC. It must not block, sleep or allocate, and must return
	// promptly: typically it drains the message slot and event flags and
	// wakes the goroutines that do the real work.
	SetHandler(sint uint8, fn func()) error
}

// Platform is everything the VMBus client needs from the machine.
type Platform interface {
	Hypercalls
	Memory
	// SynICs returns one SynIC per virtual processor, the boot processor
	// first. The slice and its elements are fixed for the platform's life.
	SynICs() []SynIC
}
