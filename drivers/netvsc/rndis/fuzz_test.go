package rndis

import "testing"

// FuzzMessages feeds the RNDIS message decoders arbitrary host bytes:
// none may panic, and every returned sub-slice must lie inside the
// message's declared length.
func FuzzMessages(f *testing.F) {
	f.Add(words(0x80000002, 52, 3, 0, 1, 0, 0, 0, 8, 0xEFFFFFFF, 3, 0, 0))
	f.Add(append(words(0x80000004, 30, 4, 0, 6, 16), 0x00, 0x15, 0x5d, 1, 2, 3))
	f.Add(words(0x80000005, 16, 9, 0))
	f.Add(words(7, 24, IndicateLinkSpeedChange, 4, 12, 100000000))
	f.Add(words(8, 12, 77))
	f.Add(append(words(1, 44+16+4, 52, 4, 0, 0, 0, 36, 16, 0, 0), words(16, 0, 12, 0x28, 0xAABBCCDD)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, length, herr := ParseHeader(b)
		inside := func(s []byte) {
			if herr != nil || len(s) == 0 {
				return
			}
			// s must alias b[:length].
			start := cap(b) - cap(s)
			if start < 0 || start+len(s) > int(length) {
				t.Fatalf("sub-slice [%d:%d] outside length %d", start, start+len(s), length)
			}
		}
		_, _ = ParseInitializeComplete(b)
		_, _ = RequestIDOf(b)
		if _, _, info, err := ParseQueryComplete(b); err == nil {
			inside(info)
		}
		_, _, _ = ParseSetComplete(b)
		_, _ = ParseKeepalive(b)
		_, _, _ = ParseKeepaliveComplete(b)
		if _, buf, err := ParseIndicateStatus(b); err == nil {
			inside(buf)
		}
		if data, ppi, err := ParsePacket(b); err == nil {
			inside(data)
			inside(ppi)
			_, _ = ParsePacketInfo(ppi)
		}
	})
}

// FuzzPacketInfo walks arbitrary per-packet info areas.
func FuzzPacketInfo(f *testing.F) {
	f.Add(words(16, PPIChecksum, 12, 0x28))
	f.Add(append(words(16, PPIVLAN, 12, 0x53), words(16, PPIHash, 12, 1)...))
	f.Add(words(16, PPIPacketID, 12, 0x0301))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParsePacketInfo(b)
	})
}

// FuzzOIDResults decodes arbitrary OID result buffers.
func FuzzOIDResults(f *testing.F) {
	caps := make([]byte, 156)
	copy(caps, []byte{0xA7, 3, 156, 0})
	f.Add(caps)
	f.Add(append([]byte{0x88, 2, 18, 0}, words(0x100, 8, 4, 128)...))
	f.Add([]byte{0x00, 0x15, 0x5d, 1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := ParseOffloadCaps(b); err == nil && c.Revision == 0 {
			t.Fatal("revision 0 accepted")
		}
		_, _ = ParseRSSCaps(b)
		if mac, err := ParseMAC(b); err == nil && mac[0]&1 != 0 {
			t.Fatal("multicast MAC accepted")
		}
		_, _ = ParseUint32(b)
	})
}
