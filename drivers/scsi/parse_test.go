package scsi

import (
	"errors"
	"slices"
	"testing"
)

func TestParseSense(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want Sense
		err  bool
	}{
		{"fixed UA capacity changed", []byte{
			0xF0, 0, 0x06, 0, 0, 0x12, 0x34, 10, // valid, key 6, info 0x1234, addl 10
			0, 0, 0, 0, 0x2A, 0x09, 0, 0, 0, 0,
		}, Sense{ResponseCode: 0x70, Key: KeyUnitAttention, ASC: 0x2A, ASCQ: 0x09, Info: 0x1234, InfoValid: true}, false},
		{"fixed deferred, addl length cuts ASC", []byte{
			0x71, 0, 0x03, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0x11, 0x22,
		}, Sense{ResponseCode: 0x71, Key: KeyMediumError}, false},
		{"fixed 3 bytes", []byte{0x70, 0, 0x05}, Sense{ResponseCode: 0x70, Key: KeyIllegalRequest}, false},
		{"fixed too short", []byte{0x70, 0}, Sense{}, true},
		{"descriptor with information", []byte{
			0x72, 0x06, 0x3F, 0x0E, 0, 0, 0, 12,
			0x00, 0x0A, 0x80, 0, 1, 2, 3, 4, 5, 6, 7, 8,
		}, Sense{ResponseCode: 0x72, Key: KeyUnitAttention, ASC: 0x3F, ASCQ: 0x0E, Info: 0x0102030405060708, InfoValid: true}, false},
		{"descriptor truncated descriptor", []byte{
			0x73, 0x02, 0x04, 0x01, 0, 0, 0, 12, 0x00, 0x0A, 0x80, 0,
		}, Sense{ResponseCode: 0x73, Key: KeyNotReady, ASC: 0x04, ASCQ: 0x01}, false},
		{"descriptor 4 bytes", []byte{0x72, 0x0B, 0x47, 0x00}, Sense{ResponseCode: 0x72, Key: KeyAbortedCommand, ASC: 0x47}, false},
		{"descriptor too short", []byte{0x72, 0x0B, 0x47}, Sense{}, true},
		{"unknown code", []byte{0x7F, 0, 0, 0, 0, 0, 0, 0}, Sense{}, true},
		{"empty", nil, Sense{}, true},
	} {
		got, err := ParseSense(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v, err %v", tc.name, got, err, tc.want, tc.err)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v does not match ErrMalformed", tc.name, err)
		}
	}
	s, _ := ParseSense([]byte{0x70, 0, 6, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0x2A, 0x09})
	if !s.CapacityChanged() || s.LUNsChanged() || s.Deferred() {
		t.Errorf("predicates wrong for %+v", s)
	}
	s, _ = ParseSense([]byte{0x73, 6, 0x3F, 0x0E})
	if s.CapacityChanged() || !s.LUNsChanged() || !s.Deferred() {
		t.Errorf("predicates wrong for %+v", s)
	}
}

func inquiry36() []byte {
	b := []byte{
		0x00, 0x80, 0x06, 0x02, 31, 0, 0, 0x02,
		'M', 's', 'f', 't', ' ', ' ', ' ', ' ',
		'V', 'i', 'r', 't', 'u', 'a', 'l', ' ', 'D', 'i', 's', 'k', ' ', ' ', ' ', ' ',
		'1', '.', '0', 0x01,
	}
	return b
}

func TestParseInquiry(t *testing.T) {
	d, err := ParseInquiry(inquiry36())
	want := InquiryData{Removable: true, Version: 6, Format: 2, CmdQue: true,
		Vendor: "Msft", Product: "Virtual Disk", Revision: "1.0?"}
	if err != nil || d != want {
		t.Fatalf("got %+v, %v", d, err)
	}
	if !d.Present() {
		t.Fatal("not present")
	}
	d, err = ParseInquiry([]byte{0x7F, 0, 0, 0, 0})
	if err != nil || d.Qualifier != 3 || d.DeviceType != 0x1F || d.Present() || d.Vendor != "" {
		t.Fatalf("no-LUN inquiry: %+v %v", d, err)
	}
	// Additional length shorter than the data: strings are not read.
	b := inquiry36()
	b[4] = 2 // 7 bytes: flags byte 7 and strings are beyond
	if d, _ = ParseInquiry(b); d.Vendor != "" || d.CmdQue {
		t.Fatalf("read past additional length: %+v", d)
	}
	if _, err = ParseInquiry([]byte{0, 0, 0, 0}); !errors.Is(err, ErrMalformed) {
		t.Fatal("4 bytes accepted")
	}
}

func TestParseVPD(t *testing.T) {
	pages, err := ParseVPDSupportedPages([]byte{0, 0x00, 0, 4, 0x00, 0x80, 0x83, 0xB0, 0xEE})
	if err != nil || !slices.Equal(pages, []uint8{0, 0x80, 0x83, 0xB0}) {
		t.Fatalf("supported: %v %v", pages, err)
	}
	if _, err = ParseVPDSupportedPages([]byte{0, 0x80, 0, 0}); err == nil {
		t.Fatal("wrong page code accepted")
	}
	sn, err := ParseVPDSerial([]byte{0, 0x80, 0, 6, ' ', 'A', 'B', '1', ' ', ' '})
	if err != nil || sn != "AB1" {
		t.Fatalf("serial %q %v", sn, err)
	}
	ids, err := ParseVPDDeviceID([]byte{0, 0x83, 0, 18,
		0x01, 0x03, 0, 8, 0x60, 0x02, 0x24, 0x80, 1, 2, 3, 4, // binary NAA, LU
		0x02, 0x91, 0, 2, 'a', 'b', // ASCII, target port (assoc 1), type 1
	})
	if err != nil || len(ids) != 2 ||
		ids[0].CodeSet != 1 || ids[0].Type != 3 || ids[0].Association != 0 || len(ids[0].ID) != 8 || ids[0].ID[0] != 0x60 ||
		ids[1].CodeSet != 2 || ids[1].Type != 1 || ids[1].Association != 1 || string(ids[1].ID) != "ab" {
		t.Fatalf("device id %+v %v", ids, err)
	}
	if _, err = ParseVPDDeviceID([]byte{0, 0x83, 0, 6, 1, 3, 0, 8, 0, 0}); !errors.Is(err, ErrMalformed) {
		t.Fatal("overlong designator accepted")
	}

	bl := make([]byte, 64)
	copy(bl, []byte{0, 0xB0, 0, 0x3C, 0, 0, 0, 8, 0, 0, 0x08, 0, 0, 0, 0x01, 0})
	copy(bl[20:], []byte{0, 0x40, 0, 0, 0, 0, 0, 1, 0, 0, 0, 8, 0x80, 0, 0, 2, 0, 0, 0, 0, 0, 0x10, 0, 0})
	l, err := ParseVPDBlockLimits(bl)
	wantBL := BlockLimits{OptimalGranularity: 8, MaxTransferBlocks: 0x800, OptimalTransferBlocks: 0x100,
		MaxUnmapBlocks: 0x400000, MaxUnmapDescriptors: 1, UnmapGranularity: 8, UnmapAlignment: 2,
		UnmapAlignmentValid: true, MaxWriteSameBlocks: 0x100000}
	if err != nil || l != wantBL {
		t.Fatalf("block limits %+v %v", l, err)
	}
	bl[3] = 12 // page only through the optimal transfer length
	if l, err = ParseVPDBlockLimits(bl); err != nil || l.MaxUnmapBlocks != 0 || l.MaxTransferBlocks != 0x800 {
		t.Fatalf("short block limits %+v %v", l, err)
	}
	bl[3] = 4
	if _, err = ParseVPDBlockLimits(bl); err == nil {
		t.Fatal("8-byte block limits accepted")
	}

	p, err := ParseVPDProvisioning([]byte{0, 0xB2, 0, 4, 3, 0xC4, 0x02, 0})
	if err != nil || p != (Provisioning{ThresholdExponent: 3, Unmap: true, WriteSame16: true, ReadZeros: true, Type: 2}) {
		t.Fatalf("provisioning %+v %v", p, err)
	}
	if _, err = ParseVPDProvisioning([]byte{0, 0xB2, 0, 2, 3, 0xC4}); err == nil {
		t.Fatal("short provisioning accepted")
	}
}

func TestParseReportLUNs(t *testing.T) {
	b := []byte{0, 0, 0, 24, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, // LUN 0
		0, 5, 0, 0, 0, 0, 0, 0, // LUN 5 (peripheral)
		0x41, 0x02, 0, 0, 0, 0, 0, 0, // flat LUN 0x102
	}
	luns, total, err := ParseReportLUNs(b, nil)
	if err != nil || total != 3 || len(luns) != 3 {
		t.Fatalf("%v %d %v", luns, total, err)
	}
	var nums []uint16
	for _, l := range luns {
		n, ok := l.Number()
		if !ok {
			t.Fatalf("%x not decodable", l)
		}
		nums = append(nums, n)
	}
	if !slices.Equal(nums, []uint16{0, 5, 0x102}) {
		t.Fatalf("numbers %v", nums)
	}
	// Allocation length cut the list.
	luns, total, err = ParseReportLUNs(b[:20], nil)
	if err != nil || total != 3 || len(luns) != 1 {
		t.Fatalf("truncated: %v %d %v", luns, total, err)
	}
	if _, _, err = ParseReportLUNs([]byte{0, 0, 0, 7, 0, 0, 0, 0}, nil); err == nil {
		t.Fatal("list length 7 accepted")
	}
	if _, ok := (LUN{0x80, 1}).Number(); ok {
		t.Fatal("logical unit addressing decoded")
	}
	if _, ok := (LUN{0, 1, 0, 2}).Number(); ok {
		t.Fatal("second level ignored")
	}
}

func TestParseReadCapacity(t *testing.T) {
	c, err := ParseReadCapacity10([]byte{0, 0x0F, 0xFF, 0xFF, 0, 0, 0x02, 0})
	if err != nil || c.LastLBA != 0xFFFFF || c.BlockSize != 512 || c.Blocks() != 0x100000 {
		t.Fatalf("rc10 %+v %v", c, err)
	}
	if _, err = ParseReadCapacity10([]byte{0, 0, 0, 1, 0, 0, 0x03, 0}); err == nil {
		t.Fatal("block size 768 accepted")
	}
	c, err = ParseReadCapacity16([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x10, 0, 0x01, 0x03, 0xC0, 0x07, 0, 0})
	want := Capacity{LastLBA: 1 << 32, BlockSize: 4096, ProtectionEnabled: true, PhysicalExponent: 3,
		ThinProvisioned: true, ReadZeros: true, LowestAlignedLBA: 7}
	if err != nil || c != want {
		t.Fatalf("rc16 %+v %v", c, err)
	}
	if _, err = ParseReadCapacity16([]byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 2, 0}); err == nil {
		t.Fatal("last LBA 2^64−1 accepted")
	}
	if _, err = ParseReadCapacity16(make([]byte, 11)); err == nil {
		t.Fatal("11 bytes accepted")
	}
}

func TestParseModeSense(t *testing.T) {
	// MODE SENSE(6): WP set, 8-byte block descriptor, caching page WCE.
	b6 := []byte{3 + 8 + 20, 0, 0x90, 8, 0, 0, 0, 0, 0, 0, 2, 0,
		0x08, 18, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	d, err := ParseModeSense6(b6)
	if err != nil || d != (ModeSenseData{WriteProtect: true, DPOFUA: true, HasCaching: true, WriteCache: true}) {
		t.Fatalf("ms6 %+v %v", d, err)
	}
	// MODE SENSE(10): no block descriptors, page 0x01 then caching with RCD.
	b10 := []byte{0, 6 + 4 + 4, 0, 0x00, 0, 0, 0, 0,
		0x01, 2, 0, 0,
		0x88, 2, 0x01, 0} // PS bit set on the caching page
	d, err = ParseModeSense10(b10)
	if err != nil || d != (ModeSenseData{HasCaching: true, ReadCacheDisabled: true}) {
		t.Fatalf("ms10 %+v %v", d, err)
	}
	// Page list truncated by the allocation length: header still read.
	d, err = ParseModeSense6([]byte{30, 0, 0x80, 0, 0x08})
	if err != nil || d != (ModeSenseData{WriteProtect: true}) {
		t.Fatalf("truncated %+v %v", d, err)
	}
	if _, err = ParseModeSense10(make([]byte, 7)); err == nil {
		t.Fatal("7-byte MODE SENSE(10) accepted")
	}
}
