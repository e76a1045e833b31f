package kernel_test

import (
	"context"
	"fmt"
	"log"
	"os"
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

// A gohv program's main hands its application to Run, which starts the
// kernel, cancels ctx when the host asks the VM to shut down, flushes the
// disks and powers off (or restarts) with the application's exit status.
func ExampleRun() {
	kernel.Run(func(ctx context.Context) error {
		k := kernel.FromContext(ctx)
		for _, d := range k.Disks.Devices() {
			fmt.Println("disk", d.Info().Name)
		}
		<-ctx.Done() // serve until the host asks for a shutdown
		return nil   // cancellation is a clean exit: status 0
	}, kernel.WithGracePeriod(5*time.Second))
}

// Code deep in an application finds the kernel through its context.
func ExampleFromContext() {
	save := func(ctx context.Context, data []byte) error {
		k := kernel.FromContext(ctx)
		if k == nil || len(k.Disks.Devices()) == 0 {
			return fmt.Errorf("no disk")
		}
		d := k.Disks.Devices()[0]
		buf := make([]byte, d.Info().SectorSize)
		copy(buf, data)
		// Disk writes wait while the host takes a backup (VSS): the
		// kernel's disks pass its write gate by themselves.
		if _, err := d.WriteAt(ctx, buf, 0); err != nil {
			return err
		}
		return d.Flush(ctx)
	}
	kernel.Run(func(ctx context.Context) error {
		return save(ctx, []byte("hello"))
	})
}

// Execute is Run without the exit, for tests and the simulator. On a
// machine without Hyper-V the application still runs.
func ExampleExecute() {
	code, kind := kernel.Execute(context.Background(), func(ctx context.Context) error {
		fmt.Println("VMBus:", kernel.FromContext(ctx).NoVMBus() == nil)
		return nil
	}, kernel.WithConfig(kernel.Config{Log: os.Stdout}))
	fmt.Println("exit status", code, "then", kind)
	// Output:
	// gohv: no Hyper-V VMBus on this machine; running the application without VMBus
	// VMBus: false
	// exit status 0 then power-off
}
