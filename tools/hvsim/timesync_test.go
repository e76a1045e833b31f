package hvsim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// Scripted-guest helpers for the time sync, KVP and VSS host tests. The
// guest side is written from the literal offsets of
// docs/hyperv-protocol.md §8, not from the encoders under test.

// icPkt is one host request as the scripted guest reads it.
type icPkt struct {
	txid uint64
	p    []byte // payload from the pipe header on (ring padding included)
}

func (oc *openedChannel) nextIC(t testing.TB) icPkt {
	t.Helper()
	pkt := oc.nextPacket(t)
	if get16(pkt, 0) != 6 || get16(pkt, 2) != 2 || get16(pkt, 6) != 0 {
		t.Fatalf("descriptor % x, want in-band, offset 2, flags 0", pkt[:8])
	}
	return icPkt{txid: binary64(pkt[8:]), p: pkt[16:]}
}

// answer replies with status (the same buffer, docs/hyperv-protocol.md §8.1).
func (oc *openedChannel) answer(t testing.TB, q icPkt, status uint32) {
	t.Helper()
	r := bytes.Clone(q.p[:28+int(get16(q.p, 18))])
	put32(r, 20, status)
	oc.reply(t, q.txid, r)
}

func verBytes(vs ...uint32) []byte {
	var b []byte
	for _, v := range vs {
		b = append(b, byte(v>>16), byte(v>>24), byte(v), byte(v>>8))
	}
	return b
}

// answerNegotiate checks the host's negotiate request against the lists
// it must offer and answers with fw/msg (0/0: no common version).
func (oc *openedChannel) answerNegotiate(t testing.TB, wantFw, wantMsg []uint32, fw, msg uint32) {
	t.Helper()
	q := oc.nextIC(t)
	n := len(wantFw) + len(wantMsg)
	body := 8 + 4*n
	want := []byte{
		1, 0, 0, 0, // @0 pipe flags: data
		byte(20 + body), 0, 0, 0, // @4 pipe size
		1, 0, 0, 0, // @8 framework 1.0
		0, 0, // @12 type negotiate
		1, 0, 0, 0, // @14 message 1.0
		byte(body), 0, // @18 message size
		0, 0, 0, 0, // @20 status
		q.p[24], 0x03, 0, 0, // @24 txid, flags transaction|request, reserved
		byte(len(wantFw)), 0, byte(len(wantMsg)), 0, 0, 0, 0, 0, // @28 counts, reserved
	}
	want = append(want, verBytes(wantFw...)...)
	want = append(want, verBytes(wantMsg...)...)
	if !bytes.Equal(q.p[:len(want)], want) {
		t.Fatalf("negotiate\n got % x\nwant % x", q.p[:len(want)], want)
	}
	r := bytes.Clone(q.p[:28+16])
	r[18] = 16
	if fw == 0 {
		r[28], r[30] = 0, 0
	} else {
		r[28], r[30] = 1, 1
		copy(r[36:], verBytes(fw, msg))
	}
	oc.reply(t, q.txid, r)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	t.Cleanup(cancel)
	return ctx
}

// refCounter is the guest's TIME_REF_COUNT read on the simulated platform.
func (oc *openedChannel) refCounter(t testing.TB) uint64 {
	t.Helper()
	rc, ok := oc.g.p.(interface{ TimeRefCount() uint64 })
	if !ok {
		t.Fatal("platform has no TimeRefCount")
	}
	return rc.TimeRefCount()
}

const (
	v10 = 0x10000
	v30 = 0x30000
	v40 = 0x40000
	v50 = 0x50000
	v60 = 0x60000
	v70 = 0x70000
)

// 2023-11-14 22:13:20 UTC = Unix 1_700_000_000: file time
// 1_700_000_000 × 10^7 + 116444736000000000.
var (
	tsT0       = time.Unix(1_700_000_000, 0)
	tsT0File   = uint64(133444736000000000)
	testFw3010 = []uint32{v30, v10}
)

func TestFileTime(t *testing.T) {
	if got := FileTime(tsT0); got != tsT0File {
		t.Fatalf("FileTime = %d, want %d", got, tsT0File)
	}
	if got := FileTime(time.Unix(0, 0)); got != 116444736000000000 {
		t.Fatalf("FileTime(Unix 0) = %d", got)
	}
	if got := FromFileTime(tsT0File + 1234567); !got.Equal(tsT0.Add(123456700 * time.Nanosecond)) {
		t.Fatalf("FromFileTime = %v", got)
	}
}

func TestTimeSyncWire(t *testing.T) {
	clk := NewManualClock(tsT0)
	clk.Advance(1500 * time.Millisecond) // reference counter 15_000_000
	ts := NewTimeSync(0)
	oc := setupDevice(t, Config{Clock: clk}, ts, 8, 4)
	oc.answerNegotiate(t, testFw3010, []uint32{v40, v30, v10}, v30, v40)
	q := oc.nextIC(t)
	parent := tsT0File + 15_000_000
	want := []byte{
		1, 0, 0, 0, // pipe: data
		20 + 24, 0, 0, 0, // pipe size
		3, 0, 0, 0, // framework 3.0
		4, 0, // type time sync
		4, 0, 0, 0, // message 4.0
		24, 0, // body size (padded v4 layout, docs/hyperv-protocol.md §11 #17)
		0, 0, 0, 0, // status
		q.p[24], 0x03, 0, 0,
		byte(parent), byte(parent >> 8), byte(parent >> 16), byte(parent >> 24),
		byte(parent >> 32), byte(parent >> 40), byte(parent >> 48), byte(parent >> 56), // @28 parent time
		0xc0, 0xe1, 0xe4, 0, 0, 0, 0, 0, // @36 VM reference time 15_000_000 = 0xE4E1C0
		1, 0, 0, 0, 0, 0, 0, 0, // @44 flags SYNC, leap, stratum, reserved
	}
	if !bytes.Equal(q.p[:len(want)], want) {
		t.Fatalf("SYNC\n got % x\nwant % x", q.p[:len(want)], want)
	}
	oc.answer(t, q, 0)
	if err := ts.WaitAnswered(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	noViolations(t, oc.g.h)
}

func TestTimeSyncWireV3(t *testing.T) {
	clk := NewManualClock(tsT0)
	ts := NewTimeSync(0)
	oc := setupDevice(t, Config{Clock: clk, Profile: WS2012R2}, ts, 8, 4)
	oc.answerNegotiate(t, testFw3010, []uint32{v30, v10}, v30, v30)
	q := oc.nextIC(t)
	want := []byte{
		1, 0, 0, 0, 20 + 28, 0, 0, 0,
		3, 0, 0, 0, 4, 0, 3, 0, 0, 0, 28, 0,
		0, 0, 0, 0, q.p[24], 0x03, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, // @28 parent time (below)
		0, 0, 0, 0, 0, 0, 0, 0, // @36 child time
		0, 0, 0, 0, 0, 0, 0, 0, // @44 round trip
		1, 0, 0, 0, // @52 flags SYNC + padding
	}
	put64(want, 28, tsT0File)
	if !bytes.Equal(q.p[:len(want)], want) {
		t.Fatalf("SYNC v3\n got % x\nwant % x", q.p[:len(want)], want)
	}
	oc.answer(t, q, 0)
	if err := ts.WaitAnswered(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	noViolations(t, oc.g.h)
}

// tsGuest is a scripted guest clock: now = parent + (counter − reference).
type tsGuest struct {
	parent, ref uint64
}

func (g *tsGuest) apply(q icPkt) {
	g.parent, g.ref = binary64(q.p[28:]), binary64(q.p[36:])
}

func (g *tsGuest) now(counter uint64) time.Time { return FromFileTime(g.parent + counter - g.ref) }

// TestTimeSyncGuestFollows: the test moves the host clock; the scripted
// guest's clock, computed from the v4 samples and the platform's reference
// counter, follows it exactly.
func TestTimeSyncGuestFollows(t *testing.T) {
	clk := NewManualClock(tsT0)
	ts := NewTimeSync(0)
	oc := setupDevice(t, Config{Clock: clk}, ts, 8, 4)
	oc.answerNegotiate(t, testFw3010, []uint32{v40, v30, v10}, v30, v40)
	var g tsGuest
	q := oc.nextIC(t)
	if q.p[44] != TimeSyncSync {
		t.Fatalf("first message flags %d, want SYNC", q.p[44])
	}
	g.apply(q)
	oc.answer(t, q, 0)

	clk.Advance(3 * time.Second)
	if got := g.now(oc.refCounter(t)); !got.Equal(clk.Now()) {
		t.Fatalf("guest clock %v, host %v", got, clk.Now())
	}
	// The host's wall clock is stepped: the next SAMPLE carries it.
	clk.SetWall(tsT0.Add(time.Hour))
	res := make(chan error, 1)
	go func() { _, err := ts.Send(ctxT(t), TimeSyncSample); res <- err }()
	q = oc.nextIC(t)
	if q.p[44] != TimeSyncSample {
		t.Fatalf("flags %d, want SAMPLE", q.p[44])
	}
	g.apply(q)
	oc.answer(t, q, 0)
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	clk.Advance(250 * time.Millisecond)
	if got := g.now(oc.refCounter(t)); !got.Equal(clk.Now()) {
		t.Fatalf("guest clock %v, host %v", got, clk.Now())
	}
	if s := ts.Samples(); len(s) != 2 || s[0].Flags != TimeSyncSync || s[1].Flags != TimeSyncSample || s[1].RefTime != 30_000_000 {
		t.Fatalf("samples %+v", s)
	}
	noViolations(t, oc.g.h)
}

func TestTimeSyncPeriodic(t *testing.T) {
	ts := NewTimeSync(time.Millisecond)
	oc := setupDevice(t, Config{}, ts, 8, 4)
	oc.answerNegotiate(t, testFw3010, []uint32{v40, v30, v10}, v30, v40)
	for i := 0; i < 4; i++ {
		q := oc.nextIC(t)
		want := TimeSyncSample
		if i == 0 {
			want = TimeSyncSync
		}
		if q.p[44] != want {
			t.Fatalf("message %d flags %d, want %d", i, q.p[44], want)
		}
		oc.answer(t, q, 0)
	}
	if err := ts.WaitAnswered(ctxT(t), 4); err != nil {
		t.Fatal(err)
	}
	// A failure status is counted and returned, not a violation.
	q := oc.nextIC(t)
	oc.answer(t, q, HResultFail)
	ctx := ctxT(t)
	for ts.Stats().Failed == 0 {
		if err := ts.WaitAnswered(ctx, ts.Stats().Answered+1); err != nil {
			t.Fatal(err)
		}
	}
	noViolations(t, oc.g.h)
}

// TestICNegotiationProfiles: each IC offers its profile's versions and the
// guest's choice is what Negotiated reports.
func TestICNegotiationProfiles(t *testing.T) {
	type svc struct {
		name string
		dev  func() (Device, func() (uint32, uint32, bool))
		msgs map[Profile][]uint32
	}
	svcs := []svc{
		{"timesync", func() (Device, func() (uint32, uint32, bool)) { d := NewTimeSync(0); return d, d.Negotiated },
			map[Profile][]uint32{WS2012R2: {v30, v10}, WS2016: {v40, v30, v10}, WS2019: {v40, v30, v10}, WS2022: {v40, v30, v10}}},
		{"kvp", func() (Device, func() (uint32, uint32, bool)) { d := NewKVP(); return d, d.Negotiated },
			map[Profile][]uint32{WS2012R2: {v40, v30, v10}, WS2016: {v50, v40, v30, v10}, WS2019: {v50, v40, v30, v10}, WS2022: {v50, v40, v30, v10}}},
		{"vss", func() (Device, func() (uint32, uint32, bool)) { d := NewVSS(); return d, d.Negotiated },
			map[Profile][]uint32{WS2012R2: {v50, v40}, WS2016: {v60, v50, v40}, WS2019: {v70, v60, v50, v40}, WS2022: {v70, v60, v50, v40}}},
	}
	for _, s := range svcs {
		for _, p := range []Profile{WS2012R2, WS2016, WS2019, WS2022} {
			t.Run(fmt.Sprintf("%s/%v", s.name, p), func(t *testing.T) {
				dev, negotiated := s.dev()
				oc := setupDevice(t, Config{Profile: p}, dev, 8, 4)
				msgs := s.msgs[p]
				pick := msgs[len(msgs)-1] // an old guest: the oldest offered
				oc.answerNegotiate(t, testFw3010, msgs, v30, pick)
				deadline := time.Now().Add(testWait)
				for {
					if fw, msg, ok := negotiated(); ok {
						if fw != v30 || msg != pick {
							t.Fatalf("negotiated %#x/%#x, want %#x/%#x", fw, msg, v30, pick)
						}
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("negotiation did not finish")
					}
					time.Sleep(time.Millisecond)
				}
				noViolations(t, oc.g.h)
			})
		}
	}
}

func TestTimeSyncNoCommonVersion(t *testing.T) {
	ts := NewTimeSync(0)
	oc := setupDevice(t, Config{}, ts, 8, 4)
	oc.answerNegotiate(t, testFw3010, []uint32{v40, v30, v10}, 0, 0)
	if _, err := ts.Send(ctxT(t), TimeSyncSample); !errors.Is(err, ErrICUnusable) {
		t.Fatalf("Send: %v", err)
	}
}

// TestTimeSyncBadReply: a reply of the wrong IC type or message version is
// a violation and an error, never a panic.
func TestTimeSyncBadReply(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(r []byte)
	}{
		{"type", func(r []byte) { r[12] = 1 }},
		{"version", func(r []byte) { r[14] = 3 }},
		{"size", func(r []byte) { r[18] = 200 }},
		{"size not echoed", func(r []byte) { r[18] = 22 }},
		{"pipe", func(r []byte) { r[0] = 2 }},
		{"request flag", func(r []byte) { r[25] = 0x07 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := NewTimeSync(0)
			oc := setupDevice(t, Config{}, ts, 8, 4)
			oc.answerNegotiate(t, testFw3010, []uint32{v40, v30, v10}, v30, v40)
			q := oc.nextIC(t)
			r := bytes.Clone(q.p[:28+24])
			r[25] = 0x05
			c.mod(r)
			sig, ok := oc.out.write(6, 0, q.txid, r)
			if !ok {
				t.Fatal("ring full")
			}
			if sig {
				oc.g.p.SignalEvent(oc.conn, 0)
			}
			deadline := time.Now().Add(testWait)
			for oc.g.h.ViolationCount() == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if v := oc.g.h.Violations(); len(v) != 1 || !errors.Is(v[0], ErrIC) {
				t.Fatalf("violations %v", v)
			}
		})
	}
}

// TestTimeSyncSendAfterSync: an explicit Send never overtakes the initial
// SYNC.
func TestTimeSyncSendAfterSync(t *testing.T) {
	ts := NewTimeSync(0)
	oc := setupDevice(t, Config{}, ts, 8, 4)
	res := async(func() error { _, err := ts.Send(ctxT(t), TimeSyncProbe); return err })
	oc.answerNegotiate(t, testFw3010, []uint32{v40, v30, v10}, v30, v40)
	q := oc.nextIC(t)
	if q.p[44] != TimeSyncSync {
		t.Fatalf("first message flags %d, want SYNC", q.p[44])
	}
	oc.answer(t, q, 0)
	q = oc.nextIC(t)
	if q.p[44] != TimeSyncProbe {
		t.Fatalf("second message flags %d, want PROBE", q.p[44])
	}
	oc.answer(t, q, 0)
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	noViolations(t, oc.g.h)
}
