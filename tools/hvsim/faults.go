package hvsim

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gohv/gohv/hv"
)

// Faults are the host's fault-injection controls. All are off by default;
// every method is safe for concurrent use and takes effect at once.
type Faults struct {
	// perPacket is true while a fault consulted for every channel packet
	// or interrupt is armed (dropped interrupts, completion delay or
	// reordering), so the packet path takes mu only then. Updated under
	// mu by every change of those faults.
	perPacket atomic.Bool

	mu             sync.Mutex
	rng            *rand.Rand
	dropNext       int
	dropFraction   float64
	msgDelay       time.Duration
	complDelay     time.Duration
	reorder        map[uint32]bool
	postBusy       int
	postStatus     hv.Status
	blackhole      map[uint32]bool
	truncateOffers int
	rescindAtGPADL map[uint32]bool
}

func newFaults(seed uint64) *Faults {
	return &Faults{rng: rand.New(rand.NewPCG(seed, 0x68767369)), reorder: map[uint32]bool{},
		blackhole: map[uint32]bool{}, rescindAtGPADL: map[uint32]bool{}}
}

// DropInterrupts loses the next n channel interrupts: the SIEFP bit is set
// but the guest's handler is not called.
func (f *Faults) DropInterrupts(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropNext = n
	f.updatePerPacket()
}

// updatePerPacket recomputes perPacket; mu held.
func (f *Faults) updatePerPacket() {
	on := f.dropNext > 0 || f.dropFraction > 0 || f.complDelay > 0
	for _, r := range f.reorder {
		on = on || r
	}
	f.perPacket.Store(on)
}

// DropInterruptFraction loses each channel interrupt with probability p.
func (f *Faults) DropInterruptFraction(p float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropFraction = p
	f.updatePerPacket()
}

// DelayMessages delays every host→guest SynIC message by d.
func (f *Faults) DelayMessages(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgDelay = d
}

// DelayCompletions delays every completion packet (type 0xB) a device
// sends by d.
func (f *Faults) DelayCompletions(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.complDelay = d
	f.updatePerPacket()
}

// ReorderCompletions swaps completions on relid in pairs: the first is
// held back and written after the second.
func (f *Faults) ReorderCompletions(relid uint32, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reorder[relid] = on
	f.updatePerPacket()
}

// FailPostMessage makes the next n HvPostMessage calls return
// HV_STATUS_INSUFFICIENT_BUFFERS.
func (f *Faults) FailPostMessage(n int) {
	f.FailPostMessageWith(n, hv.StatusInsufficientBuffers)
}

// FailPostMessageWith makes the next n HvPostMessage calls, whatever their
// message, return st without delivering anything (e.g.
// HV_STATUS_INVALID_CONNECTION_ID, which a busy host returns too,
// docs/hyperv-protocol.md §1.8).
func (f *Faults) FailPostMessageWith(n int, st hv.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.postBusy, f.postStatus = n, st
}

// BlackHole makes the host silently ignore guest channel messages of
// msgType (docs/hyperv-protocol.md §3.2), to exercise guest timeouts.
func (f *Faults) BlackHole(msgType uint32, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blackhole[msgType] = on
}

// TruncateOffers sends the next n OFFERCHANNEL messages cut to 100 bytes.
func (f *Faults) TruncateOffers(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.truncateOffers = n
}

// RescindAtGPADL rescinds relid when the host takes the next GPADL_HEADER
// for it, before it answers GPADL_CREATED (which still says success, as a
// real host's does): the guest stops waiting mid-creation and must tear
// the GPADL down before RELID_RELEASED.
func (f *Faults) RescindAtGPADL(relid uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rescindAtGPADL[relid] = true
}

func (f *Faults) takeRescindAtGPADL(relid uint32) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	on := f.rescindAtGPADL[relid]
	delete(f.rescindAtGPADL, relid)
	return on
}

func (f *Faults) takeDropInterrupt() bool {
	if !f.perPacket.Load() {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dropNext > 0 {
		f.dropNext--
		f.updatePerPacket()
		return true
	}
	return f.dropFraction > 0 && f.rng.Float64() < f.dropFraction
}

func (f *Faults) messageDelay() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.msgDelay
}

func (f *Faults) completionDelay() time.Duration {
	if !f.perPacket.Load() {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.complDelay
}

func (f *Faults) reorders(relid uint32) bool {
	if !f.perPacket.Load() {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reorder[relid]
}

// takePostBusy returns the status the next post fails with, or success.
func (f *Faults) takePostBusy() hv.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.postBusy > 0 {
		f.postBusy--
		return f.postStatus
	}
	return hv.StatusSuccess
}

func (f *Faults) blackholed(t uint32) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.blackhole[t]
}

func (f *Faults) takeMalformedOffer() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.truncateOffers > 0 {
		f.truncateOffers--
		return true
	}
	return false
}

// FillGuestRing fills the host→guest ring of relid with empty in-band
// packets and returns how many it wrote.
func (h *Host) FillGuestRing(relid uint32) int {
	ch := h.Channel(relid)
	if ch == nil {
		return 0
	}
	return ch.FillGuestRing()
}

// RescindAfterPackets rescinds relid once the host has taken n more
// packets from the guest on it: a rescind with I/O outstanding.
func (h *Host) RescindAfterPackets(relid uint32, n int) bool {
	ch := h.Channel(relid)
	if ch == nil || n <= 0 {
		return false
	}
	ch.rescindAfter.Store(int64(n))
	return true
}
