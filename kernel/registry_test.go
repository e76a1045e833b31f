package kernel

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// fakeChannel is an offered channel as a driver sees it. Only Offer is
// implemented: the registry uses nothing else, and the fake drivers here
// touch nothing (a call to another method panics on the nil embedded
// interface, which would show a registry using more than it should).
type fakeChannel struct {
	vmbus.DriverChannel
	offer vmbus.Offer
}

func (c *fakeChannel) Offer() vmbus.Offer { return c.offer }

// fakeBus offers fake channels.
type fakeBus struct {
	mu      sync.Mutex
	chs     []vmbus.DriverChannel
	handler func(vmbus.DriverChannel)
	// duringInstall, if set, runs inside setOfferHandler: an offer that
	// arrives while Bind is starting.
	duringInstall func()
}

func newFakeBus() *fakeBus { return &fakeBus{} }

func (b *fakeBus) add(o vmbus.Offer) vmbus.DriverChannel {
	ch := &fakeChannel{offer: o}
	b.mu.Lock()
	b.chs = append(b.chs, ch)
	b.mu.Unlock()
	return ch
}

func (b *fakeBus) channels() []vmbus.DriverChannel {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]vmbus.DriverChannel(nil), b.chs...)
}

func (b *fakeBus) setOfferHandler(fn func(vmbus.DriverChannel)) {
	b.mu.Lock()
	b.handler = fn
	during := b.duringInstall
	b.mu.Unlock()
	if during != nil {
		during()
	}
}

// hotAdd offers a channel after Bind, as the bus does for hot-add.
func (b *fakeBus) hotAdd(o vmbus.Offer) vmbus.DriverChannel {
	ch := b.add(o)
	b.mu.Lock()
	fn := b.handler
	b.mu.Unlock()
	fn(ch)
	return ch
}

type fakeDriver struct {
	name string
	err  error

	mu       sync.Mutex
	attached []vmbus.DriverChannel
}

func (d *fakeDriver) Name() string { return d.name }

func (d *fakeDriver) Attach(_ context.Context, ch vmbus.DriverChannel) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.attached = append(d.attached, ch)
	return d.err
}

func (d *fakeDriver) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.attached)
}

var (
	heartbeatClass = chanmsg.ClassHeartbeat
	shutdownClass  = chanmsg.ClassShutdown
	unknownClass   = chanmsg.MustParseGUID("01234567-89ab-cdef-0123-456789abcdef")
)

func TestRegisterDuplicate(t *testing.T) {
	var r Registry
	if err := r.Register(heartbeatClass, &fakeDriver{name: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(heartbeatClass, &fakeDriver{name: "b"}); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second Register = %v, want ErrDuplicate", err)
	}
	// A second registry is independent of the first.
	var r2 Registry
	if err := r2.Register(heartbeatClass, &fakeDriver{name: "b"}); err != nil {
		t.Fatal(err)
	}
}

func TestBind(t *testing.T) {
	bus := newFakeBus()
	hbCh := bus.add(vmbus.Offer{InterfaceType: heartbeatClass, RelID: 1})
	bus.add(vmbus.Offer{InterfaceType: shutdownClass, RelID: 2})
	bus.add(vmbus.Offer{InterfaceType: unknownClass, RelID: 3})
	bus.add(vmbus.Offer{InterfaceType: heartbeatClass, RelID: 4, SubChannelIndex: 1})

	attachErr := errors.New("open refused")
	hb := &fakeDriver{name: "heartbeat"}
	sd := &fakeDriver{name: "shutdown", err: attachErr}
	var r Registry
	if err := r.Register(heartbeatClass, hb); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(shutdownClass, sd); err != nil {
		t.Fatal(err)
	}

	bs, err := r.bindAll(context.Background(), bus)
	if !errors.Is(err, attachErr) {
		t.Fatalf("Bind err = %v, want the shutdown driver's error", err)
	}
	if len(bs) != 3 {
		t.Fatalf("%d bindings, want 3 (sub-channel skipped): %v", len(bs), bs)
	}
	want := []struct {
		relid  uint32
		driver string
		bound  bool
	}{{1, "heartbeat", true}, {2, "shutdown", false}, {3, "", false}}
	for i, w := range want {
		if bs[i].Offer.RelID != w.relid || bs[i].Driver != w.driver || bs[i].Bound() != w.bound {
			t.Errorf("binding %d = %v, want relid %d driver %q bound %v", i, bs[i], w.relid, w.driver, w.bound)
		}
	}
	if !strings.Contains(bs[2].String(), "no driver") || !strings.Contains(bs[1].String(), "open refused") {
		t.Errorf("binding strings: %q, %q", bs[1], bs[2])
	}
	if hb.count() != 1 || hb.attached[0] != hbCh || sd.count() != 1 {
		t.Fatalf("attach calls: heartbeat %d, shutdown %d", hb.count(), sd.count())
	}
	if got := len(r.Bindings()); got != 3 {
		t.Fatalf("Bindings() has %d entries", got)
	}
}

func TestBindHotAdd(t *testing.T) {
	bus := newFakeBus()
	hb := &fakeDriver{name: "heartbeat"}
	got := make(chan Binding, 4)
	r := Registry{OnBind: func(b Binding) { got <- b }}
	if err := r.Register(heartbeatClass, hb); err != nil {
		t.Fatal(err)
	}
	// An offer that arrives while Bind starts is seen by the handler and
	// in the channel list; it must be attached once.
	var raced vmbus.DriverChannel
	bus.duringInstall = func() { raced = bus.hotAdd(vmbus.Offer{InterfaceType: heartbeatClass, RelID: 5}) }

	bs, err := r.bindAll(context.Background(), bus)
	if err != nil {
		t.Fatal(err)
	}
	var fromHandler []Binding
	if len(bs) == 0 {
		// The hot-add goroutine won the race: its outcome goes to OnBind.
		fromHandler = append(fromHandler, <-got)
	}

	bus.hotAdd(vmbus.Offer{InterfaceType: unknownClass, RelID: 6})
	bus.hotAdd(vmbus.Offer{InterfaceType: heartbeatClass, RelID: 7, SubChannelIndex: 2})
	bus.hotAdd(vmbus.Offer{InterfaceType: heartbeatClass, RelID: 8})
	for len(fromHandler) < 3-len(bs) {
		fromHandler = append(fromHandler, <-got)
	}
	relids := map[uint32]Binding{}
	for _, b := range append(bs, fromHandler...) {
		relids[b.Offer.RelID] = b
	}
	if len(relids) != 3 || !relids[5].Bound() || relids[6].Driver != "" || !relids[8].Bound() {
		t.Fatalf("bindings %v", relids)
	}
	if hb.count() != 2 || hb.attached[0] != raced && hb.attached[1] != raced {
		t.Fatalf("heartbeat attached %d times", hb.count())
	}
}
