package scsi

import (
	"errors"
	"testing"
)

// Every parser must return a value or an error wrapping ErrMalformed for
// any input, and never panic.

func checkErr(t *testing.T, err error) {
	if err != nil && !errors.Is(err, ErrMalformed) {
		t.Fatalf("error %v does not wrap ErrMalformed", err)
	}
}

func FuzzParseSense(f *testing.F) {
	f.Add([]byte{0xF0, 0, 0x06, 0, 0, 0x12, 0x34, 10, 0, 0, 0, 0, 0x2A, 0x09, 0, 0, 0, 0})
	f.Add([]byte{0x72, 0x06, 0x3F, 0x0E, 0, 0, 0, 12, 0x00, 0x0A, 0x80, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{0x73, 0x02, 0x04, 0x01, 0, 0, 0, 0xFF, 0x00, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSense(b)
		checkErr(t, err)
		if err == nil && s.ResponseCode < 0x70 {
			t.Fatalf("accepted response code %#x", s.ResponseCode)
		}
	})
}

func FuzzParseInquiry(f *testing.F) {
	f.Add(inquiry36())
	f.Add([]byte{0x7F, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := ParseInquiry(b)
		checkErr(t, err)
	})
}

func FuzzParseVPD(f *testing.F) {
	f.Add([]byte{0, 0x00, 0, 4, 0x00, 0x80, 0x83, 0xB0})
	f.Add([]byte{0, 0x80, 0, 6, ' ', 'A', 'B', '1', ' ', ' '})
	f.Add([]byte{0, 0x83, 0, 18, 0x01, 0x03, 0, 8, 0x60, 0x02, 0x24, 0x80, 1, 2, 3, 4, 0x02, 0x91, 0, 2, 'a', 'b'})
	f.Add(append([]byte{0, 0xB0, 0, 0x3C}, make([]byte, 60)...))
	f.Add([]byte{0, 0xB2, 0, 4, 3, 0xC4, 0x02, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := ParseVPDSupportedPages(b)
		checkErr(t, err)
		_, err = ParseVPDSerial(b)
		checkErr(t, err)
		ids, err := ParseVPDDeviceID(b)
		checkErr(t, err)
		for _, d := range ids {
			if len(d.ID) > len(b) {
				t.Fatal("designator longer than input")
			}
		}
		_, err = ParseVPDBlockLimits(b)
		checkErr(t, err)
		_, err = ParseVPDProvisioning(b)
		checkErr(t, err)
	})
}

func FuzzParseReportLUNs(f *testing.F) {
	f.Add([]byte{0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xF8, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		luns, total, err := ParseReportLUNs(b, nil)
		checkErr(t, err)
		if len(luns) > total || len(luns)*8+8 > len(b)+8 {
			t.Fatalf("%d LUNs from %d bytes (total %d)", len(luns), len(b), total)
		}
		for _, l := range luns {
			l.Number()
		}
	})
}

func FuzzParseReadCapacity(f *testing.F) {
	f.Add([]byte{0, 0x0F, 0xFF, 0xFF, 0, 0, 0x02, 0})
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x10, 0, 0x01, 0x03, 0xC0, 0x07})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, parse := range []func([]byte) (Capacity, error){ParseReadCapacity10, ParseReadCapacity16} {
			c, err := parse(b)
			checkErr(t, err)
			if err == nil && (c.BlockSize < 512 || c.BlockSize&(c.BlockSize-1) != 0 || c.Blocks() == 0) {
				t.Fatalf("accepted %+v", c)
			}
		}
	})
}

func FuzzParseModeSense(f *testing.F) {
	f.Add([]byte{31, 0, 0x90, 8, 0, 0, 0, 0, 0, 0, 2, 0, 0x08, 18, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 14, 0, 0, 0, 0, 0, 0, 0x01, 2, 0, 0, 0x48, 0, 0, 2, 0x04, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := ParseModeSense6(b)
		checkErr(t, err)
		_, err = ParseModeSense10(b)
		checkErr(t, err)
	})
}
