package vss_test

import (
	"context"
	"fmt"

	"github.com/gohv/gohv/drivers/vss"
)

// disks stands in for the kernel's Freezer: one WriteGate per disk, held
// while the host snapshots.
type disks struct {
	gates []*vss.WriteGate
	flush func(ctx context.Context, disk int) error
}

func (d *disks) Freeze(ctx context.Context) error {
	for i, g := range d.gates {
		if err := g.Hold(ctx); err != nil {
			return err
		}
		if err := d.flush(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

func (d *disks) Thaw() {
	for _, g := range d.gates {
		g.Release()
	}
}

func Example() {
	gate := new(vss.WriteGate)
	d := vss.New(vss.Config{Freezer: &disks{
		gates: []*vss.WriteGate{gate},
		flush: func(context.Context, int) error { return nil },
	}})
	// An application with state of its own joins every snapshot.
	remove := d.AddHook(vss.HookFuncs{
		FreezeFunc: func(ctx context.Context) error { fmt.Println("checkpoint the journal"); return nil },
		ThawFunc:   func() { fmt.Println("resume") },
	})
	defer remove()
	// The kernel attaches d to the VSS channel (d.Attach); the host's
	// FREEZE then runs the hook and holds the gate until THAW.
	fmt.Println("frozen:", d.Stats().Frozen)
	// Output: frozen: false
}

func ExampleWriteGate() {
	var g vss.WriteGate
	ctx := context.Background()
	// The block layer brackets every write.
	write := func() error {
		if err := g.Enter(ctx); err != nil {
			return err
		}
		defer g.Exit()
		// ... device WriteAt ...
		return nil
	}
	fmt.Println(write())
	// The Freezer holds the gate: writers wait until Release.
	fmt.Println(g.Hold(ctx), g.Held())
	g.Release()
	fmt.Println(write())
	// Output:
	// <nil>
	// <nil> true
	// <nil>
}
