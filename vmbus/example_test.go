package vmbus_test

import (
	"context"
	"fmt"
	"time"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/chanmsg"
	"github.com/gohv/gohv/vmbus/ring"
)

// platform stands for the machine: the bare-metal hv implementation on
// Hyper-V, or a simulated host (tools/hvsim) in tests.
var platform hv.Platform

// ExampleConnect connects to the host, opens the heartbeat channel and
// sends one packet. It is not run: it needs a host.
func ExampleConnect() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	bus, err := vmbus.Connect(ctx, platform, vmbus.Config{})
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer bus.Close(ctx)
	fmt.Println("VMBus version", bus.Version())

	for _, ch := range bus.Channels() {
		if ch.Offer().InterfaceType != chanmsg.ClassHeartbeat {
			continue
		}
		buf := make([]byte, 4096)
		err := ch.Open(ctx, vmbus.OpenConfig{OnInterrupt: func() {
			for {
				p, err := ch.ReadPacket(buf)
				if err != nil {
					return // vmbus.ErrEmpty: drained
				}
				fmt.Println("packet", p.Type, "txid", p.TransactionID)
			}
		}})
		if err != nil {
			fmt.Println("open:", err)
			return
		}
		_ = ch.Send(ctx, ring.TypeDataInband, ring.FlagCompletionRequested, 1, []byte("hello"))
		_ = ch.Close(ctx)
	}
}

// ExampleChannel_MaskInterrupt drains a busy channel by polling from a
// goroutine of its own: OnInterrupt only masks the channel's interrupt and
// wakes the poller, which unmasks when the ring is empty and drains again
// if a packet slipped in meanwhile (docs/hyperv-protocol.md §4.6). It is not run: it
// needs a host.
func ExampleChannel_MaskInterrupt() {
	var ch *vmbus.Channel // an offered channel, e.g. from bus.Channels()
	ctx := context.Background()
	wake := make(chan struct{}, 1)
	err := ch.Open(ctx, vmbus.OpenConfig{OnInterrupt: func() {
		ch.MaskInterrupt()
		select {
		case wake <- struct{}{}:
		default:
		}
	}})
	if err != nil {
		fmt.Println("open:", err)
		return
	}
	buf := make([]byte, 64<<10)
	for range wake {
		for {
			for {
				if _, err := ch.ReadPacket(buf); err != nil {
					break // vmbus.ErrEmpty: drained for now
				}
				// ... handle the packet ...
			}
			if !ch.UnmaskInterrupt() {
				break // empty and unmasked: the next packet interrupts
			}
			ch.MaskInterrupt() // one arrived while masked: drain again
		}
	}
}

// ExampleChannel_WaitSubChannels opens a multi-queue device: after the
// primary is open and the device was asked for sub-channels in its own
// protocol, WaitSubChannels collects their offers. It is not run: it
// needs a host.
func ExampleChannel_WaitSubChannels() {
	var primary vmbus.DriverChannel // given to the driver's Attach
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := primary.Open(ctx, vmbus.OpenConfig{}); err != nil {
		fmt.Println("open:", err)
		return
	}
	// ... ask the device for 3 sub-channels (e.g. VSTOR or NVSP) ...
	subs, err := primary.WaitSubChannels(ctx, 3)
	if err != nil {
		fmt.Printf("only %d sub-channels: %v\n", len(subs), err)
	}
	for _, s := range subs {
		if err := s.Open(ctx, vmbus.OpenConfig{}); err != nil {
			fmt.Println("open sub-channel:", err)
		}
	}
}
