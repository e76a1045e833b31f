package ring

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// shared is one ring's memory: the header fields as atomic words and the
// data area.
type shared struct {
	writeIndex, readIndex, interruptMask, pendingSend, features *uint32

	data []byte
	size uint32 // len(data); a multiple of 4096, so of 8
}

func newShared(mem []byte) (shared, error) {
	if len(mem) < 2*HeaderSize || len(mem)%HeaderSize != 0 {
		return shared{}, fmt.Errorf("%w: length %d is not a multiple of %d of at least two pages", ErrMemory, len(mem), HeaderSize)
	}
	// Indices are u32 byte offsets (docs/hyperv-protocol.md §4.2).
	if uint64(len(mem)-HeaderSize) > 1<<31 {
		return shared{}, fmt.Errorf("%w: data area of %d bytes too large for u32 indices", ErrMemory, len(mem)-HeaderSize)
	}
	if uintptr(unsafe.Pointer(&mem[0]))%8 != 0 {
		return shared{}, fmt.Errorf("%w: not 8-byte aligned", ErrMemory)
	}
	return shared{
		writeIndex:    word(mem, OffWriteIndex),
		readIndex:     word(mem, OffReadIndex),
		interruptMask: word(mem, OffInterruptMask),
		pendingSend:   word(mem, OffPendingSendSize),
		features:      word(mem, OffFeatureBits),
		data:          mem[HeaderSize:],
		size:          uint32(len(mem) - HeaderSize),
	}, nil
}

// word returns the 4-byte header field at off for atomic access. The
// offsets are multiples of 4 and mem is 8-byte aligned (checked above).
func word(mem []byte, off int) *uint32 {
	return (*uint32)(unsafe.Pointer(&mem[off]))
}

// load reads a shared index once and reports whether it is valid:
// a multiple of 8 below the data size (docs/hyperv-protocol.md §4.6).
func (s *shared) load(p *uint32) (uint32, bool) {
	v := atomic.LoadUint32(p)
	return v, v%8 == 0 && v < s.size
}

// writable is the producer's free space for write index w and read index r
// (docs/hyperv-protocol.md §4.6).
func (s *shared) writable(w, r uint32) uint32 {
	if w >= r {
		return s.size - (w - r)
	}
	return r - w
}

// readable is the number of bytes between r and w (docs/hyperv-protocol.md §4.6).
func (s *shared) readable(w, r uint32) uint32 {
	if w >= r {
		return w - r
	}
	return s.size - r + w
}

// advance moves index i by n bytes (n < size), wrapping.
func (s *shared) advance(i uint32, n int) uint32 {
	i += uint32(n)
	if i >= s.size {
		i -= s.size
	}
	return i
}

// put copies src into the data area at at, wrapping, and returns the index
// after it. len(src) < size.
func (s *shared) put(at uint32, src []byte) uint32 {
	n := copy(s.data[at:], src)
	if n < len(src) {
		copy(s.data, src[n:])
	}
	return s.advance(at, len(src))
}

// get copies len(dst) bytes from the data area at at into dst, wrapping.
func (s *shared) get(at uint32, dst []byte) {
	n := copy(dst, s.data[at:])
	if n < len(dst) {
		copy(dst[n:], s.data)
	}
}

// Stats are cumulative counters of one Writer or Reader, for diagnosis.
// Bytes counts ring bytes (descriptor through trailer). The counters are
// plain fields updated by the owner: an atomic add per packet would cost
// more than copying a small packet.
type Stats struct {
	Packets uint64
	Bytes   uint64
	// Signals counts operations that returned "signal the other side".
	Signals uint64
	// Full counts ErrFull results (Writer only).
	Full uint64
	// Corrupt counts CorruptErrors found.
	Corrupt uint64
}

var zeros [8]byte

// Writer is the producer of one ring (the guest's outbound ring). It is
// not safe for concurrent use: the caller serialises writers.
type Writer struct {
	s     shared
	write uint32 // our write index, as last published
	batch Batch
	stats Stats
}

// NewWriter returns the producer of the ring in mem (header page + data
// area; len a multiple of 4096, at least two pages, 8-byte aligned). It
// takes over the write index found in mem (0 for a fresh ring) and sets
// the pending-send-size feature bit, as Linux does for both rings
// (docs/hyperv-protocol.md §4.2).
func NewWriter(mem []byte) (*Writer, error) {
	s, err := newShared(mem)
	if err != nil {
		return nil, err
	}
	w, ok := s.load(s.writeIndex)
	if !ok {
		return nil, fmt.Errorf("%w: write index %d invalid", ErrMemory, w)
	}
	atomic.OrUint32(s.features, FeaturePendingSendSize)
	return &Writer{s: s, write: w}, nil
}

// packetLen returns the packet length (descriptor through padding,
// without trailer) for hdr and parts, or an error if it cannot be
// described or can never fit.
func (s *shared) packetLen(hdr []byte, parts [][]byte) (int, error) {
	if len(hdr)%8 != 0 {
		return 0, ErrUnalignedHeader
	}
	n := DescriptorSize + len(hdr)
	for _, p := range parts {
		n += len(p)
	}
	n = align8(n)
	// Could never fit: writable ≤ size and must exceed n + trailer.
	if n > MaxPacketSize || uint64(n)+TrailerSize >= uint64(s.size) {
		return 0, ErrTooLarge
	}
	return n, nil
}

// writePacket writes a complete packet of pktLen bytes plus trailer at at
// and returns the index after the trailer. Space was checked.
func (s *shared) writePacket(at uint32, pktLen int, typ PacketType, flags uint16, txid uint64, hdr []byte, parts [][]byte) uint32 {
	var desc [DescriptorSize]byte
	d := Descriptor{
		Type:          typ,
		Offset8:       uint16((DescriptorSize + len(hdr)) / 8),
		Len8:          uint16(pktLen / 8),
		Flags:         flags,
		TransactionID: txid,
	}
	total := pktLen + TrailerSize
	if int(at)+total <= len(s.data) {
		// Fast path, no wrap: one bounds check, no temporaries.
		p := s.data[at : int(at)+total]
		d.Encode(p)
		o := DescriptorSize + copy(p[DescriptorSize:], hdr)
		for _, part := range parts {
			o += copy(p[o:], part)
		}
		clear(p[o:pktLen])
		binary.LittleEndian.PutUint64(p[pktLen:], uint64(at)<<32)
		return s.advance(at, total)
	}
	d.Encode(desc[:])
	i := s.put(at, desc[:])
	i = s.put(i, hdr)
	n := DescriptorSize + len(hdr)
	for _, p := range parts {
		i = s.put(i, p)
		n += len(p)
	}
	i = s.put(i, zeros[:pktLen-n])
	// Trailer: the packet's start offset in the upper half (docs/hyperv-protocol.md §4.3).
	var tr [TrailerSize]byte
	binary.LittleEndian.PutUint64(tr[:], uint64(at)<<32)
	return s.put(i, tr[:])
}

// reserve checks that a packet of pktLen bytes fits at index at and returns
// nil, ErrFull or a *CorruptError for an invalid read index.
func (w *Writer) reserve(at uint32, pktLen int) error {
	r, ok := w.s.load(w.s.readIndex)
	if !ok {
		w.stats.Corrupt++
		return &CorruptError{Reason: "read index invalid", Value: uint64(r)}
	}
	// Strictly greater: filling to w == r would read as empty (§4.6).
	if w.s.writable(at, r) <= uint32(pktLen+TrailerSize) {
		w.stats.Full++
		return ErrFull
	}
	return nil
}

// publish makes everything up to index w visible to the consumer and
// reports whether it must be signalled, given the write index old from
// before the data was written (docs/hyperv-protocol.md §4.6).
func (w *Writer) publish(next, old uint32) bool {
	w.write = next
	// Sequentially consistent store: a full barrier before the loads below.
	atomic.StoreUint32(w.s.writeIndex, next)
	if atomic.LoadUint32(w.s.interruptMask) != 0 {
		return false
	}
	if atomic.LoadUint32(w.s.readIndex) != old {
		return false
	}
	w.stats.Signals++
	return true
}

// TryWrite writes one packet: descriptor (type typ, flags, transaction id
// txid), the type-specific header hdr (length a multiple of 8), the
// concatenation of parts as payload, zero padding and the trailer, then
// publishes the write index. signal reports whether the consumer must be
// signalled (docs/hyperv-protocol.md §4.6). Errors: ErrFull (nothing written),
// ErrTooLarge, ErrUnalignedHeader, ErrBatchOpen, or a *CorruptError for an
// invalid read index. It does not allocate.
func (w *Writer) TryWrite(typ PacketType, flags uint16, txid uint64, hdr []byte, parts ...[]byte) (signal bool, err error) {
	if w.batch.open {
		return false, ErrBatchOpen
	}
	n, err := w.s.packetLen(hdr, parts)
	if err != nil {
		return false, err
	}
	if err := w.reserve(w.write, n); err != nil {
		return false, err
	}
	old := w.write
	next := w.s.writePacket(old, n, typ, flags, txid, hdr, parts)
	w.stats.Packets++
	w.stats.Bytes += uint64(n + TrailerSize)
	return w.publish(next, old), nil
}

// Writable returns the producer's free bytes (docs/hyperv-protocol.md §4.6) at the
// published write index; a packet of PacketSize T fits if Writable() > T.
// It returns 0 if the read index is invalid.
func (w *Writer) Writable() int {
	r, ok := w.s.load(w.s.readIndex)
	if !ok {
		return 0
	}
	return int(w.s.writable(w.write, r))
}

// SetPendingSend stores n, rounded up to a multiple of 8, as the pending
// send size: the free space the blocked producer waits for (0 clears it).
// Pass SpaceNeeded for the packet that did not fit, then re-check with
// TryWrite before sleeping (docs/hyperv-protocol.md §4.6), and clear it once written.
func (w *Writer) SetPendingSend(n int) {
	if n < 0 {
		n = 0
	}
	if n > int(w.s.size) {
		n = int(w.s.size)
	}
	atomic.StoreUint32(w.s.pendingSend, uint32(align8(n)))
}

// Stats returns the writer's counters. Like every Writer method it must
// be serialised with the writes (e.g. under the caller's send lock).
func (w *Writer) Stats() Stats { return w.stats }

// Batch is a group of packets published with one index update and at most
// one signal. Obtain it from Writer.Batch; it belongs to its Writer and is
// reused by the next call to Batch.
type Batch struct {
	w          *Writer
	start, pos uint32
	packets    uint64
	bytes      uint64
	open       bool
}

// Batch opens a batch on w, discarding any batch still open. Until Commit
// or Abort, TryWrite returns ErrBatchOpen.
func (w *Writer) Batch() *Batch {
	w.batch = Batch{w: w, start: w.write, pos: w.write, open: true}
	return &w.batch
}

// Add writes a packet like TryWrite, without publishing it. On ErrFull the
// batch keeps the packets added so far; Commit them, or Abort.
func (b *Batch) Add(typ PacketType, flags uint16, txid uint64, hdr []byte, parts ...[]byte) error {
	if !b.open {
		return ErrBatchClosed
	}
	n, err := b.w.s.packetLen(hdr, parts)
	if err != nil {
		return err
	}
	if err := b.w.reserve(b.pos, n); err != nil {
		return err
	}
	b.pos = b.w.s.writePacket(b.pos, n, typ, flags, txid, hdr, parts)
	b.packets++
	b.bytes += uint64(n + TrailerSize)
	return nil
}

// Len returns the number of packets added to the batch.
func (b *Batch) Len() int { return int(b.packets) }

// Commit publishes the batch's packets and reports whether the consumer
// must be signalled, by the producer rule applied to the write index from
// before the batch (docs/hyperv-protocol.md §4.6). An empty batch publishes nothing and
// returns false. The batch is closed afterwards.
func (b *Batch) Commit() (signal bool) {
	if !b.open {
		return false
	}
	b.open = false
	if b.packets == 0 {
		return false
	}
	b.w.stats.Packets += b.packets
	b.w.stats.Bytes += b.bytes
	return b.w.publish(b.pos, b.start)
}

// Abort closes the batch without publishing: its packets are never seen
// by the consumer and their space is reused.
func (b *Batch) Abort() { b.open = false }

// Packet is one packet read from a ring. Header and Payload point into the
// buffer passed to Reader.Read.
type Packet struct {
	Type          PacketType
	Flags         uint16
	TransactionID uint64
	// Header is the type-specific header: bytes 16 .. offset8×8.
	Header []byte
	// Payload is bytes offset8×8 .. len8×8, including protocol padding.
	Payload []byte
}

// Reader is the consumer of one ring (the guest's inbound ring). It is not
// safe for concurrent use.
type Reader struct {
	s         shared
	pos       uint32 // next packet, read but not necessarily published
	published uint32 // read index as last published
	err       *CorruptError
	stats     Stats
}

// NewReader returns the consumer of the ring in mem (same requirements as
// NewWriter). It takes over the read index found in mem (0 for a fresh
// ring) and sets the pending-send-size feature bit, as Linux does for both
// rings (docs/hyperv-protocol.md §4.2).
func NewReader(mem []byte) (*Reader, error) {
	s, err := newShared(mem)
	if err != nil {
		return nil, err
	}
	r, ok := s.load(s.readIndex)
	if !ok {
		return nil, fmt.Errorf("%w: read index %d invalid", ErrMemory, r)
	}
	atomic.OrUint32(s.features, FeaturePendingSendSize)
	return &Reader{s: s, pos: r, published: r}, nil
}

func (r *Reader) fail(e *CorruptError) error {
	r.err = e
	r.stats.Corrupt++
	return e
}

// next copies out and validates the descriptor at the read position and
// returns it with the packet length (without trailer).
func (r *Reader) next() (Descriptor, int, error) {
	if r.err != nil {
		return Descriptor{}, 0, r.err
	}
	w, ok := r.s.load(r.s.writeIndex)
	if !ok {
		return Descriptor{}, 0, r.fail(&CorruptError{Reason: "write index invalid", Value: uint64(w)})
	}
	avail := r.s.readable(w, r.pos)
	if avail == 0 {
		return Descriptor{}, 0, ErrEmpty
	}
	if avail < DescriptorSize+TrailerSize {
		return Descriptor{}, 0, r.fail(&CorruptError{Reason: "readable bytes shorter than a packet", Value: uint64(avail)})
	}
	var raw [DescriptorSize]byte
	if int(r.pos)+DescriptorSize <= len(r.s.data) {
		raw = [DescriptorSize]byte(r.s.data[r.pos:]) // two loads, no call
	} else {
		r.s.get(r.pos, raw[:])
	}
	d := Descriptor{
		Type:          PacketType(binary.LittleEndian.Uint16(raw[offDescType:])),
		Offset8:       binary.LittleEndian.Uint16(raw[offDescOff8:]),
		Len8:          binary.LittleEndian.Uint16(raw[offDescLen8:]),
		Flags:         binary.LittleEndian.Uint16(raw[offDescFlags:]),
		TransactionID: binary.LittleEndian.Uint64(raw[offDescTxID:]),
	}
	if e := d.check(); e != nil {
		return Descriptor{}, 0, r.fail(e)
	}
	n := int(d.Len8) * 8
	if uint32(n) > avail-TrailerSize {
		return Descriptor{}, 0, r.fail(&CorruptError{Reason: "len8 exceeds readable bytes", Value: uint64(d.Len8)})
	}
	return d, n, nil
}

// Read copies the next packet (descriptor through padding; the trailer is
// skipped) into buf and returns it; Header and Payload alias buf. The read
// position advances but is not published until Commit. Errors: ErrEmpty;
// *BufferTooSmallError (nothing consumed); *CorruptError, after which
// every call returns the same error. It does not allocate except for a
// *BufferTooSmallError.
func (r *Reader) Read(buf []byte) (Packet, error) {
	d, n, err := r.next()
	if err != nil {
		return Packet{}, err
	}
	if len(buf) < n {
		return Packet{}, &BufferTooSmallError{Need: n}
	}
	// The descriptor comes from the validated private copy, not from a
	// second read of shared memory.
	d.Encode(buf)
	r.s.get(r.s.advance(r.pos, DescriptorSize), buf[DescriptorSize:n])
	r.pos = r.s.advance(r.pos, n+TrailerSize)
	r.stats.Packets++
	r.stats.Bytes += uint64(n + TrailerSize)
	off := int(d.Offset8) * 8
	return Packet{
		Type:          d.Type,
		Flags:         d.Flags,
		TransactionID: d.TransactionID,
		Header:        buf[DescriptorSize:off:off],
		Payload:       buf[off:n:n],
	}, nil
}

// Peek returns the next packet's validated descriptor without consuming
// it; the packet needs Len8×8 bytes of buffer. Errors as for Read.
func (r *Reader) Peek() (Descriptor, error) {
	d, _, err := r.next()
	return d, err
}

// Commit publishes the read position, giving the space of the packets
// read so far back to the producer, and reports whether the producer must
// be signalled: the feature bit is set, the pending send size P (rounded
// down to 8) is non-zero and this Commit made the free space exceed P,
// before ≤ P < after (docs/hyperv-protocol.md §4.6; Linux drivers/hv/ring_buffer.c, and
// OpenVMM vmbus_ring whose free space excludes the 8 reserved bytes: the
// same rule). See the package comment.
func (r *Reader) Commit() (signalProducer bool) {
	if r.pos == r.published {
		return false
	}
	old := r.published
	r.published = r.pos
	// Sequentially consistent store: a full barrier before the loads below.
	atomic.StoreUint32(r.s.readIndex, r.pos)
	if atomic.LoadUint32(r.s.features)&FeaturePendingSendSize == 0 {
		return false
	}
	p := atomic.LoadUint32(r.s.pendingSend) &^ 7
	if p == 0 {
		return false
	}
	w, ok := r.s.load(r.s.writeIndex)
	if !ok {
		return false // the next Read reports it
	}
	before, after := r.s.writable(w, old), r.s.writable(w, r.pos)
	if before <= p && p < after {
		r.stats.Signals++
		return true
	}
	return false
}

// MaskInterrupts asks the producer not to signal (interrupt mask = 1),
// for draining the ring by polling.
func (r *Reader) MaskInterrupts() {
	atomic.StoreUint32(r.s.interruptMask, 1)
}

// UnmaskInterrupts clears the interrupt mask and then, after a full
// barrier, reports whether unread data is pending: a packet written while
// the mask was set was not signalled, so the caller must drain again when
// this returns true (docs/hyperv-protocol.md §4.6). A failed reader reports true so that
// the next Read returns its error.
func (r *Reader) UnmaskInterrupts() bool {
	atomic.StoreUint32(r.s.interruptMask, 0)
	if r.err != nil {
		return true
	}
	w, ok := r.s.load(r.s.writeIndex)
	return !ok || w != r.pos
}

// Readable returns the bytes between the read position and the write
// index (docs/hyperv-protocol.md §4.6), 0 if the write index is invalid.
func (r *Reader) Readable() int {
	w, ok := r.s.load(r.s.writeIndex)
	if !ok {
		return 0
	}
	return int(r.s.readable(w, r.pos))
}

// Err returns the error that failed the reader, or nil.
func (r *Reader) Err() error {
	if r.err == nil {
		return nil
	}
	return r.err
}

// Stats returns the reader's counters. Like every Reader method it must
// be serialised with the reads.
func (r *Reader) Stats() Stats { return r.stats }
