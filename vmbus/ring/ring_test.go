package ring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// newMem returns ring memory with dataPages pages of data area.
func newMem(dataPages int) []byte { return make([]byte, HeaderSize*(1+dataPages)) }

func hdr32(mem []byte, off int) uint32 { return binary.LittleEndian.Uint32(mem[off:]) }

func setHdr32(mem []byte, off int, v uint32) { binary.LittleEndian.PutUint32(mem[off:], v) }

func mustPair(t testing.TB, mem []byte) (*Writer, *Reader) {
	t.Helper()
	w, err := NewWriter(mem)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(mem)
	if err != nil {
		t.Fatal(err)
	}
	return w, r
}

func TestNewMemoryChecks(t *testing.T) {
	for _, n := range []int{0, 4096, 4096 + 8, 3*4096 - 1} {
		if _, err := NewWriter(make([]byte, n)); !errors.Is(err, ErrMemory) {
			t.Errorf("NewWriter(len %d) err = %v", n, err)
		}
		if _, err := NewReader(make([]byte, n)); !errors.Is(err, ErrMemory) {
			t.Errorf("NewReader(len %d) err = %v", n, err)
		}
	}
	mem := newMem(1)
	setHdr32(mem, OffWriteIndex, 12)
	if _, err := NewWriter(mem); !errors.Is(err, ErrMemory) {
		t.Errorf("NewWriter with unaligned write index: %v", err)
	}
	setHdr32(mem, OffReadIndex, 4096)
	if _, err := NewReader(mem); !errors.Is(err, ErrMemory) {
		t.Errorf("NewReader with read index = size: %v", err)
	}
	big := make([]byte, 3*4096+8)
	if _, err := NewWriter(big[1 : 1+3*4096]); !errors.Is(err, ErrMemory) {
		t.Errorf("NewWriter on unaligned memory: %v", err)
	}
}

func TestFeatureBitSet(t *testing.T) {
	mem := newMem(1)
	if _, err := NewWriter(mem); err != nil {
		t.Fatal(err)
	}
	if got := hdr32(mem, 64); got != 1 {
		t.Errorf("feature bits @64 after NewWriter = %#x, want 1", got)
	}
	mem = newMem(1)
	if _, err := NewReader(mem); err != nil {
		t.Fatal(err)
	}
	if got := hdr32(mem, 64); got != 1 {
		t.Errorf("feature bits @64 after NewReader = %#x, want 1", got)
	}
}

// TestWriteLayout checks the bytes a write produces against docs/hyperv-protocol.md
// §4.2/§4.3 offsets.
func TestWriteLayout(t *testing.T) {
	mem := newMem(1)
	for i := HeaderSize; i < len(mem); i++ {
		mem[i] = 0xAA // padding must be written as zeros
	}
	w, err := NewWriter(mem)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := w.TryWrite(TypeDataInband, FlagCompletionRequested, 0x1122334455667788, nil, []byte("hel"), []byte("lo"))
	if err != nil || !sig {
		t.Fatalf("TryWrite = %v, %v; want signal on empty ring", sig, err)
	}
	want := []byte{
		0x06, 0x00, // @0 type 6
		0x02, 0x00, // @2 offset8 = 16/8
		0x03, 0x00, // @4 len8 = 24/8
		0x01, 0x00, // @6 flags
		0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // @8 txid
		'h', 'e', 'l', 'l', 'o', 0, 0, 0, // payload + padding
		0, 0, 0, 0, 0, 0, 0, 0, // trailer: 0 << 32
	}
	if got := mem[HeaderSize : HeaderSize+32]; !bytes.Equal(got, want) {
		t.Fatalf("packet bytes % x\nwant         % x", got, want)
	}
	if mem[HeaderSize+32] != 0xAA {
		t.Error("wrote past the trailer")
	}
	if got := hdr32(mem, 0); got != 32 {
		t.Errorf("write index @0 = %d, want 32", got)
	}

	// Second packet with a type-specific header: offset8 covers it and the
	// trailer holds the start offset 32 in its upper half.
	th := AppendTransferPagesHeader(nil, 3, []TransferRange{{ByteCount: 9, ByteOffset: 4}})
	if _, err := w.TryWrite(TypeDataTransferPages, 0, 7, th, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9}); err != nil {
		t.Fatal(err)
	}
	p := mem[HeaderSize+32:]
	if binary.LittleEndian.Uint16(p[0:]) != 7 || binary.LittleEndian.Uint16(p[2:]) != 4 || binary.LittleEndian.Uint16(p[4:]) != 6 {
		t.Errorf("descriptor % x: want type 7, offset8 4 (16+16 bytes), len8 6 (16+16+9→48 bytes)", p[:16])
	}
	if !bytes.Equal(p[16:32], th) || p[32] != 1 || p[40] != 9 || !bytes.Equal(p[41:48], make([]byte, 7)) {
		t.Errorf("header/payload/padding wrong: % x", p[16:48])
	}
	if tr := binary.LittleEndian.Uint64(p[48:]); tr != 32<<32 {
		t.Errorf("trailer = %#x, want %#x", tr, uint64(32)<<32)
	}
	if !bytes.Equal(p[48:56], []byte{0, 0, 0, 0, 32, 0, 0, 0}) {
		t.Errorf("trailer bytes % x: start offset belongs in bytes 4–7", p[48:56])
	}
	if got := hdr32(mem, 0); got != 32+56 {
		t.Errorf("write index = %d, want 88", got)
	}

	r, err := NewReader(mem)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	pkt, err := r.Read(buf)
	if err != nil || pkt.Type != TypeDataInband || pkt.Flags != 1 || pkt.TransactionID != 0x1122334455667788 ||
		len(pkt.Header) != 0 || string(pkt.Payload) != "hello\x00\x00\x00" {
		t.Fatalf("Read = %+v, %v", pkt, err)
	}
	if hdr32(mem, 4) != 0 {
		t.Error("Read published the read index before Commit")
	}
	pkt, err = r.Read(buf)
	if err != nil || pkt.Type != TypeDataTransferPages || !bytes.Equal(pkt.Header, th) || len(pkt.Payload) != 16 || pkt.Payload[8] != 9 {
		t.Fatalf("Read = %+v, %v", pkt, err)
	}
	if _, err := r.Read(buf); !errors.Is(err, ErrEmpty) {
		t.Fatalf("third Read err = %v, want ErrEmpty", err)
	}
	r.Commit()
	if got := hdr32(mem, 4); got != 88 {
		t.Errorf("read index @4 after Commit = %d, want 88", got)
	}
	st := r.Stats()
	if st.Packets != 2 || st.Bytes != 88 {
		t.Errorf("reader stats %+v", st)
	}
	if st := w.Stats(); st.Packets != 2 || st.Bytes != 88 || st.Signals != 1 {
		t.Errorf("writer stats %+v", st)
	}
}

func TestGPADirectPacketOffset8(t *testing.T) {
	mem := newMem(1)
	w, r := mustPair(t, mem)
	h := AppendGPADirectHeader(nil, []GPARange{{ByteCount: 8192, ByteOffset: 0, PFNs: []uint64{10, 11}}})
	if _, err := w.TryWrite(TypeDataGPADirect, FlagCompletionRequested, 1, h, make([]byte, 20)); err != nil {
		t.Fatal(err)
	}
	// offset8 = (24 + range bytes)/8 = (24 + 8 + 16)/8 = 6 (docs/hyperv-protocol.md §4.5).
	if got := binary.LittleEndian.Uint16(mem[HeaderSize+2:]); got != 6 {
		t.Errorf("offset8 = %d, want 6", got)
	}
	if got := hdr32(mem[HeaderSize+16:], 4); got != 1 {
		t.Errorf("range count @20 = %d, want 1", got)
	}
	pkt, err := r.Read(make([]byte, 128))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := ParseGPADirect(pkt.Header, func(v GPARangeView) error { n += v.PFNCount(); return nil }); err != nil || n != 2 {
		t.Errorf("ParseGPADirect: %d pfns, %v", n, err)
	}
}

func TestUnalignedHeaderRejected(t *testing.T) {
	w, _ := mustPair(t, newMem(1))
	if _, err := w.TryWrite(TypeDataInband, 0, 0, make([]byte, 4)); !errors.Is(err, ErrUnalignedHeader) {
		t.Errorf("err = %v", err)
	}
}

// TestWrapAround places the indices near the end of the data area so that
// payloads and descriptors are split in two.
func TestWrapAround(t *testing.T) {
	const size = 4096
	for _, start := range []uint32{size - 8, size - 16, size - 24, size - 40} {
		mem := newMem(1)
		setHdr32(mem, OffWriteIndex, start)
		setHdr32(mem, OffReadIndex, start)
		w, r := mustPair(t, mem)
		payload := make([]byte, 64)
		for i := range payload {
			payload[i] = byte(i + 1)
		}
		if _, err := w.TryWrite(TypeDataInband, 0, 99, nil, payload); err != nil {
			t.Fatal(err)
		}
		// Reassemble the packet from the raw data area: it must equal
		// the linear layout.
		data := mem[HeaderSize:]
		raw := append(append([]byte{}, data[start:]...), data[:88-(size-int(start))]...)
		if binary.LittleEndian.Uint16(raw[4:]) != 10 || !bytes.Equal(raw[16:80], payload) {
			t.Errorf("start %d: raw packet % x", start, raw)
		}
		if tr := binary.LittleEndian.Uint64(raw[80:]); tr != uint64(start)<<32 {
			t.Errorf("start %d: trailer %#x", start, tr)
		}
		if got, want := hdr32(mem, 0), (start+88)%size; got != want {
			t.Errorf("start %d: write index %d, want %d", start, got, want)
		}
		if r.Readable() != 88 {
			t.Errorf("start %d: Readable = %d", start, r.Readable())
		}
		pkt, err := r.Read(make([]byte, 80))
		if err != nil || pkt.TransactionID != 99 || !bytes.Equal(pkt.Payload, payload) {
			t.Fatalf("start %d: Read = %+v, %v", start, pkt, err)
		}
		r.Commit()
		if got := hdr32(mem, 4); got != (start+88)%size {
			t.Errorf("start %d: read index %d", start, got)
		}
	}
}

func TestFullRule(t *testing.T) {
	mem := newMem(1) // data size 4096
	w, r := mustPair(t, mem)
	p := make([]byte, 1000) // packet 1016 + trailer 8 = 1024
	for i := 0; i < 3; i++ {
		if _, err := w.TryWrite(TypeDataInband, 0, uint64(i), nil, p); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	// writable == 1024 == T: writing would make w == r, i.e. "empty".
	if w.Writable() != 1024 {
		t.Fatalf("Writable = %d", w.Writable())
	}
	before := append([]byte{}, mem...)
	if _, err := w.TryWrite(TypeDataInband, 0, 3, nil, p); !errors.Is(err, ErrFull) {
		t.Fatalf("4th packet err = %v, want ErrFull", err)
	}
	if !bytes.Equal(before, mem) {
		t.Error("ErrFull changed ring memory")
	}
	if w.Stats().Full != 1 {
		t.Errorf("Full counter = %d", w.Stats().Full)
	}
	// 8 bytes smaller fits and leaves exactly 8 bytes free.
	if _, err := w.TryWrite(TypeDataInband, 0, 3, nil, p[:992]); err != nil {
		t.Fatalf("packet of 1016 bytes: %v", err)
	}
	if w.Writable() != 8 || hdr32(mem, 0) == hdr32(mem, 4) {
		t.Fatalf("Writable = %d, w=%d r=%d", w.Writable(), hdr32(mem, 0), hdr32(mem, 4))
	}
	if _, err := w.TryWrite(TypeDataInband, 0, 4, nil); !errors.Is(err, ErrFull) {
		t.Fatalf("minimal packet into 8 free bytes: %v", err)
	}
	buf := make([]byte, 1024)
	for i := 0; i < 4; i++ {
		pkt, err := r.Read(buf)
		if err != nil || pkt.TransactionID != uint64(i) {
			t.Fatalf("read %d: %+v %v", i, pkt, err)
		}
	}
	if _, err := r.Read(buf); !errors.Is(err, ErrEmpty) {
		t.Fatalf("err = %v", err)
	}
}

func TestTooLarge(t *testing.T) {
	w, _ := mustPair(t, newMem(1))
	// 4088 bytes incl. trailer fits an empty 4096-byte ring (4096 > 4088) ...
	if _, err := w.TryWrite(TypeDataInband, 0, 0, nil, make([]byte, 4088-24)); err != nil {
		t.Fatalf("largest packet: %v", err)
	}
	// ... 4096 never can.
	if _, err := w.TryWrite(TypeDataInband, 0, 0, nil, make([]byte, 4096-24)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	// len8 is 16 bits: a 1 MiB ring still cannot carry more than 0xFFFF×8.
	w, _ = mustPair(t, newMem(256))
	if _, err := w.TryWrite(TypeDataInband, 0, 0, nil, make([]byte, MaxPacketSize-16)); err != nil {
		t.Fatalf("MaxPacketSize packet: %v", err)
	}
	if _, err := w.TryWrite(TypeDataInband, 0, 0, nil, make([]byte, MaxPacketSize-15)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

// TestProducerSignalRule is the truth table of docs/hyperv-protocol.md §4.6: signal iff
// the interrupt mask is 0 and the ring was empty before the write.
func TestProducerSignalRule(t *testing.T) {
	for _, c := range []struct {
		name       string
		mask       uint32
		nonEmpty   bool // a packet already published
		readNoComm bool // ... and read but not committed
		want       bool
	}{
		{"empty, unmasked", 0, false, false, true},
		{"empty, masked", 1, false, false, false},
		{"non-empty, unmasked", 0, true, false, false},
		{"non-empty, masked", 1, true, false, false},
		{"read but not committed", 0, true, true, false},
	} {
		mem := newMem(1)
		w, r := mustPair(t, mem)
		if c.nonEmpty {
			if _, err := w.TryWrite(TypeDataInband, 0, 0, nil, []byte("x")); err != nil {
				t.Fatal(err)
			}
			if c.readNoComm {
				if _, err := r.Read(make([]byte, 64)); err != nil {
					t.Fatal(err)
				}
			}
		}
		setHdr32(mem, OffInterruptMask, c.mask)
		got, err := w.TryWrite(TypeDataInband, 0, 1, nil, []byte("y"))
		if err != nil || got != c.want {
			t.Errorf("%s: signal = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}

func TestBatch(t *testing.T) {
	mem := newMem(1)
	w, r := mustPair(t, mem)
	b := w.Batch()
	for i := 0; i < 3; i++ {
		if err := b.Add(TypeDataInband, 0, uint64(i), nil, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if hdr32(mem, 0) != 0 {
		t.Fatal("Add published the write index")
	}
	if _, err := w.TryWrite(TypeDataInband, 0, 9, nil); !errors.Is(err, ErrBatchOpen) {
		t.Fatalf("TryWrite during batch: %v", err)
	}
	if _, err := r.Read(make([]byte, 64)); !errors.Is(err, ErrEmpty) {
		t.Fatalf("reader sees unpublished batch: %v", err)
	}
	if b.Len() != 3 || !b.Commit() {
		t.Fatal("first batch into empty ring must signal exactly once")
	}
	if hdr32(mem, 0) != 3*32 {
		t.Fatalf("write index %d", hdr32(mem, 0))
	}
	if err := b.Add(TypeDataInband, 0, 0, nil); !errors.Is(err, ErrBatchClosed) {
		t.Fatalf("Add after Commit: %v", err)
	}
	if w.Stats().Signals != 1 || w.Stats().Packets != 3 {
		t.Errorf("stats %+v", w.Stats())
	}
	// Ring non-empty: the next batch does not signal.
	b = w.Batch()
	if err := b.Add(TypeDataInband, 0, 3, nil, []byte{3}); err != nil {
		t.Fatal(err)
	}
	if b.Commit() {
		t.Error("batch into non-empty ring signalled")
	}
	// An aborted batch is never seen.
	b = w.Batch()
	if err := b.Add(TypeDataInband, 0, 100, nil); err != nil {
		t.Fatal(err)
	}
	b.Abort()
	if hdr32(mem, 0) != 4*32 {
		t.Fatal("Abort published")
	}
	if w.Batch().Commit() {
		t.Error("empty batch signalled")
	}
	buf := make([]byte, 64)
	for i := 0; i < 4; i++ {
		pkt, err := r.Read(buf)
		if err != nil || pkt.TransactionID != uint64(i) || pkt.Payload[0] != byte(i) {
			t.Fatalf("read %d: %+v %v", i, pkt, err)
		}
	}
	if _, err := r.Read(buf); !errors.Is(err, ErrEmpty) {
		t.Fatalf("aborted packet visible: %v", err)
	}
	// A batch that runs full keeps what was added.
	r.Commit()
	b = w.Batch()
	var added int
	for {
		if err := b.Add(TypeDataInband, 0, 0, nil, make([]byte, 1000)); err != nil {
			if !errors.Is(err, ErrFull) {
				t.Fatal(err)
			}
			break
		}
		added++
	}
	if added != 3 || b.Commit() != true {
		t.Errorf("added %d packets before full", added)
	}
}

// TestPendingSendCrossing checks the consumer's rule before ≤ P < after:
// signal when the free space comes to exceed P (docs/hyperv-protocol.md §4.6).
func TestPendingSendCrossing(t *testing.T) {
	for _, c := range []struct {
		name     string
		p        uint32 // raw value stored in the header
		features uint32
		want     bool
	}{
		{"P == before", 1024, 1, true},
		{"P between", 1536, 1, true},
		{"P just below after", 2040, 1, true},
		{"P == after: free does not exceed P", 2048, 1, false},
		{"P above after", 2056, 1, false},
		{"P below before", 1016, 1, false},
		{"P unaligned, masked down below before", 1020, 1, false},
		{"P unaligned, masked down to before", 1030, 1, true},
		{"P zero", 0, 1, false},
		{"feature bit clear", 1024, 0, false},
	} {
		mem := newMem(1)
		w, r := mustPair(t, mem)
		for i := 0; i < 3; i++ { // 3 × 1024 bytes: free 1024
			if _, err := w.TryWrite(TypeDataInband, 0, 0, nil, make([]byte, 1000)); err != nil {
				t.Fatal(err)
			}
		}
		setHdr32(mem, OffPendingSendSize, c.p)
		setHdr32(mem, OffFeatureBits, c.features)
		if _, err := r.Read(make([]byte, 1024)); err != nil {
			t.Fatal(err)
		}
		if got := r.Commit(); got != c.want { // free 1024 → 2048
			t.Errorf("%s: Commit = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSetPendingSend(t *testing.T) {
	mem := newMem(1)
	w, _ := mustPair(t, mem)
	for _, c := range []struct{ n, want int }{{1020, 1024}, {1024, 1024}, {0, 0}, {-5, 0}, {1 << 20, 4096}} {
		w.SetPendingSend(c.n)
		if got := hdr32(mem, 12); got != uint32(c.want) {
			t.Errorf("SetPendingSend(%d): @12 = %d, want %d", c.n, got, c.want)
		}
	}
}

// TestBlockedProducerWakes runs the blocked-producer protocol end to end:
// the producer stores SpaceNeeded, the consumer signals exactly when the
// packet fits.
func TestBlockedProducerWakes(t *testing.T) {
	mem := newMem(1)
	w, r := mustPair(t, mem)
	small := make([]byte, 488) // 504 + 8 = 512 bytes a packet
	for {
		if _, err := w.TryWrite(TypeDataInband, 0, 0, nil, small); err != nil {
			break
		}
	}
	big := make([]byte, 1500) // 1528 bytes
	if _, err := w.TryWrite(TypeDataInband, 0, 0, nil, big); !errors.Is(err, ErrFull) {
		t.Fatal(err)
	}
	w.SetPendingSend(SpaceNeeded(0, len(big)))
	buf := make([]byte, 1024)
	for i := 0; ; i++ {
		if _, err := r.Read(buf); err != nil {
			t.Fatal(err)
		}
		signal := r.Commit()
		_, err := w.TryWrite(TypeDataInband, 0, 0, nil, big)
		fits := err == nil
		if signal != fits {
			t.Fatalf("after %d reads: signal %v but fits %v", i+1, signal, fits)
		}
		if fits {
			break
		}
	}
}

// TestLargestPacketWakes: the largest packet a ring takes (T = size − 8,
// here 4088 bytes in a 4096-byte data area) must still be woken: free
// space reaches at most size, so a pending send size above T would never
// be exceeded.
func TestLargestPacketWakes(t *testing.T) {
	mem := newMem(1) // 4096-byte data area
	w, r := mustPair(t, mem)
	payload := make([]byte, 4088-TrailerSize-DescriptorSize) // T = 4088
	if got := PacketSize(0, len(payload)); got != 4088 {
		t.Fatalf("PacketSize = %d, want 4088", got)
	}
	if _, err := w.TryWrite(TypeDataInband, 0, 0, nil, make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.TryWrite(TypeDataInband, 0, 0, nil, payload); !errors.Is(err, ErrFull) {
		t.Fatalf("TryWrite into a non-empty ring: %v, want ErrFull", err)
	}
	w.SetPendingSend(SpaceNeeded(0, len(payload)))
	if got := hdr32(mem, OffPendingSendSize); got != 4088 {
		t.Fatalf("pending send size @12 = %d, want 4088 (T, trailer included)", got)
	}
	if _, err := r.Read(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	if !r.Commit() {
		t.Fatal("consumer emptied the ring but did not signal the producer")
	}
	if _, err := w.TryWrite(TypeDataInband, 0, 0, nil, payload); err != nil {
		t.Fatalf("TryWrite after the signal: %v", err)
	}
}

func TestUnmaskReportsPending(t *testing.T) {
	mem := newMem(1)
	w, r := mustPair(t, mem)
	r.MaskInterrupts()
	if hdr32(mem, 8) != 1 {
		t.Fatal("mask not set")
	}
	if sig, _ := w.TryWrite(TypeDataInband, 0, 0, nil); sig {
		t.Fatal("signal while masked")
	}
	if !r.UnmaskInterrupts() {
		t.Fatal("UnmaskInterrupts missed a packet written while masked")
	}
	if hdr32(mem, 8) != 0 {
		t.Fatal("mask not cleared")
	}
	if _, err := r.Read(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	if r.UnmaskInterrupts() {
		t.Fatal("pending reported on a drained ring")
	}
}

func TestBufferTooSmallDoesNotConsume(t *testing.T) {
	mem := newMem(1)
	w, r := mustPair(t, mem)
	if _, err := w.TryWrite(TypeDataInband, 0, 5, nil, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	_, err := r.Read(make([]byte, 64))
	var bts *BufferTooSmallError
	if !errors.As(err, &bts) || bts.Need != 120 || !errors.Is(err, ErrBufferTooSmall) {
		t.Fatalf("err = %v, want BufferTooSmall{120}", err)
	}
	if r.Readable() != 128 {
		t.Fatalf("Readable = %d after BufferTooSmall", r.Readable())
	}
	if d, err := r.Peek(); err != nil || d.Len8 != 15 || d.TransactionID != 5 {
		t.Fatalf("Peek = %+v, %v", d, err)
	}
	pkt, err := r.Read(make([]byte, 120))
	if err != nil || pkt.TransactionID != 5 || len(pkt.Payload) != 104 {
		t.Fatalf("Read = %+v, %v", pkt, err)
	}
}

// TestCorrupt feeds host-written garbage to the reader.
func TestCorrupt(t *testing.T) {
	desc := func(mem []byte, at int, off8, len8 uint16) {
		d := Descriptor{Type: TypeDataInband, Offset8: off8, Len8: len8}
		d.Encode(mem[HeaderSize+at:])
	}
	for _, c := range []struct {
		name  string
		setup func(mem []byte)
	}{
		{"write index unaligned", func(m []byte) { setHdr32(m, 0, 12) }},
		{"write index == size", func(m []byte) { setHdr32(m, 0, 4096) }},
		{"write index huge", func(m []byte) { setHdr32(m, 0, 0xFFFFFFF8) }},
		{"readable < descriptor+trailer", func(m []byte) { desc(m, 0, 2, 2); setHdr32(m, 0, 16) }},
		{"len8 exceeds readable", func(m []byte) { desc(m, 0, 2, 10); setHdr32(m, 0, 32) }},
		{"len8 leaves no trailer", func(m []byte) { desc(m, 0, 2, 4); setHdr32(m, 0, 32) }},
		{"offset8 < 2", func(m []byte) { desc(m, 0, 1, 3); setHdr32(m, 0, 32) }},
		{"offset8 0", func(m []byte) { desc(m, 0, 0, 3); setHdr32(m, 0, 32) }},
		{"len8 0", func(m []byte) { desc(m, 0, 2, 0); setHdr32(m, 0, 32) }},
		{"offset8 > len8", func(m []byte) { desc(m, 0, 4, 3); setHdr32(m, 0, 32) }},
	} {
		mem := newMem(1)
		_, r := mustPair(t, mem)
		c.setup(mem)
		_, err := r.Read(make([]byte, 4096))
		var ce *CorruptError
		if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want CorruptError", c.name, err)
			continue
		}
		// Repair the ring: the reader stays failed.
		setHdr32(mem, 0, 32)
		desc(mem, 0, 2, 3)
		if _, err := r.Read(make([]byte, 4096)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: reader recovered: %v", c.name, err)
		}
		if r.Err() == nil || r.Stats().Corrupt != 1 || !r.UnmaskInterrupts() {
			t.Errorf("%s: Err %v, stats %+v", c.name, r.Err(), r.Stats())
		}
	}
}

func TestWriterBadReadIndex(t *testing.T) {
	mem := newMem(1)
	w, _ := mustPair(t, mem)
	for _, v := range []uint32{4, 4096, 0xFFFFFFF8} {
		setHdr32(mem, 4, v)
		if _, err := w.TryWrite(TypeDataInband, 0, 0, nil); !errors.Is(err, ErrCorrupt) {
			t.Errorf("read index %d: err = %v", v, err)
		}
		if w.Writable() != 0 {
			t.Errorf("read index %d: Writable = %d", v, w.Writable())
		}
	}
	if hdr32(mem, 0) != 0 {
		t.Error("write with corrupt read index published")
	}
}

func TestNoAllocs(t *testing.T) {
	w, r := mustPair(t, newMem(16))
	hdr := make([]byte, 8)
	payload := make([]byte, 300)
	buf := make([]byte, 512)
	a := testing.AllocsPerRun(1000, func() {
		if _, err := w.TryWrite(TypeDataInband, FlagCompletionRequested, 1, hdr, payload, payload[:7]); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Read(buf); err != nil {
			t.Fatal(err)
		}
		r.Commit()
	})
	if a != 0 {
		t.Errorf("TryWrite+Read+Commit: %v allocs", a)
	}
	a = testing.AllocsPerRun(1000, func() {
		b := w.Batch()
		for i := 0; i < 4; i++ {
			if err := b.Add(TypeDataInband, 0, 1, nil, payload); err != nil {
				t.Fatal(err)
			}
		}
		b.Commit()
		for i := 0; i < 4; i++ {
			if _, err := r.Read(buf); err != nil {
				t.Fatal(err)
			}
		}
		r.Commit()
		_, _ = r.Read(buf) // ErrEmpty
		r.UnmaskInterrupts()
		_ = r.Readable() + w.Writable()
	})
	if a != 0 {
		t.Errorf("batch path: %v allocs", a)
	}
}

// TestTwoInstances: no hidden shared state between rings.
func TestTwoInstances(t *testing.T) {
	w1, r1 := mustPair(t, newMem(1))
	w2, r2 := mustPair(t, newMem(1))
	if _, err := w1.TryWrite(TypeDataInband, 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Read(make([]byte, 64)); !errors.Is(err, ErrEmpty) {
		t.Fatalf("ring 2 sees ring 1's packet: %v", err)
	}
	if _, err := r1.Read(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	_ = w2
}

// TestWakeOnlyWhenItFits: a producer that stores P = T is signalled
// once, by the Commit after which the packet fits, not when the free space
// merely reaches T (a T-byte packet needs free > T, docs/hyperv-protocol.md §4.6).
func TestWakeOnlyWhenItFits(t *testing.T) {
	mem := newMem(1)
	w, r := mustPair(t, mem)
	// 170 empty packets of 24 bytes leave 16 bytes free.
	for {
		if _, err := w.TryWrite(TypeDataInband, 0, 0, nil); err != nil {
			break
		}
	}
	if w.Writable() != 16 {
		t.Fatalf("Writable = %d", w.Writable())
	}
	// Free space then goes 16 → 40 → 64 (== T: does not fit yet) → 88.
	const T = 64
	w.SetPendingSend(SpaceNeeded(0, T-24))
	buf := make([]byte, 64)
	for i := 0; i < 10; i++ {
		if _, err := r.Read(buf); err != nil {
			t.Fatal(err)
		}
		free := w.Writable()
		signal := r.Commit()
		if want := free <= T && w.Writable() > T; signal != want {
			t.Fatalf("read %d: free %d → %d, signal %v, want %v", i+1, free, w.Writable(), signal, want)
		}
		if signal {
			if _, err := w.TryWrite(TypeDataInband, 0, 0, nil, make([]byte, T-24)); err != nil {
				t.Fatalf("signalled but the packet does not fit: %v", err)
			}
			return
		}
	}
	t.Fatal("producer never signalled: lost wake-up")
}
