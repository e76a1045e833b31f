package netvsc

import (
	"context"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/ring"
)

// Channel is the part of a VMBus channel the NIC uses;
// vmbus.DriverChannel (and so *vmbus.Channel) implements it and tests use
// fakes. A channel that also has TrySendWithHeader (as DriverChannel
// does) sends GPA-direct packets without ever waiting; otherwise
// SendWithHeader is called with an already-cancelled context, which gives
// the same non-blocking result.
type Channel interface {
	Offer() vmbus.Offer
	Open(ctx context.Context, cfg vmbus.OpenConfig) error
	Close(ctx context.Context) error
	Rescinded() <-chan struct{}
	CreateGPADL(ctx context.Context, p hv.Pages) (vmbus.GPADL, error)
	TeardownGPADL(ctx context.Context, g vmbus.GPADL) error
	TrySend(typ ring.PacketType, flags uint16, txid uint64, parts ...[]byte) error
	SendWithHeader(ctx context.Context, typ ring.PacketType, flags uint16, txid uint64, hdr []byte, parts ...[]byte) error
	ReadPacket(buf []byte) (ring.Packet, error)
}

var _ Channel = (*vmbus.Channel)(nil)

// headerTrySender is the non-blocking GPA-direct send of the driver-model
// contract (vmbus.DriverChannel's TrySendWithHeader).
type headerTrySender interface {
	TrySendWithHeader(typ ring.PacketType, flags uint16, txid uint64, hdr []byte, parts ...[]byte) error
}

// SubChannels produces the sub-channels the host offers after a
// SUBCHANNEL request: WaitSubChannels on the primary (driver-model
// contract) returns sub-channels 1..n once n were offered, or those
// offered so far with ctx's error. Wrap vmbus.DriverChannel's method in a
// one-line adapter.
type SubChannels interface {
	WaitSubChannels(ctx context.Context, n int) ([]Channel, error)
}

var _ Channel = vmbus.DriverChannel(nil)

// DriverSubChannels adapts a primary vmbus.DriverChannel's
// WaitSubChannels to SubChannels.
func DriverSubChannels(ch vmbus.DriverChannel) SubChannels { return driverSubs{ch} }

type driverSubs struct{ ch vmbus.DriverChannel }

func (d driverSubs) WaitSubChannels(ctx context.Context, n int) ([]Channel, error) {
	subs, err := d.ch.WaitSubChannels(ctx, n)
	out := make([]Channel, len(subs))
	for i, s := range subs {
		out[i] = s
	}
	return out, err
}
