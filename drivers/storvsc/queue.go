package storvsc

import (
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gohv/gohv/drivers/scsi"
	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/hv/dma"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/ring"
)

// A queue is one channel (the primary or a sub-channel) and its request
// slots. Every EXECUTE_SRB in flight on the channel occupies one slot; the
// slot count is the queue depth, fixed at set-up from Config.QueueDepth and
// what the send ring can hold. Slots, their packet and header buffers,
// bounce buffers and timers are allocated once, so an I/O allocates
// nothing.
//
// Request timeouts are coarse: one timer per queue, running only while a
// request is at the host, ticks every 1/timeoutTicks of the shorter of
// Config.Timeout and ResetTimeout; a request times out at the first tick
// at least Timeout after it was sent, so at most one tick late. A send or
// a completion costs no timer operation.
//
// Transaction ids: a slot's txid is gen<<32 | index, with gen in
// [1, 2^31) bumped on every send, so a late completion for an earlier send
// of the same slot is recognised and dropped. Control operations (init,
// sub-channels, resets) use ids with bit 63 set; the host uses 0 for
// unsolicited packets (§6.5).
//
// Slot states (all transitions under q.mu, and whoever makes a transition
// out of a state owns the slot's fields until its next transition):
//
//	free      on the free list
//	active    a goroutine is preparing, sending or completing it
//	atHost    sent; waiting for the completion (or the timeout scan)
//	waitRetry parked on the retry timer (back-off)
//	abandoned failed by timeout; the host may still complete it, and only
//	          then is the slot (and its bounce buffer) reused
//	dead      the channel is gone; never reused
//
// Lock order: Controller.mu before queue.mu; queue.mu is never held while
// sending, calling Done or waiting.
type queue struct {
	c    *Controller
	idx  int
	ch   Channel
	pool *dma.Pool // the slots' bounce buffers, each slot holding one for good

	rbuf []byte // receive buffer: interrupt goroutine only

	mu    sync.Mutex
	free  []int32 // guarded by mu
	slots []slot
	pend  []work // FIFO ring of work waiting for a slot; guarded by mu
	phead int
	plen  int
	dead  bool // channel rescinded or closed; guarded by mu
	// abandoned counts slots in slotAbandoned; guarded by mu. When it
	// reaches len(slots) no slot can free up until the host answers, so
	// waiting work fails with ErrTimeout instead of waiting unbounded.
	abandoned int
	// atHost counts slots in slotAtHost (changed under mu, read without
	// it): while it is non-zero the interrupt goroutine polls.
	atHost atomic.Int32
	// The timeout scan: scanTimer runs scanTimeouts every tickLen while
	// scanning is true, which holds while a slot is at the host. tick
	// counts the scans (guarded by mu); a request sent now is due
	// dueTimeout ticks later, one reset dueReset ticks later (fixed by
	// initSlots).
	scanTimer            *time.Timer
	scanning             bool
	tick                 uint64
	tickLen              time.Duration
	dueTimeout, dueReset uint64

	ctlMu   sync.Mutex // serialises control operations
	ctlSeq  uint64     // guarded by ctlMu
	ctlWait atomic.Uint64
	ctlDone chan ctlMsg

	resetMu  sync.Mutex // guards resetBuf and resetSeq
	resetBuf [packetSizeWin8]byte
	resetSeq uint64

	stats queueCounters
}

type queueCounters struct {
	submitted, completed, errors, retries, timeouts, resets, protocolErrors, unsolicited, bounced, direct atomic.Uint64
}

const (
	ctlBit       = 1 << 63
	resetTxidBit = 1 << 62 // reset completions are not waited for
	maxGen       = 1 << 31
)

// ctlMsg carries a control completion to the waiting goroutine.
type ctlMsg struct {
	txid uint64
	cmp  completion
}

type slotState uint8

const (
	slotFree slotState = iota
	slotActive
	slotAtHost
	slotWaitRetry
	slotAbandoned
	slotDead
)

// work is what a slot carries: a block request for a disk, or a raw SCSI
// command (scanning).
type work struct {
	d *Disk
	r *Request
	s *scsiCmd
}

func (w work) addr() addr {
	if w.s != nil {
		return w.s.addr
	}
	return w.d.addr
}

// scsiCmd is a raw SCSI command with a data buffer of at most the bounce
// size, executed synchronously by Controller.exec.
type scsiCmd struct {
	addr addr
	cdb  scsi.CDB
	buf  []byte
	dir  uint8
	done chan struct{}

	srbStatus  uint8
	scsiStatus scsi.Status
	n          int
	err        error
}

type slot struct {
	q     *queue
	idx   uint32
	gen   uint32    // guarded by q.mu
	state slotState // guarded by q.mu
	due   uint64    // tick at which the request at the host times out; guarded by q.mu
	esc   int       // timeout escalation: 0, 1 after RESET_LUN, 2 after RESET_BUS; guarded by q.mu

	// Owned by the goroutine that moved the slot out of its last state.
	w       work
	done    int64 // bytes (or for discard, blocks) finished before this segment
	seg     int   // bytes (blocks for discard) in the current segment
	dir     uint8
	bounced bool
	retries int
	req     srbRequest
	cdb     scsi.CDB
	pkt     [packetSizeWin8]byte
	hdr     []byte
	parts   [1][]byte // the payload part passed to the channel without a per-call slice
	bounce  *dma.Buffer

	retry *time.Timer // back-off
}

func newQueue(c *Controller, idx int, ch Channel) *queue {
	return &queue{c: c, idx: idx, ch: ch, rbuf: make([]byte, 4096), ctlDone: make(chan ctlMsg, 1)}
}

// initSlots gives q depth slots, each with a bounce buffer from pool and a
// header buffer for maxPFN pages. It runs before the queue carries I/O.
func (q *queue) initSlots(depth int, pool *dma.Pool, maxPFN int) {
	q.pool = pool
	q.slots = make([]slot, depth)
	q.free = make([]int32, 0, depth)
	q.pend = make([]work, 2*depth)
	cfg := &q.c.cfg
	q.tickLen = max(min(cfg.Timeout, cfg.ResetTimeout)/timeoutTicks, time.Millisecond)
	q.dueTimeout, q.dueReset = q.ticksFor(cfg.Timeout), q.ticksFor(cfg.ResetTimeout)
	q.scanTimer = time.AfterFunc(time.Hour, q.scanTimeouts)
	q.scanTimer.Stop()
	hs := gpaHeaderSize(maxPFN)
	hdrs := make([]byte, depth*hs)
	for i := range q.slots {
		s := &q.slots[i]
		s.q, s.idx, s.gen = q, uint32(i), 1
		s.hdr = hdrs[i*hs : (i+1)*hs]
		s.bounce, _ = pool.TryGet()
		s.retry = time.AfterFunc(time.Hour, s.onRetry)
		s.retry.Stop()
		q.free = append(q.free, int32(depth-1-i))
	}
}

// releaseBounce gives the slots' bounce buffers back to the pool, at
// Close, once the channel is closed and the host no longer uses them.
func (q *queue) releaseBounce() {
	for i := range q.slots {
		if s := &q.slots[i]; s.bounce != nil {
			q.pool.Put(s.bounce)
			s.bounce = nil
		}
	}
}

// submit starts w on a free slot or queues it. It fails only when the
// channel is gone.
func (q *queue) submit(w work) error {
	q.mu.Lock()
	if q.dead {
		q.mu.Unlock()
		return ErrRemoved
	}
	if len(q.free) == 0 && q.abandoned == len(q.slots) {
		q.mu.Unlock()
		return ErrTimeout // every slot waits for a host that stopped answering
	}
	q.stats.submitted.Add(1)
	if len(q.free) == 0 {
		if q.plen == len(q.pend) { // grow: rare, only beyond 2× depth waiting
			n := make([]work, 2*len(q.pend))
			for i := range q.plen {
				n[i] = q.pend[(q.phead+i)%len(q.pend)]
			}
			q.pend, q.phead = n, 0
		}
		q.pend[(q.phead+q.plen)%len(q.pend)] = w
		q.plen++
		q.mu.Unlock()
		return nil
	}
	s := &q.slots[q.free[len(q.free)-1]]
	q.free = q.free[:len(q.free)-1]
	s.state = slotActive
	q.mu.Unlock()
	s.begin(w)
	return nil
}

// begin starts a new piece of work on an active slot.
func (s *slot) begin(w work) {
	s.w, s.done, s.retries = w, 0, 0
	s.send()
}

// release frees an active slot and, if work is waiting, takes the next
// one. It returns the slot to run next, if any.
func (s *slot) release() (*slot, work) {
	q := s.q
	q.mu.Lock()
	defer q.mu.Unlock()
	s.w = work{}
	if q.dead {
		s.state = slotDead
		return nil, work{}
	}
	if q.plen > 0 {
		w := q.pend[q.phead]
		q.pend[q.phead] = work{}
		q.phead = (q.phead + 1) % len(q.pend)
		q.plen--
		return s, w
	}
	s.state = slotFree
	q.free = append(q.free, int32(s.idx))
	return nil, work{}
}

// finish completes the slot's work with err and frees the slot; then runs
// waiting work on it. Called by the slot's owner.
func (s *slot) finish(err error) {
	w, done := s.w, s.done // the slot is not ours after release
	q := s.q
	if err != nil {
		q.stats.errors.Add(1)
	}
	q.stats.completed.Add(1)
	next, nw := s.release()
	deliver(w, done, err)
	if next != nil {
		next.begin(nw)
	}
}

// deliver reports the end of w to its owner.
func deliver(w work, done int64, err error) {
	switch {
	case w.r != nil:
		r := w.r
		if r.Op == OpRead || r.Op == OpWrite {
			r.N = int(done)
		}
		if err != nil {
			r.Err = &IOError{Op: r.Op, Off: r.Off, Err: err}
		}
		if r.Done != nil {
			r.Done(r)
		}
	case w.s != nil:
		w.s.err = err
		w.s.done <- struct{}{}
	}
}

func (s *slot) txid() uint64 { return uint64(s.gen)<<32 | uint64(s.idx) }

// prepare builds the next segment's packet and GPA header. It returns the
// header (nil when no data moves) and the packet.
func (s *slot) prepare() (hdr, pkt []byte, err error) {
	c := s.q.c
	w := s.w
	s.bounced = false
	var data []byte // the segment's data in the caller's memory
	switch {
	case w.s != nil:
		s.cdb, s.dir, data = w.s.cdb, w.s.dir, w.s.buf
		if len(data) > len(s.bounce.Bytes()) {
			return nil, nil, errBufferTooLarge
		}
		s.seg = len(data)
	default:
		d, r := w.d, w.r
		info := d.Info()
		ss := int64(info.SectorSize)
		switch r.Op {
		case OpRead, OpWrite:
			rest := int64(len(r.Buf)) - s.done
			n := min(rest, int64(c.maxTransfer))
			data = r.Buf[s.done : s.done+n]
			if _, ok := c.physAddr(data); !ok {
				n = min(n, int64(len(s.bounce.Bytes())))
			}
			n -= n % ss
			if n == 0 {
				return nil, nil, errBufferTooLarge // sector larger than a transfer: refused at probe
			}
			data = data[:n]
			s.seg = int(n)
			s.cdb = scsi.ReadWrite(r.Op == OpWrite, uint64((r.Off+s.done)/ss), uint32(n/ss))
			s.dir = dataIn
			if r.Op == OpWrite {
				s.dir = dataOut
			}
		case OpFlush:
			s.cdb, s.dir, s.seg = scsi.SynchronizeCache10(0, 0), dataNone, 0
		case OpDiscard:
			lba := uint64(r.Off/ss) + uint64(s.done)
			rest := r.Len/ss - s.done
			n := min(rest, int64(d.maxDiscard))
			s.seg = int(n)
			buf := s.bounce.Bytes()
			if d.discard == discardUnmap {
				l := scsi.UnmapParams(buf, lba, uint32(n))
				s.cdb, s.dir = scsi.Unmap(uint16(l)), dataOut
				data = buf[:l]
			} else {
				clear(buf[:ss])
				s.cdb, s.dir = scsi.WriteSame16(lba, uint32(n), true), dataOut
				data = buf[:ss]
			}
			s.bounced = true // data already in the bounce buffer
		}
	}
	a := w.addr()
	s.req = srbRequest{addr: a, cdb: s.cdb.Bytes(), dataIn: s.dir, timeout: uint32(c.cfg.Timeout / time.Second)}
	if s.dir == dataNone || len(data) == 0 {
		s.req.dataIn = dataNone
		return nil, encodeSRB(s.pkt[:], c.version, &s.req), nil
	}
	s.req.dataLen = uint32(len(data))
	if s.bounced {
		hdr = encodeGPAHeader(s.hdr, uint32(len(data)), 0, s.bounce.PFN(0), pageCount(0, len(data)))
	} else if pa, ok := c.physAddr(data); ok {
		off := int(pa & (hv.PageSize - 1))
		hdr = encodeGPAHeader(s.hdr, uint32(len(data)), uint32(off), pa>>hv.PageShift, pageCount(off, len(data)))
		s.q.stats.direct.Add(1)
	} else {
		s.bounced = true
		s.q.stats.bounced.Add(1)
		if s.dir == dataOut {
			copy(s.bounce.Bytes(), data)
		}
		hdr = encodeGPAHeader(s.hdr, uint32(len(data)), 0, s.bounce.PFN(0), pageCount(0, len(data)))
	}
	return hdr, encodeSRB(s.pkt[:], c.version, &s.req), nil
}

func pageCount(off, n int) int { return (off + n + hv.PageSize - 1) / hv.PageSize }

var errBufferTooLarge = errors.New("storvsc: command buffer larger than a bounce buffer")

// send sends the slot's current segment. The caller owns the slot
// (active).
func (s *slot) send() {
	q := s.q
	hdr, pkt, err := s.prepare()
	if err != nil {
		s.finish(err)
		return
	}
	q.mu.Lock()
	if q.dead {
		q.mu.Unlock()
		s.finish(ErrRemoved)
		return
	}
	s.gen++
	if s.gen >= maxGen {
		s.gen = 1
	}
	s.esc = 0
	txid := s.txid()
	s.state = slotAtHost
	q.atHost.Add(1)
	s.due = q.dueIn(q.dueTimeout)
	q.mu.Unlock()

	s.parts[0] = pkt
	if hdr != nil {
		err = q.ch.TrySendWithHeader(ring.TypeDataGPADirect, ring.FlagCompletionRequested, txid, hdr, s.parts[:]...)
	} else {
		err = q.ch.TrySend(ring.TypeDataInband, ring.FlagCompletionRequested, txid, s.parts[:]...)
	}
	if err == nil {
		return
	}
	// Take the slot back unless a rescind already failed it.
	q.mu.Lock()
	if s.state != slotAtHost || s.gen != uint32(txid>>32) {
		q.mu.Unlock()
		return
	}
	s.gen++
	q.atHost.Add(-1)
	if errors.Is(err, vmbus.ErrRingFull) {
		s.state = slotWaitRetry
		s.retry.Reset(time.Millisecond)
		q.mu.Unlock()
		return
	}
	s.state = slotActive
	q.mu.Unlock()
	if errors.Is(err, vmbus.ErrRescinded) || errors.Is(err, vmbus.ErrClosed) {
		err = ErrRemoved
	}
	s.finish(err)
}

// onRetry runs on a timer goroutine after a back-off.
func (s *slot) onRetry() {
	q := s.q
	q.mu.Lock()
	if s.state != slotWaitRetry {
		q.mu.Unlock()
		return
	}
	s.state = slotActive
	q.mu.Unlock()
	s.send()
}

// timeoutTicks is the number of scan ticks in the shorter of
// Config.Timeout and Config.ResetTimeout.
const timeoutTicks = 4

// ticksFor is the number of ticks after the current one at which a
// request sent now has waited at least d: ticks are at least tickLen
// apart and the current one may end at once.
func (q *queue) ticksFor(d time.Duration) uint64 {
	return uint64((d+q.tickLen-1)/q.tickLen) + 1
}

// dueIn starts the timeout scan if it is not running and returns the tick
// ticks from now. q.mu held.
func (q *queue) dueIn(ticks uint64) uint64 {
	if !q.scanning {
		q.scanTimer.Reset(q.tickLen)
		q.scanning = true
	}
	return q.tick + ticks
}

// scanTimeouts runs on a timer goroutine every tick while requests are at
// the host, and times out those whose tick has come (timeout).
func (q *queue) scanTimeouts() {
	q.mu.Lock()
	if !q.scanning {
		q.mu.Unlock()
		return
	}
	q.tick++
	now := q.tick
	q.mu.Unlock()
	for i := range q.slots {
		q.slots[i].timeout(now)
	}
	q.mu.Lock()
	if q.atHost.Load() > 0 && !q.dead {
		q.scanTimer.Reset(q.tickLen)
	} else {
		q.scanning = false
	}
	q.mu.Unlock()
}

// timeout handles tick now for the slot: if its request has been at the
// host past its due tick, first RESET_LUN, then RESET_BUS, each given
// Config.ResetTimeout; then the request fails with ErrTimeout and the slot
// is abandoned until the host completes it. When that leaves every slot
// abandoned, the work waiting for a slot fails with ErrTimeout too (and
// submit refuses new work) until the host completes one of them.
func (s *slot) timeout(now uint64) {
	q := s.q
	q.mu.Lock()
	if s.state != slotAtHost || now < s.due {
		q.mu.Unlock()
		return
	}
	q.stats.timeouts.Add(1)
	s.esc++
	if s.esc <= 2 {
		s.due = q.dueIn(q.dueReset)
		a := s.w.addr()
		esc := s.esc
		q.mu.Unlock()
		op := OpResetLUN
		if esc == 2 {
			op = OpResetBus
		}
		q.sendReset(op, a)
		return
	}
	w, done := s.w, s.done
	s.w = work{}
	s.state = slotAbandoned
	q.atHost.Add(-1)
	q.abandoned++
	var stuck []work
	if q.abandoned == len(q.slots) {
		stuck = q.takePending()
	}
	q.mu.Unlock()
	q.stats.errors.Add(1)
	q.stats.completed.Add(1)
	deliver(w, done, ErrTimeout)
	for _, w := range stuck {
		q.stats.errors.Add(1)
		q.stats.completed.Add(1)
		deliver(w, 0, ErrTimeout)
	}
}

// takePending empties the FIFO of work waiting for a slot and returns it.
// q.mu held.
func (q *queue) takePending() []work {
	var ws []work
	for q.plen > 0 {
		ws = append(ws, q.pend[q.phead])
		q.pend[q.phead] = work{}
		q.phead = (q.phead + 1) % len(q.pend)
		q.plen--
	}
	return ws
}

// sendReset sends RESET_LUN or RESET_BUS without waiting: the host answers
// by completing (aborting) the outstanding requests, which the normal
// completion path retries.
func (q *queue) sendReset(op Operation, a addr) {
	q.stats.resets.Add(1)
	q.resetMu.Lock()
	q.resetSeq++
	pkt := encodeReset(q.resetBuf[:], q.c.version, op, a)
	_ = q.ch.TrySend(ring.TypeDataInband, ring.FlagCompletionRequested, ctlBit|resetTxidBit|q.resetSeq, pkt)
	q.resetMu.Unlock()
}

// interrupt drains the channel; it is the channel's OnInterrupt and runs
// on the channel's dispatch goroutine. While requests are at the host it
// keeps polling for Config.PollTime after the last packet, with the
// channel's interrupt masked, yielding the processor between looks; it
// returns with the interrupt unmasked and the ring found empty after
// unmasking (docs/hyperv-protocol.md §4.6), so the next completion
// interrupts again.
func (q *queue) interrupt() {
	masked := false
	var idle time.Time // when the ring was found empty, while polling
	for {
		p, err := q.ch.ReadPacket(q.rbuf)
		if err == nil {
			idle = time.Time{}
			q.handle(p)
			continue
		}
		if !errors.Is(err, vmbus.ErrEmpty) {
			var small *ring.BufferTooSmallError
			if errors.As(err, &small) && small.Need <= q.c.cfg.RingSize {
				q.rbuf = make([]byte, small.Need)
				continue
			}
			if masked {
				q.ch.UnmaskInterrupt()
			}
			return // ring closed or corrupt: the rescind/close path cleans up
		}
		if q.c.cfg.PollTime > 0 && q.atHost.Load() > 0 {
			if !masked {
				q.ch.MaskInterrupt()
				masked = true
			}
			if idle.IsZero() {
				idle = time.Now()
			}
			if time.Since(idle) < q.c.cfg.PollTime {
				runtime.Gosched() // the host, or a submitter, may be waiting for this P
				continue
			}
		}
		if !masked {
			return
		}
		masked, idle = false, time.Time{}
		if !q.ch.UnmaskInterrupt() {
			return
		}
		// A completion came in before the mask was clear: take it.
	}
}

func (q *queue) handle(p ring.Packet) {
	var cmp completion
	perr := parseCompletion(p.Payload, &cmp)
	txid := p.TransactionID
	switch {
	case txid == 0:
		q.stats.unsolicited.Add(1)
		if perr != nil {
			q.stats.protocolErrors.Add(1)
			return
		}
		switch cmp.op {
		case OpEnumerateBus, OpRemoveDevice, OpEventNotification:
			q.c.kickRescan()
		}
		return
	case txid&ctlBit != 0:
		if perr != nil {
			q.stats.protocolErrors.Add(1)
			cmp = completion{op: OpCompleteIO, status: ^uint32(0)}
		}
		if q.ctlWait.CompareAndSwap(txid, 0) {
			select {
			case q.ctlDone <- ctlMsg{txid, cmp}:
			default:
			}
		}
		return
	}
	if p.Type != ring.TypeCompletion {
		q.stats.protocolErrors.Add(1)
		return
	}
	idx, gen := uint32(txid), uint32(txid>>32)
	if int(idx) >= len(q.slots) {
		q.stats.protocolErrors.Add(1)
		return
	}
	s := &q.slots[idx]
	q.mu.Lock()
	if s.gen != gen || (s.state != slotAtHost && s.state != slotAbandoned) {
		q.mu.Unlock()
		q.stats.protocolErrors.Add(1) // stale or invented id
		return
	}
	if s.state == slotAbandoned {
		s.state = slotActive
		q.abandoned--
		q.mu.Unlock()
		if next, nw := s.release(); next != nil {
			next.begin(nw)
		}
		return
	}
	s.gen++
	s.state = slotActive
	q.atHost.Add(-1)
	q.mu.Unlock()
	if perr != nil {
		q.stats.protocolErrors.Add(1)
		s.finish(perr)
		return
	}
	s.complete(&cmp)
}

// Actions after a failed SRB.
type action uint8

const (
	actFail action = iota
	actRetryNow
	actRetryLater
	actRemoved
)

// classify decides what to do with a failed SRB (§6.5; retry policy from
// Linux drivers/scsi/storvsc_drv.c and the SCSI mid-layer, for facts).
func classify(cmp *completion, sense *scsi.Sense, hasSense bool) (action, bool) {
	rescan := false
	switch cmp.scsiStatus {
	case scsi.StatusBusy, scsi.StatusTaskSetFull:
		return actRetryLater, false
	}
	switch cmp.srbCode() {
	case SRBBusy:
		return actRetryLater, false
	case SRBAborted, SRBBusReset, SRBFlushed, SRBTimeout, SRBCmdTimeout:
		return actRetryNow, false
	case SRBInvalidLUN, SRBNoDevice, SRBInvalidTarget, SRBSelTimeout, SRBInvalidPath:
		return actRemoved, true
	}
	if cmp.scsiStatus == scsi.StatusCheckCondition && hasSense {
		switch sense.Key {
		case scsi.KeyUnitAttention:
			if sense.CapacityChanged() || sense.LUNsChanged() {
				rescan = true
			}
			return actRetryNow, rescan
		case scsi.KeyNotReady:
			if sense.ASC == 0x04 { // becoming ready / in progress
				return actRetryLater, false
			}
		case scsi.KeyAbortedCommand:
			return actRetryNow, false
		}
	}
	return actFail, rescan
}

// backoff is the delay before retry n (1 ms doubling, at most 128 ms).
func backoff(n int) time.Duration { return time.Millisecond << min(n, 7) }

// complete handles the completion of the slot's current segment on the
// interrupt goroutine. The slot is active and owned by the caller.
func (s *slot) complete(cmp *completion) {
	q := s.q
	c := q.c
	code := cmp.srbCode()
	if code == SRBSuccess || code == SRBDataOverrun {
		n := int(cmp.dataLen)
		if s.req.dataIn == dataNone {
			n = 0
		} else if n > int(s.req.dataLen) {
			s.finish(&ProtocolError{Reason: "transfer length exceeds the request", Len: n})
			return
		}
		if s.w.s != nil {
			cmd := s.w.s
			if cmd.dir == dataIn {
				copy(cmd.buf[:n], s.bounce.Bytes())
			}
			cmd.n, cmd.srbStatus, cmd.scsiStatus = n, cmp.srbStatus, cmp.scsiStatus
			s.finish(nil)
			return
		}
		r := s.w.r
		switch r.Op {
		case OpRead, OpWrite:
			if n != s.seg {
				s.finish(io.ErrUnexpectedEOF)
				return
			}
			if r.Op == OpRead && s.bounced {
				copy(r.Buf[s.done:s.done+int64(n)], s.bounce.Bytes())
			}
			s.done += int64(n)
			if s.done < int64(len(r.Buf)) {
				s.retries = 0
				s.send()
				return
			}
		case OpDiscard:
			s.done += int64(s.seg)
			if s.done < r.Len/int64(s.w.d.Info().SectorSize) {
				s.retries = 0
				s.send()
				return
			}
		}
		s.finish(nil)
		return
	}
	var sense scsi.Sense
	hasSense := false
	if cmp.autosense() {
		if sn, err := scsi.ParseSense(cmp.sense[:cmp.senseLen]); err == nil {
			sense, hasSense = sn, true
		}
	}
	act, rescan := classify(cmp, &sense, hasSense)
	if act == actRemoved && s.w.s != nil {
		rescan = false // a scan probing an empty address
	}
	if rescan {
		c.kickRescan()
	}
	if (act == actRetryNow || act == actRetryLater) && s.retries < c.cfg.Retries {
		s.retries++
		q.stats.retries.Add(1)
		if act == actRetryNow {
			s.send()
			return
		}
		q.mu.Lock()
		if q.dead {
			q.mu.Unlock()
			s.finish(ErrRemoved)
			return
		}
		s.state = slotWaitRetry
		s.retry.Reset(backoff(s.retries))
		q.mu.Unlock()
		return
	}
	if s.w.s != nil {
		s.w.s.srbStatus, s.w.s.scsiStatus = cmp.srbStatus, cmp.scsiStatus
	}
	var err error = &SCSIError{Op: s.cdb.Op(), SRBStatus: cmp.srbStatus, SCSIStatus: cmp.scsiStatus, HasSense: hasSense, Sense: sense}
	if act == actRemoved && s.w.d != nil {
		err = ErrRemoved
	}
	s.finish(err)
}

// kill fails everything on the queue with err (rescind or close): slots
// at the host, parked or waiting, and every queued piece of work. Active
// slots fail their own work when they next take q.mu.
func (q *queue) kill(err error) {
	q.mu.Lock()
	if q.dead {
		q.mu.Unlock()
		return
	}
	q.dead = true
	var failed []work
	var dones []int64
	for i := range q.slots {
		s := &q.slots[i]
		switch s.state {
		case slotAtHost, slotWaitRetry:
			if s.state == slotAtHost {
				q.atHost.Add(-1)
			}
			s.retry.Stop()
			failed = append(failed, s.w)
			dones = append(dones, s.done)
			s.w = work{}
			s.state = slotDead
			s.gen++
		case slotAbandoned, slotFree:
			s.state = slotDead
		}
	}
	for _, w := range q.takePending() {
		failed = append(failed, w)
		dones = append(dones, 0)
	}
	q.free = q.free[:0]
	q.abandoned = 0
	if q.scanTimer != nil { // nil before initSlots
		q.scanTimer.Stop()
	}
	q.scanning = false
	q.mu.Unlock()
	for i, w := range failed {
		q.stats.errors.Add(1)
		q.stats.completed.Add(1)
		deliver(w, dones[i], err)
	}
}

// control runs one control operation (init, sub-channels) and waits for
// its completion.
func (q *queue) control(ctx context.Context, pkt []byte) (completion, error) {
	q.ctlMu.Lock()
	defer q.ctlMu.Unlock()
	q.ctlSeq++
	txid := uint64(ctlBit) | q.ctlSeq
	q.ctlWait.Store(txid)
	defer q.ctlWait.CompareAndSwap(txid, 0)
	op := Operation(uint32(pkt[offOperation]) | uint32(pkt[offOperation+1])<<8)
	if err := q.ch.Send(ctx, ring.TypeDataInband, ring.FlagCompletionRequested, txid, pkt); err != nil {
		return completion{}, controlSendErr(op, err)
	}
	for {
		select {
		case m := <-q.ctlDone:
			if m.txid != txid {
				continue // late answer to an abandoned operation
			}
			cmp := m.cmp
			if cmp.op != OpCompleteIO || cmp.status != statusSuccess {
				return cmp, &StatusError{Op: op, Status: cmp.status}
			}
			return cmp, nil
		case <-q.ch.Rescinded():
			return completion{}, ErrRemoved
		case <-ctx.Done():
			return completion{}, ctx.Err()
		}
	}
}

func controlSendErr(op Operation, err error) error {
	if errors.Is(err, vmbus.ErrRescinded) {
		return ErrRemoved
	}
	return &opError{op: op, err: err}
}

type opError struct {
	op  Operation
	err error
}

func (e *opError) Error() string { return "storvsc: " + e.op.String() + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }
