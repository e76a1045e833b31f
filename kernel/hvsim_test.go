package kernel_test

import (
	"context"
	"testing"
	"time"

	"github.com/gohv/gohv/drivers/heartbeat"
	"github.com/gohv/gohv/drivers/ic"
	"github.com/gohv/gohv/drivers/shutdown"
	"github.com/gohv/gohv/kernel"
	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/vmbus"
)

// testWait is a deadline against hangs, never asserted.
const testWait = 20 * time.Second

// TestIntegrationServicesOnSimulatedHost runs the registry, the heartbeat
// and shutdown drivers and PowerRequests over the real VMBus client
// against the simulated host, which checks every message it receives.
func TestIntegrationServicesOnSimulatedHost(t *testing.T) {
	h, err := hvsim.New(hvsim.Config{OnViolation: func(error) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	hostHB := hvsim.NewHeartbeat(2 * time.Millisecond)
	hostSD := hvsim.NewShutdown()
	mustAdd(t, h, hostHB)
	mustAdd(t, h, hostSD)
	mustAdd(t, h, &hvsim.Inert{Spec: hvsim.OfferSpec{Class: hvsim.ClassKVP, Instance: hvsim.MustParseGUID("242ff919-07db-4180-9c2e-b86cb68c8c55")}})

	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	bus, err := vmbus.Connect(ctx, h.Platform(), vmbus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close(ctx)

	var power kernel.PowerRequests
	var reg kernel.Registry
	hb := heartbeat.New()
	sd := shutdown.New(power.Deliver)
	if err := reg.Register(heartbeat.Class, hb); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(shutdown.Class, sd); err != nil {
		t.Fatal(err)
	}
	bs, err := reg.Bind(ctx, bus)
	if err != nil {
		t.Fatal(err)
	}
	bound := map[string]bool{}
	unbound := 0
	for _, b := range bs {
		if b.Bound() {
			bound[b.Driver] = true
		} else if b.Driver == "" {
			unbound++
		}
	}
	if !bound["heartbeat"] || !bound["shutdown"] || unbound != 1 {
		t.Fatalf("bindings %v", bs)
	}

	// Heartbeats: wait for a good number of exchanges at the short host
	// interval.
	const beats = 50
	for hostHB.Stats().Correct < beats {
		select {
		case <-ctx.Done():
			t.Fatalf("heartbeats after deadline: host %+v, guest %+v", hostHB.Stats(), hb.Stats())
		case <-time.After(time.Millisecond):
		}
	}
	if st := hostHB.Stats(); st.Wrong != 0 {
		t.Fatalf("host saw wrong heartbeat answers: %+v", st)
	}
	st := hb.Stats()
	if st.Beats < beats || !st.IC.Negotiated || st.IC.Message != (ic.Version{Major: 3}) || st.IC.BadMessages != 0 {
		t.Fatalf("guest heartbeat stats %+v", st)
	}

	// A restart request is accepted and reaches the application.
	hr, err := hostSD.Request(ctx, hvsim.ShutdownRestart, "host maintenance")
	if err != nil {
		t.Fatal(err)
	}
	if hr != uint32(ic.StatusOK) {
		t.Fatalf("restart answered %#x, want S_OK", hr)
	}
	req, err := power.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if req.Kind != shutdown.Reboot || req.Force || req.Message.String() != "host maintenance" {
		t.Fatalf("kernel got %+v", req)
	}

	// Hibernate is refused with E_FAIL and never reaches the application.
	hr, err = hostSD.Request(ctx, hvsim.ShutdownHibernate, "")
	if err != nil {
		t.Fatal(err)
	}
	if hr != uint32(ic.StatusFail) {
		t.Fatalf("hibernate answered %#x, want E_FAIL", hr)
	}
	if r, ok := power.Pending(); ok {
		t.Fatalf("hibernate delivered: %+v", r)
	}
	if sst := sd.Stats(); sst.Accepted != 1 || sst.Refused != 1 || sst.IC.Message != (ic.Version{Major: 3, Minor: 2}) {
		t.Fatalf("shutdown stats %+v", sst)
	}
	if v := h.Violations(); len(v) != 0 {
		t.Fatalf("host recorded protocol violations: %v", v)
	}
}

// TestHeartbeatRescindAndHotAdd rescinds the heartbeat channel, offers a
// new one, and checks that the registry binds it from the hot-add path and
// the same driver answers on it.
func TestHeartbeatRescindAndHotAdd(t *testing.T) {
	h, err := hvsim.New(hvsim.Config{OnViolation: func(error) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	first := hvsim.NewHeartbeat(2 * time.Millisecond)
	relid, err := h.AddDevice(first)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	bus, err := vmbus.Connect(ctx, h.Platform(), vmbus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close(ctx)

	hotAdded := make(chan kernel.Binding, 1)
	reg := kernel.Registry{OnBind: func(b kernel.Binding) { hotAdded <- b }}
	hb := heartbeat.New()
	if err := reg.Register(heartbeat.Class, hb); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Bind(ctx, bus); err != nil {
		t.Fatal(err)
	}
	waitBeats := func(host *hvsim.Heartbeat, n uint64) {
		t.Helper()
		for host.Stats().Correct < n {
			select {
			case <-ctx.Done():
				t.Fatalf("heartbeats after deadline: host %+v, guest %+v", host.Stats(), hb.Stats())
			case <-time.After(time.Millisecond):
			}
		}
	}
	waitBeats(first, 5)

	if err := h.Rescind(relid); err != nil {
		t.Fatal(err)
	}
	second := hvsim.NewHeartbeat(2 * time.Millisecond)
	mustAdd(t, h, second)
	select {
	case b := <-hotAdded:
		if !b.Bound() || b.Driver != "heartbeat" {
			t.Fatalf("hot-added binding %v", b)
		}
	case <-ctx.Done():
		t.Fatal("hot-added heartbeat never bound")
	}
	waitBeats(second, 5)
	if first.Stats().Wrong != 0 || second.Stats().Wrong != 0 {
		t.Fatalf("wrong answers: %+v, %+v", first.Stats(), second.Stats())
	}
	if v := h.Violations(); len(v) != 0 {
		t.Fatalf("host recorded protocol violations: %v", v)
	}
}

func mustAdd(t *testing.T, h *hvsim.Host, d hvsim.Device) uint32 {
	t.Helper()
	relid, err := h.AddDevice(d)
	if err != nil {
		t.Fatalf("AddDevice: %v", err)
	}
	return relid
}
