package netvsc_test

import (
	"context"
	"fmt"
	"time"

	"github.com/gohv/gohv/drivers/netvsc"
	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/netvsp"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// Open a NIC on the network offer of a simulated host, send one frame and
// receive one.
func ExampleOpen() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, _ := hvsim.New(hvsim.Config{})
	defer h.Close()
	w := &wire{frames: make(chan []byte, 1)}
	dev, _ := netvsp.New(h, netvsp.Config{MAC: [6]byte{0x00, 0x15, 0x5d, 0, 0, 1}, MTU: 1500, Backend: w})
	h.AddDevice(dev)
	bus, err := vmbus.Connect(ctx, h.Platform(), vmbus.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer bus.Close(ctx)
	for _, ch := range bus.Channels() {
		if ch.Offer().InterfaceType != chanmsg.ClassNetwork {
			continue
		}
		nic, err := netvsc.Open(ctx, ch, netvsc.Config{Memory: h.Platform(), SubChannels: netvsc.DriverSubChannels(ch)})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("MAC %x, MTU %d, link up %v\n", nic.MAC(), nic.MTU(), nic.LinkUp())

		got := make(chan int, 1)
		nic.SetReceiver(func(queue int, frame []byte, info netvsc.RxInfo) {
			got <- len(frame) // frame is valid only during the call
		})
		out := frame([6]byte{0x02, 0, 0, 0, 0, 2}, nic.MAC(), 60, 0)
		for {
			err := nic.Send(nic.QueueFor(out), [][]byte{out}, netvsc.TxInfo{})
			if err == nil {
				break
			}
			if err := nic.WaitWritable(ctx, 0); err != nil { // after ErrBusy
				fmt.Println(err)
				return
			}
		}
		fmt.Println("host got", len(<-w.frames), "bytes")
		w.inject(frame(nic.MAC(), [6]byte{0x02, 0, 0, 0, 0, 2}, 100, 1))
		fmt.Println("guest got", <-got, "bytes")
		fmt.Println(nic.Close(ctx))
	}
	// Output:
	// MAC 00155d000001, MTU 1500, link up true
	// host got 60 bytes
	// guest got 100 bytes
	// <nil>
}
