package netvsc

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/gohv/gohv/drivers/netvsc/nvsp"
	"github.com/gohv/gohv/drivers/netvsc/rndis"
	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/hv/dma"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/ring"
)

// Per-queue sizes.
const (
	pktBufSize   = 16 << 10 // one inbound VMBus packet (transfer-page header up to 562 ranges)
	hdrSlotSize  = 128      // RNDIS header + per-packet info of one GPA-direct send
	maxGPARanges = 1 + 32   // header range + frame parts
	maxGPAPFNs   = 1 + 64   // header page + frame pages
	rxCopyMax    = MaxMTU + ethHeaderLen + vlanTagLen + 512
)

// txSlot is one send in flight, indexed by its transaction id.
type txSlot struct {
	section int32       // send-buffer section or −1
	bounce  *dma.Buffer // bounce buffer or nil
	inUse   bool
}

type pendingCompletion struct {
	txid   uint64
	status uint32
}

// queue is one channel of the NIC (queue 0 = primary channel, then one
// per vRSS sub-channel).
//
// Goroutines: onInterrupt runs on the channel's dispatch goroutine; Send
// runs on callers' goroutines; flushLoop runs on the queue's own
// goroutine while receive completions are deferred.
//
// Lock order: sendMu, then slotMu; pendMu and wakeMu are leaves.
type queue struct {
	n   *NIC
	idx int
	ch  Channel
	hts headerTrySender // nil if the channel lacks TrySendWithHeader
	// cancelled is a context that is already done, for non-blocking
	// SendWithHeader.
	cancelled context.Context

	// Dispatch goroutine only.
	pktBuf []byte
	rxBuf  []byte
	compl  [2][nvsp.MessageSize]byte // completion messages: success, failure

	// Receive completions waiting for ring space (guarded by pendMu).
	pendMu   sync.Mutex
	pend     []pendingCompletion
	pendHead int
	pendLen  int
	cpart    [1][]byte // TrySend's parts for complete, under pendMu
	fpart    [1][]byte // flushLoop's
	flushCh  chan struct{}

	// Send side. sendMu guards the scratch buffers below it.
	sendMu   sync.Mutex
	msg      [nvsp.MessageSize]byte
	hdr      [rndis.PacketHeaderSize + 2*rndis.PPIValueSize]byte
	parts    [1][]byte
	gpaHdr   []byte
	ranges   [maxGPARanges]ring.GPARange
	pfns     [maxGPAPFNs]uint64
	hdrPages hv.Pages // hdrSlotSize bytes per tx slot
	secHint  int
	stopped  bool // set by teardown: no more sends

	slotMu   sync.Mutex // guards slots and freeSlots
	slots    []txSlot
	freeSlot []uint32
	inFlight atomic.Int32

	wakeMu  sync.Mutex
	wakeCh  chan struct{}
	waiters atomic.Int32

	ctr queueCounters
}

type queueCounters struct {
	txPackets, txBytes, txCopied, txDirect, txBounced, txBusy, txErrors atomic.Uint64
	rxPackets, rxBytes, rxDropped, rxBad, rxLate                        atomic.Uint64
}

func newQueue(n *NIC, idx int, ch Channel) *queue {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	q := &queue{n: n, idx: idx, ch: ch, cancelled: ctx, wakeCh: make(chan struct{}), flushCh: make(chan struct{}, 1)}
	q.hts, _ = ch.(headerTrySender)
	q.pktBuf = make([]byte, pktBufSize)
	q.rxBuf = make([]byte, rxCopyMax)
	nvsp.PutRNDISPacketComplete(q.compl[0][:], nvsp.StatusSuccess)
	nvsp.PutRNDISPacketComplete(q.compl[1][:], nvsp.StatusFailure)
	q.gpaHdr = make([]byte, 0, 8+maxGPARanges*8+maxGPAPFNs*8)
	return q
}

// allocRx sizes the deferred-completion backlog: the host cannot have
// more receives outstanding than it has sub-allocations.
func (q *queue) allocRx(subAllocs int) {
	q.pend = make([]pendingCompletion, subAllocs+1)
}

// allocTx allocates the tx slots and their GPA-direct header area.
func (q *queue) allocTx() error {
	n := q.n.cfg.TxSlots
	pages := (n*hdrSlotSize + hv.PageSize - 1) / hv.PageSize
	p, err := q.n.cfg.Memory.AllocPages(pages)
	if err != nil {
		return err
	}
	q.hdrPages = p
	q.slots = make([]txSlot, n)
	q.freeSlot = make([]uint32, n)
	for i := range q.freeSlot {
		q.freeSlot[i] = uint32(n - 1 - i)
	}
	return nil
}

// start starts the queue's completion flusher.
func (q *queue) start() {
	q.n.wg.Add(1)
	go q.flushLoop()
}

func (q *queue) free() {
	q.slotMu.Lock()
	for i := range q.slots {
		if s := &q.slots[i]; s.inUse && s.bounce != nil {
			q.n.bounce.put(s.bounce)
			s.bounce = nil
		}
	}
	q.slotMu.Unlock()
	if q.hdrPages.Mem != nil {
		q.n.cfg.Memory.FreePages(q.hdrPages)
		q.hdrPages = hv.Pages{}
	}
}

// ---- receive path (dispatch goroutine) ----

// onInterrupt drains the inbound ring: send completions, receives
// (transfer-page packets) and in-band host messages. It never blocks.
func (q *queue) onInterrupt() {
	completed := false
	for {
		pkt, err := q.ch.ReadPacket(q.pktBuf)
		if err != nil {
			if !errors.Is(err, vmbus.ErrEmpty) && !errors.Is(err, vmbus.ErrClosed) && !errors.Is(err, vmbus.ErrRescinded) {
				q.ctr.rxBad.Add(1)
			}
			break
		}
		switch pkt.Type {
		case ring.TypeCompletion:
			if q.onCompletion(pkt.TransactionID, pkt.Payload) {
				completed = true
			}
		case ring.TypeDataTransferPages:
			q.onReceive(pkt)
		case ring.TypeDataInband:
			q.onInband(pkt.Payload)
		default:
			q.ctr.rxBad.Add(1)
		}
	}
	if completed || q.waiters.Load() > 0 {
		q.wake()
	}
}

// onCompletion handles a host completion; it reports whether a send slot
// was freed.
func (q *queue) onCompletion(txid uint64, payload []byte) bool {
	switch txid & txidKindMask {
	case txidKindData:
		i := txid &^ txidKindMask
		status, err := nvsp.ParseRNDISPacketComplete(payload)
		if err != nil || i >= uint64(len(q.slots)) {
			q.ctr.rxBad.Add(1)
			return false
		}
		if status != nvsp.StatusSuccess {
			q.ctr.txErrors.Add(1)
		}
		return q.release(uint32(i))
	case txidKindSetup:
		if q.idx == 0 && q.n.deliverSetup(txid, payload) {
			return false
		}
	}
	q.ctr.rxBad.Add(1)
	return false
}

// release frees tx slot i and what it holds.
func (q *queue) release(i uint32) bool {
	q.slotMu.Lock()
	s := &q.slots[i]
	if !s.inUse {
		q.slotMu.Unlock()
		q.ctr.rxBad.Add(1) // completion of a send not in flight
		return false
	}
	sec, b := s.section, s.bounce
	*s = txSlot{}
	q.freeSlot = append(q.freeSlot, i)
	q.slotMu.Unlock()
	if sec >= 0 {
		q.n.freeSection(int(sec))
	}
	if b != nil {
		q.n.bounce.put(b)
	}
	q.inFlight.Add(-1)
	return true
}

// onReceive handles one transfer-page packet: each range is one RNDIS
// message in the receive buffer (§7.5). The packet is always completed so
// the host can reuse its sub-allocations; a bad range fails only itself.
func (q *queue) onReceive(pkt ring.Packet) {
	status := nvsp.StatusSuccess
	setID, count, err := ring.ParseTransferPages(pkt.Header)
	switch {
	case err != nil || setID != receiveBufferID || count == 0:
		status = nvsp.StatusFailure
	default:
		if m, err := nvsp.ParseRNDISPacket(pkt.Payload); err != nil || m.ChannelType > nvsp.ChannelControl {
			status = nvsp.StatusFailure
			break
		}
		for i := range count {
			if !q.onRange(ring.TransferRangeAt(pkt.Header, i)) {
				status = nvsp.StatusFailure
			}
		}
	}
	if status != nvsp.StatusSuccess {
		q.ctr.rxBad.Add(1)
	}
	q.complete(pkt.TransactionID, status)
}

// onRange copies one RNDIS message out of the receive buffer (the host
// may change shared memory at any time) and handles the copy.
func (q *queue) onRange(r ring.TransferRange) bool {
	n := q.n
	off, cnt := uint64(r.ByteOffset), uint64(r.ByteCount)
	if cnt < rndis.HeaderSize || off+cnt > n.recvLimit || off+cnt > uint64(len(n.recvBuf.Mem)) {
		return false
	}
	if cnt > uint64(len(q.rxBuf)) {
		q.ctr.rxDropped.Add(1)
		return true
	}
	msg := q.rxBuf[:copy(q.rxBuf, n.recvBuf.Mem[off:off+cnt])]
	return q.onMessage(msg)
}

// onMessage handles one RNDIS message (already copied out).
func (q *queue) onMessage(msg []byte) bool {
	n := q.n
	typ, length, err := rndis.ParseHeader(msg)
	if err != nil {
		return false
	}
	msg = msg[:length]
	switch typ {
	case rndis.TypePacket:
		return q.onFrame(msg)
	case rndis.TypeInitializeComplete, rndis.TypeQueryComplete, rndis.TypeSetComplete, rndis.TypeKeepaliveComplete:
		n.ctr.controlMessages.Add(1)
		return n.ctl.complete(msg)
	case rndis.TypeIndicateStatus:
		n.ctr.controlMessages.Add(1)
		return n.onStatus(msg)
	case rndis.TypeKeepalive:
		id, err := rndis.ParseKeepalive(msg)
		if err != nil {
			return false
		}
		n.ctr.keepalives.Add(1)
		var resp [rndis.KeepaliveCompleteSize]byte
		rndis.PutKeepaliveComplete(resp[:], id, rndis.StatusSuccess)
		// Best effort from the interrupt path: a host that gets no
		// answer asks again or resets.
		_ = q.trySendRNDIS(nvsp.ChannelControl, resp[:], nil)
		return true
	}
	return false
}

func (q *queue) onFrame(msg []byte) bool {
	data, ppi, err := rndis.ParsePacket(msg)
	if err != nil {
		return false
	}
	pi, err := rndis.ParsePacketInfo(ppi)
	if err != nil {
		return false
	}
	if pi.HasPacketID && (pi.PacketID>>8)&rndis.PacketIDSubAlloc != 0 || len(data) > q.n.maxFrame || len(data) < ethHeaderLen {
		// RSC fragments are never enabled; oversize or runt frames are
		// dropped.
		q.ctr.rxDropped.Add(1)
		return true
	}
	var info RxInfo
	if pi.HasCsum {
		c := pi.Csum
		const verdicts = rndis.CsumRxTCPFailed | rndis.CsumRxUDPFailed | rndis.CsumRxIPFailed |
			rndis.CsumRxTCPSucceeded | rndis.CsumRxUDPSucceeded | rndis.CsumRxIPSucceeded
		info.CsumChecked = c&verdicts != 0
		info.IPCsumOK = c&rndis.CsumRxIPSucceeded != 0 && c&rndis.CsumRxIPFailed == 0
		info.L4CsumOK = c&(rndis.CsumRxTCPSucceeded|rndis.CsumRxUDPSucceeded) != 0 &&
			c&(rndis.CsumRxTCPFailed|rndis.CsumRxUDPFailed) == 0
	}
	if pi.HasVLAN {
		// NDIS 802.1Q info: priority bits 2:0, CFI bit 3, id bits 15:4
		// (§7.8) → tag control info: priority 15:13, DEI 12, id 11:0.
		v := pi.VLAN
		info.VLAN = uint16(v&7)<<13 | uint16(v>>3&1)<<12 | uint16(v>>4&0xFFF)
	}
	fn := q.n.receiver.Load()
	if fn == nil {
		q.ctr.rxDropped.Add(1)
		return true
	}
	q.ctr.rxPackets.Add(1)
	q.ctr.rxBytes.Add(uint64(len(data)))
	(*fn)(q.idx, data, info)
	return true
}

// onStatus handles INDICATE_STATUS (§7.8) on the interrupt path.
func (n *NIC) onStatus(msg []byte) bool {
	status, buf, err := rndis.ParseIndicateStatus(msg)
	if err != nil {
		return false
	}
	switch status {
	case rndis.IndicateMediaConnect, rndis.IndicateMediaDisconnect:
		up := status == rndis.IndicateMediaConnect
		n.linkUp.Store(up)
		n.ctr.linkChanges.Add(1)
		k := eventLinkDown
		if up {
			k = eventLinkUp
		}
		n.events.push(k)
	case rndis.IndicateLinkSpeedChange:
		v, err := rndis.ParseUint32(buf)
		if err != nil {
			return false
		}
		n.linkSpeed.Store(uint64(v) * 100)
	case rndis.IndicateNetworkChange:
		n.ctr.networkChanges.Add(1)
		n.events.push(eventNetworkChange)
	}
	return true
}

// onInband handles host messages sent in-band (§7.2): the send
// indirection table and VF association; others are ignored.
func (q *queue) onInband(payload []byte) {
	n := q.n
	t, err := nvsp.Type(payload)
	if err != nil {
		q.ctr.rxBad.Add(1)
		return
	}
	switch t {
	case nvsp.TypeSendIndirectionTable:
		var tab [nvsp.IndirectionTableSize]uint32
		if err := nvsp.ParseIndirectionTable(payload, n.version, int(n.nqueues.Load()), &tab); err != nil {
			q.ctr.rxBad.Add(1)
			return
		}
		for i, v := range tab {
			n.sendTable[i].Store(v)
		}
		n.ctr.tableUpdates.Add(1)
	case nvsp.TypeSendVFAssociation:
		if _, _, err := nvsp.ParseVFAssociation(payload); err != nil {
			q.ctr.rxBad.Add(1)
		}
	}
}

// complete sends the receive completion for txid, or queues it when the
// ring is full (a flush goroutine then waits for space).
func (q *queue) complete(txid uint64, status uint32) {
	msg := q.compl[0][:]
	if status != nvsp.StatusSuccess {
		msg = q.compl[1][:]
	}
	q.pendMu.Lock()
	if q.pendLen == 0 {
		q.cpart[0] = msg
		err := q.ch.TrySend(ring.TypeCompletion, 0, txid, q.cpart[:]...)
		if err == nil || !errors.Is(err, vmbus.ErrRingFull) {
			q.pendMu.Unlock()
			return
		}
	}
	if q.pendLen == len(q.pend) {
		// More receives outstanding than the host has sub-allocations:
		// the host broke the protocol; this completion is lost.
		q.pendMu.Unlock()
		q.ctr.rxBad.Add(1)
		return
	}
	q.pend[(q.pendHead+q.pendLen)%len(q.pend)] = pendingCompletion{txid, status}
	q.pendLen++
	q.pendMu.Unlock()
	q.ctr.rxLate.Add(1)
	select {
	case q.flushCh <- struct{}{}:
	default:
	}
}

// flushLoop sends deferred receive completions, waiting for ring space
// (Send publishes the pending send size, §4.6). It runs on the queue's
// own goroutine, started by start, until the NIC is gone.
func (q *queue) flushLoop() {
	defer q.n.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-q.n.gone:
		case <-q.n.stop:
		}
		cancel()
	}()
	for {
		select {
		case <-q.flushCh:
		case <-ctx.Done():
			return
		}
		for {
			q.pendMu.Lock()
			if q.pendLen == 0 {
				q.pendMu.Unlock()
				break
			}
			p := q.pend[q.pendHead]
			q.pendMu.Unlock()
			msg := q.compl[0][:]
			if p.status != nvsp.StatusSuccess {
				msg = q.compl[1][:]
			}
			q.fpart[0] = msg
			if err := q.ch.SendWithHeader(ctx, ring.TypeCompletion, 0, p.txid, nil, q.fpart[:]...); err != nil {
				if ctx.Err() != nil {
					return
				}
				q.ctr.rxBad.Add(1) // dropped: the channel is failing
			}
			q.pendMu.Lock()
			q.pendHead = (q.pendHead + 1) % len(q.pend)
			q.pendLen--
			q.pendMu.Unlock()
		}
	}
}

// ---- waiting for space ----

// wake wakes WaitWritable callers. It allocates a new channel only when
// someone waits.
func (q *queue) wake() {
	if q.waiters.Load() == 0 {
		return
	}
	q.wakeMu.Lock()
	close(q.wakeCh)
	q.wakeCh = make(chan struct{})
	q.wakeMu.Unlock()
}

// waitProgress waits until the queue made progress (a send completed or
// the host signalled), returning at once when nothing is in flight.
func (q *queue) waitProgress(ctx context.Context) error {
	q.waiters.Add(1)
	defer q.waiters.Add(-1)
	q.wakeMu.Lock()
	ch := q.wakeCh
	q.wakeMu.Unlock()
	select {
	case <-q.n.gone:
		return q.n.goneErr()
	default:
	}
	if q.inFlight.Load() == 0 {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-q.n.gone:
		return q.n.goneErr()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drain waits until no send of the queue is in flight.
func (q *queue) drain(ctx context.Context) error {
	for q.inFlight.Load() > 0 {
		if err := q.waitProgress(ctx); err != nil {
			return err
		}
	}
	return nil
}
