package hvsim

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

func TestICFaultDuplicate(t *testing.T) {
	k, oc := setupKVP(t, nil)
	k.InjectFault(ICFaultDuplicate)
	res := async(func() error { return k.SetExternal(ctxT(t), "a", "1") })
	q1 := oc.nextIC(t)
	q2 := oc.nextIC(t)
	if q1.txid != q2.txid || !bytes.Equal(q1.p[:28+2580], q2.p[:28+2580]) {
		t.Fatalf("duplicate differs: txid %d/%d", q1.txid, q2.txid)
	}
	oc.answer(t, q1, 0)
	oc.answer(t, q2, 0) // a guest that answers both is not at fault
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	// The next request goes out normally and its answer is matched.
	res = async(func() error { return k.SetExternal(ctxT(t), "b", "2") })
	q3 := oc.nextIC(t)
	if q3.txid <= q1.txid {
		t.Fatalf("txid %d after %d", q3.txid, q1.txid)
	}
	oc.answer(t, q3, 0)
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	noViolations(t, oc.g.h)
}

func TestICFaultOutOfOrder(t *testing.T) {
	k, oc := setupKVP(t, nil) // enumeration used ids 1 (negotiate) and 2
	var ids []uint64
	for i, f := range []ICFault{ICFaultNone, ICFaultOutOfOrder} {
		k.InjectFault(f)
		res := async(func() error { return k.SetExternal(ctxT(t), "a", "1") })
		q := oc.nextIC(t)
		if uint64(q.p[24]) != q.txid&0xFF {
			t.Fatalf("request %d: IC txid %d, VMBus %d", i, q.p[24], q.txid)
		}
		ids = append(ids, q.txid)
		oc.answer(t, q, 0)
		if err := <-res; err != nil {
			t.Fatal(err)
		}
	}
	if ids[1] >= ids[0] {
		t.Fatalf("transaction ids %v: want the second lower", ids)
	}
	noViolations(t, oc.g.h)
}

func TestICFaultTruncated(t *testing.T) {
	k, oc := setupKVP(t, nil)
	k.InjectFault(ICFaultTruncated)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	res := async(func() error { return k.SetExternal(ctx, "a", "1") })
	pkt := oc.nextPacket(t)
	payloadMax := len(pkt) - 16 // ring padding included
	p := pkt[16:]
	if get32(p, 4) != 20+2580 || get16(p, 18) != 2580 {
		t.Fatalf("sizes %d/%d, want the full body claimed", get32(p, 4), get16(p, 18))
	}
	if payloadMax >= 28+2580 || payloadMax < 28+1290 {
		t.Fatalf("payload %d bytes (padded), want 28+1290", payloadMax)
	}
	// The guest drops it: the host gives up with the context.
	if err := <-res; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Set: %v", err)
	}
	noViolations(t, oc.g.h)
}

func TestICFaultOversized(t *testing.T) {
	ts := NewTimeSync(0)
	ts.InjectFault(ICFaultOversized)
	oc := setupDevice(t, Config{}, ts, 8, 4)
	oc.answerNegotiate(t, testFw3010, []uint32{v40, v30, v10}, v30, v40)
	q := oc.nextIC(t)
	n := 24 + ICOversizeExtra
	if get32(q.p, 4) != uint32(20+n) || int(get16(q.p, 18)) != n || len(q.p) < 28+n {
		t.Fatalf("sizes %d/%d in %d bytes", get32(q.p, 4), get16(q.p, 18), len(q.p))
	}
	if q.p[44] != TimeSyncSync || q.p[28+24] != 0xEE || q.p[28+n-1] != 0xEE {
		t.Fatalf("body % x …", q.p[28:60])
	}
	oc.answer(t, q, HResultInvalidArg)
	if err := ts.WaitAnswered(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	if s := ts.Stats(); s.Failed != 1 {
		t.Fatalf("stats %+v", s)
	}
	noViolations(t, oc.g.h)
}

func TestICFaultString(t *testing.T) {
	for f, s := range map[ICFault]string{ICFaultNone: "none", ICFaultDuplicate: "duplicate", ICFaultOutOfOrder: "out-of-order",
		ICFaultTruncated: "truncated", ICFaultOversized: "oversized", 99: "ICFault(99)"} {
		if f.String() != s {
			t.Errorf("%d: %q", int(f), f.String())
		}
	}
}

// TestICDuplicateGuestReply: the guest answering one request twice is a
// violation (response to an unknown transaction), not a crash.
func TestICDuplicateGuestReply(t *testing.T) {
	v, oc := setupVSS(t)
	res := async(func() error { return v.Thaw(ctxT(t)) })
	q := oc.vssExpect(t, 6)
	oc.vssAnswer(t, q, 0, 0)
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	oc.vssAnswer(t, q, 0, 0)
	deadline := time.Now().Add(testWait)
	for oc.g.h.ViolationCount() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if v := oc.g.h.Violations(); len(v) != 1 || !errors.Is(v[0], ErrIC) {
		t.Fatalf("violations %v", v)
	}
}
