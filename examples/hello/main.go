// Command hello is the smallest gohv application: it boots on the gohv
// board, says hello, reports the platform the board found, checks the
// board clock against a one-second sleep, and powers the machine off.
package main

import (
	"fmt"
	"time"

	"github.com/gohv/gohv/boot"
)

func main() {
	fmt.Println("hello from gohv")
	fmt.Println("platform:", boot.Describe())
	if _, err := boot.Platform(); err != nil {
		fmt.Println("VMBus:", err)
	} else {
		fmt.Println("VMBus: platform ready")
	}

	// The boot test times the gap between these two lines with the host's
	// clock, so a guest clock running fast or slow is caught.
	fmt.Println("sleeping 1s")
	start := time.Now()
	time.Sleep(time.Second)
	fmt.Printf("slept %.1fs\n", time.Since(start).Seconds())
	// Returning from main exits; the board's Exit powers the machine off.
}
