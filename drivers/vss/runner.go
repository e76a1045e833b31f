package vss

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gohv/gohv/drivers/ic"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/ring"
)

// runner serves one VSS channel. It does what ic.Service does (framing,
// negotiation, answering in place on the dispatch goroutine) and one thing
// ic.Service cannot: a message may be answered later, from the driver's
// worker goroutine, after the guest froze or thawed its writes. VSS is the
// only IC whose answer waits for guest work (Linux drivers/hv/hv_snapshot.c
// answers FREEZE and THAW only after its daemon did).
type runner struct {
	d  *Driver
	ch ic.Channel

	// Touched only on the dispatch goroutine.
	buf   []byte
	parts [1][]byte

	messages, bad, dropped, negotiations atomic.Uint64
	versions                             atomic.Uint64 // framework<<32 | message, as major<<16|minor
	negotiated                           atomic.Bool

	// qmu guards queue and free; taken on the dispatch goroutine, never
	// held while waiting. The worker waits on wake.
	qmu   sync.Mutex
	queue [2]*slot // waiting deferred messages, oldest first
	free  [3]*slot
	wake  chan struct{}

	// ctx ends when the runner closes or its channel is rescinded: it
	// bounds the worker's freeze.
	ctx    context.Context
	cancel context.CancelFunc
	closed chan struct{}
	done   chan struct{} // closed when the worker exited
}

func newRunner(d *Driver, ch ic.Channel) *runner {
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{d: d, ch: ch, buf: make([]byte, ic.DefaultRingSize-4096), wake: make(chan struct{}, 1),
		ctx: ctx, cancel: cancel, closed: make(chan struct{}), done: make(chan struct{})}
	for i := range r.free {
		r.free[i] = &slot{msg: make([]byte, len(r.buf))}
	}
	return r
}

// slot holds one deferred message until the worker answers it. The host
// keeps one transaction outstanding, but one that gave up on a FREEZE
// sends THAW while the freeze still runs: three slots cover the message
// being answered and two waiting.
type slot struct {
	msg  []byte
	n    int
	txid uint64
	op   Operation
}

// enqueue copies msg into a free slot for the worker; false if none is
// free or two messages already wait. Dispatch goroutine; no allocation.
func (r *runner) enqueue(msg []byte, txid uint64, op Operation) bool {
	r.qmu.Lock()
	defer r.qmu.Unlock()
	i := 0
	for i < len(r.queue) && r.queue[i] != nil {
		i++
	}
	if i == len(r.queue) {
		return false
	}
	var s *slot
	for j, f := range r.free {
		if f != nil {
			s, r.free[j] = f, nil
			break
		}
	}
	if s == nil {
		return false
	}
	s.n = copy(s.msg, msg)
	s.txid, s.op = txid, op
	r.queue[i] = s
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return true
}

// next takes the oldest waiting message, or nil.
func (r *runner) next() *slot {
	r.qmu.Lock()
	defer r.qmu.Unlock()
	s := r.queue[0]
	if s != nil {
		copy(r.queue[:], r.queue[1:])
		r.queue[len(r.queue)-1] = nil
	}
	return s
}

// release returns an answered slot.
func (r *runner) release(s *slot) {
	r.qmu.Lock()
	defer r.qmu.Unlock()
	for i, f := range r.free {
		if f == nil {
			r.free[i] = s
			return
		}
	}
}

// sender is the blocking send of *vmbus.Channel, used for deferred replies
// when the channel has it.
type sender interface {
	Send(ctx context.Context, typ ring.PacketType, flags uint16, txid uint64, parts ...[]byte) error
}

var _ sender = (*vmbus.Channel)(nil)

// sendTimeout bounds a deferred reply's wait for ring space.
const sendTimeout = 5 * time.Second

func packVersion(v ic.Version) uint64   { return uint64(v.Major)<<16 | uint64(v.Minor) }
func unpackVersion(x uint64) ic.Version { return ic.Version{Major: uint16(x >> 16), Minor: uint16(x)} }

func (r *runner) stats() ic.Stats {
	v := r.versions.Load()
	return ic.Stats{
		Messages: r.messages.Load(), BadMessages: r.bad.Load(), Dropped: r.dropped.Load(),
		Negotiations: r.negotiations.Load(),
		Framework:    unpackVersion(v >> 32), Message: unpackVersion(v & 0xffffffff),
		Negotiated: r.negotiated.Load(),
	}
}

func (r *runner) start(ctx context.Context) error {
	err := r.ch.Open(ctx, vmbus.OpenConfig{SendRingSize: ic.DefaultRingSize, RecvRingSize: ic.DefaultRingSize, OnInterrupt: r.onInterrupt})
	if err != nil {
		return fmt.Errorf("vss: open channel: %w", err)
	}
	go r.d.work(r)
	return nil
}

// onInterrupt drains the receive ring on the dispatch goroutine.
func (r *runner) onInterrupt() {
	for {
		pkt, err := r.ch.ReadPacket(r.buf)
		if errors.Is(err, vmbus.ErrEmpty) || errors.Is(err, vmbus.ErrClosed) || errors.Is(err, vmbus.ErrRescinded) {
			return // drained, or the channel went away under this run
		}
		if err != nil {
			r.bad.Add(1)
			return
		}
		if pkt.Type != ring.TypeDataInband {
			r.bad.Add(1)
			continue
		}
		if !r.process(pkt.Payload, pkt.TransactionID) {
			continue
		}
		r.parts[0] = pkt.Payload
		// docs/hyperv-protocol.md §8.1: in-band, flags 0, the host's
		// transaction id.
		if err := r.ch.TrySend(ring.TypeDataInband, 0, pkt.TransactionID, r.parts[:]...); err != nil {
			r.dropped.Add(1)
		}
		r.parts[0] = nil
	}
}

// process handles one message and reports whether msg now holds a reply to
// send at once (false: dropped, or deferred to the worker).
func (r *runner) process(msg []byte, txid uint64) bool {
	if len(msg) < ic.HeaderSize {
		r.bad.Add(1)
		return false
	}
	h, _ := ic.ParseHeader(msg)
	if h.Flags&ic.FlagResponse != 0 {
		r.bad.Add(1)
		return false
	}
	switch {
	case h.Type == ic.TypeNegotiate:
		fw, mv, err := ic.Negotiate(msg, ic.FrameworkVersions, Versions)
		switch {
		case err == nil:
			r.versions.Store(packVersion(fw)<<32 | packVersion(mv))
			r.negotiated.Store(true)
			r.negotiations.Add(1)
		case errors.Is(err, ic.ErrNoCommonVersion):
			r.negotiated.Store(false)
		default:
			r.bad.Add(1)
			ic.SetResponse(msg, ic.StatusInvalidArg)
			return true
		}
		r.messages.Add(1)
		ic.SetResponse(msg, ic.StatusOK)
		return true
	case h.Type != ic.TypeVSS || !r.negotiated.Load():
		r.bad.Add(1)
		ic.SetResponse(msg, ic.StatusNotSupported)
		return true
	}
	r.messages.Add(1)
	status, deferred := r.d.handle(r, msg, txid, unpackVersion(r.versions.Load()&0xffffffff))
	if deferred {
		return false
	}
	ic.SetResponse(msg, status)
	return true
}

// reply sends a deferred reply from the worker goroutine.
func (r *runner) reply(msg []byte, txid uint64, status ic.Status) {
	ic.SetResponse(msg, status)
	var err error
	if s, ok := r.ch.(sender); ok {
		ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
		err = s.Send(ctx, ring.TypeDataInband, 0, txid, msg)
		cancel()
	} else {
		err = r.ch.TrySend(ring.TypeDataInband, 0, txid, msg)
	}
	if err != nil {
		r.dropped.Add(1)
	}
}

func (r *runner) close(ctx context.Context) error {
	select {
	case <-r.closed:
		return nil
	default:
		close(r.closed)
	}
	r.cancel()
	r.negotiated.Store(false)
	<-r.done
	if err := r.ch.Close(ctx); err != nil {
		return fmt.Errorf("vss: close channel: %w", err)
	}
	return nil
}
