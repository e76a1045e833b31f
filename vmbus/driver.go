package vmbus

import (
	"context"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/vmbus/ring"
)

// DriverChannel is what a device driver uses of a channel: *Channel
// implements it, and drivers test against fakes of it. The methods are
// documented on *Channel.
type DriverChannel interface {
	Offer() Offer
	Open(ctx context.Context, cfg OpenConfig) error
	Close(ctx context.Context) error
	Rescinded() <-chan struct{}

	CreateGPADL(ctx context.Context, p hv.Pages) (GPADL, error)
	TeardownGPADL(ctx context.Context, g GPADL) error

	TrySend(typ ring.PacketType, flags uint16, txid uint64, parts ...[]byte) error
	TrySendWithHeader(typ ring.PacketType, flags uint16, txid uint64, hdr []byte, parts ...[]byte) error
	Send(ctx context.Context, typ ring.PacketType, flags uint16, txid uint64, parts ...[]byte) error
	SendWithHeader(ctx context.Context, typ ring.PacketType, flags uint16, txid uint64, hdr []byte, parts ...[]byte) error
	ReadPacket(buf []byte) (ring.Packet, error)

	MaskInterrupt()
	UnmaskInterrupt() bool

	WaitSubChannels(ctx context.Context, n int) ([]DriverChannel, error)
	ModifyTargetVP(ctx context.Context, vp uint32) error
	Stats() ChannelStats
}

var _ DriverChannel = (*Channel)(nil)
