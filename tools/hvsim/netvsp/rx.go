package netvsp

import (
	"errors"

	"github.com/gohv/gohv/tools/hvsim"
)

// deliver is the Backend's receiver: it queues one frame towards the guest
// on the queue RSS picks (the primary without RSS). It runs on the
// backend's goroutine and copies the frame. It never waits for the guest:
// frames the guest cannot take (its receive buffer or ring is full) beyond
// the queue's HoldFrames are dropped and counted. It waits only while the
// queue's own goroutine is behind, so that host scheduling loses nothing.
func (d *Device) deliver(frame []byte) {
	if !d.link.Load() {
		d.stats.rxDroppedLink.Add(1)
		return
	}
	d.mu.Lock()
	if d.primary == nil || d.rndis != rndisOperational || !d.passesFilterLocked(frame) {
		d.mu.Unlock()
		d.stats.rxDroppedFilter.Add(1)
		return
	}
	if len(frame) > int(d.ndisMTU) && !(len(frame) <= int(d.ndisMTU)+vlanTagLen && len(frame) >= ethHdrLen+vlanTagLen && be.Uint16(frame[12:]) == etherTypeVLAN) {
		d.mu.Unlock()
		d.stats.rxDroppedSize.Add(1)
		return
	}
	q := d.primary
	var hash uint32
	var hasHash bool
	if d.rssOn {
		if h, ok := rssHash(&d.rss.Key, frame); ok {
			hash, hasHash = h, true
			if x := d.queues[d.rss.Table[h%uint32(d.rss.Entries)]]; x != nil {
				q = x
			}
		}
	}
	d.mu.Unlock()
	if !q.enqueue(frame, hash, hasHash) {
		d.stats.rxDroppedFull.Add(1)
	}
}

// passesFilterLocked applies the packet filter (§7.9). The multicast list
// is empty (its maximum size is 0), so multicast needs all-multicast.
func (d *Device) passesFilterLocked(frame []byte) bool {
	f := d.filter
	if len(frame) < ethHdrLen || f == 0 {
		return false
	}
	if f&FilterPromiscuous != 0 {
		return true
	}
	dst := frame[:6]
	switch {
	case dst[0]&1 == 0:
		return f&FilterDirected != 0 && [6]byte(dst) == d.mac
	case [6]byte(dst) == [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}:
		return f&FilterBroadcast != 0
	default:
		return f&FilterAllMulticast != 0
	}
}

// enqueue copies frame into the queue's next free slot. When every slot
// is taken it drops the frame (false) if rxLoop waits for the guest (its
// receive buffer or ring is full) or the queue is closing; otherwise rxLoop
// is merely behind, and enqueue waits for it to free a slot: the host's own
// goroutine running late must not lose frames the guest has room for.
func (q *queue) enqueue(frame []byte, hash uint32, hasHash bool) bool {
	q.qmu.Lock()
	for q.fsize == len(q.frames) {
		if q.guestWait || q.ctx.Err() != nil {
			q.qmu.Unlock()
			return false
		}
		if q.room == nil {
			q.room = make(chan struct{})
		}
		room := q.room
		q.qmu.Unlock()
		select {
		case <-room:
		case <-q.ctx.Done():
		}
		q.qmu.Lock()
	}
	i := (q.fhead + q.fsize) % len(q.frames)
	q.flen[i] = copy(q.frames[i], frame)
	q.fhash[i], q.fhas[i] = hash, hasHash
	q.fsize++
	q.qmu.Unlock()
	q.kickRx()
	return true
}

// wakeRoomLocked wakes the deliverers waiting in enqueue (qmu held).
func (q *queue) wakeRoomLocked() {
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
}

// setGuestWait records whether rxLoop waits for the guest, waking the
// deliverers waiting for a slot so that they drop their frames instead.
func (q *queue) setGuestWait(on bool) {
	q.qmu.Lock()
	q.guestWait = on
	q.wakeRoomLocked()
	q.qmu.Unlock()
}

// rxLoop is the host→guest data goroutine: it moves queued frames into
// data sub-allocations, several per transfer-page packet when they have
// queued up (§7.5), and waits for the guest's completions when the receive
// buffer is full.
func (q *queue) rxLoop() {
	d := q.d
	defer q.setGuestWait(true) // nothing takes frames any more
	for {
		q.qmu.Lock()
		pending := q.fsize
		q.qmu.Unlock()
		if pending == 0 {
			select {
			case <-q.rxKick:
				continue
			case <-q.ctx.Done():
				return
			}
		}
		d.mu.Lock()
		offl, size := d.offl, d.msgSize
		d.mu.Unlock()
		d.rxMu.Lock()
		r := d.recv
		if r == nil { // revoked or gone: nothing can be delivered
			d.rxMu.Unlock()
			q.drop(pending)
			continue
		}
		var slot uint32
		got := 0
		if !d.faults.starving() {
			slot, got = r.alloc(min(pending, maxRangesPerPacket), false, q.idx)
		}
		if got == 0 {
			d.rxMu.Unlock()
			d.stats.rxBufferWaits.Add(1)
			q.setGuestWait(true)
			select {
			case <-q.rxKick:
				q.setGuestWait(false)
				continue
			case <-q.ctx.Done():
				return
			}
		}
		var bytes uint64
		hdr := q.tph
		for k := 0; k < got; k++ {
			i := (q.fhead + k) % len(q.frames)
			frame := q.frames[i][:q.flen[i]]
			csum := rxChecksum(frame, &offl)
			n := encodeRxPacketHeader(q.rxb, len(frame), csum, csum != 0, q.fhash[i], q.fhas[i])
			n += copy(q.rxb[n:], frame)
			off := r.sub(slot, k) * r.subSize
			if _, err := r.view.WriteAt(q.rxb[:n], int64(off)); err != nil {
				n = 0 // cannot happen: sub-allocations lie inside the view
			}
			le.PutUint32(hdr[offTPRanges+k*tpRangeSize+offTPRangeCount:], uint32(n))
			le.PutUint32(hdr[offTPRanges+k*tpRangeSize+offTPRangeOffset:], off)
			bytes += uint64(len(frame))
		}
		txid, id := r.txid(slot), r.id
		d.rxMu.Unlock()
		q.qmu.Lock()
		q.fhead = (q.fhead + got) % len(q.frames)
		q.fsize -= got
		q.wakeRoomLocked()
		q.qmu.Unlock()

		le.PutUint16(hdr[offTPSetID:], id)
		le.PutUint16(hdr[offTPReserved:], 0)
		le.PutUint32(hdr[offTPCount:], uint32(got))
		k := encodeSendRNDISPacket(q.rxnv[:], size, channelTypeData)
		err := q.ch.TrySendRaw(pktTransferPages, flagCompletionWanted, txid, hdr[:tpHdrSize+got*tpRangeSize], q.rxnv[:k])
		if errors.Is(err, hvsim.ErrRingFull) {
			// The guest has not read its ring: it is the one behind.
			q.setGuestWait(true)
			err = q.ch.SendRaw(q.ctx, pktTransferPages, flagCompletionWanted, txid, hdr[:tpHdrSize+got*tpRangeSize], q.rxnv[:k])
			q.setGuestWait(false)
		}
		if err != nil {
			d.rxMu.Lock()
			if d.recv == r {
				r.release(slot)
			}
			d.rxMu.Unlock()
			return
		}
		d.stats.rxPackets.Add(1)
		d.stats.rxFrames.Add(uint64(got))
		d.stats.rxBytes.Add(bytes)
	}
}

// drop discards n queued frames.
func (q *queue) drop(n int) {
	q.qmu.Lock()
	q.fhead = (q.fhead + n) % len(q.frames)
	q.fsize -= n
	q.wakeRoomLocked()
	q.qmu.Unlock()
	q.d.stats.rxDroppedFilter.Add(uint64(n))
}
