package block_test

import (
	"context"
	"fmt"

	"github.com/gohv/gohv/drivers/block"
)

// A disk driver adds its disks to a Registry; an application watches it
// and learns about disks present at startup and hot-added or removed later.
func ExampleRegistry_Watch() {
	var reg block.Registry
	boot, _ := block.NewMem("disk0", 512, 2048)
	reg.Add(boot)

	w := reg.Watch()
	defer w.Close()
	hot, _ := block.NewMem("disk1", 512, 2048)
	reg.Add(hot)    // hot-add
	reg.Remove(hot) // rescind

	ctx := context.Background()
	for range 3 {
		e, _ := w.Next(ctx)
		fmt.Println(e.Kind, e.Device.Info().Name)
	}
	// Output:
	// added disk0
	// added disk1
	// removed disk1
}

// Queue turns any Device into an asynchronous Submitter; the Request is
// the caller's and is reused without allocation.
func ExampleQueue() {
	disk, _ := block.NewMem("disk0", 512, 2048)
	q := block.NewQueue(disk, 2, 16)
	defer q.Close()

	done := make(chan *block.Request, 1)
	buf := make([]byte, 512) // whole sectors
	copy(buf, "hello")
	req := &block.Request{Op: block.OpWrite, Off: 4096, Buf: buf,
		Done: func(r *block.Request) { done <- r }} // Done must not block: the channel has room
	if err := q.Submit(req); err != nil {
		fmt.Println(err)
		return
	}
	r := <-done
	fmt.Println(r.N, r.Err, string(disk.Bytes()[4096:4101]))
	// Output: 512 <nil> hello
}
