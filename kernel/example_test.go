package kernel_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/gohv/gohv/drivers/heartbeat"
	"github.com/gohv/gohv/drivers/shutdown"
	"github.com/gohv/gohv/kernel"
	"github.com/gohv/gohv/vmbus"
)

// A program registers the drivers it wants, binds them to the bus and
// then waits for the host to ask it to stop.
func ExampleRegistry() {
	var bus *vmbus.Bus // from vmbus.Connect

	var power kernel.PowerRequests
	var reg kernel.Registry
	if err := reg.Register(heartbeat.Class, heartbeat.New()); err != nil {
		log.Fatal(err)
	}
	if err := reg.Register(shutdown.Class, shutdown.New(power.Deliver)); err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bindings, err := reg.Bind(ctx, bus)
	if err != nil {
		log.Print(err) // some device failed; the others run
	}
	for _, b := range bindings {
		log.Print(b)
	}
}

func ExamplePowerRequests() {
	var power kernel.PowerRequests
	_ = shutdown.New(power.Deliver) // the shutdown driver calls Deliver

	// What the shutdown driver does when the host asks for a restart:
	power.Deliver(shutdown.Request{Kind: shutdown.Reboot, Message: shutdown.MakeText("host maintenance")})

	// The application's main goroutine:
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := power.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%v requested: %s\n", req.Kind, req.Message)
	// Output: reboot requested: host maintenance
}
