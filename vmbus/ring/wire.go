package ring

import (
	"encoding/binary"
	"strconv"
)

// Ring header page layout (docs/hyperv-protocol.md §4.2). Each ring (one per direction)
// starts with one 4096-byte header page followed by its data area.
const (
	// HeaderSize is the size of the ring header page that precedes the
	// data area (docs/hyperv-protocol.md §4.1, §4.2).
	HeaderSize = 4096

	// OffWriteIndex is the byte offset of the write index (u32, producer).
	OffWriteIndex = 0
	// OffReadIndex is the byte offset of the read index (u32, consumer).
	OffReadIndex = 4
	// OffInterruptMask is the byte offset of the interrupt mask (u32,
	// consumer; 1 = "do not signal me").
	OffInterruptMask = 8
	// OffPendingSendSize is the byte offset of the pending send size (u32,
	// producer; 0 = not waiting).
	OffPendingSendSize = 12
	// OffFeatureBits is the byte offset of the feature bits (u32).
	OffFeatureBits = 64

	// FeaturePendingSendSize is feature bit 0: the producer uses the
	// pending-send-size field (docs/hyperv-protocol.md §4.2).
	FeaturePendingSendSize = 1
)

// Packet framing in the data area (docs/hyperv-protocol.md §4.3).
const (
	// DescriptorSize is the size of the packet descriptor.
	DescriptorSize = 16
	// TrailerSize is the size of the trailer after each packet.
	TrailerSize = 8

	// MaxPacketSize is the largest packet (descriptor through padding,
	// excluding the trailer) that len8, a u16 count of 8-byte units, can
	// describe.
	MaxPacketSize = 0xFFFF * 8
)

// Descriptor field offsets (docs/hyperv-protocol.md §4.3).
const (
	offDescType   = 0
	offDescOff8   = 2
	offDescLen8   = 4
	offDescFlags  = 6
	offDescTxID   = 8
	minDescOffset = DescriptorSize / 8 // offset8 can never point into the descriptor
)

// PacketType is the descriptor's type field (docs/hyperv-protocol.md §4.4).
type PacketType uint16

// Packet types (docs/hyperv-protocol.md §4.4).
const (
	TypeSynch                 PacketType = 0x1
	TypeAddTransferPageSet    PacketType = 0x2
	TypeRemoveTransferPageSet PacketType = 0x3
	TypeEstablishGPADL        PacketType = 0x4
	TypeTeardownGPADL         PacketType = 0x5
	TypeDataInband            PacketType = 0x6
	TypeDataTransferPages     PacketType = 0x7
	TypeDataGPADL             PacketType = 0x8
	TypeDataGPADirect         PacketType = 0x9
	TypeCancel                PacketType = 0xA
	TypeCompletion            PacketType = 0xB
	TypeDataAdditionalPacket  PacketType = 0xC
	TypeDataAdditionalData    PacketType = 0xD
	maxKnownPacketType                   = TypeDataAdditionalData
	typeNamesOffset                      = TypeSynch
)

var typeNames = [...]string{
	"synch", "add-transfer-page-set", "remove-transfer-page-set",
	"establish-gpadl", "teardown-gpadl", "data-inband",
	"data-transfer-pages", "data-gpadl", "data-gpa-direct", "cancel",
	"completion", "data-additional-packet", "data-additional-data",
}

// String returns the reference's name of t.
func (t PacketType) String() string {
	if t >= typeNamesOffset && t <= maxKnownPacketType {
		return typeNames[t-typeNamesOffset]
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// FlagCompletionRequested is descriptor flag bit 0: the sender wants a
// completion packet echoing the transaction id (docs/hyperv-protocol.md §4.3, §4.4).
const FlagCompletionRequested uint16 = 1

// Descriptor is the 16-byte header of every ring packet (docs/hyperv-protocol.md §4.3).
// Offset8 and Len8 count 8-byte units from the start of the descriptor;
// Len8 excludes the trailer.
type Descriptor struct {
	Type          PacketType
	Offset8       uint16
	Len8          uint16
	Flags         uint16
	TransactionID uint64
}

// Encode writes d into b[:DescriptorSize]. It panics if b is shorter, like
// the encoding/binary helpers it uses.
func (d *Descriptor) Encode(b []byte) {
	_ = b[DescriptorSize-1]
	binary.LittleEndian.PutUint16(b[offDescType:], uint16(d.Type))
	binary.LittleEndian.PutUint16(b[offDescOff8:], d.Offset8)
	binary.LittleEndian.PutUint16(b[offDescLen8:], d.Len8)
	binary.LittleEndian.PutUint16(b[offDescFlags:], d.Flags)
	binary.LittleEndian.PutUint64(b[offDescTxID:], d.TransactionID)
}

// DecodeDescriptor decodes and checks a descriptor: b must hold at least
// DescriptorSize bytes, Offset8 must not point into the descriptor and
// must not exceed Len8. It does not check Len8 against any buffer: that
// is the reader's job. Errors match ErrCorrupt.
func DecodeDescriptor(b []byte) (Descriptor, error) {
	if len(b) < DescriptorSize {
		return Descriptor{}, &CorruptError{Reason: "descriptor truncated", Value: uint64(len(b))}
	}
	d := Descriptor{
		Type:          PacketType(binary.LittleEndian.Uint16(b[offDescType:])),
		Offset8:       binary.LittleEndian.Uint16(b[offDescOff8:]),
		Len8:          binary.LittleEndian.Uint16(b[offDescLen8:]),
		Flags:         binary.LittleEndian.Uint16(b[offDescFlags:]),
		TransactionID: binary.LittleEndian.Uint64(b[offDescTxID:]),
	}
	if err := d.check(); err != nil {
		return Descriptor{}, err
	}
	return d, nil
}

// check validates the descriptor's own fields. It returns *CorruptError
// so that the caller can hand it on without wrapping.
func (d *Descriptor) check() *CorruptError {
	if d.Offset8 < minDescOffset {
		return &CorruptError{Reason: "offset8 points into the descriptor", Value: uint64(d.Offset8)}
	}
	if d.Offset8 > d.Len8 {
		return &CorruptError{Reason: "offset8 beyond len8", Value: uint64(d.Offset8)}
	}
	return nil
}

// PacketSize returns the ring space a packet with a type-specific header of
// hdrLen bytes and payloadLen payload bytes occupies: descriptor, header,
// payload, padding to 8 bytes and the trailer (docs/hyperv-protocol.md §4.3).
func PacketSize(hdrLen, payloadLen int) int {
	return align8(DescriptorSize+hdrLen+payloadLen) + TrailerSize
}

// SpaceNeeded is the pending send size a blocked producer stores for such
// a packet (see Writer.SetPendingSend): its PacketSize, trailer included,
// and nothing more. A consumer signals once the free space exceeds the
// pending send size (Linux drivers/hv/ring_buffer.c; OpenVMM vmbus_ring
// says the same with a free-space figure that already leaves out the 8
// bytes that keep a full ring from looking empty), and the packet fits
// exactly when the free space exceeds PacketSize (docs/hyperv-protocol.md §4.6). Adding
// anything would make the largest packet a ring allows (4088 bytes in a
// 4096-byte data area) wait for a signal that never comes.
func SpaceNeeded(hdrLen, payloadLen int) int {
	return PacketSize(hdrLen, payloadLen)
}

func align8(n int) int { return (n + 7) &^ 7 }

// GPA direct header (packet type 9, docs/hyperv-protocol.md §4.5). Offsets here are from
// the start of the type-specific header, i.e. packet offset − 16.
const (
	gpaOffRangeCount = 4 // packet @20
	gpaRangesStart   = 8 // packet @24
	gpaRangeFixed    = 8 // byte_count u32, byte_offset u32
	pageSize         = 4096
)

// GPARange is one range of a GPA-direct packet: ByteCount bytes starting
// ByteOffset bytes into the first of PFNs, which must hold exactly
// ⌈(ByteOffset+ByteCount)/4096⌉ page numbers (docs/hyperv-protocol.md §4.5).
type GPARange struct {
	ByteCount  uint32
	ByteOffset uint32
	PFNs       []uint64
}

// PFNCount returns the number of page numbers a range of byteCount bytes at
// byteOffset spans (docs/hyperv-protocol.md §4.5).
func PFNCount(byteCount, byteOffset uint32) int {
	return int((uint64(byteOffset) + uint64(byteCount) + pageSize - 1) / pageSize)
}

// GPADirectHeaderSize returns the length of the type-specific header that
// AppendGPADirectHeader produces for ranges.
func GPADirectHeaderSize(ranges []GPARange) int {
	n := gpaRangesStart
	for i := range ranges {
		n += gpaRangeFixed + 8*len(ranges[i].PFNs)
	}
	return n
}

// AppendGPADirectHeader appends the GPA-direct type-specific header (the
// packet bytes from offset 16: reserved u32, range count u32, ranges) to
// dst. It does not allocate when dst has the capacity. The caller is
// responsible for each range's PFN count matching PFNCount; the result is
// always a multiple of 8 bytes long.
func AppendGPADirectHeader(dst []byte, ranges []GPARange) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(ranges)))
	for i := range ranges {
		r := &ranges[i]
		dst = binary.LittleEndian.AppendUint32(dst, r.ByteCount)
		dst = binary.LittleEndian.AppendUint32(dst, r.ByteOffset)
		for _, pfn := range r.PFNs {
			dst = binary.LittleEndian.AppendUint64(dst, pfn)
		}
	}
	return dst
}

// GPARangeView is one range of a parsed GPA-direct header. It refers to the
// parsed bytes and is valid only during the callback of ParseGPADirect.
type GPARangeView struct {
	ByteCount  uint32
	ByteOffset uint32
	pfns       []byte
}

// PFNCount returns the number of page numbers in the range.
func (v GPARangeView) PFNCount() int { return len(v.pfns) / 8 }

// PFN returns page number i (0 ≤ i < PFNCount()).
func (v GPARangeView) PFN(i int) uint64 { return binary.LittleEndian.Uint64(v.pfns[8*i:]) }

// ParseGPADirect walks the GPA-direct header hdr (the packet bytes from
// offset 16 up to offset8×8, e.g. Packet.Header) and calls fn for each
// range, stopping at fn's first error. It checks that the range count and
// every range's PFN list fit in hdr and that each PFN count equals
// ⌈(byte_offset+byte_count)/4096⌉ (docs/hyperv-protocol.md §4.5). Bytes after the last
// range are ignored. It does not allocate. Malformed input gives an error
// matching ErrCorrupt.
func ParseGPADirect(hdr []byte, fn func(r GPARangeView) error) error {
	if len(hdr) < gpaRangesStart {
		return &CorruptError{Reason: "gpa-direct header truncated", Value: uint64(len(hdr))}
	}
	count := binary.LittleEndian.Uint32(hdr[gpaOffRangeCount:])
	// Every range takes at least 8 bytes: reject impossible counts before
	// walking so a hostile count cannot make us loop.
	if uint64(count) > uint64(len(hdr)-gpaRangesStart)/gpaRangeFixed {
		return &CorruptError{Reason: "gpa-direct range count exceeds header", Value: uint64(count)}
	}
	rest := hdr[gpaRangesStart:]
	for i := uint32(0); i < count; i++ {
		if len(rest) < gpaRangeFixed {
			return &CorruptError{Reason: "gpa-direct range truncated", Value: uint64(i)}
		}
		v := GPARangeView{
			ByteCount:  binary.LittleEndian.Uint32(rest[0:]),
			ByteOffset: binary.LittleEndian.Uint32(rest[4:]),
		}
		rest = rest[gpaRangeFixed:]
		n := PFNCount(v.ByteCount, v.ByteOffset)
		if n > len(rest)/8 {
			return &CorruptError{Reason: "gpa-direct pfn list exceeds header", Value: uint64(i)}
		}
		v.pfns = rest[:8*n]
		rest = rest[8*n:]
		if err := fn(v); err != nil {
			return err
		}
	}
	return nil
}

// Transfer-page header (packet type 7, docs/hyperv-protocol.md §4.5). Offsets are from
// the start of the type-specific header (packet offset − 16). Bytes 2–3
// (packet @18–19) are reserved and may hold garbage: they are ignored.
const (
	tpOffSetID      = 0 // packet @16
	tpOffRangeCount = 4 // packet @20
	tpRangesStart   = 8 // packet @24
	tpRangeSize     = 8
)

// TransferRange is one {byte_count, byte_offset} range into a transfer
// page set (docs/hyperv-protocol.md §4.5).
type TransferRange struct {
	ByteCount  uint32
	ByteOffset uint32
}

// ParseTransferPages checks the transfer-page header hdr (the packet bytes
// from offset 16, e.g. Packet.Header) and returns its transfer page set id
// and range count; every index below count is then valid for
// TransferRangeAt. The ranges themselves are not checked against the set:
// the caller knows the set's size. Malformed input gives an error
// matching ErrCorrupt.
func ParseTransferPages(hdr []byte) (setID uint16, count int, err error) {
	if len(hdr) < tpRangesStart {
		return 0, 0, &CorruptError{Reason: "transfer-page header truncated", Value: uint64(len(hdr))}
	}
	n := binary.LittleEndian.Uint32(hdr[tpOffRangeCount:])
	if uint64(n) > uint64(len(hdr)-tpRangesStart)/tpRangeSize {
		return 0, 0, &CorruptError{Reason: "transfer-page range count exceeds header", Value: uint64(n)}
	}
	return binary.LittleEndian.Uint16(hdr[tpOffSetID:]), int(n), nil
}

// TransferRangeAt returns range i of a header that ParseTransferPages
// accepted with count > i. Other indices panic: that is a caller bug, not
// bad host data.
func TransferRangeAt(hdr []byte, i int) TransferRange {
	b := hdr[tpRangesStart+tpRangeSize*i:]
	return TransferRange{
		ByteCount:  binary.LittleEndian.Uint32(b[0:]),
		ByteOffset: binary.LittleEndian.Uint32(b[4:]),
	}
}

// AppendTransferPagesHeader appends a transfer-page header (set id,
// reserved, range count, ranges) to dst. It does not allocate when dst has
// the capacity.
func AppendTransferPagesHeader(dst []byte, setID uint16, ranges []TransferRange) []byte {
	dst = binary.LittleEndian.AppendUint16(dst, setID)
	dst = binary.LittleEndian.AppendUint16(dst, 0)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(ranges)))
	for _, r := range ranges {
		dst = binary.LittleEndian.AppendUint32(dst, r.ByteCount)
		dst = binary.LittleEndian.AppendUint32(dst, r.ByteOffset)
	}
	return dst
}
