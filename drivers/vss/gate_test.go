package vss

import (
	"context"
	"errors"
	"testing"
)

func TestWriteGate(t *testing.T) {
	var g WriteGate
	ctx := context.Background()
	if err := g.Enter(ctx); err != nil {
		t.Fatal(err)
	}
	// Hold waits for the write in flight: with an ended context it gives
	// up and leaves the gate open.
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := g.Hold(done); !errors.Is(err, context.Canceled) || g.Held() {
		t.Fatalf("Hold with a write in flight and ended ctx: %v, held %v", err, g.Held())
	}
	held := make(chan error)
	go func() { held <- g.Hold(ctx) }()
	// Wait until Hold closed the gate, then finish the write.
	for !g.Held() {
		if err := g.Enter(done); err == nil {
			g.Exit()
		}
	}
	g.Exit()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if err := g.Hold(ctx); !errors.Is(err, ErrHeld) {
		t.Fatalf("second Hold: %v", err)
	}
	// New writers wait: with an ended context they give up.
	if err := g.Enter(done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Enter while held: %v", err)
	}
	entered := make(chan error)
	go func() { entered <- g.Enter(ctx) }()
	g.Release()
	if err := <-entered; err != nil {
		t.Fatal(err)
	}
	g.Exit()
	g.Release() // releasing an open gate does nothing
	if g.Held() {
		t.Fatal("held after Release")
	}
}

func TestWriteGateAllocatesNothing(t *testing.T) {
	var g WriteGate
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() {
		if g.Enter(ctx) == nil {
			g.Exit()
		}
	}); n != 0 {
		t.Fatalf("%v allocations per write", n)
	}
}

func BenchmarkWriteGate(b *testing.B) {
	var g WriteGate
	ctx := context.Background()
	b.Run("baseline-nothing", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
		}
	})
	b.Run("enter-exit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if g.Enter(ctx) == nil {
				g.Exit()
			}
		}
	})
}
