package hvsim

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func setupVSS(t *testing.T) (*VSS, *openedChannel) {
	t.Helper()
	v := NewVSS()
	oc := setupDevice(t, Config{}, v, 8, 4)
	oc.answerNegotiate(t, testFw3010, []uint32{v70, v60, v50, v40}, v30, v50)
	return v, oc
}

// vssExpect reads the next VSS request and checks it byte for byte
// (docs/hyperv-protocol.md §9.1: operation @28, 7 reserved bytes, data u32 @36).
func (oc *openedChannel) vssExpect(t testing.TB, op byte) icPkt {
	t.Helper()
	q := oc.nextIC(t)
	want := []byte{
		1, 0, 0, 0, 20 + 12, 0, 0, 0,
		3, 0, 0, 0, 5, 0, 5, 0, 0, 0, 12, 0,
		0, 0, 0, 0, q.p[24], 0x03, 0, 0,
		op, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	}
	if !bytes.Equal(q.p[:len(want)], want) {
		t.Fatalf("VSS op %d\n got % x\nwant % x", op, q.p[:len(want)], want)
	}
	return q
}

func (oc *openedChannel) vssAnswer(t testing.TB, q icPkt, status, flags uint32) {
	t.Helper()
	r := bytes.Clone(q.p[:28+12])
	put32(r, 20, status)
	put32(r, 36, flags)
	oc.reply(t, q.txid, r)
}

func TestVSSBackup(t *testing.T) {
	v, oc := setupVSS(t)
	var frozen atomic.Bool
	var sawFrozen atomic.Bool
	res := async(func() error {
		return v.Backup(ctxT(t), func(ctx context.Context) error {
			sawFrozen.Store(frozen.Load())
			return nil
		})
	})
	oc.vssAnswer(t, oc.vssExpect(t, 2), 0, VSSNoAutoRecovery) // HOT_BACKUP
	q := oc.vssExpect(t, 5)                                   // FREEZE
	frozen.Store(true)
	oc.vssAnswer(t, q, 0, 0)
	q = oc.vssExpect(t, 6) // THAW
	frozen.Store(false)
	oc.vssAnswer(t, q, 0, 0)
	oc.vssAnswer(t, oc.vssExpect(t, 4), 0, 0) // BU_COMPLETE
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	if !sawFrozen.Load() {
		t.Error("the snapshot callback ran while the guest was not frozen")
	}
	a := v.Answers()
	if len(a) != 4 || a[0].Op != "HOT_BACKUP" || a[0].Flags != VSSNoAutoRecovery || a[1].Op != "FREEZE" || a[2].Op != "THAW" || a[3].Op != "BU_COMPLETE" {
		t.Fatalf("answers %+v", a)
	}
	noViolations(t, oc.g.h)
}

// TestVSSFreezeRefused: a failed FREEZE aborts the backup with a THAW.
func TestVSSFreezeRefused(t *testing.T) {
	v, oc := setupVSS(t)
	called := false
	res := async(func() error {
		return v.Backup(ctxT(t), func(context.Context) error { called = true; return nil })
	})
	oc.vssAnswer(t, oc.vssExpect(t, 2), 0, VSSNoAutoRecovery)
	oc.vssAnswer(t, oc.vssExpect(t, 5), HResultFail, 0)
	oc.vssAnswer(t, oc.vssExpect(t, 6), 0, 0)
	err := <-res
	var he *HResultError
	if !errors.Is(err, ErrBackupRefused) || !errors.As(err, &he) || he.HResult != HResultFail || he.Op != "FREEZE" {
		t.Fatalf("Backup: %v", err)
	}
	if called {
		t.Error("snapshot taken after a refused FREEZE")
	}
	noViolations(t, oc.g.h)
}

// TestVSSFreezeTimeout: a guest that never answers FREEZE runs into the
// host's timeout; the host THAWs.
func TestVSSFreezeTimeout(t *testing.T) {
	v, oc := setupVSS(t)
	v.Timeout = 30 * time.Millisecond
	res := async(func() error { return v.Backup(ctxT(t), nil) })
	oc.vssAnswer(t, oc.vssExpect(t, 2), 0, VSSNoAutoRecovery)
	oc.vssExpect(t, 5) // never answered
	q := oc.vssExpect(t, 6)
	oc.vssAnswer(t, q, 0, 0)
	err := <-res
	if !errors.Is(err, ErrBackupRefused) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Backup: %v", err)
	}
	if a := v.Answers(); len(a) != 3 || a[1].Err == nil || a[2].Op != "THAW" || a[2].Err != nil {
		t.Fatalf("answers %+v", a)
	}
}

// TestVSSNeverThaw: a host that FREEZEs and then goes silent sends nothing
// after the FREEZE (the guest must thaw on its own).
func TestVSSNeverThaw(t *testing.T) {
	v, oc := setupVSS(t)
	res := async(func() error { return v.Freeze(ctxT(t)) })
	oc.vssAnswer(t, oc.vssExpect(t, 5), 0, 0)
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	if p := oc.in.read(); p != nil {
		t.Fatalf("host sent % x after FREEZE", p[:48])
	}
	if a := v.Answers(); len(a) != 1 || a[0].Op != "FREEZE" {
		t.Fatalf("answers %+v", a)
	}
}

func TestVSSBadReply(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(r []byte) []byte
	}{
		{"other operation", func(r []byte) []byte { r[28] = 5; return r }},
		{"short", func(r []byte) []byte { r[18] = 4; return r[:32] }},
		{"size not echoed", func(r []byte) []byte { r[18] = 8; return r }},
	} {
		t.Run(c.name, func(t *testing.T) {
			v, oc := setupVSS(t)
			res := async(func() error { _, err := v.CheckHotBackup(ctxT(t)); return err })
			q := oc.vssExpect(t, 2)
			r := bytes.Clone(q.p[:28+12])
			r[25] = 0x05
			oc.reply(t, q.txid, c.mod(r))
			if err := <-res; !errors.Is(err, ErrIC) {
				t.Fatalf("CheckHotBackup: %v", err)
			}
			if v := oc.g.h.Violations(); len(v) != 1 {
				t.Fatalf("violations %v", v)
			}
		})
	}
}
