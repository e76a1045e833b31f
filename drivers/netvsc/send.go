package netvsc

import (
	"context"
	"errors"
	"fmt"

	"github.com/gohv/gohv/drivers/netvsc/nvsp"
	"github.com/gohv/gohv/drivers/netvsc/rndis"
	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/ring"
)

// Send queues one Ethernet frame, given as parts, on queue. Small frames
// are copied into a send-buffer section; larger ones go GPA-direct from
// the parts' memory when it is host-visible, else through a bounce
// buffer (§7.5). tx asks for checksum offload or LSO. Send does not wait:
// when the ring, the send buffer or the queue's send slots are full it
// returns an error matching ErrBusy and nothing was sent; retry after
// WaitWritable. It does not allocate.
func (n *NIC) Send(queue int, frame [][]byte, tx TxInfo) error {
	if queue < 0 || queue >= len(n.queues) {
		return fmt.Errorf("%w: queue %d of %d", ErrFrame, queue, len(n.queues))
	}
	select {
	case <-n.gone:
		return n.goneErr()
	default:
	}
	return n.queues[queue].sendFrame(frame, tx)
}

// WaitWritable waits until queue may have room again: a send of the queue
// completed, the host signalled it, or nothing is in flight. It returns
// ErrRemoved or ErrClosed once the NIC is gone.
func (n *NIC) WaitWritable(ctx context.Context, queue int) error {
	if queue < 0 || queue >= len(n.queues) {
		return fmt.Errorf("%w: queue %d of %d", ErrFrame, queue, len(n.queues))
	}
	return n.queues[queue].waitProgress(ctx)
}

// QueueFor returns the queue a frame should be sent on: the host's send
// indirection table (§7.3) indexed by the Toeplitz hash of the frame's
// flow (0 for frames without an IP flow). It does not allocate.
func (n *NIC) QueueFor(frame []byte) int {
	if len(n.queues) == 1 {
		return 0
	}
	h, ok := flowHash(n.rssKey[:], frame)
	if !ok {
		return 0
	}
	q := int(n.sendTable[h%nvsp.IndirectionTableSize].Load())
	if q >= len(n.queues) {
		return 0
	}
	return q
}

func (q *queue) sendFrame(frame [][]byte, tx TxInfo) error {
	total := 0
	for _, p := range frame {
		total += len(p)
	}
	limit := q.n.maxFrame
	if tx.GSO {
		limit = q.n.offloads.LSOMaxSize
	}
	if total < ethHeaderLen || total > limit {
		return fmt.Errorf("%w: %d-byte frame (limit %d)", ErrFrame, total, limit)
	}
	q.sendMu.Lock()
	defer q.sendMu.Unlock()
	hdr, err := q.packetHeader(total, tx)
	if err != nil {
		return err
	}
	return q.sendLocked(nvsp.ChannelData, hdr, frame, total)
}

// packetHeader builds the RNDIS PACKET header and per-packet info for a
// frame of total bytes in q.hdr. Called with sendMu held.
func (q *queue) packetHeader(total int, tx TxInfo) ([]byte, error) {
	ppi := q.hdr[rndis.PacketHeaderSize:]
	ppiLen := 0
	switch {
	case tx.GSO:
		if !(tx.IsIPv6 && q.n.offloads.LSOv6 || !tx.IsIPv6 && q.n.offloads.LSOv4) || tx.L4Offset >= total {
			return nil, fmt.Errorf("%w: LSO not granted or bad offset %d", ErrFrame, tx.L4Offset)
		}
		v, err := rndis.LSOv2Info(tx.MSS, tx.L4Offset, tx.IsIPv6)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrFrame, err)
		}
		ppiLen += rndis.PutPPI(ppi, rndis.PPILSO, v)
	case tx.CsumIPv4 || tx.CsumTCP || tx.CsumUDP:
		if tx.L4Offset >= total || tx.L3Offset >= total {
			return nil, fmt.Errorf("%w: checksum offsets %d/%d in %d bytes", ErrFrame, tx.L3Offset, tx.L4Offset, total)
		}
		flags := rndis.CsumTxIPv4
		if tx.IsIPv6 {
			flags = rndis.CsumTxIPv6
		}
		if tx.CsumTCP {
			flags |= rndis.CsumTxTCP
		}
		if tx.CsumUDP {
			flags |= rndis.CsumTxUDP
		}
		if tx.CsumIPv4 && !tx.IsIPv6 {
			flags |= rndis.CsumTxIPHeader
		}
		v, err := rndis.CsumTxInfo(flags, tx.L4Offset)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrFrame, err)
		}
		ppiLen += rndis.PutPPI(ppi, rndis.PPIChecksum, v)
	}
	rndis.PutPacket(q.hdr[:], ppiLen, total)
	return q.hdr[:rndis.PacketHeaderSize+ppiLen], nil
}

// sendControl sends an RNDIS control message on the queue, waiting
// (until ctx is done) for room.
func (q *queue) sendControl(ctx context.Context, msg []byte) error {
	for {
		err := q.trySendRNDIS(nvsp.ChannelControl, msg, nil)
		if !errors.Is(err, ErrBusy) {
			return err
		}
		if err := q.waitProgress(ctx); err != nil {
			return err
		}
	}
}

// trySendRNDIS sends a complete RNDIS message head followed by parts.
func (q *queue) trySendRNDIS(chanType uint32, head []byte, parts [][]byte) error {
	total := 0
	for _, p := range parts {
		total += len(p)
	}
	q.sendMu.Lock()
	defer q.sendMu.Unlock()
	return q.sendLocked(chanType, head, parts, total)
}

// sendLocked sends the RNDIS message head+parts (total bytes of parts).
// Called with sendMu held.
func (q *queue) sendLocked(chanType uint32, head []byte, parts [][]byte, total int) error {
	n := q.n
	if q.stopped || n.removed.Load() {
		return n.goneErr()
	}
	slot, ok := q.takeSlot()
	if !ok {
		q.ctr.txBusy.Add(1)
		return errBusySlots
	}
	s := &q.slots[slot]
	size := len(head) + total
	txid := txidKindData | uint64(slot)
	var err error
	if size <= n.sectionSize {
		err = q.sendCopied(s, chanType, head, parts, size, txid)
	} else {
		err = q.sendDirect(s, slot, chanType, head, parts, total, txid)
	}
	if err != nil {
		q.release(slot)
		if errors.Is(err, vmbus.ErrRingFull) {
			q.ctr.txBusy.Add(1)
			return errBusyRing
		}
		if err == errBusyBuffers {
			q.ctr.txBusy.Add(1)
			return err
		}
		if errors.Is(err, vmbus.ErrRescinded) {
			return ErrRemoved
		}
		if errors.Is(err, vmbus.ErrClosed) {
			return n.goneErr()
		}
		return err
	}
	if chanType == nvsp.ChannelData {
		q.ctr.txPackets.Add(1)
		q.ctr.txBytes.Add(uint64(total))
	}
	return nil
}

// Preallocated back-pressure errors: the busy path allocates nothing.
var (
	errBusySlots   = fmt.Errorf("%w: all send slots of the queue in flight", ErrBusy)
	errBusyRing    = fmt.Errorf("%w: channel ring full", ErrBusy)
	errBusyBuffers = fmt.Errorf("%w: no free send section or bounce buffer", ErrBusy)
)

func (q *queue) takeSlot() (uint32, bool) {
	q.slotMu.Lock()
	defer q.slotMu.Unlock()
	if len(q.freeSlot) == 0 {
		return 0, false
	}
	i := q.freeSlot[len(q.freeSlot)-1]
	q.freeSlot = q.freeSlot[:len(q.freeSlot)-1]
	q.slots[i] = txSlot{section: -1, inUse: true}
	q.inFlight.Add(1)
	return i, true
}

// sendCopied copies the message into a send-buffer section and sends the
// section's index (§7.5, packet type 6).
func (q *queue) sendCopied(s *txSlot, chanType uint32, head []byte, parts [][]byte, size int, txid uint64) error {
	n := q.n
	sec := n.allocSection(q.secHint)
	if sec < 0 {
		return errBusyBuffers
	}
	q.secHint = sec / 64
	q.slotMu.Lock()
	s.section = int32(sec)
	q.slotMu.Unlock()
	b := n.section(sec)
	at := copy(b, head)
	for _, p := range parts {
		at += copy(b[at:], p)
	}
	nvsp.PutRNDISPacket(q.msg[:], chanType, uint32(sec), uint32(size))
	q.parts[0] = q.msg[:]
	err := q.ch.TrySend(ring.TypeDataInband, flagCompletionRequested, txid, q.parts[:]...)
	q.parts[0] = nil
	if err == nil && chanType == nvsp.ChannelData {
		q.ctr.txCopied.Add(1)
	}
	return err
}

// sendDirect sends the message GPA-direct (§4.5, packet type 9): the
// RNDIS header from the slot's header area and the frame from the parts'
// own memory when host-visible, else everything from a bounce buffer.
func (q *queue) sendDirect(s *txSlot, slot uint32, chanType uint32, head []byte, parts [][]byte, total int, txid uint64) error {
	nr, ok := 0, false
	if q.n.phys != nil && len(head) <= hdrSlotSize {
		nr, ok = q.directRanges(slot, head, parts)
	}
	bounced := false
	if !ok {
		b := q.n.bounce.get()
		if b == nil {
			return errBusyBuffers
		}
		q.slotMu.Lock()
		s.bounce = b
		q.slotMu.Unlock()
		mem := b.Bytes()
		size := len(head) + total
		if size > len(mem) {
			return fmt.Errorf("%w: %d-byte message exceeds the bounce buffer", ErrFrame, size)
		}
		at := copy(mem, head)
		for _, part := range parts {
			at += copy(mem[at:], part)
		}
		np := ring.PFNCount(uint32(size), 0)
		for i := range np {
			q.pfns[i] = b.PFN(i)
		}
		q.ranges[0] = ring.GPARange{ByteCount: uint32(size), PFNs: q.pfns[:np]}
		nr, bounced = 1, true
	}
	q.gpaHdr = ring.AppendGPADirectHeader(q.gpaHdr[:0], q.ranges[:nr])
	for i := range nr {
		q.ranges[i].PFNs = nil
	}
	nvsp.PutRNDISPacket(q.msg[:], chanType, nvsp.NoSection, 0)
	q.parts[0] = q.msg[:]
	var err error
	if q.hts != nil {
		err = q.hts.TrySendWithHeader(ring.TypeDataGPADirect, flagCompletionRequested, txid, q.gpaHdr, q.parts[:]...)
	} else {
		err = q.ch.SendWithHeader(q.cancelled, ring.TypeDataGPADirect, flagCompletionRequested, txid, q.gpaHdr, q.parts[:]...)
		if errors.Is(err, context.Canceled) {
			err = vmbus.ErrRingFull
		}
	}
	q.parts[0] = nil
	if err == nil && chanType == nvsp.ChannelData {
		if bounced {
			q.ctr.txBounced.Add(1)
		} else {
			q.ctr.txDirect.Add(1)
		}
	}
	return err
}

// directRanges describes head (copied into the slot's header area) and
// parts (in place) as GPA ranges, one per part. It fails when a part is
// not host-visible and contiguous or the ranges do not fit.
func (q *queue) directRanges(slot uint32, head []byte, parts [][]byte) (nr int, ok bool) {
	area := q.hdrPages.Mem[int(slot)*hdrSlotSize : int(slot+1)*hdrSlotSize]
	copy(area, head)
	off := int(slot) * hdrSlotSize
	q.pfns[0] = q.hdrPages.PFNAt(off / hv.PageSize)
	q.ranges[0] = ring.GPARange{ByteCount: uint32(len(head)), ByteOffset: uint32(off % hv.PageSize), PFNs: q.pfns[:1]}
	nr, np := 1, 1
	for _, p := range parts {
		if len(p) == 0 {
			continue
		}
		pa, ok := q.n.phys.PhysAddr(p)
		if !ok || nr == len(q.ranges) {
			return 0, false
		}
		boff := uint32(pa % hv.PageSize)
		cnt := ring.PFNCount(uint32(len(p)), boff)
		if np+cnt > len(q.pfns) {
			return 0, false
		}
		first := pa / hv.PageSize
		for i := range cnt {
			q.pfns[np+i] = first + uint64(i)
		}
		q.ranges[nr] = ring.GPARange{ByteCount: uint32(len(p)), ByteOffset: boff, PFNs: q.pfns[np : np+cnt]}
		nr++
		np += cnt
	}
	return nr, true
}
