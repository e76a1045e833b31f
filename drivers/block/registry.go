package block

import (
	"context"
	"errors"
	"sync"
)

// EventKind says what happened to a device.
type EventKind uint8

// Event kinds.
const (
	Added EventKind = iota + 1
	Removed
)

func (k EventKind) String() string {
	switch k {
	case Added:
		return "added"
	case Removed:
		return "removed"
	}
	return "unknown"
}

// Event is a change in a Registry.
type Event struct {
	Kind   EventKind
	Device Device
}

// Registry is the set of block devices of a system. Disk drivers Add a
// device when it attaches (at boot or on a hot-add offer) and Remove it on
// rescind or hot-remove; applications list Devices and Watch for changes.
// The zero value is an empty registry ready to use.
type Registry struct {
	mu       sync.Mutex // guards devs and watchers
	devs     []Device
	watchers []*Watcher
}

// ErrDuplicate: Add of a device already in the registry.
var ErrDuplicate = errors.New("block: device already registered")

// Add registers dev and tells every watcher.
func (r *Registry) Add(dev Device) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.devs {
		if d == dev {
			return ErrDuplicate
		}
	}
	r.devs = append(r.devs, dev)
	for _, w := range r.watchers {
		w.push(Event{Kind: Added, Device: dev})
	}
	return nil
}

// Remove unregisters dev and tells every watcher; false if dev was not
// registered.
func (r *Registry) Remove(dev Device) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, d := range r.devs {
		if d == dev {
			r.devs = append(r.devs[:i], r.devs[i+1:]...)
			for _, w := range r.watchers {
				w.push(Event{Kind: Removed, Device: dev})
			}
			return true
		}
	}
	return false
}

// Devices returns the registered devices in the order they were added.
func (r *Registry) Devices() []Device {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Device(nil), r.devs...)
}

// Watch returns a watcher whose first events are an Added for every device
// already registered (so nothing falls between a Devices call and Watch),
// followed by every later change in order. Events queue without bound
// until read, so Add and Remove never wait for a slow watcher. Close the
// watcher when done.
func (r *Registry) Watch() *Watcher {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := &Watcher{r: r, signal: make(chan struct{}, 1)}
	for _, d := range r.devs {
		w.push(Event{Kind: Added, Device: d})
	}
	r.watchers = append(r.watchers, w)
	return w
}

// Watcher receives a Registry's events.
type Watcher struct {
	r      *Registry
	signal chan struct{} // capacity 1: "queue may be non-empty"

	mu     sync.Mutex // guards queue, closed
	queue  []Event
	closed bool
}

// ErrWatcherClosed is returned by Next after Close.
var ErrWatcherClosed = errors.New("block: watcher closed")

func (w *Watcher) push(e Event) {
	w.mu.Lock()
	w.queue = append(w.queue, e)
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// Next returns the next event, waiting for one until ctx is done.
func (w *Watcher) Next(ctx context.Context) (Event, error) {
	for {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return Event{}, ErrWatcherClosed
		}
		if len(w.queue) > 0 {
			e := w.queue[0]
			w.queue[0] = Event{}
			w.queue = w.queue[1:]
			w.mu.Unlock()
			return e, nil
		}
		w.mu.Unlock()
		select {
		case <-w.signal:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// Close stops the watcher; a Next waiting in another goroutine returns
// ErrWatcherClosed.
func (w *Watcher) Close() {
	w.r.mu.Lock()
	for i, x := range w.r.watchers {
		if x == w {
			w.r.watchers = append(w.r.watchers[:i], w.r.watchers[i+1:]...)
			break
		}
	}
	w.r.mu.Unlock()
	w.mu.Lock()
	w.closed, w.queue = true, nil
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}
