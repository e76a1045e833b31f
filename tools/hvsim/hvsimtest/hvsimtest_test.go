package hvsimtest_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/gohv/gohv/drivers/heartbeat"
	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/hvsimtest"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/ring"
)

var echoClass = hvsim.MustParseGUID("0e3ac2d1-6f5b-4a39-8c43-1f1f0e5d2a77")

// A guest talks to a loopback device through the real client.
func TestNewGuestEcho(t *testing.T) {
	g := hvsimtest.NewGuest(t, hvsimtest.Config{Devices: []hvsim.Device{
		&hvsim.Echo{Spec: hvsim.OfferSpec{Class: echoClass, Instance: hvsim.MustParseGUID("0e3ac2d1-0000-0000-0000-000000000001")}},
	}})
	ch := g.Channel(echoClass)
	got := make(chan []byte, 1)
	buf := make([]byte, 256)
	if err := ch.Open(g.Ctx, vmbus.OpenConfig{OnInterrupt: func() {
		for {
			p, err := ch.ReadPacket(buf)
			if err != nil {
				return
			}
			got <- bytes.Clone(p.Payload)
		}
	}}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Send(g.Ctx, ring.TypeDataInband, 0, 1, []byte("ping1234")); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if string(p) != "ping1234" {
			t.Fatalf("echo %q", p)
		}
	case <-g.Ctx.Done():
		t.Fatal("no echo")
	}
}

// Bind attaches a real driver to the simulated device.
func TestBindHeartbeat(t *testing.T) {
	hostHB := hvsim.NewHeartbeat(time.Millisecond)
	g := hvsimtest.NewGuest(t, hvsimtest.Config{Devices: []hvsim.Device{hostHB}})
	d := heartbeat.New()
	b, reg := g.Bind(hvsim.ClassHeartbeat, d)
	if !b.Bound() || len(reg.Bindings()) != 1 {
		t.Fatalf("binding %v", b)
	}
	for hostHB.Stats().Correct < 3 {
		select {
		case <-g.Ctx.Done():
			t.Fatalf("heartbeats: %+v", hostHB.Stats())
		case <-time.After(time.Millisecond):
		}
	}
	if err := d.Close(g.Ctx); err != nil && !errors.Is(err, vmbus.ErrClosed) {
		t.Fatal(err)
	}
}
