package storvsc_test

// Integration of the driver with the real guest VMBus client (package
// vmbus) and the simulated host's StorVSP (tools/hvsim/storvsp), written
// independently from the same reference. Every test fails if the host
// recorded a protocol violation.

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gohv/gohv/drivers/storvsc"
	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/storvsp"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

type simRig struct {
	h    *hvsim.Host
	vsp  *storvsp.StorVSP
	rel  uint32
	bus  *vmbus.Bus
	ch   *vmbus.Channel
	evs  chan storvsc.Event
	ctrl *storvsc.Controller
}

func newSimRig(t *testing.T, cfg storvsp.Config, luns map[uint8]storvsp.LUNConfig, scfg storvsc.Config) *simRig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	h, err := hvsim.New(hvsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	cfg.Instance = hvsim.MustParseGUID("f2d3a7b1-0c3e-4b8e-9a56-123456789abc")
	vsp, err := storvsp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for l, lc := range luns {
		a := storvsp.Addr{LUN: l}
		if cfg.Kind == storvsp.IDE {
			a = storvsp.Addr{Path: cfg.IDEPath, Target: cfg.IDETarget}
		}
		if err := vsp.Attach(a, lc); err != nil {
			t.Fatal(err)
		}
	}
	rel, err := h.AddDevice(vsp)
	if err != nil {
		t.Fatal(err)
	}
	bus, err := vmbus.Connect(ctx, h.Platform(), vmbus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close(context.Background()) })
	r := &simRig{h: h, vsp: vsp, rel: rel, bus: bus, evs: make(chan storvsc.Event, 16)}
	for _, ch := range bus.Channels() {
		if c := ch.Offer().InterfaceType; c == chanmsg.ClassSCSI || c == chanmsg.ClassIDE {
			r.ch = ch
		}
	}
	if r.ch == nil {
		t.Fatal("no storage offer")
	}
	scfg.Memory = h.Platform()
	scfg.OnEvent = func(e storvsc.Event) { r.evs <- e }
	r.ctrl, err = storvsc.Attach(ctx, r.ch, scfg)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	t.Cleanup(func() {
		r.ctrl.Close(context.Background())
		if v := h.Violations(); len(v) > 0 {
			t.Errorf("host recorded %d violations, first: %v", len(v), v[0])
		}
	})
	return r
}

func (r *simRig) event(t *testing.T) storvsc.Event {
	t.Helper()
	select {
	case e := <-r.evs:
		return e
	case <-time.After(20 * time.Second):
		t.Fatal("no event")
	}
	return storvsc.Event{}
}

func TestSimSCSI(t *testing.T) {
	store := storvsp.NewMemStore(8 << 20)
	r := newSimRig(t, storvsp.Config{MaxSubChannels: 2}, map[uint8]storvsp.LUNConfig{
		0: {Store: store, WriteCache: true},
		2: {Store: storvsp.NewMemStore(1 << 20), ReadOnly: true},
	}, storvsc.Config{Channels: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if r.ctrl.Version() != storvsc.VersionWin10 {
		t.Fatalf("version %v", r.ctrl.Version())
	}
	if r.ctrl.Queues() != 3 {
		t.Fatalf("queues %d", r.ctrl.Queues())
	}
	ds := r.ctrl.Disks()
	if len(ds) != 2 {
		t.Fatalf("%d disks", len(ds))
	}
	d0, d2 := ds[0], ds[1]
	if i := d0.Info(); i.Sectors*uint64(i.SectorSize) != 8<<20 || i.ReadOnly || !i.WriteCache {
		t.Fatalf("disk 0 %+v", i)
	}
	if i := d2.Info(); !i.ReadOnly {
		t.Fatalf("disk 2 %+v", i)
	}
	w := make([]byte, 600<<10) // larger than the 256 KiB max transfer
	for i := range w {
		w[i] = byte(i*13 + 1)
	}
	if _, err := d0.WriteAt(ctx, w, 4096); err != nil {
		t.Fatal(err)
	}
	if err := d0.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(w))
	if _, err := d0.ReadAt(ctx, got, 4096); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, w) || !bytes.Equal(store.Bytes()[4096:4096+len(w)], w) {
		t.Fatal("data mismatch")
	}
	// Asynchronous requests spread over the three channels.
	done := make(chan error, 3)
	reqs := make([]storvsc.Request, 3)
	for q := range reqs {
		reqs[q] = storvsc.Request{Op: storvsc.OpRead, Off: int64(q) * 4096, Buf: make([]byte, 4096), Queue: q,
			Done: func(r *storvsc.Request) { done <- r.Err }}
		if err := d0.Submit(&reqs[q]); err != nil {
			t.Fatal(err)
		}
	}
	for range reqs {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d2.WriteAt(ctx, make([]byte, 512), 0); !errors.Is(err, storvsc.ErrReadOnly) {
		t.Fatalf("write to read-only disk: %v", err)
	}
}

func TestSimHotPlugAndRescind(t *testing.T) {
	r := newSimRig(t, storvsp.Config{}, map[uint8]storvsp.LUNConfig{0: {Store: storvsp.NewMemStore(1 << 20)}}, storvsc.Config{})
	if e := r.event(t); e.Kind != storvsc.DiskAdded {
		t.Fatalf("event %v", e)
	}
	if err := r.vsp.Attach(storvsp.Addr{LUN: 1}, storvsp.LUNConfig{Store: storvsp.NewMemStore(2 << 20)}); err != nil {
		t.Fatal(err)
	}
	e := r.event(t)
	if _, _, l := e.Disk.Address(); e.Kind != storvsc.DiskAdded || l != 1 {
		t.Fatalf("event %v", e)
	}
	if err := r.vsp.Detach(storvsp.Addr{LUN: 0}); err != nil {
		t.Fatal(err)
	}
	e = r.event(t)
	if _, _, l := e.Disk.Address(); e.Kind != storvsc.DiskRemoved || l != 0 {
		t.Fatalf("event %v", e)
	}
	d1 := r.ctrl.Disks()[0]
	if err := r.h.Rescind(r.rel); err != nil {
		t.Fatal(err)
	}
	if e = r.event(t); e.Kind != storvsc.DiskRemoved || e.Disk != d1 {
		t.Fatalf("event %v", e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := d1.ReadAt(ctx, make([]byte, 512), 0); !errors.Is(err, storvsc.ErrRemoved) {
		t.Fatalf("read after rescind: %v", err)
	}
}

func TestSimIDE(t *testing.T) {
	store := storvsp.NewMemStore(1 << 20)
	r := newSimRig(t, storvsp.Config{Kind: storvsp.IDE, IDEPath: 1, IDETarget: 0},
		map[uint8]storvsp.LUNConfig{0: {Store: store}}, storvsc.Config{})
	ds := r.ctrl.Disks()
	if !r.ctrl.IDE() || len(ds) != 1 {
		t.Fatalf("IDE %v, %d disks", r.ctrl.IDE(), len(ds))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := ds[0].WriteAt(ctx, bytes.Repeat([]byte{7}, 1024), 1024); err != nil {
		t.Fatal(err)
	}
	if store.Bytes()[1024] != 7 || store.Bytes()[2047] != 7 || store.Bytes()[2048] != 0 {
		t.Fatal("data not on the store")
	}
}
