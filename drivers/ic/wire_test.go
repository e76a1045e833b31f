package ic

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// windowsNegotiate is a negotiation message as a Windows host sends it for
// heartbeat, laid out by hand from docs/hyperv-protocol.md §8.1/§8.2: frameworks 1.0,
// 3.0 and messages 1.0, 3.0, oldest first.
var windowsNegotiate = []byte{
	0x01, 0x00, 0x00, 0x00, // @0 pipe flags: data
	0x2c, 0x00, 0x00, 0x00, // @4 pipe message size
	0x01, 0x00, 0x00, 0x00, // @8 framework 1.0
	0x00, 0x00, // @12 type: negotiate
	0x01, 0x00, 0x00, 0x00, // @14 message version 1.0
	0x18, 0x00, // @18 IC message size 24
	0x00, 0x00, 0x00, 0x00, // @20 status
	0x07,       // @24 transaction id
	0x03,       // @25 flags: transaction | request
	0x00, 0x00, // @26 reserved
	0x02, 0x00, // @28 framework count
	0x02, 0x00, // @30 message count
	0x00, 0x00, 0x00, 0x00, // @32 reserved
	0x01, 0x00, 0x00, 0x00, // @36 framework 1.0
	0x03, 0x00, 0x00, 0x00, // @40 framework 3.0
	0x01, 0x00, 0x00, 0x00, // @44 message 1.0
	0x03, 0x00, 0x00, 0x00, // @48 message 3.0
}

// windowsNegotiateReply is the exact reply to windowsNegotiate choosing
// framework 3.0 and message 3.0 (docs/hyperv-protocol.md §8.2).
var windowsNegotiateReply = []byte{
	0x01, 0x00, 0x00, 0x00,
	0x2c, 0x00, 0x00, 0x00,
	0x01, 0x00, 0x00, 0x00,
	0x00, 0x00,
	0x01, 0x00, 0x00, 0x00,
	0x10, 0x00, // @18 message size 16
	0x00, 0x00, 0x00, 0x00, // @20 S_OK
	0x07,
	0x05, // @25 transaction | response
	0x00, 0x00,
	0x01, 0x00, // @28 one framework
	0x01, 0x00, // @30 one message version
	0x00, 0x00, 0x00, 0x00,
	0x03, 0x00, 0x00, 0x00, // @36 chosen framework 3.0
	0x03, 0x00, 0x00, 0x00, // @40 chosen message 3.0
	0x01, 0x00, 0x00, 0x00, // rest left as received
	0x03, 0x00, 0x00, 0x00,
}

func TestOffsetsMatchReference(t *testing.T) {
	// Reference §8.1/§8.2 offsets, pinned.
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"pipe flags", offPipeFlags, 0}, {"pipe size", offPipeSize, 4},
		{"framework major", offFrameworkMajor, 8}, {"framework minor", offFrameworkMinor, 10},
		{"type", offType, 12}, {"message major", offMessageMajor, 14},
		{"message minor", offMessageMinor, 16}, {"size", offSize, 18},
		{"status", offStatus, 20}, {"transaction id", offTransactionID, 24},
		{"flags", offFlags, 25}, {"reserved", offReserved, 26}, {"body", HeaderSize, 28},
		{"framework count", offNegFrameworkCount, 28}, {"message count", offNegMessageCount, 30},
		{"neg reserved", offNegReserved, 32}, {"versions", offNegVersions, 36},
	} {
		if c.got != c.want {
			t.Errorf("%s offset = %d, want %d", c.name, c.got, c.want)
		}
	}
}

func TestParseHeader(t *testing.T) {
	h, err := ParseHeader(windowsNegotiate)
	if err != nil {
		t.Fatal(err)
	}
	want := Header{
		PipeFlags: PipeFlagData, PipeSize: 0x2c, Framework: Version{1, 0}, Type: TypeNegotiate,
		MessageVersion: Version{1, 0}, Size: 24, TransactionID: 7, Flags: FlagTransaction | FlagRequest,
	}
	if h != want {
		t.Fatalf("ParseHeader = %+v, want %+v", h, want)
	}
	var b [HeaderSize]byte
	h.Encode(b[:])
	if !bytes.Equal(b[:], windowsNegotiate[:HeaderSize]) {
		t.Fatalf("Encode = % x, want % x", b, windowsNegotiate[:HeaderSize])
	}
	if _, err := ParseHeader(windowsNegotiate[:HeaderSize-1]); !errors.Is(err, ErrShort) {
		t.Fatalf("short header: err = %v, want ErrShort", err)
	}
}

func TestHeaderEncodeBytes(t *testing.T) {
	h := Header{
		PipeFlags: 1, PipeSize: 0x01020304, Framework: Version{3, 0}, Type: TypeShutdown,
		MessageVersion: Version{3, 2}, Size: 0x0828, Status: StatusFail, TransactionID: 0xAB,
		Flags: FlagTransaction | FlagResponse,
	}
	want := []byte{
		0x01, 0x00, 0x00, 0x00, 0x04, 0x03, 0x02, 0x01,
		0x03, 0x00, 0x00, 0x00, 0x03, 0x00, 0x03, 0x00, 0x02, 0x00,
		0x28, 0x08, 0x05, 0x40, 0x00, 0x80, 0xAB, 0x05, 0x00, 0x00,
	}
	b := bytes.Repeat([]byte{0xEE}, HeaderSize)
	h.Encode(b)
	if !bytes.Equal(b, want) {
		t.Fatalf("Encode =\n% x\nwant\n% x", b, want)
	}
}

func TestNegotiateWindowsOrder(t *testing.T) {
	msg := bytes.Clone(windowsNegotiate)
	fw, mv, err := Negotiate(msg, FrameworkVersions, []Version{{3, 0}, {1, 0}})
	if err != nil {
		t.Fatal(err)
	}
	if fw != (Version{3, 0}) || mv != (Version{3, 0}) {
		t.Fatalf("chose %v/%v, want 3.0/3.0", fw, mv)
	}
	SetResponse(msg, StatusOK)
	if !bytes.Equal(msg, windowsNegotiateReply) {
		t.Fatalf("reply =\n% x\nwant\n% x", msg, windowsNegotiateReply)
	}
}

// negotiation builds a negotiation message listing fws then msgs.
func negotiation(fws, msgs []Version) []byte {
	b := make([]byte, offNegVersions+versionSize*(len(fws)+len(msgs)))
	h := Header{PipeFlags: PipeFlagData, Type: TypeNegotiate, Flags: FlagTransaction | FlagRequest, Size: uint16(len(b) - HeaderSize)}
	h.Encode(b)
	binary.LittleEndian.PutUint16(b[offNegFrameworkCount:], uint16(len(fws)))
	binary.LittleEndian.PutUint16(b[offNegMessageCount:], uint16(len(msgs)))
	for i, v := range append(append([]Version{}, fws...), msgs...) {
		binary.LittleEndian.PutUint16(b[offNegVersions+4*i:], v.Major)
		binary.LittleEndian.PutUint16(b[offNegVersions+4*i+2:], v.Minor)
	}
	return b
}

func TestNegotiateChoice(t *testing.T) {
	shutdown := []Version{{3, 2}, {3, 1}, {3, 0}, {1, 0}}
	for _, c := range []struct {
		name       string
		hostFW     []Version
		hostMsg    []Version
		wantFW     Version
		wantMsg    Version
		wantCommon bool
	}{
		{"openvmm oldest first", []Version{{1, 0}, {3, 0}}, []Version{{1, 0}, {3, 0}, {3, 1}, {3, 2}}, Version{3, 0}, Version{3, 2}, true},
		{"linux newest first", []Version{{3, 0}, {1, 0}}, []Version{{3, 2}, {3, 1}, {3, 0}, {1, 0}}, Version{3, 0}, Version{3, 2}, true},
		{"old host", []Version{{1, 0}}, []Version{{1, 0}}, Version{1, 0}, Version{1, 0}, true},
		{"unknown newer ignored", []Version{{9, 9}, {3, 0}}, []Version{{7, 0}, {3, 1}}, Version{3, 0}, Version{3, 1}, true},
		{"no common message", []Version{{3, 0}}, []Version{{2, 0}, {4, 0}}, Version{}, Version{}, false},
		{"no common framework", []Version{{2, 0}}, []Version{{3, 0}}, Version{}, Version{}, false},
		{"empty lists", nil, nil, Version{}, Version{}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			msg := negotiation(c.hostFW, c.hostMsg)
			fw, mv, err := Negotiate(msg, FrameworkVersions, shutdown)
			if c.wantCommon != (err == nil) {
				t.Fatalf("err = %v, want common=%v", err, c.wantCommon)
			}
			if !c.wantCommon && !errors.Is(err, ErrNoCommonVersion) {
				t.Fatalf("err = %v, want ErrNoCommonVersion", err)
			}
			if fw != c.wantFW || mv != c.wantMsg {
				t.Fatalf("chose %v/%v, want %v/%v", fw, mv, c.wantFW, c.wantMsg)
			}
			le := binary.LittleEndian
			wantCount := uint16(0)
			if c.wantCommon {
				wantCount = 1
				if got := (Version{le.Uint16(msg[36:]), le.Uint16(msg[38:])}); got != c.wantFW {
					t.Errorf("@36 = %v, want %v", got, c.wantFW)
				}
				if got := (Version{le.Uint16(msg[40:]), le.Uint16(msg[42:])}); got != c.wantMsg {
					t.Errorf("@40 = %v, want %v", got, c.wantMsg)
				}
			}
			if le.Uint16(msg[28:]) != wantCount || le.Uint16(msg[30:]) != wantCount {
				t.Errorf("counts = %d/%d, want %d/%d", le.Uint16(msg[28:]), le.Uint16(msg[30:]), wantCount, wantCount)
			}
			if le.Uint16(msg[18:]) != 16 {
				t.Errorf("@18 message size = %d, want 16", le.Uint16(msg[18:]))
			}
		})
	}
}

func TestNegotiateHostile(t *testing.T) {
	for _, c := range []struct {
		name    string
		msg     []byte
		wantErr error
	}{
		{"counts larger than message", func() []byte {
			b := bytes.Clone(windowsNegotiate)
			binary.LittleEndian.PutUint16(b[28:], 0xFFFF)
			return b
		}(), ErrVersionCount},
		{"one version missing", windowsNegotiate[:len(windowsNegotiate)-1], ErrVersionCount},
		{"no counts", windowsNegotiate[:HeaderSize+4], ErrShort},
		{"header only", windowsNegotiate[:HeaderSize], ErrShort},
	} {
		t.Run(c.name, func(t *testing.T) {
			msg := bytes.Clone(c.msg)
			_, _, err := Negotiate(msg, FrameworkVersions, []Version{{3, 0}})
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("err = %v, want %v", err, c.wantErr)
			}
			if !bytes.Equal(msg, c.msg) {
				t.Fatal("malformed message was modified")
			}
		})
	}
}

func TestSetResponse(t *testing.T) {
	msg := bytes.Clone(windowsNegotiate)
	SetResponse(msg, StatusFail)
	if msg[25] != 0x05 {
		t.Errorf("flags = %#x, want 0x05", msg[25])
	}
	if !bytes.Equal(msg[20:24], []byte{0x05, 0x40, 0x00, 0x80}) {
		t.Errorf("status bytes = % x, want E_FAIL 05 40 00 80", msg[20:24])
	}
}

func TestVersionAndTypeStrings(t *testing.T) {
	if s := (Version{3, 2}).String(); s != "3.2" {
		t.Errorf("Version.String = %q", s)
	}
	if s := TypeShutdown.String(); s != "shutdown" {
		t.Errorf("TypeShutdown.String = %q", s)
	}
	if s := MessageType(42).String(); s != "type 42" {
		t.Errorf("MessageType(42).String = %q", s)
	}
	if s := StatusFail.String(); s != "0x80004005" {
		t.Errorf("StatusFail.String = %q", s)
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add(windowsNegotiate)
	f.Add(windowsNegotiate[:HeaderSize])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if (err != nil) != (len(b) < HeaderSize) {
			t.Fatalf("len %d: err = %v", len(b), err)
		}
		if err != nil {
			return
		}
		out := bytes.Clone(b[:HeaderSize])
		h.Encode(out)
		out[offReserved], out[offReserved+1] = b[offReserved], b[offReserved+1]
		if !bytes.Equal(out, b[:HeaderSize]) {
			t.Fatalf("re-encode differs: % x vs % x", out, b[:HeaderSize])
		}
	})
}

func FuzzNegotiate(f *testing.F) {
	f.Add(windowsNegotiate)
	f.Add(negotiation([]Version{{1, 0}, {3, 0}}, []Version{{1, 0}, {3, 0}, {3, 1}, {3, 2}}))
	f.Add(negotiation(nil, nil))
	f.Add(windowsNegotiate[:40])
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		msgs := []Version{{3, 2}, {3, 1}, {3, 0}, {1, 0}}
		fw, mv, err := Negotiate(b, FrameworkVersions, msgs)
		switch {
		case err == nil:
			if !contains(FrameworkVersions, fw) || !contains(msgs, mv) {
				t.Fatalf("chose unsupported %v/%v", fw, mv)
			}
			n, perr := ParseNegotiation(b)
			if perr != nil || n.FrameworkCount() != 1 || n.MessageCount() != 1 || n.Framework(0) != fw || n.Message(0) != mv {
				t.Fatalf("reply does not parse back to %v/%v: %v", fw, mv, perr)
			}
		case errors.Is(err, ErrNoCommonVersion):
		default:
			if !bytes.Equal(b, orig) {
				t.Fatal("rejected message was modified")
			}
		}
	})
}
