package vss

import (
	"context"
	"errors"
	"sync"
)

// ErrHeld is returned by Hold on a gate that is already held.
var ErrHeld = errors.New("vss: write gate already held")

// WriteGate holds back writes while a snapshot is taken. Writers bracket
// each write with Enter and Exit; Hold stops new writers and waits for
// those in flight, Release lets them through again. The block layer wraps
// a device's WriteAt (and Discard) in Enter/Exit and the kernel's Freezer
// calls Hold then Flush on every device.
//
// The zero value is an open gate. Enter and Exit allocate nothing. All
// methods are safe for concurrent use.
type WriteGate struct {
	mu       sync.Mutex
	held     bool
	open     chan struct{} // closed by Release; writers wait on it while held
	inflight int
	drained  chan struct{} // set while Hold waits; closed when inflight reaches 0
}

// Enter waits until the gate is open and counts the caller as a writer in
// flight; it returns ctx's error if ctx ends first (and the caller must
// not write or call Exit).
func (g *WriteGate) Enter(ctx context.Context) error {
	for {
		g.mu.Lock()
		if !g.held {
			g.inflight++
			g.mu.Unlock()
			return nil
		}
		wait := g.open
		g.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Exit ends a write that Enter admitted.
func (g *WriteGate) Exit() {
	g.mu.Lock()
	g.inflight--
	if g.inflight == 0 && g.drained != nil {
		close(g.drained)
		g.drained = nil
	}
	g.mu.Unlock()
}

// Hold closes the gate and waits for the writes in flight to finish. If
// ctx ends first the gate is released again and ctx's error returned.
func (g *WriteGate) Hold(ctx context.Context) error {
	g.mu.Lock()
	if g.held {
		g.mu.Unlock()
		return ErrHeld
	}
	g.held = true
	g.open = make(chan struct{})
	if g.inflight == 0 {
		g.mu.Unlock()
		return nil
	}
	if g.drained == nil {
		g.drained = make(chan struct{})
	}
	drained := g.drained
	g.mu.Unlock()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		g.Release()
		return ctx.Err()
	}
}

// Release opens the gate; writers blocked in Enter proceed. Releasing an
// open gate does nothing.
func (g *WriteGate) Release() {
	g.mu.Lock()
	if g.held {
		g.held = false
		close(g.open)
	}
	g.mu.Unlock()
}

// Held reports whether the gate is held.
func (g *WriteGate) Held() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held
}
