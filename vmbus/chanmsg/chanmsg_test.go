package chanmsg

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// Expected bytes below are written by hand from the offsets of docs/hyperv-protocol.md
// §3, not produced by this package.

func TestGUIDConventionsExample(t *testing.T) {
	// Reference, Conventions: f8615163-df3e-46c5-913f-f2d2f965ed0e is stored
	// as 63 51 61 f8 3e df c5 46 91 3f f2 d2 f9 65 ed 0e.
	want := GUID{0x63, 0x51, 0x61, 0xf8, 0x3e, 0xdf, 0xc5, 0x46, 0x91, 0x3f, 0xf2, 0xd2, 0xf9, 0x65, 0xed, 0x0e}
	g, err := ParseGUID("f8615163-df3e-46c5-913f-f2d2f965ed0e")
	if err != nil || g != want {
		t.Fatalf("ParseGUID = % x, %v; want % x", g[:], err, want[:])
	}
	if s := want.String(); s != "f8615163-df3e-46c5-913f-f2d2f965ed0e" {
		t.Errorf("String = %s", s)
	}
	if g2, _ := ParseGUID("{F8615163-DF3E-46C5-913F-F2D2F965ED0E}"); g2 != want {
		t.Errorf("braced upper-case form: % x", g2[:])
	}
	if ClassName(g) != "netvsc" || g != ClassNetwork {
		t.Errorf("ClassName = %q", ClassName(g))
	}
	for _, bad := range []string{"", "f8615163-df3e-46c5-913f-f2d2f965ed0", "f8615163df3e-46c5-913f-f2d2f965ed0e0", "g8615163-df3e-46c5-913f-f2d2f965ed0e", "{f8615163-df3e-46c5-913f-f2d2f965ed0e"} {
		if _, err := ParseGUID(bad); !errors.Is(err, ErrBadGUID) {
			t.Errorf("ParseGUID(%q) err %v", bad, err)
		}
	}
}

func TestClassTable(t *testing.T) {
	// Every class round-trips through its text and has a unique name.
	seen := map[string]bool{}
	for g, name := range classNames {
		if MustParseGUID(g.String()) != g || name == "" || seen[name] {
			t.Errorf("class %v %q", g, name)
		}
		seen[name] = true
	}
	if len(classNames) != 20 {
		t.Errorf("%d classes, want 20 (docs/hyperv-protocol.md §5 without hv_sock)", len(classNames))
	}
	if ClassName(GUID{}) != "" {
		t.Error("unknown class has a name")
	}
}

func TestVersion(t *testing.T) {
	tests := []struct {
		v    Version
		u32  uint32
		text string
	}{
		{Version0_13, 0x0000000D, "0.13"}, {Version1_1, 0x00010001, "1.1"},
		{Version2_4, 0x00020004, "2.4"}, {Version3_0, 0x00030000, "3.0"},
		{Version4_0, 0x00040000, "4.0"}, {Version4_1, 0x00040001, "4.1"},
		{Version5_0, 0x00050000, "5.0"}, {Version5_1, 0x00050001, "5.1"},
		{Version5_2, 0x00050002, "5.2"}, {Version5_3, 0x00050003, "5.3"},
		{Version6_0, 0x00060000, "6.0"},
	}
	for _, tt := range tests {
		if uint32(tt.v) != tt.u32 || tt.v.String() != tt.text || NewVersion(tt.v.Major(), tt.v.Minor()) != tt.v {
			t.Errorf("%v: %#x %q", tt.v, uint32(tt.v), tt.v.String())
		}
	}
}

type encodable interface {
	Encode([]byte) (int, error)
}

func le32b(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }

// msg builds expected bytes: size bytes of zeros with fields placed at
// offsets.
func msg(size int, fields ...any) []byte {
	b := make([]byte, size)
	for i := 0; i < len(fields); i += 2 {
		copy(b[fields[i].(int):], fields[i+1].([]byte))
	}
	return b
}

func TestEncodeBytes(t *testing.T) {
	var user [120]byte
	user[0], user[119] = 0x11, 0x22
	var class GUID = ClassSCSI
	tests := []struct {
		name string
		m    encodable
		want []byte
	}{
		{"INITIATE_CONTACT 4.0", &InitiateContact{Version: Version4_0, TargetVP: 2, InterruptPage: 0x1234000, MonitorPage1: 0x5000, MonitorPage2: 0x6000},
			msg(40, 0, []byte{14}, 8, []byte{0, 0, 4, 0}, 12, []byte{2}, 16, []byte{0x00, 0x40, 0x23, 0x01}, 24, []byte{0x00, 0x50}, 32, []byte{0x00, 0x60})},
		{"INITIATE_CONTACT 5.3", &InitiateContact{Version: Version5_3, TargetVP: 1, SINT: 2, InterruptPage: 0xdead000, MonitorPage1: 0x5000, MonitorPage2: 0x6000},
			msg(40, 0, []byte{14}, 8, []byte{3, 0, 5, 0}, 12, []byte{1}, 16, []byte{2, 0, 0, 0, 0, 0, 0, 0}, 24, []byte{0x00, 0x50}, 32, []byte{0x00, 0x60})},
		{"INITIATE_CONTACT 6.0 client id", &InitiateContact{Version: Version6_0, SINT: 2, VTL: 0, Features: FeatureClientID, ClientID: class},
			msg(56, 0, []byte{14}, 8, []byte{0, 0, 6, 0}, 16, []byte{2}, 20, []byte{8}, 40, class[:])},
		{"VERSION_RESPONSE", &VersionResponse{VersionSupported: 1, ConnectionState: 0, ConnectionID: 7},
			msg(16, 0, []byte{15}, 8, []byte{1, 0}, 12, []byte{7})},
		{"REQUESTOFFERS", RequestOffers{}, msg(8, 0, []byte{3})},
		{"ALLOFFERS_DELIVERED", AllOffersDelivered{}, msg(8, 0, []byte{4})},
		{"UNLOAD", Unload{}, msg(8, 0, []byte{16})},
		{"UNLOAD_RESPONSE", UnloadResponse{}, msg(8, 0, []byte{17})},
		{"RESCIND", &RescindChannelOffer{RelID: 9}, msg(12, 0, []byte{2}, 8, []byte{9})},
		{"OPENCHANNEL", &OpenChannel{RelID: 0x0102, OpenID: 0x0304, GPADL: 0xE1E10, TargetVP: 5, DownstreamPageOffset: 32, UserData: user},
			msg(148, 0, []byte{5}, 8, []byte{2, 1}, 12, []byte{4, 3}, 16, []byte{0x10, 0x1e, 0x0e}, 20, []byte{5}, 24, []byte{32}, 28, []byte{0x11}, 147, []byte{0x22})},
		{"OPENCHANNEL_RESULT", &OpenChannelResult{RelID: 3, OpenID: 4, Status: 0xC0000001},
			msg(20, 0, []byte{6}, 8, []byte{3}, 12, []byte{4}, 16, []byte{1, 0, 0, 0xc0})},
		{"CLOSECHANNEL", &CloseChannel{RelID: 2047}, msg(12, 0, []byte{7}, 8, []byte{0xff, 0x07})},
		{"GPADL_HEADER", &GPADLHeader{RelID: 3, GPADL: 0xE1E11, RangeBufLen: 8 + 8*2, RangeCount: 1, ByteCount: 8192, PFNs: []uint64{0x1122334455, 0x66}},
			msg(44, 0, []byte{8}, 8, []byte{3}, 12, []byte{0x11, 0x1e, 0x0e}, 16, []byte{24, 0}, 18, []byte{1, 0}, 20, []byte{0, 0x20}, 28, []byte{0x55, 0x44, 0x33, 0x22, 0x11}, 36, []byte{0x66})},
		{"GPADL_BODY", &GPADLBody{MsgNumber: 1, GPADL: 0xE1E11, PFNs: []uint64{0x77}},
			msg(24, 0, []byte{9}, 8, []byte{1}, 12, []byte{0x11, 0x1e, 0x0e}, 16, []byte{0x77})},
		{"GPADL_CREATED", &GPADLCreated{RelID: 3, GPADL: 0xE1E11, Status: 0},
			msg(20, 0, []byte{10}, 8, []byte{3}, 12, []byte{0x11, 0x1e, 0x0e})},
		{"GPADL_TEARDOWN", &GPADLTeardown{RelID: 3, GPADL: 0xE1E11},
			msg(16, 0, []byte{11}, 8, []byte{3}, 12, []byte{0x11, 0x1e, 0x0e})},
		{"GPADL_TORNDOWN", &GPADLTorndown{GPADL: 0xE1E11}, msg(12, 0, []byte{12}, 8, []byte{0x11, 0x1e, 0x0e})},
		{"RELID_RELEASED", &RelIDReleased{RelID: 3}, msg(12, 0, []byte{13}, 8, []byte{3})},
		{"MODIFYCHANNEL", &ModifyChannel{RelID: 3, TargetVP: 6}, msg(16, 0, []byte{22}, 8, []byte{3}, 12, []byte{6})},
		{"MODIFYCHANNEL_RESPONSE", &ModifyChannelResponse{RelID: 3, Status: 1}, msg(16, 0, []byte{24}, 8, []byte{3}, 12, []byte{1})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := bytes.Repeat([]byte{0xee}, MaxSize) // encoders must clear
			n, err := tt.m.Encode(buf)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf[:n], tt.want) {
				t.Errorf("\n got % x\nwant % x", buf[:n], tt.want)
			}
			if _, err := tt.m.Encode(buf[:n-1]); !errors.Is(err, ErrBufferTooSmall) {
				t.Errorf("short buffer: %v", err)
			}
			// Decoding the expected bytes gives back the message.
			var got Message
			if host, herr := Decode(tt.want); herr == nil {
				got = host
			} else if guest, gerr := DecodeGuest(tt.want); gerr == nil {
				got = guest
			} else {
				t.Fatalf("decode: %v / %v", herr, gerr)
			}
			want := reflect.ValueOf(tt.m)
			if want.Kind() == reflect.Pointer {
				want = want.Elem()
			}
			if tt.name == "INITIATE_CONTACT 5.3" {
				// The interrupt page is not sent from 5.0 on.
				m := want.Interface().(InitiateContact)
				m.InterruptPage = 0
				want = reflect.ValueOf(m)
			}
			if !reflect.DeepEqual(got, want.Interface()) {
				t.Errorf("decoded %+v, want %+v", got, want.Interface())
			}
		})
	}
}

func TestOfferChannelBytes(t *testing.T) {
	// A 196-byte offer laid out by docs/hyperv-protocol.md §3.6.
	b := make([]byte, 196)
	b[0] = 1
	copy(b[8:], ClassHeartbeat[:])
	copy(b[24:], []byte{0xa, 0xb, 0xc})
	b[40], b[48], b[52] = 0x40, 0x48, 0x52
	b[56], b[57] = 0x01, 0x20 // flags 0x2001
	b[58] = 16                // MMIO MiB
	b[60], b[179] = 0x60, 0x79
	b[180] = 2 // sub-channel index
	b[182] = 8
	b[184], b[185] = 0x34, 0x01 // relid 0x134
	b[188], b[189], b[190] = 77, 1, 1
	b[192], b[193] = 0x05, 0x20
	m, err := DecodeOfferChannel(b)
	if err != nil {
		t.Fatal(err)
	}
	var inst GUID
	copy(inst[:], []byte{0xa, 0xb, 0xc})
	if m.InterfaceType != ClassHeartbeat || m.InterfaceInstance != inst || m.Latency != 0x40 || m.Revision != 0x48 ||
		m.ContextSize != 0x52 || m.Flags != 0x2001 || m.MMIOMegabytes != 16 || m.UserDefined[0] != 0x60 ||
		m.UserDefined[119] != 0x79 || m.SubChannelIndex != 2 || m.MMIOMegabytesOpt != 8 || m.RelID != 0x134 ||
		m.MonitorID != 77 || m.MonitorAllocated != 1 || m.DedicatedInterrupt != 1 || m.ConnectionID != 0x2005 {
		t.Errorf("decoded %+v", m)
	}
	out := make([]byte, 196)
	if n, err := m.Encode(out); err != nil || n != 196 || !bytes.Equal(out, b) {
		t.Errorf("re-encoded % x (%v)", out, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	offer := make([]byte, 196)
	offer[0] = 1
	hdr := func(rangeLen, count uint16, bytes, off uint32, npfn int) []byte {
		b := make([]byte, 28+8*npfn)
		b[0], b[8] = 8, 1
		copy(b[16:], []byte{byte(rangeLen), byte(rangeLen >> 8), byte(count), byte(count >> 8)})
		copy(b[20:], le32b(bytes))
		copy(b[24:], le32b(off))
		return b
	}
	tests := []struct {
		name string
		fn   func([]byte) error
		b    []byte
		want error
	}{
		{"short header", func(b []byte) error { _, err := Decode(b); return err }, []byte{1, 0, 0}, ErrShort},
		{"too long", func(b []byte) error { _, err := Decode(b); return err }, append([]byte{4}, make([]byte, 240)...), ErrTooLong},
		{"guest type from host", func(b []byte) error { _, err := Decode(b); return err }, msg(8, 0, []byte{3}), ErrUnknownType},
		{"short offer", func(b []byte) error { _, err := Decode(b); return err }, offer[:195], ErrShort},
		{"offer relid 0", func(b []byte) error { _, err := Decode(b); return err }, offer, ErrBadField},
		{"offer relid 2048", func(b []byte) error { _, err := Decode(b); return err }, msg(196, 0, []byte{1}, 184, []byte{0, 8}), ErrBadField},
		{"wrong type", func(b []byte) error { _, err := DecodeOpenChannelResult(b); return err }, msg(20, 0, []byte{10}, 8, []byte{1}), ErrWrongType},
		{"short version response", func(b []byte) error { _, err := Decode(b); return err }, msg(15, 0, []byte{15}), ErrShort},
		{"rescind relid 0", func(b []byte) error { _, err := Decode(b); return err }, msg(12, 0, []byte{2}), ErrBadField},
		{"gpadl two ranges", func(b []byte) error { _, err := DecodeGPADLHeader(b); return err }, hdr(16, 2, 4096, 0, 1), ErrBadField},
		{"gpadl span mismatch", func(b []byte) error { _, err := DecodeGPADLHeader(b); return err }, hdr(24, 1, 4096, 0, 2), ErrBadField},
		{"gpadl offset past page", func(b []byte) error { _, err := DecodeGPADLHeader(b); return err }, hdr(16, 1, 1, 4096, 1), ErrBadField},
		{"gpadl pfn count", func(b []byte) error { _, err := DecodeGPADLHeader(b); return err }, hdr(24, 1, 8192, 0, 1), ErrBadField},
		{"gpadl header 27 of 30", func(b []byte) error { _, err := DecodeGPADLHeader(b); return err }, hdr(8+8*30, 1, 30*4096, 0, 27), ErrTooLong},
		{"gpadl header 25 of 30", func(b []byte) error { _, err := DecodeGPADLHeader(b); return err }, hdr(8+8*30, 1, 30*4096, 0, 25), ErrBadField},
		{"gpadl body empty", func(b []byte) error { _, err := DecodeGPADLBody(b); return err }, msg(16, 0, []byte{9}), ErrShort},
		{"gpadl body ragged", func(b []byte) error { _, err := DecodeGPADLBody(b); return err }, msg(25, 0, []byte{9}), ErrBadField},
	}
	for _, tt := range tests {
		if err := tt.fn(tt.b); !errors.Is(err, tt.want) {
			t.Errorf("%s: err %v, want %v", tt.name, err, tt.want)
		}
	}
	// A valid header with an offset: 100 bytes from 4000 spans 2 pages.
	if _, err := DecodeGPADLHeader(hdr(24, 1, 100, 4000, 2)); err != nil {
		t.Errorf("offset header: %v", err)
	}
	// Encoders refuse too many PFNs.
	if _, err := (&GPADLHeader{PFNs: make([]uint64, 27)}).Encode(make([]byte, 240)); !errors.Is(err, ErrBadField) {
		t.Errorf("27 PFNs in header: %v", err)
	}
	if _, err := (&GPADLBody{PFNs: make([]uint64, 29)}).Encode(make([]byte, 300)); !errors.Is(err, ErrBadField) {
		t.Errorf("29 PFNs in body: %v", err)
	}
}

func TestVersionResponse6(t *testing.T) {
	b := msg(40, 0, []byte{15}, 8, []byte{1}, 12, []byte{1}, 16, []byte{0x0f})
	m, err := DecodeVersionResponse(b)
	if err != nil || m.Features != 0x0f || m.ConnectionID != 1 || m.VersionSupported != 1 {
		t.Errorf("%+v %v", m, err)
	}
}

func TestEncodeNoAlloc(t *testing.T) {
	var buf [MaxSize]byte
	m := &OpenChannel{RelID: 1}
	if n := testing.AllocsPerRun(100, func() { _, _ = m.Encode(buf[:]) }); n != 0 {
		t.Errorf("Encode allocates %v", n)
	}
}

func TestTypeString(t *testing.T) {
	for _, c := range []struct {
		t    Type
		want string
	}{{TypeOfferChannel, "OFFERCHANNEL"}, {0, "TYPE_0"}, {99, "TYPE_99"}, {0xFFFFFFFF, "TYPE_4294967295"}} {
		if got := c.t.String(); got != c.want {
			t.Errorf("Type(%d).String() = %q, want %q", uint32(c.t), got, c.want)
		}
	}
}
