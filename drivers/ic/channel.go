package ic

import (
	"context"
	"errors"
	"fmt"

	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/ring"
)

// Channel is the part of a VMBus channel an integration service uses.
// *vmbus.Channel implements it; tests use fakes.
type Channel interface {
	Offer() vmbus.Offer
	Open(ctx context.Context, cfg vmbus.OpenConfig) error
	TrySend(typ ring.PacketType, flags uint16, txid uint64, parts ...[]byte) error
	ReadPacket(buf []byte) (ring.Packet, error)
	Rescinded() <-chan struct{}
	Close(ctx context.Context) error
}

var (
	_ Channel = (*vmbus.Channel)(nil)
	_ Channel = vmbus.DriverChannel(nil)
)

// ErrStarted is returned by Start on a service that was already started.
var ErrStarted = errors.New("ic: service already started")

// Start opens ch for the service and begins answering the host. It returns
// once the channel is open; messages are then handled on the channel's
// dispatch goroutine. When the host rescinds the channel the service stops
// answering (the bus closes and releases a rescinded channel itself). A
// Service runs once (a failed Start may be retried); a re-offered channel
// gets a new Service.
func (s *Service) Start(ctx context.Context, ch Channel) error {
	if s.ch != nil {
		return ErrStarted
	}
	s.ch = ch
	err := ch.Open(ctx, vmbus.OpenConfig{
		SendRingSize: s.cfg.RingSize,
		RecvRingSize: s.cfg.RingSize,
		OnInterrupt:  s.onInterrupt,
	})
	if err != nil {
		s.ch = nil
		return fmt.Errorf("ic: %s: open channel: %w", s.cfg.Name, err)
	}
	go s.watchRescind()
	return nil
}

func (s *Service) watchRescind() {
	defer close(s.done)
	select {
	case <-s.ch.Rescinded():
		s.negotiated.Store(false)
	case <-s.closed:
	}
}

// Done returns a channel closed once the service stopped: its channel was
// rescinded or Close was called.
func (s *Service) Done() <-chan struct{} { return s.done }

// Close stops the service and closes its channel. A message being
// answered on the dispatch goroutine is answered first (a shutdown request
// the kernel acts on at once still gets its S_OK); later ones are not.
// Close must not be called from a Handler.
func (s *Service) Close(ctx context.Context) error {
	if s.ch == nil {
		return nil
	}
	select {
	case <-s.closed:
		return nil
	default:
		close(s.closed)
	}
	select {
	case s.running <- struct{}{}: // OnInterrupt is not running, and now returns at once
		<-s.running
	case <-ctx.Done(): // give up waiting; closing drops that answer
	}
	s.negotiated.Store(false)
	if err := s.ch.Close(ctx); err != nil {
		return fmt.Errorf("ic: %s: close channel: %w", s.cfg.Name, err)
	}
	return nil
}

// onInterrupt drains the receive ring. It runs on the channel's dispatch
// goroutine, never concurrently with itself, and must not block: a
// response that does not fit the send ring is counted and dropped.
func (s *Service) onInterrupt() {
	s.running <- struct{}{} // waits only while Close checks that no answer is in flight
	defer func() { <-s.running }()
	for {
		select {
		case <-s.closed:
			return // closing: answer nothing more
		default:
		}
		pkt, err := s.ch.ReadPacket(s.buf)
		if errors.Is(err, vmbus.ErrEmpty) || errors.Is(err, vmbus.ErrClosed) || errors.Is(err, vmbus.ErrRescinded) {
			return // drained, or the channel went away under this run
		}
		if err != nil {
			// A packet the ring could not deliver (corrupt or larger than
			// buf). Stop here rather than spin: the ring reports the
			// fault again on the next interrupt, and its owner resets it.
			s.bad.Add(1)
			return
		}
		if pkt.Type != ring.TypeDataInband {
			s.bad.Add(1)
			continue
		}
		if !s.process(pkt.Payload) {
			continue
		}
		s.parts[0] = pkt.Payload
		// Reference §8.1: the response is in-band, flags 0, and carries
		// the host's VMBus transaction id.
		if err := s.ch.TrySend(ring.TypeDataInband, 0, pkt.TransactionID, s.parts[:]...); err != nil {
			s.dropped.Add(1)
		}
		s.parts[0] = nil
	}
}
