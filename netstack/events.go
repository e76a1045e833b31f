package netstack

import (
	"context"
	"sync"
)

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	AddressAdded EventKind = iota + 1
	AddressRemoved
	LinkUp
	LinkDown
	// LeaseBound: a DHCPv4 lease was granted or renewed (Event.Lease).
	LeaseBound
	// DNSChanged: the DNS server list changed.
	DNSChanged
	// InterfaceRemoved: the interface left the stack (RemoveInterface),
	// after its AddressRemoved events.
	InterfaceRemoved
)

func (k EventKind) String() string {
	switch k {
	case AddressAdded:
		return "address added"
	case AddressRemoved:
		return "address removed"
	case LinkUp:
		return "link up"
	case LinkDown:
		return "link down"
	case LeaseBound:
		return "lease bound"
	case DNSChanged:
		return "DNS changed"
	case InterfaceRemoved:
		return "interface removed"
	}
	return "EventKind(?)"
}

// Event is one configuration change.
type Event struct {
	Kind    EventKind
	NIC     int
	Address Address // AddressAdded, AddressRemoved
	Lease   Lease   // LeaseBound
}

// Watcher receives every Event emitted after Watch returned, in order, with
// no loss (events queue until read).
type Watcher struct {
	st     *Stack
	mu     sync.Mutex
	q      []Event       // guarded by mu
	closed bool          // guarded by mu
	wake   chan struct{} // capacity 1
}

// Watch returns a Watcher; Close it when done.
func (st *Stack) Watch() *Watcher {
	w := &Watcher{st: st, wake: make(chan struct{}, 1)}
	st.mu.Lock()
	if st.closed {
		w.closed = true
	} else {
		st.watchers[w] = struct{}{}
	}
	st.mu.Unlock()
	return w
}

// Next returns the next event; it returns ErrClosed once the watcher or the
// stack is closed and the queue is drained.
func (w *Watcher) Next(ctx context.Context) (Event, error) {
	for {
		w.mu.Lock()
		if len(w.q) > 0 {
			e := w.q[0]
			w.q = w.q[1:]
			w.mu.Unlock()
			return e, nil
		}
		closed := w.closed
		w.mu.Unlock()
		if closed {
			return Event{}, ErrClosed
		}
		select {
		case <-w.wake:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// Close stops the watcher.
func (w *Watcher) Close() {
	w.st.mu.Lock()
	delete(w.st.watchers, w)
	w.closeLocked()
	w.st.mu.Unlock()
}

// closeLocked marks w closed; st.mu is held.
func (w *Watcher) closeLocked() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (st *Stack) emit(e Event) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for w := range st.watchers {
		w.mu.Lock()
		w.q = append(w.q, e)
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// serializer runs functions one at a time on its own goroutine, in order,
// without ever blocking the submitter (for gVisor callbacks that must not
// call back into the stack).
type serializer struct {
	mu     sync.Mutex
	q      []func() // guarded by mu
	closed bool     // guarded by mu
	wake   chan struct{}
	done   chan struct{}
}

func newSerializer() *serializer {
	s := &serializer{wake: make(chan struct{}, 1), done: make(chan struct{})}
	go s.loop()
	return s
}

func (s *serializer) do(fn func()) {
	s.mu.Lock()
	if !s.closed {
		s.q = append(s.q, fn)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *serializer) loop() {
	defer close(s.done)
	for range s.wake {
		for {
			s.mu.Lock()
			if len(s.q) == 0 {
				closed := s.closed
				s.mu.Unlock()
				if closed {
					return
				}
				break
			}
			fn := s.q[0]
			s.q = s.q[1:]
			s.mu.Unlock()
			fn()
		}
	}
}

func (s *serializer) close() {
	s.mu.Lock()
	s.closed = true
	s.q = nil
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	<-s.done
}
