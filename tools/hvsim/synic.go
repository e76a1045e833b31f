package hvsim

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gohv/gohv/hv"
)

// queuedMsg is one host→guest message waiting for the SIMP slot.
type queuedMsg struct {
	n       int
	badSize bool // fault: size byte 255
	data    [maxMessagePayload]byte
}

// synic is one virtual processor's SynIC as the host drives it: it owns the
// delivery goroutine, the only code that writes the SIMP slot and calls the
// guest's handler, so the handler never runs concurrently with itself.
type synic struct {
	h        *Host
	vp       uint32
	simp     hv.Pages
	siefp    hv.Pages
	handlers [16]atomic.Pointer[func()]

	queue  chan queuedMsg
	eom    chan struct{}
	kick   chan struct{}
	unmask chan struct{}

	eoms        atomic.Uint64
	interrupts  atomic.Uint64
	posted      atomic.Uint64 // messages queued for delivery
	delivered   atomic.Uint64 // messages written to the slot, handler run
	pendingSets atomic.Uint64
	// waitingEOM is true while the delivery goroutine holds a message
	// for a busy slot and waits for the guest's EOM (or an interrupt).
	waitingEOM atomic.Bool
	// delaying is true while a DelayMessages fault holds a message back.
	delaying atomic.Bool
}

var _ hv.SynIC = (*synic)(nil)

func newSynIC(h *Host, vp uint32) (*synic, error) {
	simp, err := h.arena.AllocPages(1)
	if err != nil {
		return nil, fmt.Errorf("hvsim: SIMP for VP %d: %w", vp, err)
	}
	siefp, err := h.arena.AllocPages(1)
	if err != nil {
		return nil, fmt.Errorf("hvsim: SIEFP for VP %d: %w", vp, err)
	}
	return &synic{
		h: h, vp: vp, simp: simp, siefp: siefp,
		queue:  make(chan queuedMsg, msgQueueDepth),
		eom:    make(chan struct{}, 1),
		kick:   make(chan struct{}, 1),
		unmask: make(chan struct{}, 1),
	}, nil
}

// VPIndex implements hv.SynIC.
func (s *synic) VPIndex() uint32 { return s.vp }

// MessagePage implements hv.SynIC.
func (s *synic) MessagePage() []byte { return s.simp.Mem }

// EventFlagsPage implements hv.SynIC.
func (s *synic) EventFlagsPage() []byte { return s.siefp.Mem }

// SIMPPFN and SIEFPPFN are the guest frame numbers of the pages, as the
// guest would have programmed them into the SIMP/SIEFP MSRs.
func (s *synic) SIMPPFN() uint64  { return s.simp.PFN }
func (s *synic) SIEFPPFN() uint64 { return s.siefp.PFN }

// EndOfMessage implements hv.SynIC: it lets the delivery goroutine rescan
// (docs/hyperv-protocol.md §2.3).
func (s *synic) EndOfMessage() {
	s.eoms.Add(1)
	select {
	case s.eom <- struct{}{}:
	default:
	}
}

// SetHandler implements hv.SynIC.
func (s *synic) SetHandler(sint uint8, fn func()) error {
	if sint >= 16 {
		return hv.StatusInvalidParameter
	}
	if fn == nil {
		s.handlers[sint].Store(nil)
		return nil
	}
	s.handlers[sint].Store(&fn)
	select {
	case s.unmask <- struct{}{}:
	default:
	}
	return nil
}

func (s *synic) masked() bool { return s.handlers[vmbusSINT].Load() == nil }

// interrupt "raises" SINT2: it calls the guest's handler. Only the delivery
// goroutine calls it.
func (s *synic) interrupt() {
	if fn := s.handlers[vmbusSINT].Load(); fn != nil {
		s.interrupts.Add(1)
		(*fn)()
	}
}

// post queues a host→guest message. It never blocks: a guest that stops
// taking messages loses the overflow, which is counted.
func (s *synic) post(payload []byte) bool {
	var m queuedMsg
	m.n = copy(m.data[:], payload)
	select {
	case s.queue <- m:
		s.posted.Add(1)
		return true
	default:
		s.h.stats.messagesDropped.Add(1)
		s.h.logf("hvsim: VP %d message queue full, message type %d dropped", s.vp, le.Uint32(payload))
		return false
	}
}

// raiseEvent sets event flag bit in SINT2's area (docs/hyperv-protocol.md §2.2) and, unless
// a fault drops it, interrupts the VP.
func (s *synic) raiseEvent(bit uint32, interrupt bool) {
	area := vmbusSINT * flagAreaSize
	or64(s.siefp.Mem, area+int(bit/64)*8, 1<<(bit%64))
	if !interrupt {
		return
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// run is the delivery goroutine (docs/hyperv-protocol.md §2.3, host side): a message goes
// into slot 2 only when the slot is empty; otherwise the pending flag is set
// and the next message waits for the guest's EOM.
func (s *synic) run(stop <-chan struct{}) {
	slot := s.simp.Mem[vmbusSINT*slotSize : (vmbusSINT+1)*slotSize]
	var cur queuedMsg
	have := false
	for {
		if !have {
			select {
			case cur = <-s.queue:
				have = true
			case <-s.kick:
				s.interrupt()
				continue
			case <-s.unmask:
				s.interrupt()
				continue
			case <-s.eom:
				continue
			case <-stop:
				return
			}
		}
		if s.masked() {
			// A masked SINT receives no messages (docs/hyperv-protocol.md §2.3, iPXE note).
			select {
			case <-s.unmask:
			case <-s.kick:
			case <-stop:
				return
			}
			continue
		}
		if d := s.h.faults.messageDelay(); d > 0 {
			s.delaying.Store(true)
			select {
			case <-time.After(d):
			case <-stop:
				return
			}
			s.delaying.Store(false)
		}
		if load32(slot, slotOffType) == 0 {
			s.write(slot, &cur)
			have = false
			s.interrupt()
			s.delivered.Add(1) // after the handler: it has seen the message
			continue
		}
		or32(slot, slotOffSizeFlag, slotFlagPending)
		s.pendingSets.Add(1)
		if load32(slot, slotOffType) == 0 {
			// The guest emptied the slot between the two looks; it may
			// not have seen the flag, so do not wait for its EOM.
			continue
		}
		s.waitingEOM.Store(true)
		select {
		case <-s.eom:
		case <-s.kick:
			s.interrupt()
		case <-s.unmask:
			s.interrupt()
		case <-stop:
			return
		}
		s.waitingEOM.Store(false)
	}
}

// write fills an empty slot: payload and header first, the type last, so a
// guest that sees a non-zero type sees the whole message.
func (s *synic) write(slot []byte, m *queuedMsg) {
	copy(slot[slotOffPayload:], m.data[:m.n])
	le.PutUint64(slot[slotOffSender:], connMessage)
	size := uint32(m.n)
	if m.badSize {
		size = 255
	}
	store32(slot, slotOffSizeFlag, size)
	store32(slot, slotOffType, vmbusMessageType)
}
