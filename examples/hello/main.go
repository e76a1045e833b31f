// Command hello is the smallest gohv application: it boots on the gohv
// board, starts the kernel (VMBus and the integration services on
// Hyper-V, one line saying there is none elsewhere), says hello, reports
// what the board and the kernel found and the wall-clock time, checks the board clock against a
// one-second sleep, and returns, which powers the machine off. On Hyper-V,
// Stop-VM during the sleep cancels it and the VM shuts down cleanly.
package main

import (
	"context"
	"fmt"
	"time"

	"github.com/gohv/gohv/boot"
	"github.com/gohv/gohv/kernel"
)

func main() {
	kernel.Run(func(ctx context.Context) error {
		k := kernel.FromContext(ctx)
		fmt.Println("hello from gohv")
		fmt.Println("platform:", boot.Describe())
		// The boot test compares this with the host's clock.
		fmt.Println("time:", time.Now().UTC().Format(time.RFC3339))
		if err := k.NoVMBus(); err != nil {
			fmt.Println("VMBus: none")
		} else {
			fmt.Printf("VMBus: version %s, %d devices bound\n", k.VMBusVersion(), len(k.Devices()))
		}

		// The boot test times the gap between these two lines with the
		// host's clock, so a guest clock running fast or slow is caught.
		fmt.Println("sleeping 1s")
		start := time.Now()
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
		fmt.Printf("slept %.1fs\n", time.Since(start).Seconds())
		return nil
	})
}
