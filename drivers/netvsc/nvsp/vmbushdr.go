package nvsp

import (
	"fmt"
	"math"
)

// The VMBus type-specific headers of docs/hyperv-protocol.md §4.5 as the
// NIC uses them. Offsets are from the start of the packet descriptor; the
// header handed to and from package vmbus starts at descriptor byte 16,
// so the constants below subtract descriptorSize.
const (
	descriptorSize = 16

	// Transfer pages (packet type 7).
	offXferSetID      = 16 - descriptorSize
	offXferRangeCount = 20 - descriptorSize
	offXferRanges     = 24 - descriptorSize
	xferRangeSize     = 8 // byte_count u32, byte_offset u32

	// GPA direct (packet type 9).
	offGPARangeCount = 20 - descriptorSize
	offGPARanges     = 24 - descriptorSize
	gpaRangeHead     = 8 // byte_count u32, byte_offset u32, then PFNs u64
)

// MaxTransferRanges is the most ranges a guest accepts in one
// transfer-page packet: 562 with RSC (§7.5).
const MaxTransferRanges = 562

// Range is one {byte_count, byte_offset} of a transfer-page packet: one
// RNDIS message inside the receive buffer (§4.5, §7.5).
type Range struct {
	Count, Offset uint32
}

// ParseTransferPages decodes a transfer-page header (the packet's Header,
// descriptor bytes 16 onward) into ranges and returns the transfer page
// set id and the number of ranges. Bytes 18–19 are reserved and ignored
// (§4.5). The range count must fit both the header and len(ranges).
func ParseTransferPages(hdr []byte, ranges []Range) (setID uint16, n int, err error) {
	if len(hdr) < offXferRanges {
		return 0, 0, fmt.Errorf("%w: transfer-page header of %d bytes", ErrShort, len(hdr))
	}
	setID = le.Uint16(hdr[offXferSetID:])
	count := le.Uint32(hdr[offXferRangeCount:])
	if count == 0 || uint64(count) > uint64(len(ranges)) {
		return setID, 0, fmt.Errorf("%w: %d transfer ranges (at most %d)", ErrInvalid, count, len(ranges))
	}
	if uint64(offXferRanges)+uint64(count)*xferRangeSize > uint64(len(hdr)) {
		return setID, 0, fmt.Errorf("%w: %d transfer ranges in a %d-byte header", ErrShort, count, len(hdr))
	}
	for i := range int(count) {
		p := hdr[offXferRanges+i*xferRangeSize:]
		ranges[i] = Range{Count: le.Uint32(p[0:]), Offset: le.Uint32(p[4:])}
	}
	return setID, int(count), nil
}

// PageRange is one GPA-direct range: Len bytes starting Offset bytes into
// page PFN and running on through the following pages of PFNs.
type PageRange struct {
	Offset, Len uint32
	PFNs        []uint64
}

// GPADirectSize returns the header bytes PutGPADirect writes for ranges.
func GPADirectSize(ranges []PageRange) int {
	n := offGPARanges
	for _, r := range ranges {
		n += gpaRangeHead + 8*len(r.PFNs)
	}
	return n
}

// PutGPADirect writes the GPA-direct header (§4.5) for ranges into hdr
// and returns the bytes written: a multiple of 8, as the descriptor's
// offset8 requires. Each range must list exactly the pages its offset and
// length touch.
func PutGPADirect(hdr []byte, ranges []PageRange) (int, error) {
	n := GPADirectSize(ranges)
	if n > len(hdr) || len(ranges) > math.MaxUint32 {
		return 0, fmt.Errorf("%w: GPA-direct header of %d bytes in %d", ErrInvalid, n, len(hdr))
	}
	clear(hdr[:offGPARanges])
	le.PutUint32(hdr[offGPARangeCount:], uint32(len(ranges)))
	at := offGPARanges
	for _, r := range ranges {
		pages := (uint64(r.Offset) + uint64(r.Len) + 4095) / 4096
		if r.Len == 0 || r.Offset >= 4096 || pages != uint64(len(r.PFNs)) {
			return 0, fmt.Errorf("%w: GPA range offset %d length %d with %d pages", ErrInvalid, r.Offset, r.Len, len(r.PFNs))
		}
		le.PutUint32(hdr[at:], r.Len)
		le.PutUint32(hdr[at+4:], r.Offset)
		at += gpaRangeHead
		for _, pfn := range r.PFNs {
			le.PutUint64(hdr[at:], pfn)
			at += 8
		}
	}
	return at, nil
}
