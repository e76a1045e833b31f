package hvsim

import (
	"errors"
	"fmt"
	"io"

	"github.com/gohv/gohv/hv"
)

// This file gives host-side device models (tools/hvsim/storvsp and the
// like) access to guest memory the way a real host reaches it: through
// GPADLs the guest created (docs/hyperv-protocol.md §3.9), through GPA-direct page lists
// carried in packets (docs/hyperv-protocol.md §4.5), or by guest-physical address. Every
// access is bounds-checked against the arena; nothing here panics on a
// guest-supplied value.

// Errors of guest-memory access. They are returned (wrapped), not recorded
// as violations: the device that got one decides whether the guest broke a
// rule (RecordViolation).
var (
	// ErrGuestAddress says an address or PFN lies outside guest memory.
	ErrGuestAddress = errors.New("hvsim: address outside guest memory")
	// ErrGPADirect says a GPA-direct header is malformed.
	ErrGPADirect = errors.New("hvsim: malformed GPA-direct header")
	// ErrRangeBounds says an access runs past the end of a GPADL or page
	// range.
	ErrRangeBounds = errors.New("hvsim: access outside the buffer")
)

// GPADLView is the host's view of one GPADL: ByteCount bytes starting
// ByteOffset bytes into the first of its pages, reached page by page, so
// it works for GPADLs whose pages are not contiguous. It stays usable
// after the guest tears the GPADL down (the arena outlives it); a device
// that must honour teardown looks the GPADL up again.
type GPADLView struct {
	id     uint32
	pages  [][]byte
	offset int
	length int
}

// GPADL returns a view of the GPADL id the guest created (GPADL_CREATED
// with status 0) for this channel, its primary or any sub-channel of the
// same device. It takes the VMBus server's lock: call it from the device's
// own goroutines, never from Device.Open or Device.Close.
func (c *Channel) GPADL(id uint32) (*GPADLView, error) {
	s := c.h.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.gpadls[id]
	if g == nil || !g.created {
		return nil, fmt.Errorf("relid %d: GPADL %#x: %w", c.relid, id, ErrUnknownGPADL)
	}
	if g.relid != c.relid {
		mine, theirs := s.lookup(c.relid), s.lookup(g.relid)
		if mine == nil || theirs == nil || mine.dev != theirs.dev {
			return nil, fmt.Errorf("relid %d: GPADL %#x belongs to relid %d: %w", c.relid, id, g.relid, ErrUnknownGPADL)
		}
	}
	v := &GPADLView{id: id, offset: int(g.byteOffset), length: int(g.byteCount)}
	for _, p := range g.pfns {
		pg := c.h.arena.page(p)
		if pg == nil { // checked at creation; defensive
			return nil, fmt.Errorf("GPADL %#x PFN %#x: %w", id, p, ErrGuestAddress)
		}
		v.pages = append(v.pages, pg)
	}
	if uint64(v.offset)+uint64(v.length) > uint64(len(v.pages))*hv.PageSize {
		return nil, fmt.Errorf("GPADL %#x: %w", id, ErrBadGPADL)
	}
	return v, nil
}

// ID is the GPADL id.
func (v *GPADLView) ID() uint32 { return v.id }

// Len is the GPADL's byte count.
func (v *GPADLView) Len() int { return v.length }

// ReadAt copies len(p) bytes at off into p, like io.ReaderAt: a read that
// runs past Len copies what there is and returns io.EOF.
func (v *GPADLView) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("GPADL %#x offset %d: %w", v.id, off, ErrRangeBounds)
	}
	if off >= int64(v.length) {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := min(len(p), v.length-int(off))
	copyPages(p[:n], v.pages, v.offset+int(off), false)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt copies p into the GPADL at off, like io.WriterAt: a write that
// runs past Len writes nothing and returns an error wrapping
// ErrRangeBounds.
func (v *GPADLView) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(v.length) || len(p) > v.length-int(off) {
		return 0, fmt.Errorf("GPADL %#x: %d bytes at %d of %d: %w", v.id, len(p), off, v.length, ErrRangeBounds)
	}
	copyPages(p, v.pages, v.offset+int(off), true)
	return len(p), nil
}

// copyPages copies between b and the byte stream formed by pages, starting
// at off in that stream; toPages selects the direction. The caller checked
// the bounds.
func copyPages(b []byte, pages [][]byte, off int, toPages bool) {
	for len(b) > 0 {
		pg, in := off/hv.PageSize, off%hv.PageSize
		var n int
		if toPages {
			n = copy(pages[pg][in:], b)
		} else {
			n = copy(b, pages[pg][in:])
		}
		b = b[n:]
		off += n
	}
}

// GuestRead copies guest-physical memory at gpa into dst. The whole span
// must lie inside the arena.
func (h *Host) GuestRead(gpa uint64, dst []byte) error {
	return h.guestCopy(gpa, dst, false)
}

// GuestWrite copies src into guest-physical memory at gpa. The whole span
// must lie inside the arena; nothing is written otherwise.
func (h *Host) GuestWrite(gpa uint64, src []byte) error {
	return h.guestCopy(gpa, src, true)
}

func (h *Host) guestCopy(gpa uint64, b []byte, write bool) error {
	a := h.arena
	base := a.basePFN * hv.PageSize
	size := uint64(a.pages) * hv.PageSize
	if gpa < base || gpa-base > size || uint64(len(b)) > size-(gpa-base) {
		return fmt.Errorf("GPA %#x + %d bytes: %w", gpa, len(b), ErrGuestAddress)
	}
	off := gpa - base
	if write {
		copy(a.mem[off:], b)
	} else {
		copy(b, a.mem[off:])
	}
	return nil
}

// PageRange is one range of a GPA-direct packet (docs/hyperv-protocol.md §4.5):
// ByteCount bytes starting ByteOffset bytes into the first of PFNs.
type PageRange struct {
	ByteCount  uint32
	ByteOffset uint32
	PFNs       []uint64
}

// GPA-direct type-specific header, offsets from the start of that header
// (packet offset 16, docs/hyperv-protocol.md §4.5). Bytes 0–3 are reserved.
const (
	gpaDirectOffRangeCount = 4 // u32
	gpaDirectOffRanges     = 8 // first range

	// Within one range.
	gpaRangeOffByteCount  = 0 // u32
	gpaRangeOffByteOffset = 4 // u32
	gpaRangeOffPFNs       = 8 // u64 × ⌈(byte_offset + byte_count)/4096⌉
)

// ParseGPADirect decodes the type-specific header of a GPA-direct packet
// (type 9, docs/hyperv-protocol.md §4.5): the header as Packet.Header holds it, from the
// reserved word to the end of the last PFN. It checks that the range count
// is at least 1 (OpenVMM rejects 0), that each range has a non-zero byte
// count, a byte offset below 4096 and exactly the PFNs it needs inside the
// header, and that no bytes follow the last range (the descriptor's
// offset8 is exactly (24 + range bytes)/8). It does not check the PFNs
// against guest memory: ReadPageRange and WritePageRange do.
func ParseGPADirect(header []byte) ([]PageRange, error) {
	return ParseGPADirectInto(nil, nil, header)
}

// ParseGPADirectInto is ParseGPADirect reusing the storage of ranges and
// pfns (both truncated first): when their capacities suffice it allocates
// nothing. The returned ranges' PFNs alias pfns' array.
func ParseGPADirectInto(ranges []PageRange, pfns []uint64, header []byte) ([]PageRange, error) {
	ranges, pfns = ranges[:0], pfns[:0]
	if len(header) < gpaDirectOffRanges {
		return nil, fmt.Errorf("%w: header of %d bytes", ErrGPADirect, len(header))
	}
	count := le.Uint32(header[gpaDirectOffRangeCount:])
	if count == 0 {
		return nil, fmt.Errorf("%w: range count 0", ErrGPADirect)
	}
	// Each range takes at least 16 bytes: bound the count before looping.
	if uint64(count)*(gpaRangeOffPFNs+8) > uint64(len(header)-gpaDirectOffRanges) {
		return nil, fmt.Errorf("%w: %d ranges in %d bytes", ErrGPADirect, count, len(header))
	}
	// First pass: validate and count PFNs so pfns grows at most once.
	off := gpaDirectOffRanges
	total := 0
	for i := uint32(0); i < count; i++ {
		n, err := gpaRangePages(header, off, i)
		if err != nil {
			return nil, err
		}
		total += n
		off += gpaRangeOffPFNs + 8*n
	}
	if off != len(header) {
		return nil, fmt.Errorf("%w: %d bytes after the last range", ErrGPADirect, len(header)-off)
	}
	if cap(pfns) < total {
		pfns = make([]uint64, 0, total)
	}
	off = gpaDirectOffRanges
	for i := uint32(0); i < count; i++ {
		n, _ := gpaRangePages(header, off, i)
		start := len(pfns)
		for j := 0; j < n; j++ {
			pfns = append(pfns, le.Uint64(header[off+gpaRangeOffPFNs+8*j:]))
		}
		ranges = append(ranges, PageRange{
			ByteCount:  le.Uint32(header[off+gpaRangeOffByteCount:]),
			ByteOffset: le.Uint32(header[off+gpaRangeOffByteOffset:]),
			PFNs:       pfns[start:len(pfns):len(pfns)],
		})
		off += gpaRangeOffPFNs + 8*n
	}
	return ranges, nil
}

// gpaRangePages validates range i at off and returns its PFN count.
func gpaRangePages(header []byte, off int, i uint32) (int, error) {
	if len(header)-off < gpaRangeOffPFNs {
		return 0, fmt.Errorf("%w: range %d truncated", ErrGPADirect, i)
	}
	bc := le.Uint32(header[off+gpaRangeOffByteCount:])
	bo := le.Uint32(header[off+gpaRangeOffByteOffset:])
	switch {
	case bc == 0:
		return 0, fmt.Errorf("%w: range %d has byte count 0", ErrGPADirect, i)
	case bo >= hv.PageSize:
		return 0, fmt.Errorf("%w: range %d byte offset %d", ErrGPADirect, i, bo)
	}
	n := (uint64(bo) + uint64(bc) + hv.PageSize - 1) / hv.PageSize
	if n > uint64(len(header)-off-gpaRangeOffPFNs)/8 {
		return 0, fmt.Errorf("%w: range %d needs %d PFNs, header holds %d", ErrGPADirect, i, n, (len(header)-off-gpaRangeOffPFNs)/8)
	}
	return int(n), nil
}

// Len is the range's byte count.
func (r PageRange) Len() int { return int(r.ByteCount) }

// ReadPageRange copies len(dst) bytes from offset off of range r (off 0 is
// ByteOffset bytes into r.PFNs[0]) into dst. Every page touched must be
// guest memory and the span must lie within ByteCount.
func (h *Host) ReadPageRange(r PageRange, off int, dst []byte) error {
	return h.pageRangeCopy(r, off, dst, false)
}

// WritePageRange copies src into range r at offset off; see ReadPageRange.
// Nothing is written when any page of the span is outside guest memory.
func (h *Host) WritePageRange(r PageRange, off int, src []byte) error {
	return h.pageRangeCopy(r, off, src, true)
}

// PageRangeBytes returns the n bytes at offset off of range r (see
// ReadPageRange) as a slice of guest memory itself, for a device that
// moves data straight between guest memory and its backing store, as a
// real host's DMA does, instead of through a buffer of its own. ok is
// false, with a nil error, when the span's pages are not consecutive in
// guest memory: the device then copies with ReadPageRange and
// WritePageRange. Errors as for ReadPageRange. The guest may change the
// memory at any time: a device never validates what it reads there.
func (h *Host) PageRangeBytes(r PageRange, off, n int) (b []byte, ok bool, err error) {
	first, last, err := h.pageRangeSpan(r, off, n)
	if err != nil || n == 0 {
		return nil, false, err
	}
	for i := first; i < last; i++ {
		if r.PFNs[i+1] != r.PFNs[i]+1 {
			return nil, false, nil
		}
	}
	a := h.arena
	start := int(r.PFNs[first]-a.basePFN)*hv.PageSize + (int(r.ByteOffset)+off)%hv.PageSize
	return a.mem[start : start+n : start+n], true, nil
}

// pageRangeSpan checks n bytes at off of r against the range and guest
// memory and returns the indices of the first and last PFN they touch
// (both 0 when n is 0).
func (h *Host) pageRangeSpan(r PageRange, off, n int) (first, last int, err error) {
	if off < 0 || n < 0 || off > int(r.ByteCount) || n > int(r.ByteCount)-off {
		return 0, 0, fmt.Errorf("%d bytes at %d of a %d-byte range: %w", n, off, r.ByteCount, ErrRangeBounds)
	}
	if n == 0 {
		return 0, 0, nil
	}
	start := int(r.ByteOffset) + off
	first, last = start/hv.PageSize, (start+n-1)/hv.PageSize
	if r.ByteOffset >= hv.PageSize || last >= len(r.PFNs) {
		return 0, 0, fmt.Errorf("range of %d PFNs at offset %d: %w", len(r.PFNs), r.ByteOffset, ErrRangeBounds)
	}
	for _, p := range r.PFNs[first : last+1] {
		if !h.arena.contains(p) {
			return 0, 0, fmt.Errorf("PFN %#x: %w", p, ErrGuestAddress)
		}
	}
	return first, last, nil
}

func (h *Host) pageRangeCopy(r PageRange, off int, b []byte, write bool) error {
	if _, _, err := h.pageRangeSpan(r, off, len(b)); err != nil || len(b) == 0 {
		return err
	}
	start := int(r.ByteOffset) + off
	for len(b) > 0 {
		pg, in := start/hv.PageSize, start%hv.PageSize
		page := h.arena.page(r.PFNs[pg])
		var n int
		if write {
			n = copy(page[in:], b)
		} else {
			n = copy(b, page[in:])
		}
		b = b[n:]
		start += n
	}
	return nil
}

// Host returns the host the channel belongs to.
func (c *Channel) Host() *Host { return c.h }

// RecordViolation records a device-level protocol violation (a malformed
// or out-of-protocol guest packet) exactly like the VMBus server records
// its own: it counts in ViolationCount, appears in Violations, reaches
// Config.OnViolation and panics under Config.FailFast. Devices wrap one of
// their own sentinel errors so tests can tell violations apart.
func (h *Host) RecordViolation(err error) { h.violate(err) }
