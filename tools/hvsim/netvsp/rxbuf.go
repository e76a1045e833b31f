package netvsp

import "github.com/gohv/gohv/tools/hvsim"

// recvBuffer is the guest's receive buffer (docs/hyperv-protocol.md §7.4
// step 4, §7.5) as the host manages it: count sub-allocations of subSize
// bytes, the first ctrlReserve of them kept for control messages (RNDIS
// responses and status indications) so that a flood of data cannot starve
// them. Sub-allocations are handed out in batches: one batch is one
// transfer-page packet, and it is freed only by the guest's completion
// carrying the batch's transaction id.
//
// Transaction ids are generation<<32 | slot, so a stale or forged id is
// recognised. All storage is allocated when the buffer is set up; the hot
// path allocates nothing. The Device's rxMu guards every field.
type recvBuffer struct {
	id      uint16
	gpadl   uint32
	view    *hvsim.GPADLView
	subSize uint32
	count   uint32

	dataFree []uint32 // stack of free data sub-allocations
	ctrlFree []uint32 // stack of free control sub-allocations
	next     []uint32 // per sub-allocation: the next one in its batch
	slots    []batch
	freeSlot []uint32
}

// batch is one outstanding transfer-page packet.
type batch struct {
	gen   uint32
	inUse bool
	ctrl  bool
	queue int    // sub-channel index it was sent on
	head  uint32 // first sub-allocation; chained through next
	n     int
}

const (
	noSub       = ^uint32(0)
	ctrlReserve = 16 // control sub-allocations (OpenVMM reserves 16 too)
)

func newRecvBuffer(id uint16, gpadl uint32, view *hvsim.GPADLView, subSize uint32) *recvBuffer {
	r := newAccounting(uint32(view.Len())/subSize, subSize)
	r.id, r.gpadl, r.view = id, gpadl, view
	return r
}

// newAccounting sets up the sub-allocation bookkeeping alone.
func newAccounting(count, subSize uint32) *recvBuffer {
	r := &recvBuffer{subSize: subSize, count: count,
		next: make([]uint32, count), slots: make([]batch, count),
		freeSlot: make([]uint32, 0, count),
		ctrlFree: make([]uint32, 0, ctrlReserve), dataFree: make([]uint32, 0, count)}
	for i := count; i > 0; i-- {
		s := i - 1
		if s < ctrlReserve {
			r.ctrlFree = append(r.ctrlFree, s)
		} else {
			r.dataFree = append(r.dataFree, s)
		}
		r.freeSlot = append(r.freeSlot, s)
	}
	return r
}

// alloc takes up to n sub-allocations (from the control reserve when ctrl)
// into a new batch for queue. It returns the batch slot and how many it
// got; got == 0 means none is free.
func (r *recvBuffer) alloc(n int, ctrl bool, queue int) (slot uint32, got int) {
	free := &r.dataFree
	if ctrl {
		free = &r.ctrlFree
	}
	if len(*free) == 0 || len(r.freeSlot) == 0 || n <= 0 {
		return 0, 0
	}
	slot = r.freeSlot[len(r.freeSlot)-1]
	r.freeSlot = r.freeSlot[:len(r.freeSlot)-1]
	b := &r.slots[slot]
	b.gen++
	b.inUse, b.ctrl, b.queue, b.head, b.n = true, ctrl, queue, noSub, 0
	prev := noSub
	for got < n && len(*free) > 0 {
		s := (*free)[len(*free)-1]
		*free = (*free)[:len(*free)-1]
		r.next[s] = noSub
		if prev == noSub {
			b.head = s
		} else {
			r.next[prev] = s
		}
		prev = s
		got++
	}
	b.n = got
	return slot, got
}

// subs returns the i-th sub-allocation of batch slot (walking the chain).
func (r *recvBuffer) sub(slot uint32, i int) uint32 {
	s := r.slots[slot].head
	for ; i > 0; i-- {
		s = r.next[s]
	}
	return s
}

func (r *recvBuffer) txid(slot uint32) uint64 {
	return uint64(r.slots[slot].gen)<<32 | uint64(slot)
}

// lookup finds the outstanding batch of a guest completion's transaction
// id; ok is false for an id the host never sent or already completed.
func (r *recvBuffer) lookup(txid uint64) (slot uint32, ok bool) {
	slot = uint32(txid)
	if slot >= uint32(len(r.slots)) {
		return 0, false
	}
	b := &r.slots[slot]
	return slot, b.inUse && b.gen == uint32(txid>>32)
}

// known reports whether txid names an outstanding batch.
func (r *recvBuffer) known(txid uint64) bool {
	_, ok := r.lookup(txid)
	return ok
}

// release frees batch slot and its sub-allocations.
func (r *recvBuffer) release(slot uint32) {
	b := &r.slots[slot]
	for s, i := b.head, 0; i < b.n; s, i = r.next[s], i+1 {
		if s < ctrlReserve {
			r.ctrlFree = append(r.ctrlFree, s)
		} else {
			r.dataFree = append(r.dataFree, s)
		}
	}
	b.inUse, b.n, b.head = false, 0, noSub
	r.freeSlot = append(r.freeSlot, slot)
}

// releaseQueue frees every batch sent on queue (its channel closed).
func (r *recvBuffer) releaseQueue(queue int) {
	for i := range r.slots {
		if r.slots[i].inUse && r.slots[i].queue == queue {
			r.release(uint32(i))
		}
	}
}

// outstanding counts the batches the guest has not completed.
func (r *recvBuffer) outstanding() int { return len(r.slots) - len(r.freeSlot) }
