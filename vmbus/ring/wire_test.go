package ring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// Values below are taken from docs/hyperv-protocol.md §4.2–§4.5, not from this package.
func TestConstantsMatchReference(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"HeaderSize", HeaderSize, 4096},
		{"DescriptorSize", DescriptorSize, 16},
		{"TrailerSize", TrailerSize, 8},
		{"OffWriteIndex", OffWriteIndex, 0},
		{"OffReadIndex", OffReadIndex, 4},
		{"OffInterruptMask", OffInterruptMask, 8},
		{"OffPendingSendSize", OffPendingSendSize, 12},
		{"OffFeatureBits", OffFeatureBits, 64},
		{"FeaturePendingSendSize", FeaturePendingSendSize, 1},
		{"FlagCompletionRequested", int(FlagCompletionRequested), 1},
		{"TypeSynch", int(TypeSynch), 0x1},
		{"TypeAddTransferPageSet", int(TypeAddTransferPageSet), 0x2},
		{"TypeRemoveTransferPageSet", int(TypeRemoveTransferPageSet), 0x3},
		{"TypeEstablishGPADL", int(TypeEstablishGPADL), 0x4},
		{"TypeTeardownGPADL", int(TypeTeardownGPADL), 0x5},
		{"TypeDataInband", int(TypeDataInband), 0x6},
		{"TypeDataTransferPages", int(TypeDataTransferPages), 0x7},
		{"TypeDataGPADL", int(TypeDataGPADL), 0x8},
		{"TypeDataGPADirect", int(TypeDataGPADirect), 0x9},
		{"TypeCancel", int(TypeCancel), 0xA},
		{"TypeCompletion", int(TypeCompletion), 0xB},
		{"TypeDataAdditionalPacket", int(TypeDataAdditionalPacket), 0xC},
		{"TypeDataAdditionalData", int(TypeDataAdditionalData), 0xD},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	if s := TypeCompletion.String(); s != "completion" {
		t.Errorf("TypeCompletion.String() = %q", s)
	}
	if s := PacketType(0x77).String(); s != "type(119)" {
		t.Errorf("unknown type String() = %q", s)
	}
}

func TestDescriptorEncodeBytes(t *testing.T) {
	d := Descriptor{Type: TypeCompletion, Offset8: 0x0302, Len8: 0x0504, Flags: 0x0706, TransactionID: 0x1122334455667788}
	b := make([]byte, 20)
	for i := range b {
		b[i] = 0xEE
	}
	d.Encode(b)
	want := []byte{
		0x0B, 0x00, // @0 type
		0x02, 0x03, // @2 offset8
		0x04, 0x05, // @4 len8
		0x06, 0x07, // @6 flags
		0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // @8 transaction id
		0xEE, 0xEE, 0xEE, 0xEE, // untouched
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("encoded % x\nwant    % x", b, want)
	}
	got, err := DecodeDescriptor(b)
	if err != nil || got != d {
		t.Fatalf("DecodeDescriptor = %+v, %v; want %+v", got, err, d)
	}
}

func TestDecodeDescriptorErrors(t *testing.T) {
	enc := func(off8, len8 uint16) []byte {
		b := make([]byte, 16)
		binary.LittleEndian.PutUint16(b[2:], off8)
		binary.LittleEndian.PutUint16(b[4:], len8)
		return b
	}
	for _, c := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"short", make([]byte, 15), false},
		{"offset8 0", enc(0, 4), false},
		{"offset8 1", enc(1, 4), false},
		{"offset8 > len8", enc(5, 4), false},
		{"minimal", enc(2, 2), true},
		{"offset8 == len8", enc(4, 4), true},
	} {
		_, err := DecodeDescriptor(c.b)
		if c.ok != (err == nil) {
			t.Errorf("%s: err = %v", c.name, err)
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v is not ErrCorrupt", c.name, err)
		}
	}
}

func TestGPADirectHeaderBytes(t *testing.T) {
	ranges := []GPARange{
		{ByteCount: 5000, ByteOffset: 100, PFNs: []uint64{0x1234, 0xABCDEF0123}},
		{ByteCount: 4096, ByteOffset: 0, PFNs: []uint64{7}},
	}
	hdr := AppendGPADirectHeader(nil, ranges)
	// Offsets in the packet are 16 more (docs/hyperv-protocol.md §4.5): @16 reserved,
	// @20 range count, @24 ranges.
	want := []byte{
		0, 0, 0, 0, // @16 reserved
		2, 0, 0, 0, // @20 range count
		0x88, 0x13, 0, 0, // byte_count 5000
		100, 0, 0, 0, // byte_offset
		0x34, 0x12, 0, 0, 0, 0, 0, 0,
		0x23, 0x01, 0xEF, 0xCD, 0xAB, 0, 0, 0,
		0, 0x10, 0, 0, // byte_count 4096
		0, 0, 0, 0,
		7, 0, 0, 0, 0, 0, 0, 0,
	}
	if !bytes.Equal(hdr, want) {
		t.Fatalf("header % x\nwant   % x", hdr, want)
	}
	if n := GPADirectHeaderSize(ranges); n != len(want) {
		t.Errorf("GPADirectHeaderSize = %d, want %d", n, len(want))
	}
	var got []GPARange
	err := ParseGPADirect(hdr, func(v GPARangeView) error {
		r := GPARange{ByteCount: v.ByteCount, ByteOffset: v.ByteOffset}
		for i := 0; i < v.PFNCount(); i++ {
			r.PFNs = append(r.PFNs, v.PFN(i))
		}
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ByteCount != 5000 || got[0].ByteOffset != 100 ||
		len(got[0].PFNs) != 2 || got[0].PFNs[1] != 0xABCDEF0123 || len(got[1].PFNs) != 1 || got[1].PFNs[0] != 7 {
		t.Fatalf("parsed %+v", got)
	}

	// Allocation-free append into a buffer with capacity.
	buf := make([]byte, 0, 128)
	if a := testing.AllocsPerRun(100, func() { buf = AppendGPADirectHeader(buf[:0], ranges) }); a != 0 {
		t.Errorf("AppendGPADirectHeader allocates %v times", a)
	}
	if a := testing.AllocsPerRun(100, func() {
		_ = ParseGPADirect(hdr, func(GPARangeView) error { return nil })
	}); a != 0 {
		t.Errorf("ParseGPADirect allocates %v times", a)
	}
}

func TestParseGPADirectErrors(t *testing.T) {
	u32 := func(vs ...uint32) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint32(b, v)
		}
		return b
	}
	stop := errors.New("stop")
	for _, c := range []struct {
		name string
		hdr  []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"truncated prefix", u32(0), ErrCorrupt},
		{"no ranges", u32(0, 0), nil},
		{"count beyond header", u32(0, 1), ErrCorrupt},
		{"huge count", u32(0, 0xFFFFFFFF, 0, 0), ErrCorrupt},
		// 4097 bytes at offset 0 span 2 pages, only 1 PFN present.
		{"pfn list short", u32(0, 1, 4097, 0, 1, 0), ErrCorrupt},
		// offset 4095 + 2 bytes crosses a page: 2 PFNs needed.
		{"offset crossing", u32(0, 1, 2, 4095, 1, 0), ErrCorrupt},
		{"offset crossing ok", u32(0, 1, 2, 4095, 1, 0, 2, 0), nil},
		// Overflowing offset+count must not wrap to a small PFN count.
		{"overflow", u32(0, 1, 0xFFFFFFFF, 0xFFFFFFFF, 1, 0), ErrCorrupt},
		{"zero-length range", u32(0, 1, 0, 0), nil},
		{"second range truncated", u32(0, 2, 1, 0, 9, 0, 1, 0), ErrCorrupt},
		{"callback error", u32(0, 1, 0, 0), stop},
	} {
		err := ParseGPADirect(c.hdr, func(GPARangeView) error {
			if c.want == stop {
				return stop
			}
			return nil
		})
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestTransferPagesHeaderBytes(t *testing.T) {
	ranges := []TransferRange{{ByteCount: 1514, ByteOffset: 0}, {ByteCount: 60, ByteOffset: 0x10000}}
	hdr := AppendTransferPagesHeader(nil, 0xCAFE, ranges)
	want := []byte{
		0xFE, 0xCA, // @16 transfer page set id
		0, 0, // @18 reserved
		2, 0, 0, 0, // @20 range count
		0xEA, 0x05, 0, 0, 0, 0, 0, 0, // {1514, 0}
		60, 0, 0, 0, 0, 0, 1, 0, // {60, 0x10000}
	}
	if !bytes.Equal(hdr, want) {
		t.Fatalf("header % x\nwant   % x", hdr, want)
	}
	// Garbage in the reserved bytes 18–19 is ignored (docs/hyperv-protocol.md §4.5).
	hdr[2], hdr[3] = 0x5A, 0xA5
	id, n, err := ParseTransferPages(hdr)
	if err != nil || id != 0xCAFE || n != 2 {
		t.Fatalf("ParseTransferPages = %#x, %d, %v", id, n, err)
	}
	for i, r := range ranges {
		if got := TransferRangeAt(hdr, i); got != r {
			t.Errorf("range %d = %+v, want %+v", i, got, r)
		}
	}
	for _, bad := range [][]byte{nil, hdr[:7], hdr[:len(hdr)-1], append(append([]byte{}, hdr[:4]...), 0xFF, 0xFF, 0xFF, 0xFF)} {
		if _, _, err := ParseTransferPages(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("ParseTransferPages(% x) err = %v, want ErrCorrupt", bad, err)
		}
	}
}

func TestPacketSize(t *testing.T) {
	for _, c := range []struct{ hdr, payload, want int }{
		{0, 0, 24}, {0, 1, 32}, {0, 8, 32}, {8, 0, 32}, {8, 9, 48},
	} {
		if got := PacketSize(c.hdr, c.payload); got != c.want {
			t.Errorf("PacketSize(%d, %d) = %d, want %d", c.hdr, c.payload, got, c.want)
		}
		if got := SpaceNeeded(c.hdr, c.payload); got != c.want {
			t.Errorf("SpaceNeeded(%d, %d) = %d, want %d (the packet, trailer included, no more)", c.hdr, c.payload, got, c.want)
		}
	}
}
