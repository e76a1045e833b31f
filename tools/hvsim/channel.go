package hvsim

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by Channel operations after the channel was closed
// by the guest, rescinded, or unloaded.
var ErrClosed = errors.New("hvsim: channel closed")

// ErrBufferTooSmall is returned by Recv when the next packet does not fit;
// the packet stays in the ring.
var ErrBufferTooSmall = errors.New("hvsim: receive buffer too small")

// OfferSpec is what the host offers for a device (docs/hyperv-protocol.md §3.6).
type OfferSpec struct {
	Class    GUID
	Instance GUID
	// Flags is the offer's channel flags (docs/hyperv-protocol.md §3.7).
	Flags   uint16
	MMIOMiB uint16
	// UserDefined is the 120-byte user-defined area (pipe offers: @0 u32
	// pipe mode).
	UserDefined [offerUserDefinedLen]byte
}

// Device is a device backend behind one offer (and its sub-channels).
//
// Open and Close are called (from the VMBus server goroutine, or from the
// caller of Rescind or Close) with the server's state locked: they must not
// block or call Host methods. Open
// typically starts a goroutine that serves the channel until ch.Done() is
// closed; a non-nil error fails the guest's OPENCHANNEL.
type Device interface {
	Offer() OfferSpec
	Open(ch *Channel) error
	Close(ch *Channel)
}

// ChannelStats are per-channel counters.
type ChannelStats struct {
	PacketsIn, BytesIn     uint64 // guest→host
	PacketsOut, BytesOut   uint64 // host→guest
	SignalsIn              uint64 // HvSignalEvent from the guest
	SignalsOut             uint64 // events raised to the guest
	SignalsSuppressed      uint64 // sends that needed no signal (§4.6)
	InterruptsDropped      uint64 // events raised with the interrupt lost (fault)
	RingFull               uint64 // sends that found the ring full
	PendingSendSizeSignals uint64 // signals for the guest's pending send size
}

type chanStats struct {
	packetsIn, bytesIn, packetsOut, bytesOut   atomic.Uint64
	signalsIn, signalsOut, suppressed, dropped atomic.Uint64
	ringFull, pssSignals                       atomic.Uint64
}

// Channel is the host end of an open VMBus channel.
type Channel struct {
	h        *Host
	relid    uint32
	subIndex uint16
	gpadl    uint32
	userData [120]byte

	in  *ring // guest→host
	out *ring // host→guest

	targetVP atomic.Uint32
	version  uint32
	intPage  []byte // < 2.4 only (docs/hyperv-protocol.md §3.12)

	inMu  sync.Mutex
	outMu sync.Mutex

	recvKick  chan struct{}
	spaceKick chan struct{}
	// spaceWaiters counts senders waiting on spaceKick for room (guarded
	// by outMu). Any other write to the ring clears the pending send size
	// they armed, so it kicks them to retry and re-arm it: without that
	// the guest never signals and they wait forever.
	spaceWaiters int
	done         chan struct{}
	closeOnce    sync.Once
	closed       atomic.Bool

	held     []byte // reorder fault: completion held back
	heldTxID uint64
	hasHeld  bool

	rescindAfter atomic.Int64 // fault: rescind after this many guest packets (0 = off)

	stats chanStats
}

// RelID is the channel's relid.
func (c *Channel) RelID() uint32 { return c.relid }

// SubChannelIndex is 0 for a primary channel.
func (c *Channel) SubChannelIndex() uint16 { return c.subIndex }

// UserData is the 120-byte user data of the guest's OPENCHANNEL.
func (c *Channel) UserData() [120]byte { return c.userData }

// Signaled delivers a value after the guest signalled the channel (its
// doorbell); one value may stand for several signals.
func (c *Channel) Signaled() <-chan struct{} { return c.recvKick }

// Done is closed when the channel closes for any reason.
func (c *Channel) Done() <-chan struct{} { return c.done }

// Stats returns the channel counters.
func (c *Channel) Stats() ChannelStats {
	s := &c.stats
	return ChannelStats{
		PacketsIn: s.packetsIn.Load(), BytesIn: s.bytesIn.Load(),
		PacketsOut: s.packetsOut.Load(), BytesOut: s.bytesOut.Load(),
		SignalsIn: s.signalsIn.Load(), SignalsOut: s.signalsOut.Load(),
		SignalsSuppressed: s.suppressed.Load(), InterruptsDropped: s.dropped.Load(),
		RingFull: s.ringFull.Load(), PendingSendSizeSignals: s.pssSignals.Load(),
	}
}

// guestSignaled is the guest's HvSignalEvent for this channel.
func (c *Channel) guestSignaled() {
	c.stats.signalsIn.Add(1)
	select {
	case c.recvKick <- struct{}{}:
	default:
	}
	select {
	case c.spaceKick <- struct{}{}:
	default:
	}
}

// signalGuest raises the channel's interrupt in the guest (docs/hyperv-protocol.md §2.2,
// §3.12).
func (c *Channel) signalGuest() {
	vp := c.targetVP.Load()
	if vp == 0xFFFFFFFF || int(vp) >= len(c.h.synics) {
		c.stats.suppressed.Add(1)
		return
	}
	interrupt := !c.h.faults.takeDropInterrupt()
	if !interrupt {
		c.stats.dropped.Add(1)
	}
	c.stats.signalsOut.Add(1)
	s := c.h.synics[vp]
	if c.version < Version2_4 {
		// Interrupt-page era: relid bit in the page's first half, then
		// flag 0 of SINT2.
		if c.intPage != nil {
			or64(c.intPage, int(c.relid/64)*8, 1<<(c.relid%64))
		}
		s.raiseEvent(0, interrupt)
		return
	}
	s.raiseEvent(c.relid, interrupt)
}

// Recv takes the next guest→host packet into buf without waiting. It returns
// ok == false when the ring is empty. A malformed ring is a recorded
// violation and closes the channel.
func (c *Channel) Recv(buf []byte) (p Packet, ok bool, err error) {
	c.inMu.Lock()
	if c.closed.Load() {
		c.inMu.Unlock()
		return p, false, ErrClosed
	}
	p, n, crossed, err := c.in.recv(buf)
	c.inMu.Unlock()
	if err != nil {
		err = fmt.Errorf("relid %d: %w", c.relid, err)
		c.h.violate(err)
		c.h.srv.hostClose(c)
		return Packet{}, false, err
	}
	if n == 0 {
		return p, false, nil
	}
	if n > len(buf) {
		return p, false, fmt.Errorf("%w: packet of %d bytes", ErrBufferTooSmall, n)
	}
	c.stats.packetsIn.Add(1)
	c.stats.bytesIn.Add(uint64(n))
	if crossed {
		c.stats.pssSignals.Add(1)
		c.signalGuest()
	}
	if left := c.rescindAfter.Load(); left > 0 {
		if c.rescindAfter.Add(-1) == 0 {
			go c.h.Rescind(c.relid) //nolint:errcheck // fault injection: best effort
		}
	}
	return p, true, nil
}

// MaskSignals sets the interrupt mask of the guest→host ring
// (docs/hyperv-protocol.md §4.2, §4.6): while it is set the guest does not
// signal the packets it writes, for a device that drains the ring by
// polling. End the polling with UnmaskSignals. No-op on a closed channel.
func (c *Channel) MaskSignals() {
	c.inMu.Lock()
	if !c.closed.Load() {
		store32(c.in.hdr, ringOffIntMask, 1)
	}
	c.inMu.Unlock()
}

// UnmaskSignals clears the interrupt mask of the guest→host ring and then
// reports whether packets are pending: one the guest wrote while the mask
// was set was not signalled, so on true the device must drain again (and
// may mask again) instead of waiting on Signaled for a signal that never
// comes (docs/hyperv-protocol.md §4.6). The clear and the look at the
// write index are sequentially consistent, as the guest's publish of its
// write index and its look at the mask are: either the guest sees the
// clear and signals, or this sees the packet. True on a closed channel, so
// that the next Recv reports ErrClosed.
func (c *Channel) UnmaskSignals() bool {
	c.inMu.Lock()
	defer c.inMu.Unlock()
	if c.closed.Load() {
		return true
	}
	store32(c.in.hdr, ringOffIntMask, 0)
	return load32(c.in.hdr, ringOffWrite) != c.in.idx
}

// Send writes one packet (no type-specific header) into the host→guest
// ring, waiting for room until ctx ends.
func (c *Channel) Send(ctx context.Context, typ, flags uint16, txid uint64, payload []byte) error {
	return c.SendRaw(ctx, typ, flags, txid, nil, payload)
}

// SendRaw is Send with a type-specific header (len(header) a multiple of 8).
func (c *Channel) SendRaw(ctx context.Context, typ, flags uint16, txid uint64, header, payload []byte) error {
	if typ == pktCompletion {
		if d := c.h.faults.completionDelay(); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-c.done:
				t.Stop()
				return ErrClosed
			}
		}
		if c.h.faults.reorders(c.relid) && header == nil {
			c.outMu.Lock()
			if !c.hasHeld {
				c.held = append(c.held[:0], payload...)
				c.heldTxID, c.hasHeld = txid, true
				c.outMu.Unlock()
				return nil
			}
			c.outMu.Unlock()
			if err := c.send(ctx, typ, flags, txid, nil, payload); err != nil {
				return err
			}
			c.outMu.Lock()
			held, id := c.held, c.heldTxID
			c.hasHeld = false
			c.outMu.Unlock()
			return c.send(ctx, typ, flags, id, nil, held)
		}
	}
	return c.send(ctx, typ, flags, txid, header, payload)
}

func (c *Channel) send(ctx context.Context, typ, flags uint16, txid uint64, header, payload []byte) error {
	for {
		err := c.write(typ, flags, txid, header, payload, true)
		if !errors.Is(err, errRingFull) {
			return err
		}
		c.stats.ringFull.Add(1)
		var werr error
		select {
		case <-c.spaceKick:
		case <-ctx.Done():
			werr = ctx.Err()
		case <-c.done:
			werr = ErrClosed
		}
		c.outMu.Lock()
		c.spaceWaiters--
		c.outMu.Unlock()
		if werr != nil {
			return werr
		}
	}
}

// ErrRingFull is TrySendRaw's answer when the packet does not fit the
// host→guest ring now. The guest has been asked, by the pending send size,
// to signal once it has room (docs/hyperv-protocol.md §4.6).
var ErrRingFull = errRingFull

// TrySendRaw is SendRaw without waiting: it returns ErrRingFull when the
// packet does not fit now. It applies none of the completion faults
// (delays, reordering): it is for data packets.
func (c *Channel) TrySendRaw(typ, flags uint16, txid uint64, header, payload []byte) error {
	err := c.write(typ, flags, txid, header, payload, false)
	if errors.Is(err, errRingFull) {
		c.stats.ringFull.Add(1)
	}
	return err
}

// write makes one attempt to write a packet into the host→guest ring and
// signals the guest as §4.6 asks. A sender that will wait for room (wait)
// is counted in spaceWaiters, under the same lock as the failed attempt;
// it must uncount itself when it stops waiting.
func (c *Channel) write(typ, flags uint16, txid uint64, header, payload []byte, wait bool) error {
	c.outMu.Lock()
	if c.closed.Load() {
		c.outMu.Unlock()
		return ErrClosed
	}
	signal, err := c.out.send(typ, flags, txid, header, payload)
	full := errors.Is(err, errRingFull)
	if full && wait {
		c.spaceWaiters++
	} else if !full {
		c.kickSpaceWaitersLocked()
	}
	c.outMu.Unlock()
	switch {
	case err == nil:
		n := uint64(descSize + len(header) + len(payload))
		c.stats.packetsOut.Add(1)
		c.stats.bytesOut.Add((n + 7) &^ 7)
		if signal {
			c.signalGuest()
		} else {
			c.stats.suppressed.Add(1)
		}
		return nil
	case full:
		return errRingFull
	case errors.Is(err, ErrRing):
		err = fmt.Errorf("relid %d: %w", c.relid, err)
		c.h.violate(err)
		c.h.srv.hostClose(c)
		return err
	default:
		return err
	}
}

// FillGuestRing writes empty in-band packets until the host→guest ring is
// full (fault injection) and returns how many it wrote.
func (c *Channel) FillGuestRing() int {
	n := 0
	for {
		c.outMu.Lock()
		if c.closed.Load() {
			c.outMu.Unlock()
			return n
		}
		_, err := c.out.send(pktDataInband, 0, 0, nil, nil)
		if err != nil {
			store32(c.out.hdr, ringOffPending, 0) // the filler waits for no room
		}
		c.kickSpaceWaitersLocked()
		c.outMu.Unlock()
		if err != nil {
			if n > 0 {
				c.signalGuest()
			}
			return n
		}
		n++
	}
}

// kickSpaceWaitersLocked wakes a sender waiting for room after another
// write has cleared the pending send size it armed (outMu held).
func (c *Channel) kickSpaceWaitersLocked() {
	if c.spaceWaiters == 0 {
		return
	}
	select {
	case c.spaceKick <- struct{}{}:
	default:
	}
}

// shutdown marks the channel closed and wakes its waiters.
func (c *Channel) shutdown() bool {
	first := false
	c.closeOnce.Do(func() {
		c.inMu.Lock()
		c.outMu.Lock()
		c.closed.Store(true)
		c.outMu.Unlock()
		c.inMu.Unlock()
		close(c.done)
		first = true
	})
	return first
}
