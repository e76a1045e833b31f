package kernel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// Driver drives the channels of one device class.
type Driver interface {
	// Name identifies the driver in bindings and logs.
	Name() string
	// Attach takes ownership of a newly offered primary channel: it opens
	// it and starts the device. ctx bounds the waits on the host during
	// Attach only. Sub-channels are not attached by the registry: the
	// driver asks its device for them and collects their offers with
	// ch.WaitSubChannels. A driver watches ch.Rescinded() for the device
	// going away; it may be attached again to a later offer of the same
	// class.
	Attach(ctx context.Context, ch vmbus.DriverChannel) error
}

// Bus is the part of *vmbus.Bus the registry uses.
type Bus interface {
	Channels() []*vmbus.Channel
	SetOfferHandler(fn func(*vmbus.Channel))
}

var _ Bus = (*vmbus.Bus)(nil)

// offers is where Bind finds channels: a Bus, or a fake in tests.
type offers interface {
	channels() []vmbus.DriverChannel
	setOfferHandler(fn func(vmbus.DriverChannel))
}

// busOffers adapts a Bus.
type busOffers struct{ b Bus }

func (o busOffers) channels() []vmbus.DriverChannel {
	chs := o.b.Channels()
	out := make([]vmbus.DriverChannel, len(chs))
	for i, c := range chs {
		out[i] = c
	}
	return out
}

func (o busOffers) setOfferHandler(fn func(vmbus.DriverChannel)) {
	o.b.SetOfferHandler(func(c *vmbus.Channel) { fn(c) })
}

// Binding is the outcome of one offer.
type Binding struct {
	Offer vmbus.Offer
	// Driver is the name of the driver registered for the offer's class,
	// "" if none is (the offer stays unbound).
	Driver string
	// Err is the driver's Attach error.
	Err error
}

// Bound reports whether a driver attached to the offer.
func (b Binding) Bound() bool { return b.Driver != "" && b.Err == nil }

// String describes the binding for logs.
func (b Binding) String() string {
	name := chanmsg.ClassName(b.Offer.InterfaceType)
	if name == "" {
		name = "unknown class"
	}
	what := fmt.Sprintf("relid %d %s (%s)", b.Offer.RelID, name, b.Offer.InterfaceType)
	switch {
	case b.Driver == "":
		return what + ": no driver"
	case b.Err != nil:
		return fmt.Sprintf("%s: %s: %v", what, b.Driver, b.Err)
	}
	return what + ": " + b.Driver
}

// ErrDuplicate is returned by Register for a class that has a driver.
var ErrDuplicate = errors.New("kernel: class already has a driver")

// DefaultAttachTimeout bounds Attach for hot-added offers.
const DefaultAttachTimeout = 30 * time.Second

// Registry binds drivers to offered channels by class GUID. The zero value
// is ready to use. Register drivers before Bind.
type Registry struct {
	// AttachTimeout bounds Attach of a hot-added offer (Bind's own offers
	// use Bind's context); 0 means DefaultAttachTimeout.
	AttachTimeout time.Duration
	// OnBind, if set, receives the outcome of every hot-added primary
	// offer. It runs on the goroutine that attached the driver.
	OnBind func(Binding)

	mu       sync.Mutex
	drivers  map[chanmsg.GUID]Driver
	seen     map[vmbus.DriverChannel]bool
	bindings []Binding
}

// Register makes d the driver of device class class (docs/hyperv-protocol.md §5).
func (r *Registry) Register(class chanmsg.GUID, d Driver) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.drivers[class]; ok {
		return fmt.Errorf("%w: %s (%s) has %s", ErrDuplicate, chanmsg.ClassName(class), class, old.Name())
	}
	if r.drivers == nil {
		r.drivers = make(map[chanmsg.GUID]Driver)
	}
	r.drivers[class] = d
	return nil
}

// Bind attaches the registered drivers to every primary channel the bus
// has offered, concurrently, and installs a handler that binds later
// (hot-added) offers from a goroutine of their own. It returns one Binding
// per primary offer present now, in relid order; offers without a driver
// are reported, not an error. The error joins the drivers' Attach errors.
// Sub-channels are left to the driver of their primary.
func (r *Registry) Bind(ctx context.Context, bus Bus) ([]Binding, error) {
	return r.bindAll(ctx, busOffers{bus})
}

func (r *Registry) bindAll(ctx context.Context, bus offers) ([]Binding, error) {
	// Install the handler first: an offer arriving in between then shows
	// up twice (handler and list) and seen makes the second a no-op,
	// rather than showing up nowhere.
	bus.setOfferHandler(r.hotAdd)
	chs := bus.channels()
	out := make([]Binding, len(chs))
	ok := make([]bool, len(chs))
	var wg sync.WaitGroup
	for i, ch := range chs {
		wg.Go(func() { out[i], ok[i] = r.bind(ctx, ch) })
	}
	wg.Wait()
	var errs []error
	res := out[:0]
	for i, b := range out {
		if !ok[i] {
			continue
		}
		if b.Err != nil {
			errs = append(errs, fmt.Errorf("kernel: %s on relid %d: %w", b.Driver, b.Offer.RelID, b.Err))
		}
		res = append(res, b)
	}
	return res, errors.Join(errs...)
}

// Bindings returns the outcome of every primary offer bound so far, Bind's
// and hot-added ones, in the order they completed.
func (r *Registry) Bindings() []Binding {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Binding(nil), r.bindings...)
}

// hotAdd is the bus offer handler. It runs on the bus's message goroutine
// and must not block, so Attach (which waits for the host) runs elsewhere.
// Sub-channel offers need nothing here: the bus files them under their
// primary, whose driver collects them with WaitSubChannels.
func (r *Registry) hotAdd(ch vmbus.DriverChannel) {
	if ch.Offer().SubChannelIndex != 0 {
		return
	}
	go func() {
		timeout := r.AttachTimeout
		if timeout <= 0 {
			timeout = DefaultAttachTimeout
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if b, ok := r.bind(ctx, ch); ok && r.OnBind != nil {
			r.OnBind(b)
		}
	}()
}

// bind attaches the driver of ch's class to ch. ok is false for channels
// that are not bound here: sub-channels, and channels already handled.
func (r *Registry) bind(ctx context.Context, ch vmbus.DriverChannel) (b Binding, ok bool) {
	offer := ch.Offer()
	if offer.SubChannelIndex != 0 {
		return Binding{}, false
	}
	r.mu.Lock()
	if r.seen[ch] {
		r.mu.Unlock()
		return Binding{}, false
	}
	if r.seen == nil {
		r.seen = make(map[vmbus.DriverChannel]bool)
	}
	r.seen[ch] = true
	d := r.drivers[offer.InterfaceType]
	r.mu.Unlock()

	b = Binding{Offer: offer}
	if d != nil {
		b.Driver = d.Name()
		b.Err = d.Attach(ctx, ch)
	}
	r.mu.Lock()
	r.bindings = append(r.bindings, b)
	r.mu.Unlock()
	return b, true
}

// has reports whether class has a driver.
func (r *Registry) has(class chanmsg.GUID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.drivers[class]
	return ok
}
