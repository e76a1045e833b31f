package scsi

import (
	"bytes"
	"testing"
)

// Expected bytes are written from the SPC-4/SBC-3 field offsets, not
// produced by the builders.
func TestCDBBytes(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  CDB
		want []byte
	}{
		{"TEST UNIT READY", TestUnitReady(), []byte{0, 0, 0, 0, 0, 0}},
		{"REQUEST SENSE", RequestSense(252), []byte{0x03, 0, 0, 0, 252, 0}},
		{"INQUIRY", Inquiry(0x0124), []byte{0x12, 0, 0, 0x01, 0x24, 0}},
		{"INQUIRY VPD 0x00", InquiryVPD(0x00, 255), []byte{0x12, 1, 0x00, 0, 255, 0}},
		{"INQUIRY VPD 0x80", InquiryVPD(0x80, 255), []byte{0x12, 1, 0x80, 0, 255, 0}},
		{"INQUIRY VPD 0x83", InquiryVPD(0x83, 0x200), []byte{0x12, 1, 0x83, 0x02, 0x00, 0}},
		{"INQUIRY VPD 0xB0", InquiryVPD(0xB0, 64), []byte{0x12, 1, 0xB0, 0, 64, 0}},
		{"INQUIRY VPD 0xB2", InquiryVPD(0xB2, 8), []byte{0x12, 1, 0xB2, 0, 8, 0}},
		{"REPORT LUNS", ReportLUNs(0x01020304), []byte{0xA0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0}},
		{"READ CAPACITY(10)", ReadCapacity10(), []byte{0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"READ CAPACITY(16)", ReadCapacity16(32), []byte{0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0}},
		{"READ(10)", Read10(0x11223344, 0x5566), []byte{0x28, 0, 0x11, 0x22, 0x33, 0x44, 0, 0x55, 0x66, 0}},
		{"WRITE(10)", Write10(0x11223344, 0x5566, false), []byte{0x2A, 0, 0x11, 0x22, 0x33, 0x44, 0, 0x55, 0x66, 0}},
		{"WRITE(10) FUA", Write10(1, 2, true), []byte{0x2A, 0x08, 0, 0, 0, 1, 0, 0, 2, 0}},
		{"READ(16)", Read16(0x0102030405060708, 0x0A0B0C0D), []byte{0x88, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0x0A, 0x0B, 0x0C, 0x0D, 0, 0}},
		{"WRITE(16)", Write16(0x0102030405060708, 0x0A0B0C0D, false), []byte{0x8A, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0x0A, 0x0B, 0x0C, 0x0D, 0, 0}},
		{"ReadWrite small read", ReadWrite(false, 7, 8), []byte{0x28, 0, 0, 0, 0, 7, 0, 0, 8, 0}},
		{"ReadWrite big LBA", ReadWrite(true, 1<<32, 1), []byte{0x8A, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0}},
		{"ReadWrite many blocks", ReadWrite(false, 0, 0x10000), []byte{0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}},
		{"ReadWrite crossing 2^32", ReadWrite(false, 0xFFFFFFFF, 2), []byte{0x88, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 2, 0, 0}},
		{"SYNCHRONIZE CACHE", SynchronizeCache10(0, 0), []byte{0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"UNMAP", Unmap(24), []byte{0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0}},
		{"WRITE SAME(16) unmap", WriteSame16(0x10, 0x20, true), []byte{0x93, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x20, 0, 0}},
		{"WRITE SAME(16)", WriteSame16(0x10, 0x20, false), []byte{0x93, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x20, 0, 0}},
		{"MODE SENSE(6) caching", ModeSense6(0x08, 0, true, 0xFF), []byte{0x1A, 0x08, 0x08, 0, 0xFF, 0}},
		{"MODE SENSE(6) all", ModeSense6(0x3F, 0, false, 192), []byte{0x1A, 0, 0x3F, 0, 192, 0}},
		{"MODE SENSE(10) caching", ModeSense10(0x08, 0, true, 0x0102), []byte{0x5A, 0x08, 0x08, 0, 0, 0, 0, 0x01, 0x02, 0}},
	} {
		if got := tc.got.Bytes(); !bytes.Equal(got, tc.want) {
			t.Errorf("%s: got % x, want % x", tc.name, got, tc.want)
		}
		if tc.got.Len() != len(tc.want) || tc.got.Op() != tc.want[0] {
			t.Errorf("%s: Len %d Op %#x", tc.name, tc.got.Len(), tc.got.Op())
		}
	}
}

func TestUnmapParams(t *testing.T) {
	dst := bytes.Repeat([]byte{0xEE}, 30)
	if n := UnmapParams(dst, 0x0102030405060708, 0x0A0B0C0D); n != 24 {
		t.Fatalf("len %d", n)
	}
	want := []byte{
		0, 22, // data length = 24 − 2
		0, 16, // block descriptor data length
		0, 0, 0, 0, // reserved
		1, 2, 3, 4, 5, 6, 7, 8, // LBA
		0x0A, 0x0B, 0x0C, 0x0D, // blocks
		0, 0, 0, 0, // reserved
		0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE, // untouched
	}
	if !bytes.Equal(dst, want) {
		t.Fatalf("got % x\nwant % x", dst, want)
	}
	if UnmapParams(make([]byte, 23), 0, 1) != 0 {
		t.Fatal("short buffer accepted")
	}
}

func TestCDBAllocs(t *testing.T) {
	var sink byte
	n := testing.AllocsPerRun(100, func() {
		c := ReadWrite(true, 1<<40, 8)
		sink += c.Bytes()[0]
	})
	if n != 0 {
		t.Fatalf("%v allocs", n)
	}
}
