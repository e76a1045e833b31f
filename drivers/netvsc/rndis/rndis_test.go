package rndis

import (
	"bytes"
	"errors"
	"testing"
)

// Expected bytes are written by hand from docs/hyperv-protocol.md
// §7.6–7.9 (and, for NDIS objects, the layouts cited in ndis.go), not
// produced by this package.

// words lays out little-endian u32s in order: offset 4×i holds words[i].
func words(ws ...uint32) []byte {
	b := make([]byte, 4*len(ws))
	for i, w := range ws {
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(w), byte(w>>8), byte(w>>16), byte(w>>24)
	}
	return b
}

func TestRequestEncoders(t *testing.T) {
	b := make([]byte, 256)
	tests := []struct {
		name string
		n    func() int
		want []byte
	}{
		// INITIALIZE: type 2, length 24, id, major 1, minor 0, max transfer.
		{"INITIALIZE", func() int { return PutInitialize(b, 7, 0x4000) }, words(2, 24, 7, 1, 0, 0x4000)},
		{"HALT", func() int { return PutHalt(b, 9) }, words(3, 12, 9)},
		{"KEEPALIVE", func() int { return PutKeepalive(b, 10) }, words(8, 12, 10)},
		{"KEEPALIVE_CMPLT", func() int { return PutKeepaliveComplete(b, 11, 0) }, words(0x80000008, 16, 11, 0)},
		// QUERY: type 4, length 28, id, OID, info length 0, info offset 20, VC 0.
		{"QUERY MAC", func() int { return PutQuery(b, 5, OID8023PermanentAddress, 0) }, words(4, 28, 5, 0x01010101, 0, 20, 0)},
		// SET with a 4-byte filter: length 32, info @28.
		{"SET filter", func() int {
			copy(RequestInfo(b, 4), words(FilterDefault))
			return PutSet(b, 6, OIDGenCurrentPacketFilter, 4)
		}, words(5, 32, 6, 0x0001010E, 4, 20, 0, 0x0D)},
	}
	for _, tt := range tests {
		n := tt.n()
		if !bytes.Equal(b[:n], tt.want) {
			t.Errorf("%s:\n got % x\nwant % x", tt.name, b[:n], tt.want)
		}
	}
	SetRequestID(b, 0x55)
	if !bytes.Equal(b[8:12], []byte{0x55, 0, 0, 0}) {
		t.Errorf("SetRequestID: % x", b[8:12])
	}
}

func TestPacketEncoder(t *testing.T) {
	b := make([]byte, 128)
	for i := range b {
		b[i] = 0xEE
	}
	// PACKET with one checksum PPI (16 bytes) and a 60-byte frame:
	// length 44+16+60 = 120, data offset 36+16 = 52 (from @8), PPI offset
	// 36, PPI length 16.
	n := PutPacket(b, 16, 60)
	v, err := CsumTxInfo(CsumTxIPv4|CsumTxTCP, 34)
	if err != nil {
		t.Fatal(err)
	}
	n += PutPPI(b[n:], PPIChecksum, v)
	want := append(words(1, 120, 52, 60, 0, 0, 0, 36, 16, 0, 0),
		// PPI: size 16, type 0, offset 12, value: IPv4|TCP, offset 34 in bits 25:16.
		words(16, 0, 12, 0x1|0x4|34<<16)...)
	if !bytes.Equal(b[:n], want) {
		t.Errorf("PACKET:\n got % x\nwant % x", b[:n], want)
	}
	// LSOv2: MSS 1460, TCP header at 54, type bit 30, IPv6 bit 31.
	if v, err := LSOv2Info(1460, 54, true); err != nil || v != 1460|54<<20|1<<30|1<<31 {
		t.Errorf("LSOv2Info = %#x %v", v, err)
	}
	if v, err := LSOv2Info(1460, 34, false); err != nil || v != 1460|34<<20|1<<30 {
		t.Errorf("LSOv2Info v4 = %#x %v", v, err)
	}
	for _, bad := range [][2]int{{0, 34}, {1 << 20, 34}, {1460, 1024}, {1460, -1}} {
		if _, err := LSOv2Info(bad[0], bad[1], false); !errors.Is(err, ErrInvalid) {
			t.Errorf("LSOv2Info%v: %v", bad, err)
		}
	}
	if _, err := CsumTxInfo(CsumTxTCP, 1024); !errors.Is(err, ErrInvalid) {
		t.Errorf("CsumTxInfo offset 1024: %v", err)
	}
}

func TestParseCompletions(t *testing.T) {
	// INITIALIZE_CMPLT as OpenVMM sends it (§7.6): 52 bytes.
	ic, err := ParseInitializeComplete(words(0x80000002, 52, 3, 0, 1, 0, 0, 0, 8, 0xEFFFFFFF, 3, 0, 0))
	if err != nil || ic.RequestID != 3 || ic.Major != 1 || ic.MaxPacketsPerMessage != 8 || ic.PacketAlignmentFactor != 3 || ic.MaxTransferSize != 0xEFFFFFFF {
		t.Errorf("INITIALIZE_CMPLT %+v %v", ic, err)
	}
	if _, err := ParseInitializeComplete(words(0x80000002, 44, 3, 0, 1, 0, 0, 0, 8, 0, 13)); !errors.Is(err, ErrInvalid) {
		t.Errorf("alignment 13: %v", err)
	}
	// QUERY_CMPLT with a 6-byte MAC at offset 16 (from @8) → @24.
	q := append(words(0x80000004, 30, 4, 0, 6, 16), 0x00, 0x15, 0x5d, 0x01, 0x02, 0x03)
	id, st, info, err := ParseQueryComplete(q)
	if err != nil || id != 4 || st != 0 || !bytes.Equal(info, []byte{0x00, 0x15, 0x5d, 1, 2, 3}) {
		t.Fatalf("QUERY_CMPLT %d %d % x %v", id, st, info, err)
	}
	if mac, err := ParseMAC(info); err != nil || mac != [6]byte{0x00, 0x15, 0x5d, 1, 2, 3} {
		t.Errorf("ParseMAC %v %v", mac, err)
	}
	if _, err := ParseMAC([]byte{1, 2, 3, 4, 5, 6}); !errors.Is(err, ErrInvalid) {
		t.Errorf("multicast MAC accepted")
	}
	if id, st, info, err := ParseQueryComplete(words(0x80000004, 24, 4, StatusNotSupported, 0, 0)); err != nil || id != 4 || st != StatusNotSupported || info != nil {
		t.Errorf("failed QUERY_CMPLT %d %#x %v %v", id, st, info, err)
	}
	if id, st, err := ParseSetComplete(words(0x80000005, 16, 9, 0)); err != nil || id != 9 || st != 0 {
		t.Errorf("SET_CMPLT %d %d %v", id, st, err)
	}
	if id, st, err := ParseKeepaliveComplete(words(0x80000008, 16, 2, 0)); err != nil || id != 2 || st != 0 {
		t.Errorf("KEEPALIVE_CMPLT %d %d %v", id, st, err)
	}
	if id, err := ParseKeepalive(words(8, 12, 77)); err != nil || id != 77 {
		t.Errorf("KEEPALIVE %d %v", id, err)
	}
	if id, err := RequestIDOf(words(0x80000005, 16, 9, 0)); err != nil || id != 9 {
		t.Errorf("RequestIDOf %d %v", id, err)
	}
	// INDICATE_STATUS link speed: buffer of 4 bytes at offset 12 (@20).
	st2, buf, err := ParseIndicateStatus(words(7, 24, IndicateLinkSpeedChange, 4, 12, 100000000))
	if err != nil || st2 != IndicateLinkSpeedChange || len(buf) != 4 {
		t.Fatalf("INDICATE_STATUS %#x % x %v", st2, buf, err)
	}
	if v, err := ParseUint32(buf); err != nil || v != 100000000 {
		t.Errorf("speed %d %v", v, err)
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name string
		err  error
		fn   func() error
	}{
		{"header short", ErrShort, func() error { _, _, err := ParseHeader([]byte{1, 0, 0}); return err }},
		{"length beyond bytes", ErrShort, func() error { _, _, err := ParseHeader(words(1, 100)); return err }},
		{"length below header", ErrShort, func() error { _, _, err := ParseHeader(words(1, 4)); return err }},
		{"wrong type", ErrType, func() error { _, _, err := ParseSetComplete(words(0x80000004, 16, 1, 0)); return err }},
		{"set complete short", ErrShort, func() error { _, _, err := ParseSetComplete(words(0x80000005, 12, 1)); return err }},
		{"query info past end", ErrInvalid, func() error {
			_, _, _, err := ParseQueryComplete(words(0x80000004, 28, 1, 0, 8, 16, 0))
			return err
		}},
		{"query info inside header", ErrInvalid, func() error {
			_, _, _, err := ParseQueryComplete(words(0x80000004, 28, 1, 0, 4, 4, 0))
			return err
		}},
		{"query info offset overflow", ErrInvalid, func() error {
			_, _, _, err := ParseQueryComplete(words(0x80000004, 28, 1, 0, 4, 0xFFFFFFFF, 0))
			return err
		}},
		{"status buffer past end", ErrInvalid, func() error { _, _, err := ParseIndicateStatus(words(7, 24, 1, 8, 12, 0)); return err }},
		{"packet data past end", ErrInvalid, func() error {
			_, _, err := ParsePacket(words(1, 44, 36, 1, 0, 0, 0, 0, 0, 0, 0))
			return err
		}},
		{"packet data in header", ErrInvalid, func() error {
			_, _, err := ParsePacket(append(words(1, 48, 0, 4, 0, 0, 0, 0, 0, 0, 0), 1, 2, 3, 4))
			return err
		}},
		{"u32 short", ErrShort, func() error { _, err := ParseUint32([]byte{1, 2}); return err }},
	}
	for _, tt := range tests {
		if err := tt.fn(); !errors.Is(err, tt.err) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.err)
		}
	}
}

func TestParsePacketAndInfo(t *testing.T) {
	// A receive as a host builds it: header, checksum PPI, VLAN PPI, hash
	// PPI, then a 14-byte frame. PPI offset 36 (@44), length 48; data
	// offset 84 (@92).
	frame := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00}
	msg := append(words(1, 44+48+14, 84, 14, 0, 0, 0, 36, 48, 0, 0),
		words(16, PPIChecksum, 12, CsumRxTCPSucceeded|CsumRxIPSucceeded)...)
	msg = append(msg, words(16, PPIVLAN, 12, 5<<4|3)...)
	msg = append(msg, words(16, PPIHash, 12, 0xDEADBEEF)...)
	msg = append(msg, frame...)
	data, ppi, err := ParsePacket(msg)
	if err != nil || !bytes.Equal(data, frame) || len(ppi) != 48 {
		t.Fatalf("ParsePacket % x %d %v", data, len(ppi), err)
	}
	pi, err := ParsePacketInfo(ppi)
	want := PacketInfo{Csum: 0x28, VLAN: 0x53, Hash: 0xDEADBEEF, HasCsum: true, HasVLAN: true, HasHash: true}
	if err != nil || pi != want {
		t.Errorf("ParsePacketInfo %+v %v", pi, err)
	}
	// Unknown types are skipped; an internal packet id is reported.
	pi, err = ParsePacketInfo(append(words(20, 99, 12, 0, 0), words(16, PPIPacketID, 12, 0x0301)...))
	if err != nil || !pi.HasPacketID || pi.PacketID != 0x0301 || pi.HasCsum {
		t.Errorf("internal %+v %v", pi, err)
	}
	for name, bad := range map[string][]byte{
		"size below header": words(8, 0, 12, 0),
		"size past end":     words(20, 0, 12, 0),
		"offset past size":  words(16, 0, 20, 0),
		"offset in header":  words(16, 0, 4, 0),
		"short data":        words(14, 0, 12, 0)[:14],
		"trailing bytes":    append(words(16, 0, 12, 0), 1, 2),
	} {
		if _, err := ParsePacketInfo(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestNDISObjects(t *testing.T) {
	// OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES query info, revision 3: type
	// 0xA7, rev 3, size 156 (u16), zeros after.
	b := make([]byte, OffloadSize630)
	OffloadRequest(b, 3, OffloadSize630)
	if !bytes.Equal(b[:4], []byte{0xA7, 3, 156, 0}) || !bytes.Equal(b[4:], make([]byte, 152)) {
		t.Errorf("offload request % x", b[:8])
	}
	// NDIS_OFFLOAD result: IPv4 TX csum flags @8 (TCP|TCPopt|UDP|IP),
	// IPv6 TX @24, LSOv2 IPv4 encap @80 max @84, IPv6 encap @92 max @96
	// options @104, RSC @144/145.
	caps := make([]byte, 156)
	copy(caps, []byte{0xA7, 3, 156, 0})
	copy(caps[8:], words(0x154))
	copy(caps[24:], words(0x55))
	copy(caps[80:], words(2, 62780, 2, 2, 62780, 2, 5))
	caps[144], caps[145] = 1, 1
	c, err := ParseOffloadCaps(caps)
	if err != nil || c.IPv4TxCsum != 0x154 || c.IPv6TxCsum != 0x55 || c.LSOv2IPv4Encap != 2 || c.LSOv2IPv4MaxSize != 62780 ||
		c.LSOv2IPv6MaxSize != 62780 || c.LSOv2IPv6Options != 5 || !c.RSCIPv4 || !c.RSCIPv6 || c.Revision != 3 {
		t.Errorf("ParseOffloadCaps %+v %v", c, err)
	}
	for name, mut := range map[string]func([]byte){
		"type":     func(b []byte) { b[0] = 0x80 },
		"revision": func(b []byte) { b[1] = 0 },
		"size big": func(b []byte) { b[2], b[3] = 157, 0 },
		"size low": func(b []byte) { b[2], b[3] = 100, 0 },
	} {
		m := append([]byte(nil), caps...)
		mut(m)
		if _, err := ParseOffloadCaps(m); !errors.Is(err, ErrInvalid) {
			t.Errorf("offload caps %s: %v", name, err)
		}
	}

	// NDIS_OFFLOAD_PARAMETERS: type 0x80 rev 3 size 28; IPv4 csum @4,
	// TCP4 @5, UDP4 @6, TCP6 @7, UDP6 @8, LSOv2 v4 @11, v6 @12, RSC @22/23.
	p := make([]byte, 28)
	PutOffloadParams(p, OffloadParams{IPv4Csum: 1, TCPIPv4Csum: 4, UDPIPv4Csum: 4, TCPIPv6Csum: 4, UDPIPv6Csum: 4, LSOv2IPv4: 2, LSOv2IPv6: 2, RSCIPv4: 1, RSCIPv6: 1}, 28)
	wantP := []byte{0x80, 3, 28, 0, 1, 4, 4, 4, 4, 0, 0, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0}
	if !bytes.Equal(p, wantP) {
		t.Errorf("offload params:\n got % x\nwant % x", p, wantP)
	}
	p22 := make([]byte, 28)
	PutOffloadParams(p22, OffloadParams{TCPIPv4Csum: 4, RSCIPv4: 1}, 22)
	if !bytes.Equal(p22[:4], []byte{0x80, 3, 22, 0}) || p22[5] != 4 || p22[22] != 0 {
		t.Errorf("v4 offload params % x", p22)
	}

	// RSS capabilities query: type 0x88 rev 2 size 18.
	r := make([]byte, RSSCapsSize)
	RSSCapsRequest(r)
	if !bytes.Equal(r, append([]byte{0x88, 2, 18, 0}, make([]byte, 14)...)) {
		t.Errorf("RSS caps request % x", r)
	}
	rc := append([]byte{0x88, 2, 18, 0}, words(0x100, 8, 4)...)
	rc = append(rc, 128, 0)
	if c, err := ParseRSSCaps(rc); err != nil || c.ReceiveQueues != 4 || c.IndirectionEntries != 128 || c.InterruptMessages != 8 {
		t.Errorf("ParseRSSCaps %+v %v", c, err)
	}
	if c, err := ParseRSSCaps(append([]byte{0x88, 1, 16, 0}, words(0, 8, 4)...)); err != nil || c.ReceiveQueues != 4 || c.IndirectionEntries != 0 {
		t.Errorf("ParseRSSCaps rev 1 %+v %v", c, err)
	}
	if _, err := ParseRSSCaps(append([]byte{0x89, 2, 18, 0}, words(0, 8, 4, 0)...)); !errors.Is(err, ErrInvalid) {
		t.Errorf("RSS caps wrong type: %v", err)
	}

	// RSS parameters with a 2-entry table: header 0x89 rev 2 size 40,
	// flags @4, hash info @8, table size 8 @12, table offset 40 @16, key
	// size 40 @20, key offset 48 @24, table @40, key @48.
	var key [RSSKeySize]byte
	for i := range key {
		key[i] = byte(i)
	}
	out := make([]byte, RSSParamsLen(2))
	n := PutRSSParams(out, 0, HashDefault, []uint32{0, 1}, &key)
	want := append([]byte{0x89, 2, 40, 0, 0, 0, 0, 0}, words(0x1701, 8, 40, 40, 48, 0, 0, 0, 0, 1)...)
	want = append(want, key[:]...)
	if n != 88 || !bytes.Equal(out, want) {
		t.Errorf("RSS params:\n got % x\nwant % x", out, want)
	}
}
