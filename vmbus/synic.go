package vmbus

import (
	"math/bits"
	"sync/atomic"
	"unsafe"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// The interrupt side: everything here runs in the SynIC handler (or the
// poller, serialised with it) and must not block or allocate.

// msgQueueLen is the number of channel messages buffered between the SynIC
// handler and the message goroutine. When it is full the handler leaves the
// message in the slot, so the host holds further messages (docs/hyperv-protocol.md
// §2.3), and the message goroutine rescans after draining.
const msgQueueLen = 64

type msgEntry struct {
	n   int
	buf [hv.MaxMessagePayload]byte
}

// msgQueue is a single-producer single-consumer ring: the producer is the
// (serialised) scanner, the consumer the message goroutine.
type msgQueue struct {
	e          [msgQueueLen]msgEntry
	head, tail atomic.Uint32 // head: next to consume; tail: next to fill
}

func (q *msgQueue) full() bool { return q.tail.Load()-q.head.Load() >= msgQueueLen }

// pop copies the oldest message into dst and reports its length, or -1.
func (q *msgQueue) pop(dst *[hv.MaxMessagePayload]byte) int {
	h := q.head.Load()
	if h == q.tail.Load() {
		return -1
	}
	e := &q.e[h%msgQueueLen]
	n := copy(dst[:], e.buf[:e.n])
	q.head.Store(h + 1)
	return n
}

// handler is installed on SINT 2 of the boot SynIC.
func (b *Bus) handler() {
	b.stats.interrupts.Add(1)
	b.scan()
}

// scan drains the message slot and the event flags. The handler and the
// poller both call it; the loser of the race leaves a note (again) that
// makes the winner scan once more, so nothing is missed and the handler
// never waits.
func (b *Bus) scan() {
	b.again.Store(true)
	for b.again.Load() {
		if !b.scanning.CompareAndSwap(false, true) {
			return
		}
		b.again.Store(false)
		b.scanMessages()
		b.scanEvents(b.synic)
		b.scanning.Store(false)
	}
}

// scanMessages implements the EOM rule of docs/hyperv-protocol.md §2.3.
func (b *Bus) scanMessages() {
	page := b.synic.MessagePage()
	woke := false
	for range msgQueueLen {
		if hv.LoadMessageType(page, hv.VMBusSINT) == hv.MessageTypeNone {
			break
		}
		if b.q.full() {
			b.stats.queueOverflows.Add(1)
			b.overflowed.Store(true)
			// Wake the message goroutine even if this scan queued nothing:
			// it may have drained the queue and gone to sleep since full()
			// looked, and only its rescan takes this message out of the slot.
			woke = true
			break
		}
		t := b.q.tail.Load()
		e := &b.q.e[t%msgQueueLen]
		typ, n, err := hv.CopyMessage(page, hv.VMBusSINT, &e.buf)
		switch {
		case err != nil:
			b.stats.badMessages.Add(1)
		case typ != hv.MessageTypeVMBus:
			b.stats.foreignMessages.Add(1)
		default:
			e.n = n
			b.q.tail.Store(t + 1)
			woke = true
		}
		if hv.ReleaseSlot(page, hv.VMBusSINT) {
			b.stats.eoms.Add(1)
			b.synic.EndOfMessage()
		}
	}
	if woke {
		wake(b.msgWake)
	}
}

// otherHandler is installed on SINT 2 of the other SynICs: channels whose
// TargetVP is another VP are signalled there (control messages always go
// to the boot VP, the target of INITIATE_CONTACT).
func (b *Bus) otherHandler(s hv.SynIC) func() {
	return func() {
		b.stats.interrupts.Add(1)
		b.scanEvents(s)
	}
}

// scanEvents takes SINT 2's event flags of s (docs/hyperv-protocol.md §2.2, §3.12) and
// kicks the dispatch goroutine of each signalled channel. Only atomic
// swaps and non-blocking channel sends touch shared state, so scans of
// several SynICs may run concurrently and never wait.
func (b *Bus) scanEvents(s hv.SynIC) {
	page := s.EventFlagsPage()
	any := false
	if v := chanmsg.Version(b.version.Load()); v != 0 && v < chanmsg.Version2_4 {
		// Before 2.4 the host sets bit 0 and the relid bits in the first
		// half of the interrupt page.
		if !hv.TestAndClearEventFlag(page, hv.VMBusSINT, 0) {
			return
		}
		for i := range relidWords {
			w := (*uint32)(unsafe.Pointer(&b.intPage.Mem[4*i]))
			if atomic.LoadUint32(w) == 0 {
				continue
			}
			any = b.kickWord(i, atomic.SwapUint32(w, 0)) || any
		}
	} else {
		for i := range relidWords {
			any = b.kickWord(i, hv.SwapEventFlagWord(page, hv.VMBusSINT, i)) || any
		}
	}
	if any {
		b.stats.events.Add(1)
	}
}

// kickWord kicks the channels of the relid bits of word i and reports
// whether any bit was set. Relid 0 is never a channel (§2.2).
func (b *Bus) kickWord(i int, word uint32) bool {
	if i == 0 {
		word &^= 1
	}
	found := word != 0
	for word != 0 {
		k := bits.TrailingZeros32(word)
		word &^= 1 << k
		if c := b.relids[32*i+k].Load(); c != nil {
			c.kick()
		}
	}
	return found
}

// relidWords is the number of 32-bit words of relid bits (2048 bits).
const relidWords = hv.EventFlagWords

// wake does a non-blocking send on a channel of capacity 1.
func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// setSendBit sets relid's bit in the guest→host half of the interrupt page
// (docs/hyperv-protocol.md §3.12).
func setSendBit(page []byte, relID uint32) {
	off := 2048 + int(relID/32)*4
	atomic.OrUint32((*uint32)(unsafe.Pointer(&page[off])), 1<<(relID%32))
}
