// Package hvsimtest is to gohv's guest stack what net/http/httptest is to
// an HTTP client: it starts a simulated Hyper-V host (tools/hvsim),
// connects the real VMBus client to it and binds drivers, with the clean-up
// and the host's protocol checks wired into the test.
//
// It may import both sides; hvsim itself must never import the guest
// (vmbus, kernel, drivers), so this lives apart from it. Only tests import
// it.
package hvsimtest

import (
	"context"
	"testing"
	"time"

	"github.com/gohv/gohv/kernel"
	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// DefaultTimeout bounds every wait a Guest does on the test's behalf; it
// guards against hangs and is never what a test asserts.
const DefaultTimeout = 30 * time.Second

// Config configures NewHost, Connect and NewGuest. The zero value is a
// WS2022 host with no devices and a default bus.
type Config struct {
	// Host configures the simulated host. OnViolation, if nil, is left to
	// the host's recording; the violations are checked at clean-up.
	Host hvsim.Config
	// Devices are offered before the guest connects.
	Devices []hvsim.Device
	// Bus configures the guest's vmbus.Connect; Logf defaults to t.Logf.
	Bus vmbus.Config
	// AllowViolations keeps the clean-up from failing the test on
	// protocol violations the host recorded (for tests of a misbehaving
	// guest, which check Host.Violations themselves).
	AllowViolations bool
	// Timeout bounds Connect and the clean-up; 0 means DefaultTimeout.
	Timeout time.Duration
}

func (c Config) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// NewHost starts a simulated host offering cfg.Devices. At the end of the
// test it closes the host and, unless cfg.AllowViolations, fails the test
// for every protocol violation the host recorded.
func NewHost(t testing.TB, cfg Config) *hvsim.Host {
	t.Helper()
	h, err := hvsim.New(cfg.Host)
	if err != nil {
		t.Fatalf("hvsimtest: %v", err)
	}
	t.Cleanup(func() {
		h.Close()
		if v := h.Violations(); len(v) != 0 && !cfg.AllowViolations {
			t.Errorf("hvsimtest: host recorded %d protocol violations: %v", len(v), v)
		}
	})
	for _, d := range cfg.Devices {
		if _, err := h.AddDevice(d); err != nil {
			t.Fatalf("hvsimtest: AddDevice: %v", err)
		}
	}
	return h
}

// Guest is the guest side of a test: a VMBus connection to a simulated
// host.
type Guest struct {
	T    testing.TB
	Host *hvsim.Host
	Bus  *vmbus.Bus
	// Ctx ends with the test (or after the timeout): use it for every
	// call that waits on the host.
	Ctx context.Context
}

// Connect connects a VMBus client to h (cfg.Bus, cfg.Timeout) and closes
// the bus at the end of the test, failing it if Close fails.
func Connect(t testing.TB, h *hvsim.Host, cfg Config) *Guest {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout())
	t.Cleanup(cancel)
	bc := cfg.Bus
	if bc.Logf == nil {
		bc.Logf = t.Logf
	}
	bus, err := vmbus.Connect(ctx, h.Platform(), bc)
	if err != nil {
		t.Fatalf("hvsimtest: vmbus.Connect: %v", err)
	}
	t.Cleanup(func() {
		if err := bus.Close(ctx); err != nil {
			t.Errorf("hvsimtest: Bus.Close: %v", err)
		}
	})
	return &Guest{T: t, Host: h, Bus: bus, Ctx: ctx}
}

// NewGuest is NewHost followed by Connect.
func NewGuest(t testing.TB, cfg Config) *Guest {
	t.Helper()
	return Connect(t, NewHost(t, cfg), cfg)
}

// Channel returns the first channel offered with interface type class,
// failing the test if there is none.
func (g *Guest) Channel(class hvsim.GUID) *vmbus.Channel {
	g.T.Helper()
	want := chanmsg.GUID(class.Wire())
	for _, ch := range g.Bus.Channels() {
		if ch.Offer().InterfaceType == want && ch.Offer().SubChannelIndex == 0 {
			return ch
		}
	}
	g.T.Fatalf("hvsimtest: no offer of class %s among %d channels", class, len(g.Bus.Channels()))
	return nil
}

// Bind registers d for class in a new kernel.Registry, binds the bus's
// offers and returns d's binding, failing the test if d did not attach.
// The registry is returned for tests that look further (hot-add).
func (g *Guest) Bind(class hvsim.GUID, d kernel.Driver) (kernel.Binding, *kernel.Registry) {
	g.T.Helper()
	reg := new(kernel.Registry)
	if err := reg.Register(chanmsg.GUID(class.Wire()), d); err != nil {
		g.T.Fatalf("hvsimtest: Register: %v", err)
	}
	bs, err := reg.Bind(g.Ctx, g.Bus)
	if err != nil {
		g.T.Fatalf("hvsimtest: Bind: %v", err)
	}
	for _, b := range bs {
		if b.Driver == d.Name() {
			return b, reg
		}
	}
	g.T.Fatalf("hvsimtest: no offer of class %s to bind %s to: %v", class, d.Name(), bs)
	return kernel.Binding{}, reg
}
