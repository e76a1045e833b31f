package netvsp

import (
	"bytes"
	"errors"
	"testing"
)

// Expected bytes below are written by hand from the offsets of
// docs/hyperv-protocol.md §7.3 and §7.6–§7.8 (and, where the reference is
// silent, OpenVMM's layouts named in the comments), not produced by the
// encoders under test.

func TestNVSPEncodings(t *testing.T) {
	b := make([]byte, 128)
	tests := []struct {
		name string
		enc  func() int
		want []byte
	}{
		{"INIT_COMPLETE v61 (§7.3: @4 version, @8 max MDL, @12 status), 40-byte message",
			func() int { return encodeInitComplete(b, nvspSizeV61, 0xFFFFFFFF, 1) }, []byte{
				0x02, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x22, 0, 0, 0, 0x01, 0, 0, 0,
				0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"INIT_COMPLETE failure, 28-byte message",
			func() int { return encodeInitComplete(b, nvspSizeV1, 0xFFFFFFFF, 2) }, []byte{
				0x02, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x22, 0, 0, 0, 0x02, 0, 0, 0,
				0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"SEND_RECEIVE_BUFFER_COMPLETE (§7.3: status, 1 section {0, size, count, end})",
			func() int { return encodeRecvBufComplete(b, nvspSizeV61, 1, 1806, 580) }, []byte{
				0x66, 0, 0, 0, 0x01, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0,
				0x0e, 0x07, 0, 0, 0x44, 0x02, 0, 0, 0xb8, 0xfb, 0x0f, 0, // 1806, 580, 1806*580
				0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"SEND_SEND_BUFFER_COMPLETE (§7.3: status, section size 6144)",
			func() int { return encodeSendBufComplete(b, nvspSizeV1, 1, 6144) }, []byte{
				0x69, 0, 0, 0, 0x01, 0, 0, 0, 0x00, 0x18, 0, 0,
				0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"SEND_RNDIS_PACKET_COMPLETE (§7.3: status)",
			func() int { return encodeRNDISPacketComplete(b, nvspSizeV1, 5) }, []byte{
				0x6c, 0, 0, 0, 0x05, 0, 0, 0,
				0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"SEND_RNDIS_PACKET host→guest (§7.3: channel type, section 0xFFFFFFFF, 0 bytes)",
			func() int { return encodeSendRNDISPacket(b, nvspSizeV1, 1) }, []byte{
				0x6b, 0, 0, 0, 0x01, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0,
				0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"SUBCHANNEL completion (§7.3: @4 status, @8 count)",
			func() int { return encodeSubchannelComplete(b, nvspSizeV61, 1, 3) }, []byte{
				0x85, 0, 0, 0, 0x01, 0, 0, 0, 0x03, 0, 0, 0, 0, 0, 0, 0,
				0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"SEND_INDIRECTION_TABLE (§7.3: 16 entries at offset 12, OpenVMM's placement)",
			func() int { return encodeIndirectionTable(b, 3) }, []byte{
				0x86, 0, 0, 0, 0x10, 0, 0, 0, 0x0c, 0, 0, 0,
				0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
				2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		for j := range b {
			b[j] = 0xEE // encoders must write every byte they return
		}
		n := tt.enc()
		if got := b[:n]; !bytes.Equal(got, tt.want) {
			t.Errorf("%s:\n got % x\nwant % x", tt.name, got, tt.want)
		}
	}
}

func TestParseNVSP(t *testing.T) {
	msg := func(b ...byte) []byte { return append(b, make([]byte, 40-len(b))...) }
	tests := []struct {
		name string
		in   []byte
		want nvspMsg
	}{
		{"INIT min=max=6.1", msg(1, 0, 0, 0, 0x01, 0, 0x06, 0, 0x01, 0, 0x06, 0),
			nvspMsg{Type: 1, A: 0x60001, B: 0x60001}},
		{"SEND_NDIS_VERSION 6.30", msg(100, 0, 0, 0, 6, 0, 0, 0, 30, 0, 0, 0),
			nvspMsg{Type: 100, A: 6, B: 30}},
		{"SEND_RECEIVE_BUFFER gpadl 0x1234 id 0xCAFE", msg(101, 0, 0, 0, 0x34, 0x12, 0, 0, 0xfe, 0xca),
			nvspMsg{Type: 101, A: 0x1234, ID: 0xCAFE}},
		{"REVOKE_SEND_BUFFER id 7", msg(106, 0, 0, 0, 7, 0),
			nvspMsg{Type: 106, ID: 7}},
		{"SEND_RNDIS_PACKET control, section 3, 52 bytes", msg(107, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 52, 0, 0, 0),
			nvspMsg{Type: 107, A: 1, B: 3, C: 52}},
		{"SEND_NDIS_CONFIG mtu 1514 caps 0x21", msg(125, 0, 0, 0, 0xea, 0x05, 0, 0, 0, 0, 0, 0, 0x21, 0, 0, 0, 0, 0, 0, 0),
			nvspMsg{Type: 125, A: 1514, Caps: 0x21}},
		{"SUBCHANNEL allocate 2", msg(133, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0),
			nvspMsg{Type: 133, A: 1, B: 2}},
		{"short INIT (Linux legacy 12 bytes is enough)", []byte{1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0},
			nvspMsg{Type: 1, A: 2, B: 2}},
	}
	for _, tt := range tests {
		got, err := parseNVSP(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("%s: got %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
	for _, bad := range [][]byte{nil, {1, 0, 0}, {1, 0, 0, 0, 2, 0, 0, 0}, msg(0x99), msg(102), {107, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, err := parseNVSP(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("parseNVSP(% x) = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestRNDISEncodings(t *testing.T) {
	b := make([]byte, 256)
	fill := func() {
		for i := range b {
			b[i] = 0xEE
		}
	}
	type check struct {
		name string
		enc  func() int
		want []byte
	}
	checks := []check{
		{"INITIALIZE_CMPLT (§7.6)", func() int { return encodeInitCmplt(b, 9, 0) }, []byte{
			0x02, 0, 0, 0x80, 52, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, // type, length, request id, status
			1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, // major, minor, flags, medium
			8, 0, 0, 0, 0xff, 0xff, 0xff, 0xef, 3, 0, 0, 0, 0, 0, 0, 0, // max pkts, max xfer, align, AF offset
			0, 0, 0, 0}},
		{"QUERY_CMPLT with 6 bytes (§7.6: info offset 16 from @8)", func() int {
			fill()
			copy(b[24:], []byte{0, 0x15, 0x5d, 1, 2, 3})
			return encodeQueryCmplt(b, 4, 0, 6)
		}, []byte{
			0x04, 0, 0, 0x80, 30, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0,
			6, 0, 0, 0, 16, 0, 0, 0, 0, 0x15, 0x5d, 1, 2, 3}},
		{"SET_CMPLT not supported", func() int { return encodeSetCmplt(b, 5, 0xC00000BB) }, []byte{
			0x05, 0, 0, 0x80, 16, 0, 0, 0, 5, 0, 0, 0, 0xbb, 0, 0, 0xc0}},
		{"KEEPALIVE_CMPLT", func() int { return encodeKeepaliveCmplt(b, 0x11223344, 0) }, []byte{
			0x08, 0, 0, 0x80, 16, 0, 0, 0, 0x44, 0x33, 0x22, 0x11, 0, 0, 0, 0}},
		{"RESET_CMPLT", func() int { return encodeResetCmplt(b, 0) }, []byte{
			0x06, 0, 0, 0x80, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"INDICATE_STATUS media disconnect, no buffer (§7.8)", func() int { return encodeIndicateStatus(b, StatusMediaDisconnect, nil) }, []byte{
			0x07, 0, 0, 0, 20, 0, 0, 0, 0x0c, 0, 0x01, 0x40, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"INDICATE_STATUS link speed with a u32 buffer at offset 12", func() int {
			return encodeIndicateStatus(b, StatusLinkSpeedChange, []byte{0x40, 0x42, 0x0f, 0})
		}, []byte{
			0x07, 0, 0, 0, 24, 0, 0, 0, 0x13, 0, 0x01, 0x40, 4, 0, 0, 0, 12, 0, 0, 0, 0x40, 0x42, 0x0f, 0}},
		{"PACKET header with checksum and hash PPI (§7.6 Linux layout, §7.8 entries)", func() int {
			return encodeRxPacketHeader(b, 60, RxCsumIPOK|RxCsumTCPOK, true, 0xAABBCCDD, true)
		}, []byte{
			0x01, 0, 0, 0, 136, 0, 0, 0, // type, length 44+32+60
			68, 0, 0, 0, 60, 0, 0, 0, // data offset (from @8), length
			0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // OOB
			36, 0, 0, 0, 32, 0, 0, 0, // PPI offset, length
			0, 0, 0, 0, 0, 0, 0, 0, // VC handle, reserved
			16, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0, 0x28, 0, 0, 0, // checksum PPI
			16, 0, 0, 0, 8, 0, 0, 0, 12, 0, 0, 0, 0xdd, 0xcc, 0xbb, 0xaa}}, // hash PPI
		{"PACKET header without PPI", func() int { return encodeRxPacketHeader(b, 42, 0, false, 0, false) }, []byte{
			0x01, 0, 0, 0, 86, 0, 0, 0, 36, 0, 0, 0, 42, 0, 0, 0,
			0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
	}
	for _, c := range checks {
		fill()
		n := c.enc()
		if got := b[:n]; !bytes.Equal(got, c.want) {
			t.Errorf("%s:\n got % x\nwant % x", c.name, got, c.want)
		}
	}
}

func TestOIDEncodings(t *testing.T) {
	b := make([]byte, 256)
	for i := range b {
		b[i] = 0xEE
	}
	n := encodeNDISOffload(b, allOffloads)
	want := make([]byte, 156)
	want[0], want[1], want[2] = 0xA7, 3, 156 // header: type, revision, size u16
	for _, off := range []int{4, 12, 20, 28} {
		want[off] = 2 // 802.3 encapsulation
	}
	// IPv4 flags: IP options, TCP options, TCP, UDP, IP header = 1 each.
	want[8], want[9] = 0x55, 0x01
	want[16], want[17] = 0x55, 0x01
	want[24] = 0x55 // IPv6: extension headers, TCP options, TCP, UDP
	want[32] = 0x55
	// LSOv2 at 80: IPv4 {encap 2, max 0xF53C, min 2}, IPv6 {same, flags 5}.
	copy(want[80:], []byte{2, 0, 0, 0, 0x3c, 0xf5, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 0x3c, 0xf5, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0})
	if !bytes.Equal(b[:n], want) {
		t.Errorf("NDIS_OFFLOAD\n got % x\nwant % x", b[:n], want)
	}

	n = encodeRSSCaps(b, 4)
	if want := []byte{0x88, 2, 18, 0, 0x01, 0x03, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 128, 0}; !bytes.Equal(b[:n], want) {
		t.Errorf("RSS capabilities\n got % x\nwant % x", b[:n], want)
	}
	n = encodeLinkState(b, true, 10_000_000_000)
	if want := []byte{0x80, 1, 40, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0x00, 0xe4, 0x0b, 0x54, 0x02, 0, 0, 0, 0x00, 0xe4, 0x0b, 0x54, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}; !bytes.Equal(b[:n], want) {
		t.Errorf("link state\n got % x\nwant % x", b[:n], want)
	}
	n = encodeEncapsulation(b)
	if want := []byte{0xA8, 1, 28, 0, 1, 0, 0, 0, 2, 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 14, 0, 0, 0}; !bytes.Equal(b[:n], want) {
		t.Errorf("encapsulation\n got % x\nwant % x", b[:n], want)
	}
}

func TestParseRNDISControl(t *testing.T) {
	// QUERY of the MAC with no information buffer, request id 3.
	q := []byte{4, 0, 0, 0, 28, 0, 0, 0, 3, 0, 0, 0, 0x01, 0x01, 0x01, 0x01, 0, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0}
	m, err := parseRNDISControl(q)
	if err != nil || m.Type != 4 || m.ReqID != 3 || m.OID != 0x01010101 || m.Info != nil {
		t.Fatalf("QUERY: %+v, %v", m, err)
	}
	// SET of the packet filter 0x0D: info at offset 20 from @8 = byte 28.
	s := []byte{5, 0, 0, 0, 32, 0, 0, 0, 4, 0, 0, 0, 0x0e, 0x01, 0x01, 0, 4, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0x0d, 0, 0, 0}
	m, err = parseRNDISControl(s)
	if err != nil || m.Type != 5 || m.OID != 0x0001010E || !bytes.Equal(m.Info, []byte{0x0d, 0, 0, 0}) {
		t.Fatalf("SET: %+v, %v", m, err)
	}
	bad := [][]byte{
		nil,
		{2, 0, 0, 0, 24, 0, 0, 0}, // INITIALIZE cut short
		{5, 0, 0, 0, 32, 0, 0, 0, 4, 0, 0, 0, 0x0e, 0x01, 0x01, 0, 8, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0x0d, 0, 0, 0}, // info past the end
		{5, 0, 0, 0, 32, 0, 0, 0, 4, 0, 0, 0, 0x0e, 0x01, 0x01, 0, 4, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0x0d, 0, 0, 0},  // info overlapping the header
		{0x77, 0, 0, 0, 8, 0, 0, 0}, // unknown type
		{4, 0, 0, 0, 0, 0, 0, 0},    // length 0
	}
	for _, b := range bad {
		if _, err := parseRNDISControl(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("parseRNDISControl(% x) = %v, want ErrMalformed", b, err)
		}
	}
}

func TestParseRNDISPacket(t *testing.T) {
	frame := bytes.Repeat([]byte{0xAB}, 20)
	// PACKET with checksum (type 0), LSO (2) and VLAN (6) PPI, Linux layout.
	m := []byte{
		1, 0, 0, 0, 0, 0, 0, 0, // type, length (set below)
		84, 0, 0, 0, 20, 0, 0, 0, // data offset 36+48, length
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		36, 0, 0, 0, 48, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0,
		16, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0, 0x15, 0, 0x22, 0,
		16, 0, 0, 0, 2, 0, 0, 0, 12, 0, 0, 0, 0xb4, 0x05, 0x20, 0x42,
		16, 0, 0, 0, 6, 0, 0, 0, 12, 0, 0, 0, 0x50, 0, 0, 0,
	}
	m = append(m, frame...)
	put32(m, 4, uint32(len(m)))
	p, err := parseRNDISPacket(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.Data, frame) || !p.HasCsum || p.Csum != 0x220015 || !p.HasLSO || p.LSO != 0x422005b4 || !p.HasVLAN || p.VLAN != 0x50 {
		t.Fatalf("%+v", p)
	}
	corrupt := func(off int, v uint32) []byte {
		c := bytes.Clone(m)
		put32(c, off, v)
		return c
	}
	for name, b := range map[string][]byte{
		"length past the buffer": corrupt(4, uint32(len(m)+1)),
		"data past the message":  corrupt(12, 21),
		"data inside the header": corrupt(8, 10),
		"PPI size under 12":      corrupt(44, 8),
		"PPI size past the area": corrupt(44, 100),
		"PPI offset past size":   corrupt(52, 17),
		"PPI overlapping data":   corrupt(32, 60),
		"out-of-band data":       corrupt(20, 4),
		"not a PACKET":           corrupt(0, 2),
	} {
		if _, err := parseRNDISPacket(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestParseRSSParams(t *testing.T) {
	// NDIS_RECEIVE_SCALE_PARAMETERS rev 2: header 0x89, flags 0, hash info
	// Toeplitz|TCP_IPV4, table 8 bytes at 40, key 40 bytes at 48.
	b := make([]byte, 88)
	copy(b, []byte{0x89, 2, 40, 0})
	put32(b, 8, 0x201)
	put16(b, 12, 8)
	put32(b, 16, 40)
	put16(b, 20, 40)
	put32(b, 24, 48)
	put32(b, 40, 1)
	put32(b, 44, 0)
	for i := 0; i < 40; i++ {
		b[48+i] = byte(i)
	}
	p, err := parseRSSParams(b, 2)
	if err != nil || p.Disable || p.Entries != 2 || p.Table[0] != 1 || p.Key[39] != 39 {
		t.Fatalf("%+v, %v", p, err)
	}
	if _, err := parseRSSParams(b, 1); !errors.Is(err, ErrMalformed) {
		t.Errorf("entry naming queue 1 of 1: %v", err)
	}
	put16(b, 20, 16)
	if _, err := parseRSSParams(b, 2); !errors.Is(err, ErrMalformed) {
		t.Errorf("16-byte key: %v", err)
	}
	put16(b, 4, 0x10) // disable
	if p, err := parseRSSParams(b, 2); err != nil || !p.Disable {
		t.Errorf("disable: %+v, %v", p, err)
	}
}

func TestApplyOffloadParams(t *testing.T) {
	o := allOffloads
	// Header 0x80 rev 1 size 20; IPv4 csum TX+RX, TCP4 off, UDP4 RX only,
	// TCP6 no change, UDP6 TX only, LSOv1 no change, LSOv2 v4 off, v6 on.
	b := []byte{0x80, 1, 20, 0, 4, 1, 3, 0, 2, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0}
	if err := applyOffloadParams(b, &o); err != nil {
		t.Fatal(err)
	}
	want := offloads{TxIPv4: true, RxIPv4: true, RxUDP4: true, TxTCP6: true, RxTCP6: true, TxUDP6: true, LSO6: true}
	if o != want {
		t.Fatalf("got %+v\nwant %+v", o, want)
	}
	b[9] = 2 // LSOv1 on
	if err := applyOffloadParams(b, &o); err != errNotSupported {
		t.Errorf("LSOv1: %v", err)
	}
	b[9], b[4] = 0, 9
	if err := applyOffloadParams(b, &o); !errors.Is(err, ErrMalformed) {
		t.Errorf("value 9: %v", err)
	}
}

func TestParseConfigParam(t *testing.T) {
	name := []byte{'N', 0, 'e', 0, 't', 0, 'w', 0, 'o', 0, 'r', 0, 'k', 0, 'A', 0, 'd', 0, 'd', 0, 'r', 0, 'e', 0, 's', 0, 's', 0}
	val := []byte{'0', 0, '2', 0, '1', 0, '1', 0, '2', 0, '2', 0, '3', 0, '3', 0, '4', 0, '4', 0, '5', 0, '5', 0}
	b := make([]byte, 20)
	put32(b, 0, 20)
	put32(b, 4, uint32(len(name)))
	put32(b, 8, 2)
	put32(b, 12, uint32(20+len(name)))
	put32(b, 16, uint32(len(val)))
	b = append(append(b, name...), val...)
	c, err := parseConfigParam(b)
	if err != nil || c.Name != "NetworkAddress" || c.Value != "021122334455" || c.Type != 2 {
		t.Fatalf("%+v, %v", c, err)
	}
	put32(b, 16, 300)
	if _, err := parseConfigParam(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("value length 300: %v", err)
	}
}
