package shutdown

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/gohv/gohv/drivers/ic"
	"github.com/gohv/gohv/drivers/ic/ictest"
)

// body builds a shutdown body (docs/hyperv-protocol.md §8.4): reason, timeout, flags,
// then the display message bytes.
func body(reason, timeout, flags uint32, message []byte) []byte {
	b := make([]byte, 12+len(message))
	binary.LittleEndian.PutUint32(b[0:], reason)
	binary.LittleEndian.PutUint32(b[4:], timeout)
	binary.LittleEndian.PutUint32(b[8:], flags)
	copy(b[12:], message)
	return b
}

func utf16le(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, u)
	}
	return append(b, 0, 0)
}

func attached(t *testing.T, deliver func(Request) bool) (*Driver, *ictest.Channel) {
	t.Helper()
	d := New(deliver)
	ch := ictest.New(Class)
	if err := d.attach(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
	// OpenVMM lists message versions oldest first (docs/hyperv-protocol.md §8.2).
	reply, err := ch.Call(1, ictest.Negotiation(ictest.WindowsFrameworks, []ic.Version{{Major: 1}, {Major: 3}, {Major: 3, Minor: 1}, {Major: 3, Minor: 2}}))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(reply[36:44], []byte{3, 0, 0, 0, 3, 0, 2, 0}) {
		t.Fatalf("negotiated % x, want 3.0 / 3.2", reply[36:44])
	}
	return d, ch
}

func TestShutdownFlagsTable(t *testing.T) {
	// The kernel side of this test acts on power-off and reboot only, as
	// gohv's kernel does: hibernate is not supported.
	supported := func(r Request) bool { return r.Kind != Hibernate }
	for _, c := range []struct {
		flags     uint32
		delivered bool
		kind      Kind
		force     bool
		status    []byte // HRESULT bytes @20, little-endian
	}{
		{0, true, PowerOff, false, []byte{0, 0, 0, 0}},
		{1, true, PowerOff, true, []byte{0, 0, 0, 0}},
		{2, true, Reboot, false, []byte{0, 0, 0, 0}},
		{3, true, Reboot, true, []byte{0, 0, 0, 0}},
		{4, true, Hibernate, false, []byte{0x05, 0x40, 0x00, 0x80}},
		{5, true, Hibernate, true, []byte{0x05, 0x40, 0x00, 0x80}},
		{6, false, 0, false, []byte{0x05, 0x40, 0x00, 0x80}},
		{8, false, 0, false, []byte{0x05, 0x40, 0x00, 0x80}},
	} {
		var got []Request
		_, ch := attached(t, func(r Request) bool { got = append(got, r); return supported(r) })
		msg := ictest.Message(ic.TypeShutdown, ic.Version{Major: 3, Minor: 2}, body(ReasonPlanned, 30, c.flags, utf16le("bye")))
		reply, err := ch.Call(uint64(c.flags)+100, msg)
		if err != nil {
			t.Fatalf("flags %d: %v", c.flags, err)
		}
		if !bytes.Equal(reply[20:24], c.status) || reply[25] != 0x05 {
			t.Errorf("flags %d: status % x flags %#x, want % x and 0x05", c.flags, reply[20:24], reply[25], c.status)
		}
		if !bytes.Equal(reply[28:], msg[28:]) {
			t.Errorf("flags %d: body changed", c.flags)
		}
		if c.delivered != (len(got) == 1) {
			t.Fatalf("flags %d: delivered %d requests, want delivered=%v", c.flags, len(got), c.delivered)
		}
		if !c.delivered {
			continue
		}
		want := Request{Kind: c.kind, Force: c.force, Reason: ReasonPlanned, Timeout: 30 * time.Second, Message: MakeText("bye")}
		if got[0] != want {
			t.Errorf("flags %d: request %+v, want %+v", c.flags, got[0], want)
		}
	}
}

func TestShutdownStats(t *testing.T) {
	d, ch := attached(t, func(r Request) bool { return r.Kind == PowerOff })
	for _, flags := range []uint32{0, 2, 8} {
		if _, err := ch.Call(5, ictest.Message(ic.TypeShutdown, ic.Version{Major: 3}, body(0, 0, flags, nil))); err != nil {
			t.Fatal(err)
		}
	}
	reply, err := ch.Call(6, ictest.Message(ic.TypeShutdown, ic.Version{Major: 3}, []byte{1, 2, 3, 4}))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(reply[20:24], []byte{0x57, 0x00, 0x07, 0x80}) {
		t.Fatalf("truncated request status % x, want E_INVALIDARG", reply[20:24])
	}
	st := d.Stats()
	if st.Requests != 4 || st.Accepted != 1 || st.Refused != 3 || st.IC.Messages != 5 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestNilDeliverRefuses(t *testing.T) {
	_, ch := attached(t, nil)
	reply, err := ch.Call(5, ictest.Message(ic.TypeShutdown, ic.Version{Major: 3}, body(0, 0, 0, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(reply[20:24], []byte{0x05, 0x40, 0x00, 0x80}) {
		t.Fatalf("status % x, want E_FAIL", reply[20:24])
	}
}

func TestParseRequestMessage(t *testing.T) {
	long := bytes.Repeat([]byte{'x'}, 3000)
	for _, c := range []struct {
		name string
		msg  []byte
		want string
	}{
		{"utf16", utf16le("Planned maintenance ✓"), "Planned maintenance ✓"},
		{"utf8", []byte("plain\x00garbage"), "plain"},
		{"invalid utf8", []byte{'a', 0xff, 'b', 0}, "a\uFFFDb"},
		{"none", nil, ""},
		{"utf16 surrogate pair", utf16le("a😀b"), "a😀b"},
		{"utf16 lone surrogate", []byte{'a', 0, 0x00, 0xD8, 'b', 0, 0, 0}, "a\uFFFDb"},
		{"invalid utf8 run", []byte{'a', 0xff, 0xfe, 'b'}, "a\uFFFDb"},
		{"unterminated, capped at 2048", long, string(long[:2048])},
	} {
		m := ictest.Message(ic.TypeShutdown, ic.Version{Major: 3}, body(0, 0, 0, c.msg))
		r, err := ParseRequest(m)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if r.Message.String() != c.want {
			t.Errorf("%s: message %q, want %q", c.name, r.Message, c.want)
		}
	}
	if _, err := ParseRequest(make([]byte, 39)); !errors.Is(err, ic.ErrShort) {
		t.Fatalf("short: %v", err)
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{PowerOff: "power-off", Reboot: "reboot", Hibernate: "hibernate", 9: "kind 9"} {
		if k.String() != want {
			t.Errorf("%d: %q", k, k.String())
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add(ictest.Message(ic.TypeShutdown, ic.Version{Major: 3}, body(ReasonPlanned, 30, 1, utf16le("bye"))))
	f.Add(ictest.Message(ic.TypeShutdown, ic.Version{Major: 3}, body(0, 0, 2, []byte("x\x00"))))
	f.Add(ictest.Message(ic.TypeShutdown, ic.Version{Major: 3}, body(0, 0, 8, nil)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			return
		}
		if len(b) < minMessage {
			t.Fatalf("accepted %d bytes", len(b))
		}
		flags := binary.LittleEndian.Uint32(b[offFlags:])
		if flags > 5 || r.Force != (flags&1 != 0) || r.Kind > Hibernate {
			t.Fatalf("flags %#x gave %+v", flags, r)
		}
		text := r.Message.String()
		if len([]rune(text)) > messageMax || !utf8.ValidString(text) {
			t.Fatalf("message of %d runes, valid %v", len([]rune(text)), utf8.ValidString(text))
		}
		// The allocation-free decoder says what the straightforward one
		// (utf16.Decode, strings.ToValidUTF8) says.
		if want := referenceText(b[offMessage:min(len(b), offMessage+messageMax)]); text != want {
			t.Fatalf("message %q, reference decoding %q", text, want)
		}
	})
}

// referenceText is the display-message decoding written the obvious,
// allocating way: the model the driver's decoder is checked against.
func referenceText(b []byte) string {
	if len(b) >= 2 && b[0] != 0 && b[1] == 0 {
		var u []uint16
		for i := 0; i+1 < len(b); i += 2 {
			c := binary.LittleEndian.Uint16(b[i:])
			if c == 0 {
				break
			}
			u = append(u, c)
		}
		return string(utf16.Decode(u))
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// The handler takes a request and answers without allocating (drivers/ic
// contract: handlers must not allocate), whatever the message: UTF-16 or
// UTF-8 text, unknown flags, too short.
func TestHandleNoAlloc(t *testing.T) {
	var n int
	d := New(func(r Request) bool { n += r.Message.Len(); return true })
	v := ic.Version{Major: 3, Minor: 2}
	for _, c := range []struct {
		name string
		msg  []byte
		want ic.Status
	}{
		{"utf16", ictest.Message(ic.TypeShutdown, v, body(ReasonPlanned, 30, 1, utf16le("Planned maintenance ✓ 😀"))), ic.StatusOK},
		{"utf8", ictest.Message(ic.TypeShutdown, v, body(0, 0, 2, []byte("reboot\xff now\x00"))), ic.StatusOK},
		{"bad flags", ictest.Message(ic.TypeShutdown, v, body(0, 0, 8, nil)), ic.StatusFail},
		{"short", ictest.Message(ic.TypeShutdown, v, []byte{1, 2, 3, 4}), ic.StatusInvalidArg},
	} {
		allocs := testing.AllocsPerRun(200, func() {
			if st := d.handle(c.msg, v); st != c.want {
				t.Fatalf("%s: status %#x, want %#x", c.name, st, c.want)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per message", c.name, allocs)
		}
	}
	if n == 0 {
		t.Error("delivered requests carried no text")
	}
}

func TestMakeText(t *testing.T) {
	long := strings.Repeat("é", textCap) // 2 bytes each: twice the capacity
	for _, c := range []struct{ in, want string }{
		{"", ""}, {"bye", "bye"}, {"a\xffb", "a\uFFFDb"}, {long, long[:textCap]},
	} {
		got := MakeText(c.in)
		if got.String() != c.want || got.Len() != len(c.want) {
			t.Errorf("MakeText(%.20q) = %.20q (%d bytes), want %.20q", c.in, got.String(), got.Len(), c.want)
		}
	}
}
