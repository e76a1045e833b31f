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
