package hvsim

import (
	"errors"
	"fmt"

	"github.com/gohv/gohv/hv"
)

// errRingFull says the host→guest ring has no room for the packet.
var errRingFull = errors.New("hvsim: host→guest ring full")

// ring is the host's view of one ring of a channel's GPADL: a header page
// and data pages, reached by PFN like the real host does, so it works for
// non-contiguous GPADLs.
type ring struct {
	hdr  []byte
	data [][]byte
	size uint32
	// idx is the host's private copy of the index it owns (read index of
	// the guest→host ring, write index of the host→guest ring); the value
	// in shared memory is only ever published, never trusted back.
	idx uint32
}

func newRing(a *arena, pfns []uint64) (*ring, error) {
	if len(pfns) < 2 {
		return nil, fmt.Errorf("%w: ring of %d pages", ErrBadOpen, len(pfns))
	}
	r := &ring{hdr: a.page(pfns[0]), size: uint32(len(pfns)-1) * hv.PageSize}
	for _, p := range pfns[1:] {
		r.data = append(r.data, a.page(p))
	}
	return r, nil
}

// copyOut copies len(dst) bytes starting at data offset off, wrapping.
func (r *ring) copyOut(off uint32, dst []byte) {
	for len(dst) > 0 {
		off %= r.size
		pg, in := off/hv.PageSize, off%hv.PageSize
		n := copy(dst, r.data[pg][in:])
		dst = dst[n:]
		off += uint32(n)
	}
}

// copyIn copies src into the data area starting at off, wrapping.
func (r *ring) copyIn(off uint32, src []byte) {
	for len(src) > 0 {
		off %= r.size
		pg, in := off/hv.PageSize, off%hv.PageSize
		n := copy(r.data[pg][in:], src)
		src = src[n:]
		off += uint32(n)
	}
}

func (r *ring) validIndex(i uint32) bool { return i%8 == 0 && i < r.size }

// writable is free space by the arithmetic of docs/hyperv-protocol.md §4.6.
func (r *ring) writable(w, rd uint32) uint32 {
	if w >= rd {
		return r.size - (w - rd)
	}
	return rd - w
}

// Packet is one ring packet as the host received it. Header and Payload
// alias the buffer given to Recv.
type Packet struct {
	Type          uint16
	Flags         uint16
	TransactionID uint64
	// Header is the type-specific header between the 16-byte descriptor
	// and offset8*8 (docs/hyperv-protocol.md §4.5).
	Header []byte
	// Payload runs from offset8*8 to len8*8 (it includes the padding).
	Payload []byte
}

// recv takes the next packet out of the guest→host ring into buf. It
// returns (Packet{}, 0, nil) when the ring is empty, and the packet's
// byte length (descriptor to padding) when buf is too small.
// freedCrossed reports whether the guest's pending send size was crossed
// (docs/hyperv-protocol.md §4.6), i.e. the host must signal the guest.
func (r *ring) recv(buf []byte) (p Packet, n int, freedCrossed bool, err error) {
	w := load32(r.hdr, ringOffWrite)
	if !r.validIndex(w) {
		return p, 0, false, fmt.Errorf("%w: guest write index %#x (data size %#x)", ErrRing, w, r.size)
	}
	rd := r.idx
	if w == rd {
		return p, 0, false, nil
	}
	avail := r.size - r.writable(w, rd)
	var d [descSize]byte
	if avail < descSize+trailerSize {
		return p, 0, false, fmt.Errorf("%w: %d readable bytes, less than one packet", ErrRing, avail)
	}
	r.copyOut(rd, d[:])
	typ, off8, len8, flags := le.Uint16(d[0:]), le.Uint16(d[2:]), le.Uint16(d[4:]), le.Uint16(d[6:])
	total, off := uint32(len8)*8, uint32(off8)*8
	switch {
	case total < descSize || off < descSize || off > total:
		return p, 0, false, fmt.Errorf("%w: descriptor offset8 %d len8 %d", ErrRing, off8, len8)
	case total+trailerSize > avail:
		return p, 0, false, fmt.Errorf("%w: packet of %d bytes, %d readable", ErrRing, total, avail)
	case typ != pktDataInband && typ != pktTransferPgs && typ != pktGPADirect && typ != pktCompletion:
		// OpenVMM accepts only these (docs/hyperv-protocol.md §4.4).
		return p, 0, false, fmt.Errorf("%w: packet type %#x", ErrRing, typ)
	case flags&^pktFlagCompletionRequested != 0:
		return p, 0, false, fmt.Errorf("%w: packet flags %#x", ErrRing, flags)
	}
	if int(total) > len(buf) {
		return p, int(total), false, nil
	}
	r.copyOut(rd, buf[:total])
	before := r.writable(w, rd)
	r.idx = (rd + total + trailerSize) % r.size
	store32(r.hdr, ringOffRead, r.idx)
	after := r.writable(w, r.idx)
	if load32(r.hdr, ringOffFeatures)&ringFeaturePSS != 0 {
		// Signal when the free space comes to exceed the guest's pending
		// send size P, and only then: before ≤ P < after (docs/hyperv-protocol.md §4.6,
		// the Linux rule; OpenVMM's is the same with 8 bytes left out of
		// its free-space figure). A guest that asks for more than the ring
		// can ever have free is never signalled, as by a real host.
		if pss := load32(r.hdr, ringOffPending) &^ 7; pss != 0 && before <= pss && pss < after {
			freedCrossed = true
		}
	}
	p = Packet{Type: typ, Flags: flags, TransactionID: le.Uint64(d[8:]),
		Header: buf[descSize:off], Payload: buf[off:total]}
	return p, int(total), freedCrossed, nil
}

var zeroPad [8]byte

// send writes one packet into the host→guest ring. It returns whether the
// guest must be signalled (ring was empty and the guest's interrupt mask is
// 0, docs/hyperv-protocol.md §4.6), or errRingFull after storing the pending send size.
func (r *ring) send(typ, flags uint16, txid uint64, hdr, payload []byte) (signal bool, err error) {
	if len(hdr)%8 != 0 {
		return false, fmt.Errorf("hvsim: type-specific header of %d bytes is not a multiple of 8", len(hdr))
	}
	body := uint32(descSize + len(hdr) + len(payload))
	total := (body + 7) &^ 7
	need := total + trailerSize
	if total/8 > 0xFFFF || need >= r.size {
		return false, fmt.Errorf("hvsim: packet of %d bytes never fits a %d-byte ring", total, r.size)
	}
	rd := load32(r.hdr, ringOffRead)
	if !r.validIndex(rd) {
		return false, fmt.Errorf("%w: guest read index %#x (data size %#x)", ErrRing, rd, r.size)
	}
	w := r.idx
	if r.writable(w, rd) <= need {
		// Ask the guest to signal once the free space exceeds the packet,
		// trailer included (docs/hyperv-protocol.md §4.6, producer blocked).
		store32(r.hdr, ringOffPending, need)
		if r.writable(w, load32(r.hdr, ringOffRead)) <= need {
			return false, errRingFull
		}
		rd = load32(r.hdr, ringOffRead)
		if !r.validIndex(rd) {
			return false, fmt.Errorf("%w: guest read index %#x", ErrRing, rd)
		}
	}
	var d [descSize]byte
	le.PutUint16(d[0:], typ)
	le.PutUint16(d[2:], uint16((descSize+len(hdr))/8))
	le.PutUint16(d[4:], uint16(total/8))
	le.PutUint16(d[6:], flags)
	le.PutUint64(d[8:], txid)
	off := w
	r.copyIn(off, d[:])
	off += descSize
	r.copyIn(off, hdr)
	off += uint32(len(hdr))
	r.copyIn(off, payload)
	off += uint32(len(payload))
	r.copyIn(off, zeroPad[:total-body])
	var t [trailerSize]byte
	le.PutUint64(t[:], uint64(w)<<32)
	r.copyIn(w+total, t[:])
	r.idx = (w + need) % r.size
	if load32(r.hdr, ringOffPending) != 0 { // only the host writes it: skip the barrier when clear
		store32(r.hdr, ringOffPending, 0)
	}
	store32(r.hdr, ringOffWrite, r.idx)
	return load32(r.hdr, ringOffIntMask) == 0 && load32(r.hdr, ringOffRead) == w, nil
}
