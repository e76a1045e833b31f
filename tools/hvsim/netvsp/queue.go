package netvsp

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/gohv/gohv/tools/hvsim"
)

// queue serves one channel (the primary or a sub-channel) with two
// goroutines:
//
//   - serve takes guest packets off the ring (NVSP control, RNDIS
//     messages, completions of receive packets), hands frames to the
//     backend and writes completions; on the primary it also writes RNDIS
//     responses, status indications and the indirection table;
//   - rxLoop writes frames queued by Device.deliver into the receive
//     buffer and sends them as transfer-page packets.
//
// Every buffer is allocated here, once: the per-packet paths allocate
// nothing.
type queue struct {
	d   *Device
	ch  *hvsim.Channel
	idx int

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	rxKick   chan struct{} // frames queued, or receive-buffer space freed
	ctrlKick chan struct{} // control message, indication or table due

	// Frames waiting for the receive buffer: a ring of fixed slots.
	qmu    sync.Mutex // guards fhead, fsize, the slots between them, guestWait and room
	frames [][]byte
	flen   []int
	fhash  []uint32
	fhas   []bool
	fhead  int
	fsize  int
	// guestWait is set while rxLoop waits for the guest (no free data
	// sub-allocation, or no room in the ring) and once it has ended:
	// then a frame finding every slot taken is dropped. Otherwise the
	// deliverer waits on room for rxLoop to free a slot.
	guestWait bool
	room      chan struct{} // closed and cleared to wake deliverers; nil when none waits

	// serve's buffers.
	pkt []byte
	msg []byte
	// lent is memory the backend lent for the message being handled
	// (lentBuf nil: none); serve goroutine only.
	lent    Lent
	lentBuf []byte
	seg     []byte
	tag     []byte
	nv      [nvspSizeV61]byte
	ranges  []hvsim.PageRange
	pfns    []uint64
	ctrlB   [controlMsgMax]byte
	tbl     [sizeIndirectionTable]byte
	ctph    [tpHdrSize + tpRangeSize]byte
	held    bool // reorder fault: a completion is held back
	heldID  uint64
	heldSt  uint32
	// late is a violation found with Device.mu held, recorded after it
	// is released (the host's violation hook may call back into hvsim).
	late error

	// rxLoop's buffers.
	rxb  []byte
	tph  []byte
	rxnv [nvspSizeV61]byte
}

func newQueue(d *Device, ch *hvsim.Channel, idx, hold int) *queue {
	maxFrame := d.cfg.MTU + ethHdrLen + vlanTagLen
	q := &queue{d: d, ch: ch, idx: idx,
		rxKick: make(chan struct{}, 1), ctrlKick: make(chan struct{}, 1),
		frames: make([][]byte, hold), flen: make([]int, hold),
		fhash: make([]uint32, hold), fhas: make([]bool, hold),
		pkt: make([]byte, 64<<10), msg: make([]byte, maxGuestMessage),
		seg: make([]byte, maxFrame), tag: make([]byte, maxFrame+vlanTagLen),
		ranges: make([]hvsim.PageRange, 0, 64), pfns: make([]uint64, 0, 64),
		rxb: make([]byte, rxHeaderRoom+maxFrame), tph: make([]byte, 8+8*maxRangesPerPacket)}
	buf := make([]byte, hold*maxFrame)
	for i := range q.frames {
		q.frames[i] = buf[i*maxFrame : (i+1)*maxFrame : (i+1)*maxFrame]
	}
	q.ctx, q.cancel = contextFor(ch)
	return q
}

func (q *queue) start() {
	q.wg.Add(2)
	go func() { defer q.wg.Done(); q.serve() }()
	go func() { defer q.wg.Done(); q.rxLoop() }()
}

// stop ends the goroutines. It may be called from Device.Close with the
// host's server lock held, so it does not wait for them: they see the
// cancelled context or the closed channel and return.
func (q *queue) stop() { q.cancel() }

func (q *queue) kickRx() {
	select {
	case q.rxKick <- struct{}{}:
	default:
	}
}

func (q *queue) kickControl() {
	select {
	case q.ctrlKick <- struct{}{}:
	default:
	}
}

// serve is the guest→host goroutine.
func (q *queue) serve() {
	for {
		for {
			p, ok, err := q.ch.Recv(q.pkt)
			if errors.Is(err, hvsim.ErrBufferTooSmall) && len(q.pkt) < 4<<20 {
				q.pkt = make([]byte, 2*len(q.pkt)) // rare: a huge GPA-direct list
				continue
			}
			if err != nil {
				return
			}
			if !ok {
				break
			}
			q.handle(p)
		}
		if q.idx == 0 {
			q.flushControl()
		}
		select {
		case <-q.ch.Signaled():
		case <-q.ctrlKick:
		case <-q.ctx.Done():
			return
		}
	}
}

// handle dispatches one guest packet.
func (q *queue) handle(p hvsim.Packet) {
	d := q.d
	switch p.Type {
	case pktCompletion:
		q.handleCompletion(p)
		return
	case pktInband, pktGPADirect:
	default:
		d.violate(q, fmt.Errorf("%w: packet type %#x", ErrMalformed, p.Type))
		return
	}
	m, err := parseNVSP(p.Payload)
	if err != nil {
		d.violate(q, err)
		return
	}
	if p.Type == pktGPADirect && m.Type != nvspSendRNDISPacket {
		d.violate(q, fmt.Errorf("%w: GPA-direct packet carrying NVSP type %d", ErrMalformed, m.Type))
		return
	}
	if m.Type == nvspSendRNDISPacket {
		q.handleRNDIS(p, m)
		return
	}
	if m.Type == nvspSendRNDISComplete {
		d.violate(q, fmt.Errorf("%w: RNDIS completion sent as packet type %#x, not a completion", ErrMalformed, p.Type))
		return
	}
	if q.idx != 0 {
		d.violate(q, fmt.Errorf("%w: NVSP type %d on sub-channel %d", ErrState, m.Type, q.idx))
		return
	}
	q.handleControlNVSP(p, m)
}

// reply sends a completion for txid with the first n bytes of q.nv.
func (q *queue) reply(txid uint64, n int) {
	_ = q.ch.Send(q.ctx, pktCompletion, 0, txid, q.nv[:n]) // fails only when the channel closed
}

// handleControlNVSP handles the primary's set-up messages (§7.4).
func (q *queue) handleControlNVSP(p hvsim.Packet, m nvspMsg) {
	d := q.d
	want := p.Flags&flagCompletionWanted != 0
	// GPADL lookups take the host's server lock, which ranks before d.mu.
	var view *hvsim.GPADLView
	var verr error
	if m.Type == nvspSendRecvBuf || m.Type == nvspSendSendBuf {
		view, verr = q.ch.GPADL(m.A)
	}
	d.mu.Lock()
	if d.version == 0 && m.Type != nvspInit {
		d.mu.Unlock()
		d.violate(q, fmt.Errorf("%w: NVSP type %d before INIT", ErrState, m.Type))
		return
	}
	size := d.msgSize
	switch m.Type {
	case nvspInit:
		if v := d.version; v != 0 {
			d.mu.Unlock()
			d.violate(q, fmt.Errorf("%w: second INIT (version %#x negotiated)", ErrState, v))
			return
		}
		v := chooseVersion(m.A, m.B)
		if m.A != m.B && nvspRank(m.A) > nvspRank(m.B) {
			d.mu.Unlock()
			d.violate(q, fmt.Errorf("%w: INIT min %#x above max %#x", ErrMalformed, m.A, m.B))
			return
		}
		status, field := uint32(nvspStatusFailure), uint32(initCmplVersionUnused)
		if v != 0 {
			status = nvspStatusSuccess
			d.version = v
			if v == NVSPVersion1 {
				field = v
			}
		}
		d.mu.Unlock()
		n := encodeInitComplete(q.nv[:], size, field, status)
		q.reply(p.TransactionID, n)
		if v == NVSPVersion61 {
			d.mu.Lock()
			d.msgSize = nvspSizeV61
			d.mu.Unlock()
		}
		return
	case nvspSendNDISConfig:
		var err error
		switch {
		case nvspRank(d.version) < nvspRank(NVSPVersion2):
			err = fmt.Errorf("%w: SEND_NDIS_CONFIG under NVSP %#x", ErrState, d.version)
		case d.haveCfg:
			err = fmt.Errorf("%w: second SEND_NDIS_CONFIG", ErrState)
		case d.hasRecv():
			err = fmt.Errorf("%w: SEND_NDIS_CONFIG after the receive buffer", ErrState)
		}
		if err != nil {
			d.mu.Unlock()
			d.violate(q, err)
			return
		}
		d.haveCfg = true
		if m.A >= 68+ethHdrLen && m.A <= uint32(d.cfg.MTU+ethHdrLen) {
			d.ndisMTU = m.A
		} // else the default, as OpenVMM does for an invalid MTU
		d.mu.Unlock()
	case nvspSendNDISVersion:
		var err error
		switch {
		case d.ndisMajor != 0:
			err = fmt.Errorf("%w: second SEND_NDIS_VERSION", ErrState)
		case m.A != 6:
			err = fmt.Errorf("%w: NDIS version %d.%d", ErrMalformed, m.A, m.B)
		}
		if err != nil {
			d.mu.Unlock()
			d.violate(q, err)
			return
		}
		d.ndisMajor, d.ndisMinor = m.A, m.B
		d.mu.Unlock()
	case nvspSendRecvBuf:
		status, subSize, count, err := q.setupRecvBuffer(m, view, verr)
		d.mu.Unlock()
		if err != nil {
			d.violate(q, err)
		}
		q.reply(p.TransactionID, encodeRecvBufComplete(q.nv[:], size, status, subSize, count))
		return
	case nvspSendSendBuf:
		status, err := q.setupSendBuffer(m, view, verr)
		d.mu.Unlock()
		if err != nil {
			d.violate(q, err)
		}
		sec := uint32(0)
		if status == nvspStatusSuccess {
			sec = sendSectionSize
		}
		q.reply(p.TransactionID, encodeSendBufComplete(q.nv[:], size, status, sec))
		return
	case nvspRevokeRecvBuf:
		d.rxMu.Lock()
		r := d.recv
		ok := r != nil && r.id == m.ID
		if ok {
			d.recv, d.revoked = nil, r
		}
		d.rxMu.Unlock()
		d.mu.Unlock()
		if !ok {
			d.violate(q, fmt.Errorf("%w: REVOKE_RECEIVE_BUFFER id %#x", ErrBufferRef, m.ID))
		}
	case nvspRevokeSendBuf:
		ok := d.send != nil && d.sendID == m.ID
		if ok {
			d.send = nil
		}
		d.mu.Unlock()
		if !ok {
			d.violate(q, fmt.Errorf("%w: REVOKE_SEND_BUFFER id %#x", ErrBufferRef, m.ID))
		}
	case nvspSubchannel:
		q.handleSubchannel(p, m) // unlocks
		return
	case nvspSwitchDataPath:
		v := d.version
		d.mu.Unlock()
		if nvspRank(v) < nvspRank(NVSPVersion4) {
			d.violate(q, fmt.Errorf("%w: SWITCH_DATA_PATH under NVSP %#x", ErrState, v))
			return
		}
	default:
		d.mu.Unlock()
		d.violate(q, fmt.Errorf("%w: NVSP type %d from the guest", ErrMalformed, m.Type))
		return
	}
	if want {
		// OpenVMM answers a completion request on these with an empty
		// completion (UEFI's client waits for it).
		_ = q.ch.Send(q.ctx, pktCompletion, 0, p.TransactionID, nil)
	}
}

// chooseVersion returns the newest version the host supports between min
// and max (both must be known values), or 0.
func chooseVersion(lo, hi uint32) uint32 {
	rl, rh := nvspRank(lo), nvspRank(hi)
	if rl < 0 || rh < 0 {
		return 0
	}
	for _, v := range nvspVersions {
		if r := nvspRank(v); r >= rl && r <= rh {
			return v
		}
	}
	return 0
}

// setupRecvBuffer handles SEND_RECEIVE_BUFFER with d.mu held.
func (q *queue) setupRecvBuffer(m nvspMsg, view *hvsim.GPADLView, gerr error) (status, subSize, count uint32, err error) {
	d := q.d
	fail := uint32(nvspStatusFailure)
	switch {
	case d.hasRecv():
		return fail, 0, 0, fmt.Errorf("%w: second SEND_RECEIVE_BUFFER", ErrState)
	case nvspRank(d.version) >= nvspRank(NVSPVersion2) && !d.haveCfg:
		return fail, 0, 0, fmt.Errorf("%w: SEND_RECEIVE_BUFFER before SEND_NDIS_CONFIG", ErrState)
	}
	if gerr != nil {
		return fail, 0, 0, fmt.Errorf("%w: receive buffer: %w", ErrBufferRef, gerr)
	}
	limit := maxRecvBufV4
	if nvspRank(d.version) < nvspRank(NVSPVersion4) {
		limit = maxRecvBufV1
	}
	if view.Len() > limit {
		return fail, 0, 0, fmt.Errorf("%w: receive buffer of %d bytes, host maximum %d (§7.4)", ErrBufferRef, view.Len(), limit)
	}
	subSize = rxHeaderRoom + d.ndisMTU + rxFooterRoom
	if uint32(view.Len())/subSize < 2*ctrlReserve {
		return fail, 0, 0, nil // too small to be useful: refused, not a violation
	}
	r := newRecvBuffer(m.ID, m.A, view, subSize)
	d.rxMu.Lock()
	d.recv = r
	d.rxMu.Unlock()
	return nvspStatusSuccess, subSize, r.count, nil
}

// setupSendBuffer handles SEND_SEND_BUFFER with d.mu held.
func (q *queue) setupSendBuffer(m nvspMsg, view *hvsim.GPADLView, err error) (uint32, error) {
	d := q.d
	if d.send != nil {
		return nvspStatusFailure, fmt.Errorf("%w: second SEND_SEND_BUFFER", ErrState)
	}
	if err != nil {
		return nvspStatusFailure, fmt.Errorf("%w: send buffer: %w", ErrBufferRef, err)
	}
	if view.Len() < sendSectionSize {
		return nvspStatusFailure, nil
	}
	d.send, d.sendID, d.sendGPADL = view, m.ID, m.A
	return nvspStatusSuccess, nil
}

// handleSubchannel handles the SUBCHANNEL request (§7.3, §7.4 step 7);
// called with d.mu held, it unlocks.
func (q *queue) handleSubchannel(p hvsim.Packet, m nvspMsg) {
	d := q.d
	var err error
	switch {
	case nvspRank(d.version) < nvspRank(NVSPVersion5):
		err = fmt.Errorf("%w: SUBCHANNEL under NVSP %#x", ErrState, d.version)
	case !d.hasRecv():
		err = fmt.Errorf("%w: SUBCHANNEL before the receive buffer", ErrState)
	}
	if err != nil {
		d.mu.Unlock()
		d.violate(q, err)
		return
	}
	status, n := uint32(nvspStatusFailure), uint32(0)
	if m.A == subchanOpAllocate && m.B >= 1 && int(m.B) < d.cfg.MaxQueues && d.subsWant == 0 {
		status, n = nvspStatusSuccess, m.B
		d.subsWant, d.tableSent = int(n), false
	}
	relid, size := d.relid, d.msgSize
	d.mu.Unlock()
	q.reply(p.TransactionID, encodeSubchannelComplete(q.nv[:], size, status, n))
	if n > 0 {
		if _, err := d.host.AddSubChannels(relid, int(n)); err != nil {
			d.mu.Lock()
			d.subsWant = 0
			d.mu.Unlock()
		}
	}
}

// closed reports whether q is no longer one of the device's queues.
func (q *queue) closed() bool {
	q.d.mu.Lock()
	defer q.d.mu.Unlock()
	return q.idx >= len(q.d.queues) || q.d.queues[q.idx] != q
}

// handleCompletion handles the guest's completion of a transfer-page
// packet (§7.5): the sub-allocations it names become free.
func (q *queue) handleCompletion(p hvsim.Packet) {
	d := q.d
	if len(p.Payload) < offRNDISCmplStatus+4 || le.Uint32(p.Payload) != nvspSendRNDISComplete {
		d.violate(q, fmt.Errorf("%w: guest completion of %d bytes, not SEND_RNDIS_PACKET_COMPLETE", ErrMalformed, len(p.Payload)))
		return
	}
	status := le.Uint32(p.Payload[offRNDISCmplStatus:])
	d.rxMu.Lock()
	r := d.recv
	if r == nil || !r.known(p.TransactionID) {
		if x := d.revoked; x != nil && x.known(p.TransactionID) {
			r = x
		}
	}
	var err error
	ctrl := false
	switch slot, ok := uint32(0), false; {
	case r == nil:
		err = fmt.Errorf("%w: %#x with no receive buffer", ErrUnknownCompletion, p.TransactionID)
	default:
		slot, ok = r.lookup(p.TransactionID)
		switch {
		case !ok:
			err = fmt.Errorf("%w: %#x", ErrUnknownCompletion, p.TransactionID)
		case r.slots[slot].queue != q.idx:
			err = fmt.Errorf("%w: %#x sent on queue %d, completed on %d", ErrUnknownCompletion,
				p.TransactionID, r.slots[slot].queue, q.idx)
		default:
			ctrl = r.slots[slot].ctrl
			r.release(slot)
		}
	}
	d.rxMu.Unlock()
	if err != nil && r == nil && q.closed() {
		// The channel closed (rescind or guest close) while this
		// completion was in its ring: the buffer it names is gone with
		// it, and the guest broke no rule by completing it.
		return
	}
	if err != nil {
		d.violate(q, err)
		return
	}
	if status != nvspStatusSuccess {
		d.violate(q, fmt.Errorf("%w: receive completion %#x with status %d", ErrMalformed, p.TransactionID, status))
	}
	if !ctrl {
		d.kickAll()
	}
}

// complete answers a guest RNDIS packet (§7.5), subject to the drop and
// reorder faults.
func (q *queue) complete(txid uint64, status uint32) {
	d := q.d
	if d.faults.takeDrop() {
		d.stats.completionsLost.Add(1)
		return
	}
	d.mu.Lock()
	size := d.msgSize
	d.mu.Unlock()
	if d.faults.reordering() && !q.held {
		q.held, q.heldID, q.heldSt = true, txid, status
		return
	}
	q.reply(txid, encodeRNDISPacketComplete(q.nv[:], size, status))
	if q.held {
		q.held = false
		q.reply(q.heldID, encodeRNDISPacketComplete(q.nv[:], size, q.heldSt))
	}
}
