package ring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"unsafe"
)

// within reports whether s lies inside buf's backing array [0, len(buf)).
func within(s, buf []byte) bool {
	if len(s) == 0 {
		return true
	}
	b := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	return p >= b && p+uintptr(len(s)) <= b+uintptr(len(buf))
}

// FuzzReader lets the "host" choose the indices and the data area: Read
// must never panic, return only slices inside the caller's buffer, and
// return either an error or a packet consistent with its descriptor.
func FuzzReader(f *testing.F) {
	seed := func(w, r uint32, data []byte) { f.Add(w, r, uint16(4096), data) }
	seed(0, 0, nil)
	seed(32, 0, []byte{6, 0, 2, 0, 3, 0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 'h', 'i', 0, 0, 0, 0, 0, 0})
	seed(12, 0, nil)
	seed(4096, 0, nil)
	seed(24, 4072, nil)
	seed(64, 0, []byte{6, 0, 1, 0, 3, 0})
	seed(64, 0, []byte{6, 0, 4, 0, 3, 0})
	seed(64, 0, []byte{6, 0, 2, 0, 0xFF, 0xFF})
	mem := newMem(1)
	w, _ := NewWriter(mem)
	_, _ = w.TryWrite(TypeDataGPADirect, 1, 9, AppendGPADirectHeader(nil, []GPARange{{ByteCount: 10, PFNs: []uint64{1}}}), []byte("payload"))
	_, _ = w.TryWrite(TypeCompletion, 0, 10, nil)
	seed(hdr32(mem, 0), 0, append([]byte{}, mem[HeaderSize:HeaderSize+256]...))

	f.Fuzz(func(t *testing.T, wi, ri uint32, bufLen uint16, data []byte) {
		mem := newMem(1)
		copy(mem[HeaderSize:], data)
		setHdr32(mem, OffWriteIndex, wi)
		setHdr32(mem, OffReadIndex, ri)
		r, err := NewReader(mem)
		if err != nil {
			if !errors.Is(err, ErrMemory) {
				t.Fatalf("NewReader: %v", err)
			}
			return
		}
		buf := make([]byte, int(bufLen)%8200)
		for i := 0; i < 600; i++ {
			avail := r.Readable()
			pkt, err := r.Read(buf)
			if err != nil {
				var bts *BufferTooSmallError
				switch {
				case errors.Is(err, ErrEmpty):
					if avail != 0 {
						t.Fatalf("ErrEmpty with %d readable", avail)
					}
				case errors.As(err, &bts):
					if bts.Need <= len(buf) || r.Readable() != avail {
						t.Fatalf("BufferTooSmall need %d, buf %d, readable %d→%d", bts.Need, len(buf), avail, r.Readable())
					}
				case errors.Is(err, ErrCorrupt):
					if _, err2 := r.Read(buf); !errors.Is(err2, ErrCorrupt) {
						t.Fatalf("reader recovered after corrupt: %v", err2)
					}
				default:
					t.Fatalf("unexpected error %v", err)
				}
				r.Commit()
				r.UnmaskInterrupts()
				return
			}
			if !within(pkt.Header, buf) || !within(pkt.Payload, buf) {
				t.Fatal("packet slices outside the buffer")
			}
			d, derr := DecodeDescriptor(buf)
			if derr != nil || d.Type != pkt.Type || d.Flags != pkt.Flags || d.TransactionID != pkt.TransactionID {
				t.Fatalf("buffer descriptor %+v (%v) vs packet %+v", d, derr, pkt)
			}
			n := int(d.Len8) * 8
			if 16+len(pkt.Header) != int(d.Offset8)*8 || 16+len(pkt.Header)+len(pkt.Payload) != n {
				t.Fatalf("lengths: header %d payload %d for %+v", len(pkt.Header), len(pkt.Payload), d)
			}
			if n+TrailerSize > avail || r.Readable() != avail-n-TrailerSize {
				t.Fatalf("consumed %d of %d readable, now %d", n+TrailerSize, avail, r.Readable())
			}
			if i%7 == 0 {
				r.Commit()
			}
		}
	})
}

// FuzzRoundTrip writes arbitrary packets at an arbitrary ring position and
// reads them back unchanged.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint32(0), uint16(6), uint16(1), uint64(7), []byte{}, []byte("hello"))
	f.Add(uint32(4072), uint16(9), uint16(0), uint64(1), make([]byte, 16), make([]byte, 300))
	f.Fuzz(func(t *testing.T, start uint32, typ, flags uint16, txid uint64, hdr, payload []byte) {
		mem := newMem(1)
		start = (start &^ 7) % 4096
		setHdr32(mem, OffWriteIndex, start)
		setHdr32(mem, OffReadIndex, start)
		w, r := mustPair(t, mem)
		hdr = hdr[:len(hdr)&^7]
		_, err := w.TryWrite(PacketType(typ), flags, txid, hdr, payload)
		if PacketSize(len(hdr), len(payload)) >= 4096 {
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("oversized packet: %v", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.Readable() != PacketSize(len(hdr), len(payload)) {
			t.Fatalf("Readable %d, PacketSize %d", r.Readable(), PacketSize(len(hdr), len(payload)))
		}
		pkt, err := r.Read(make([]byte, 4096))
		if err != nil {
			t.Fatal(err)
		}
		if pkt.Type != PacketType(typ) || pkt.Flags != flags || pkt.TransactionID != txid ||
			!bytes.Equal(pkt.Header, hdr) || !bytes.Equal(pkt.Payload[:len(payload)], payload) ||
			len(pkt.Payload)-len(payload) >= 8 || !bytes.Equal(pkt.Payload[len(payload):], make([]byte, len(pkt.Payload)-len(payload))) {
			t.Fatalf("round trip mismatch: %+v", pkt)
		}
	})
}

func FuzzDescriptor(f *testing.F) {
	f.Add([]byte{6, 0, 2, 0, 3, 0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{0xB, 0, 1, 0, 0, 0})
	f.Add([]byte{9, 0, 9, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDescriptor(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if d.Offset8 < 2 || d.Offset8 > d.Len8 {
			t.Fatalf("accepted bad descriptor %+v", d)
		}
		out := make([]byte, DescriptorSize)
		d.Encode(out)
		if !bytes.Equal(out, b[:DescriptorSize]) {
			t.Fatalf("re-encoded % x, input % x", out, b[:DescriptorSize])
		}
	})
}

func FuzzParseGPADirect(f *testing.F) {
	f.Add(AppendGPADirectHeader(nil, []GPARange{{ByteCount: 5000, ByteOffset: 100, PFNs: []uint64{1, 2}}}))
	f.Add(AppendGPADirectHeader(nil, []GPARange{{ByteCount: 1, PFNs: []uint64{3}}, {ByteCount: 4096, ByteOffset: 4095, PFNs: []uint64{4, 5}}}))
	f.Add([]byte{0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Add([]byte{0, 0, 0, 0, 1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, hdr []byte) {
		var ranges []GPARange
		err := ParseGPADirect(hdr, func(v GPARangeView) error {
			if v.PFNCount() != PFNCount(v.ByteCount, v.ByteOffset) {
				t.Fatalf("range %+v has %d PFNs", v, v.PFNCount())
			}
			if !within(v.pfns, hdr) {
				t.Fatal("PFN list outside header")
			}
			r := GPARange{ByteCount: v.ByteCount, ByteOffset: v.ByteOffset, PFNs: make([]uint64, v.PFNCount())}
			for i := range r.PFNs {
				r.PFNs[i] = v.PFN(i)
			}
			ranges = append(ranges, r)
			return nil
		})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		// Re-encoding gives the accepted prefix of the input, with the
		// reserved word cleared.
		out := AppendGPADirectHeader(nil, ranges)
		if len(out) > len(hdr) || !bytes.Equal(out[4:], hdr[4:len(out)]) || binary.LittleEndian.Uint32(out) != 0 {
			t.Fatalf("re-encoded % x from % x", out, hdr)
		}
	})
}

func FuzzParseTransferPages(f *testing.F) {
	f.Add(AppendTransferPagesHeader(nil, 1, []TransferRange{{ByteCount: 1514, ByteOffset: 0}}))
	f.Add([]byte{1, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F})
	f.Add([]byte{1, 0, 0, 0, 2, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, hdr []byte) {
		id, n, err := ParseTransferPages(hdr)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		ranges := make([]TransferRange, n)
		for i := range ranges {
			ranges[i] = TransferRangeAt(hdr, i) // must not panic
		}
		out := AppendTransferPagesHeader(nil, id, ranges)
		if len(out) > len(hdr) || !bytes.Equal(out[4:], hdr[4:len(out)]) {
			t.Fatalf("re-encoded % x from % x", out, hdr)
		}
	})
}
