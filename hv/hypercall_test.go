package hv

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestCallCodes(t *testing.T) {
	if CallPostMessage != 0x005C || CallSignalEvent != 0x005D || CallNotifyLongSpinWait != 0x0008 {
		t.Errorf("call codes wrong")
	}
	if PostMessageControl != 0x5C || SignalEventControl != 0x5D || SignalEventFastControl != 0x1005D {
		t.Errorf("precomputed control words wrong")
	}
}

func TestControlEncode(t *testing.T) {
	for _, c := range []struct {
		c    Control
		want uint64
	}{
		{Control{Code: CallPostMessage}, 0x000000000000005C},
		{Control{Code: CallSignalEvent, Fast: true}, 0x000000000001005D},
		// 15:0 code, 16 fast, 26:17 var header, 31 nested, 43:32 reps,
		// 59:48 rep start (docs/hyperv-protocol.md §1.7).
		{Control{Code: 0x0002, VarHeaderSize: 2, Nested: true, RepCount: 5, RepStart: 3}, 0x0003000580040002},
		{Control{Code: 0xFFFF, Fast: true, VarHeaderSize: 0x3FF, Nested: true, RepCount: 0xFFF, RepStart: 0xFFF}, 0x0FFF0FFF87FFFFFF},
	} {
		got, err := c.c.Encode()
		if err != nil || got != c.want {
			t.Errorf("Encode(%+v) = %#016x, %v, want %#016x", c.c, got, err, c.want)
			continue
		}
		back, ok := DecodeControl(c.want)
		if !ok || back != c.c {
			t.Errorf("DecodeControl(%#x) = %+v, %v", c.want, back, ok)
		}
	}
	for _, bad := range []Control{{VarHeaderSize: 0x400}, {RepCount: 0x1000}, {RepStart: 0x1000}} {
		if _, err := bad.Encode(); !errors.Is(err, ErrBadRegister) {
			t.Errorf("Encode(%+v): err = %v", bad, err)
		}
	}
	for _, v := range []uint64{1 << 27, 1 << 30, 1 << 44, 1 << 47, 1 << 60, 1 << 63} {
		if _, ok := DecodeControl(0x5C | v); ok {
			t.Errorf("DecodeControl accepted reserved bit %#x", v)
		}
	}
}

func TestResult(t *testing.T) {
	r := Result(0xFFFFF007FFFF0013) // reserved bits set around the fields
	if r.Status() != StatusInsufficientBuffers || r.RepsCompleted() != 7 {
		t.Errorf("Result %#x: status %#x reps %d", uint64(r), uint16(r.Status()), r.RepsCompleted())
	}
	if got := MakeResult(StatusTimeout, 0x123); got != 0x0000012300000078 {
		t.Errorf("MakeResult = %#x", uint64(got))
	}
}

func TestEncodePostMessage(t *testing.T) {
	var dst [PostMessageInputSize]byte
	for i := range dst {
		dst[i] = 0xEE // stale data that must not survive
	}
	if err := EncodePostMessage(&dst, 0x00ABCDEF, 1, []byte{0xAA, 0xBB, 0xCC}); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 256)
	copy(want, []byte{
		0xEF, 0xCD, 0xAB, 0x00, // @0 connection id
		0x00, 0x00, 0x00, 0x00, // @4 reserved
		0x01, 0x00, 0x00, 0x00, // @8 message type
		0x03, 0x00, 0x00, 0x00, // @12 payload size
		0xAA, 0xBB, 0xCC, // @16 payload
	})
	if !bytes.Equal(dst[:], want) {
		t.Errorf("block = % x\nwant    % x", dst[:32], want[:32])
	}

	full := bytes.Repeat([]byte{0x5A}, 240)
	if err := EncodePostMessage(&dst, 4, 0x7FFFFFFF, full); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst[:16], []byte{4, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x7F, 240, 0, 0, 0}) ||
		!bytes.Equal(dst[16:], full) {
		t.Errorf("full block header = % x", dst[:16])
	}

	before := dst
	for _, c := range []struct {
		typ     uint32
		payload []byte
	}{
		{1, make([]byte, 241)},
		{0, nil},
		{0x80000001, nil},
		{0x80000010, []byte{1}},
	} {
		err := EncodePostMessage(&dst, 1, c.typ, c.payload)
		if !errors.Is(err, StatusInvalidParameter) {
			t.Errorf("type %#x, %d bytes: err = %v, want StatusInvalidParameter", c.typ, len(c.payload), err)
		}
		if dst != before {
			t.Errorf("type %#x: block modified on error", c.typ)
		}
	}
}

func TestEncodePostMessageAllocs(t *testing.T) {
	var dst [PostMessageInputSize]byte
	payload := make([]byte, 100)
	var ev [SignalEventInputSize]byte
	n := testing.AllocsPerRun(100, func() {
		if err := EncodePostMessage(&dst, 1, 1, payload); err != nil {
			panic(err)
		}
		if err := EncodePostMessage(&dst, 1, 0, payload); err == nil {
			panic("no error")
		}
		EncodeSignalEvent(&ev, 5, 0)
	})
	if n != 0 {
		t.Errorf("allocs per run = %v, want 0", n)
	}
}

func TestDecodePostMessage(t *testing.T) {
	var src [PostMessageInputSize]byte
	copy(src[:], []byte{
		0x01, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00,
		0x01, 0x00, 0x00, 0x00,
		0x02, 0x00, 0x00, 0x00,
		0x10, 0x20, 0x30,
	})
	conn, typ, payload, err := DecodePostMessage(&src)
	if err != nil || conn != 1 || typ != 1 || !bytes.Equal(payload, []byte{0x10, 0x20}) {
		t.Errorf("DecodePostMessage = %d %d % x %v", conn, typ, payload, err)
	}
	bad := src
	bad[4] = 1
	if _, _, _, err := DecodePostMessage(&bad); !errors.Is(err, StatusInvalidHypercallInput) {
		t.Errorf("reserved set: err = %v", err)
	}
	bad = src
	bad[12] = 241
	if _, _, _, err := DecodePostMessage(&bad); !errors.Is(err, StatusInvalidParameter) {
		t.Errorf("size 241: err = %v", err)
	}
	bad = src
	bad[11] = 0x80
	if _, _, _, err := DecodePostMessage(&bad); !errors.Is(err, StatusInvalidParameter) {
		t.Errorf("type bit 31: err = %v", err)
	}
}

func TestSignalEvent(t *testing.T) {
	var dst [SignalEventInputSize]byte
	for i := range dst {
		dst[i] = 0xEE
	}
	EncodeSignalEvent(&dst, 0x12345678, 0x0102)
	if want := []byte{0x78, 0x56, 0x34, 0x12, 0x02, 0x01, 0x00, 0x00}; !bytes.Equal(dst[:], want) {
		t.Errorf("block = % x, want % x", dst, want)
	}
	if got := SignalEventFastInput(0x11, 0); got != 0x11 {
		t.Errorf("fast input flag 0 = %#x", got)
	}
	if got := SignalEventFastInput(0xFFFFFFFF, 0x7FF); got != 0x000007FFFFFFFFFF {
		t.Errorf("fast input = %#x", got)
	}
	conn, flag, err := DecodeSignalEvent(0x000007FF00000011)
	if err != nil || conn != 0x11 || flag != 0x7FF {
		t.Errorf("DecodeSignalEvent = %#x %#x %v", conn, flag, err)
	}
	if _, _, err := DecodeSignalEvent(1 << 48); !errors.Is(err, StatusInvalidHypercallInput) {
		t.Errorf("reserved: err = %v", err)
	}
	if _, _, err := DecodeSignalEvent(2048 << 32); !errors.Is(err, StatusInvalidParameter) {
		t.Errorf("flag 2048: err = %v", err)
	}
}

func TestPostMessageBackoff(t *testing.T) {
	for _, c := range []struct {
		n    int
		want time.Duration
		ok   bool
	}{
		{-1, 0, false},
		{0, 1 * time.Microsecond, true},
		{1, 2 * time.Microsecond, true},
		{10, 1024 * time.Microsecond, true},
		{21, 2097152 * time.Microsecond, true},
		{22, 2097152 * time.Microsecond, true},
		{98, 2097152 * time.Microsecond, true},
		{99, 0, false},
		{1000, 0, false},
	} {
		got, ok := PostMessageBackoff(c.n)
		if got != c.want || ok != c.ok {
			t.Errorf("PostMessageBackoff(%d) = %v, %v, want %v, %v", c.n, got, ok, c.want, c.ok)
		}
	}
	// 100 attempts means 99 waits.
	waits := 0
	for n := 0; ; n++ {
		if _, ok := PostMessageBackoff(n); !ok {
			break
		}
		waits++
	}
	if waits != PostMessageMaxAttempts-1 || PostMessageMaxAttempts != 100 {
		t.Errorf("waits = %d", waits)
	}
}
