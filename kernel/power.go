package kernel

import (
	"context"
	"sync"

	"github.com/gohv/gohv/drivers/shutdown"
)

// PowerRequests carries the host's shutdown and restart requests from the
// shutdown driver to the application. Deliver never blocks (it runs on the
// bus dispatch goroutine); the application waits with Wait and then shuts
// down in its own time. The zero value is ready to use.
//
// Only the latest request is kept: if the host asks twice before the
// application looked (a forced retry, or restart after power-off), the
// application sees the second request.
type PowerRequests struct {
	mu      sync.Mutex
	pending shutdown.Request
	has     bool
	ready   chan struct{} // one token while a request is pending
}

func (p *PowerRequests) readyLocked() chan struct{} {
	if p.ready == nil {
		p.ready = make(chan struct{}, 1)
	}
	return p.ready
}

// Deliver queues r and reports whether the guest will act on it: true for
// power-off and reboot, false for hibernate, which gohv does not support
// (the shutdown driver then answers E_FAIL, docs/hyperv-protocol.md §8.4). It is the
// callback to give shutdown.New.
func (p *PowerRequests) Deliver(r shutdown.Request) bool {
	if r.Kind != shutdown.PowerOff && r.Kind != shutdown.Reboot {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending, p.has = r, true
	select {
	case p.readyLocked() <- struct{}{}:
	default: // a token is already waiting
	}
	return true
}

// Wait returns the next request, or ctx's error when ctx is done first.
func (p *PowerRequests) Wait(ctx context.Context) (shutdown.Request, error) {
	p.mu.Lock()
	ready := p.readyLocked()
	p.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return shutdown.Request{}, ctx.Err()
		case <-ready:
		}
		p.mu.Lock()
		r, ok := p.pending, p.has
		p.pending, p.has = shutdown.Request{}, false
		p.mu.Unlock()
		if ok {
			return r, nil
		}
	}
}

// Pending returns the request waiting to be taken, if any, without taking
// it.
func (p *PowerRequests) Pending() (shutdown.Request, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pending, p.has
}
