package nvsp

import (
	"bytes"
	"errors"
	"testing"
)

// Expected bytes are written by hand from docs/hyperv-protocol.md §7.3,
// not produced by this package.

// at builds a 40-byte message with little-endian u32 fields at offsets.
func at(fields ...uint32) []byte {
	b := make([]byte, 40)
	for i := 0; i+1 < len(fields); i += 2 {
		off, v := fields[i], fields[i+1]
		b[off], b[off+1], b[off+2], b[off+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	return b
}

func TestEncoders(t *testing.T) {
	buf := make([]byte, 64)
	for i := range buf {
		buf[i] = 0xEE // stale bytes must be cleared
	}
	tests := []struct {
		name string
		got  func() []byte
		want []byte
	}{
		{"INIT 61", func() []byte { return PutInit(buf, Version61) }, at(0, 1, 4, 0x00060001, 8, 0x00060001)},
		{"INIT 1", func() []byte { return PutInit(buf, Version1) }, at(0, 1, 4, 2, 8, 2)},
		{"NDIS_CONFIG", func() []byte { return PutNDISConfig(buf, 1514, CapIEEE8021Q|CapTeaming) }, at(0, 125, 4, 1514, 12, 0x28)},
		{"NDIS_VERSION 6.30", func() []byte { return PutNDISVersion(buf, 6, 30) }, at(0, 100, 4, 6, 8, 30)},
		{"SEND_RECEIVE_BUFFER", func() []byte { return PutSendReceiveBuffer(buf, 0x1234, 0xCAFE) }, at(0, 101, 4, 0x1234, 8, 0xCAFE)},
		{"SEND_SEND_BUFFER", func() []byte { return PutSendSendBuffer(buf, 0x99, 0) }, at(0, 104, 4, 0x99)},
		{"REVOKE_RECEIVE_BUFFER", func() []byte { return PutRevokeReceiveBuffer(buf, 0xCAFE) }, at(0, 103, 4, 0xCAFE)},
		{"REVOKE_SEND_BUFFER", func() []byte { return PutRevokeSendBuffer(buf, 0) }, at(0, 106)},
		{"RNDIS_PACKET section", func() []byte { return PutRNDISPacket(buf, ChannelData, 7, 1558) }, at(0, 107, 8, 7, 12, 1558)},
		{"RNDIS_PACKET direct control", func() []byte { return PutRNDISPacket(buf, ChannelControl, NoSection, 0) }, at(0, 107, 4, 1, 8, 0xFFFFFFFF)},
		{"RNDIS_PACKET_COMPLETE", func() []byte { return PutRNDISPacketComplete(buf, StatusSuccess) }, at(0, 108, 4, 1)},
		{"SUBCHANNEL", func() []byte { return PutSubChannelRequest(buf, 3) }, at(0, 133, 4, 1, 8, 3)},
	}
	for _, tt := range tests {
		if got := tt.got(); !bytes.Equal(got, tt.want) {
			t.Errorf("%s:\n got % x\nwant % x", tt.name, got, tt.want)
		}
	}
	// The 64-bit capability word @12: RSC is bit 7, SR-IOV bit 2.
	got := PutNDISConfig(buf, 9014, CapRSC|CapSRIOV)
	if !bytes.Equal(got, at(0, 125, 4, 9014, 12, 0x84)) {
		t.Errorf("caps: % x", got)
	}
}

func TestVersions(t *testing.T) {
	want := []uint32{0x00060001, 0x00060000, 0x00050000, 0x00040000, 0x00030002, 0x00000002}
	for i, v := range Versions {
		if uint32(v) != want[i] {
			t.Errorf("Versions[%d] = %#x, want %#x", i, uint32(v), want[i])
		}
	}
	for _, tt := range []struct {
		v            Version
		major, minor uint32
		maxRecv      int
	}{
		{Version1, 6, 1, 15 << 20}, {Version2, 6, 1, 15 << 20}, {Version4, 6, 1, 31 << 20},
		{Version5, 6, 30, 31 << 20}, {Version61, 6, 30, 31 << 20},
	} {
		if ma, mi := tt.v.NDISVersion(); ma != tt.major || mi != tt.minor || tt.v.MaxReceiveBuffer() != tt.maxRecv {
			t.Errorf("%v: NDIS %d.%d max %d", tt.v, ma, mi, tt.v.MaxReceiveBuffer())
		}
	}
}

func TestParseInitComplete(t *testing.T) {
	c, err := ParseInitComplete(at(0, 2, 4, 0x60001, 8, 34, 12, 1)[:16])
	if err != nil || c != (InitComplete{Version61, 34, StatusSuccess}) {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := ParseInitComplete(at(0, 2)[:15]); !errors.Is(err, ErrShort) {
		t.Errorf("short: %v", err)
	}
	if _, err := ParseInitComplete(at(0, 108)); !errors.Is(err, ErrType) {
		t.Errorf("type: %v", err)
	}
}

func TestParseReceiveBufferComplete(t *testing.T) {
	const size = 16 << 20
	good := at(0, 102, 4, 1, 8, 1, 12, 0, 16, 1728, 20, 9709, 24, 1728*9709)
	st, s, err := ParseReceiveBufferComplete(good[:28], size)
	if err != nil || st != 1 || s != (ReceiveSection{0, 1728, 9709, 1728 * 9709}) {
		t.Fatalf("%d %+v %v", st, s, err)
	}
	bad := []struct {
		name string
		msg  []byte
		err  error
	}{
		{"two sections", at(0, 102, 4, 1, 8, 2, 16, 1728, 20, 10), ErrInvalid},
		{"offset", at(0, 102, 4, 1, 8, 1, 12, 8, 16, 1728, 20, 10), ErrInvalid},
		{"zero size", at(0, 102, 4, 1, 8, 1, 20, 10), ErrInvalid},
		{"too large", at(0, 102, 4, 1, 8, 1, 16, 4096, 20, 4097), ErrInvalid},
		{"end past buffer", at(0, 102, 4, 1, 8, 1, 16, 1, 20, 1, 24, size+1), ErrInvalid},
		{"section cut", at(0, 102, 4, 1, 8, 1)[:20], ErrShort},
	}
	for _, tt := range bad {
		if _, _, err := ParseReceiveBufferComplete(tt.msg, size); !errors.Is(err, tt.err) {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	// A failure status is reported without validating the section.
	if st, _, err := ParseReceiveBufferComplete(at(0, 102, 4, 2)[:12], size); err != nil || st != 2 {
		t.Errorf("failure status: %d %v", st, err)
	}
}

func TestParseSendBufferComplete(t *testing.T) {
	st, sz, err := ParseSendBufferComplete(at(0, 105, 4, 1, 8, 6144)[:12], 1<<20)
	if err != nil || st != 1 || sz != 6144 {
		t.Fatalf("%d %d %v", st, sz, err)
	}
	for _, sz := range []uint32{0, 1<<20 + 1} {
		if _, _, err := ParseSendBufferComplete(at(0, 105, 4, 1, 8, sz), 1<<20); !errors.Is(err, ErrInvalid) {
			t.Errorf("section size %d: %v", sz, err)
		}
	}
}

func TestParseSmallMessages(t *testing.T) {
	if st, err := ParseRNDISPacketComplete(at(0, 108, 4, 1)[:8]); err != nil || st != 1 {
		t.Errorf("108: %d %v", st, err)
	}
	if p, err := ParseRNDISPacket(at(0, 107, 4, 1, 8, 0xFFFFFFFF)[:16]); err != nil || p != (RNDISPacket{1, NoSection, 0}) {
		t.Errorf("107: %+v %v", p, err)
	}
	if st, c, err := ParseSubChannelComplete(at(0, 133, 4, 1, 8, 3)[:12], 3); err != nil || st != 1 || c != 3 {
		t.Errorf("133: %d %d %v", st, c, err)
	}
	if _, _, err := ParseSubChannelComplete(at(0, 133, 4, 1, 8, 4), 3); !errors.Is(err, ErrInvalid) {
		t.Errorf("133 too many: %v", err)
	}
	if a, s, err := ParseVFAssociation(at(0, 128, 4, 1, 8, 77)[:12]); err != nil || !a || s != 77 {
		t.Errorf("128: %v %d %v", a, s, err)
	}
}

func table(offset uint32, entries []uint32, size int) []byte {
	b := make([]byte, size)
	copy(b, at(0, 134, 4, 16, 8, offset)[:12])
	for i, e := range entries {
		o := int(offset) + 4*i
		b[o], b[o+1], b[o+2], b[o+3] = byte(e), byte(e>>8), byte(e>>16), byte(e>>24)
	}
	return b
}

func TestParseIndirectionTable(t *testing.T) {
	entries := []uint32{0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3}
	var tab [16]uint32
	// OpenVMM places the table at 12 and says so; under NVSP 61 the
	// offset is trusted.
	if err := ParseIndirectionTable(table(12, entries, 76), Version61, 4, &tab); err != nil || tab[5] != 1 || tab[15] != 3 {
		t.Fatalf("offset 12: %v %v", tab, err)
	}
	// NVSP ≤ 6 with a long enough message: the table is at 40 whatever
	// the offset field says.
	if err := ParseIndirectionTable(table(40, entries, 104)[:104], Version6, 4, &tab); err != nil || tab[3] != 3 {
		t.Fatalf("v6 at 40: %v %v", tab, err)
	}
	m := table(40, entries, 104)
	m[8] = 4 // wrong offset field
	if err := ParseIndirectionTable(m, Version5, 4, &tab); err != nil || tab[2] != 2 {
		t.Fatalf("v5 wrong offset: %v %v", tab, err)
	}
	prev := tab
	bad := []struct {
		name string
		msg  []byte
		v    Version
		q    int
	}{
		{"count 8", append(at(0, 134, 4, 8, 8, 12)[:12], make([]byte, 64)...), Version61, 4},
		{"entry ≥ queues", table(12, entries, 76), Version61, 3},
		{"offset past end", table(12, entries, 76)[:70], Version61, 4},
		{"offset inside header", func() []byte { b := table(12, entries, 76); b[8] = 4; return b }(), Version61, 4},
		{"short", at(0, 134)[:8], Version61, 4},
	}
	for _, tt := range bad {
		if err := ParseIndirectionTable(tt.msg, tt.v, tt.q, &tab); err == nil {
			t.Errorf("%s accepted", tt.name)
		}
		if tab != prev {
			t.Errorf("%s changed the table", tt.name)
		}
	}
}
