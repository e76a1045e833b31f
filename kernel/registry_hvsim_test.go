package kernel_test

import (
	"context"
	"sync"
	"testing"

	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/hvsimtest"
	"github.com/gohv/gohv/vmbus"
)

var multiClass = hvsim.MustParseGUID("5b7c1a20-3e4d-4f6a-8b9c-0d1e2f3a4b5c")

// multiQueue is a driver that opens its primary and then collects n
// sub-channels, as storvsc and netvsc do after asking their device.
type multiQueue struct {
	n    int
	host *hvsim.Host

	mu   sync.Mutex
	subs []vmbus.DriverChannel
}

func (d *multiQueue) Name() string { return "multiqueue" }

func (d *multiQueue) Attach(ctx context.Context, ch vmbus.DriverChannel) error {
	if err := ch.Open(ctx, vmbus.OpenConfig{}); err != nil {
		return err
	}
	// Stands in for the device protocol's sub-channel request.
	if _, err := d.host.AddSubChannels(ch.Offer().RelID, d.n); err != nil {
		return err
	}
	subs, err := ch.WaitSubChannels(ctx, d.n)
	if err != nil {
		return err
	}
	for _, s := range subs {
		if err := s.Open(ctx, vmbus.OpenConfig{}); err != nil {
			return err
		}
	}
	d.mu.Lock()
	d.subs = subs
	d.mu.Unlock()
	return nil
}

// Sub-channel offers, hot-added while the driver attaches, reach the
// primary's driver through WaitSubChannels and are not bound on their own.
func TestRegistrySubChannelsReachPrimary(t *testing.T) {
	g := hvsimtest.NewGuest(t, hvsimtest.Config{Devices: []hvsim.Device{
		&hvsim.Echo{Spec: hvsim.OfferSpec{Class: multiClass, Instance: hvsim.MustParseGUID("5b7c1a20-0000-0000-0000-000000000001")}},
	}})
	h := g.Host
	drv := &multiQueue{n: 3, host: h}
	b, reg := g.Bind(multiClass, drv)
	if !b.Bound() {
		t.Fatalf("binding %v", b)
	}
	drv.mu.Lock()
	subs := drv.subs
	drv.mu.Unlock()
	if len(subs) != 3 {
		t.Fatalf("driver got %d sub-channels", len(subs))
	}
	for i, s := range subs {
		if s.Offer().SubChannelIndex != uint16(i+1) || h.Channel(s.Offer().RelID) == nil {
			t.Errorf("sub-channel %d: index %d, open at host %v", i, s.Offer().SubChannelIndex, h.Channel(s.Offer().RelID) != nil)
		}
	}
	if got := len(g.Bus.Channels()); got != 4 {
		t.Errorf("bus has %d channels, want the primary and 3 sub-channels", got)
	}
	if got := len(reg.Bindings()); got != 1 {
		t.Errorf("%d bindings: sub-channels were bound on their own", got)
	}
}
