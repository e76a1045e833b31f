package storvsc_test

import (
	"context"
	"fmt"

	"github.com/gohv/gohv/drivers/storvsc"
	"github.com/gohv/gohv/hv"
)

// Attach a storage controller offered on the bus, then read the first
// sector of every disk it finds. New disks, removals and capacity changes
// arrive through OnEvent, where a block registry would add or remove them.
func ExampleAttach() {
	var (
		ch  storvsc.Channel // the SCSI or IDE offer, from the bus (vmbus.DriverChannel)
		mem hv.Memory       // the platform's host-visible memory
	)
	if ch == nil {
		return // not on Hyper-V
	}
	ctx := context.Background()
	ctrl, err := storvsc.Attach(ctx, ch, storvsc.Config{
		Memory:   mem,
		Channels: 4, // one per CPU; the host may grant fewer
		OnEvent: func(e storvsc.Event) {
			fmt.Println(e.Kind, e.Disk.Info().Name)
		},
	})
	if err != nil {
		panic(err)
	}
	defer ctrl.Close(ctx)
	for _, d := range ctrl.Disks() {
		sector := make([]byte, d.Info().SectorSize)
		if _, err := d.ReadAt(ctx, sector, 0); err != nil {
			fmt.Println(d, err)
		}
	}
}

// Asynchronous I/O: a Request is reused, Done runs on the channel's
// completion goroutine and must not block.
func ExampleDisk_Submit() {
	var d *storvsc.Disk // from Controller.Disks or a DiskAdded event
	if d == nil {
		return
	}
	done := make(chan error, 1)
	req := storvsc.Request{Op: storvsc.OpRead, Off: 0, Buf: make([]byte, 4096), Queue: 0,
		Done: func(r *storvsc.Request) { done <- r.Err }}
	if err := d.Submit(&req); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(<-done)
}
