package hvsim

import "context"

// Echo is a loopback device for testing a guest's channel layer: every
// packet the guest sends comes back with the same transaction id and
// payload, as a completion (type 0xB) when the guest asked for one
// (descriptor flag bit 0, docs/hyperv-protocol.md §4.3) and as an in-band packet
// otherwise.
type Echo struct {
	Spec OfferSpec
}

// Offer implements Device.
func (e *Echo) Offer() OfferSpec { return e.Spec }

// Open implements Device.
func (e *Echo) Open(ch *Channel) error {
	go e.serve(ch)
	return nil
}

// Close implements Device.
func (e *Echo) Close(*Channel) {}

func (e *Echo) serve(ch *Channel) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-ch.Done()
		cancel()
	}()
	buf := make([]byte, 64<<10)
	for {
		for {
			p, ok, err := ch.Recv(buf)
			if err != nil || !ok {
				break
			}
			typ := uint16(pktDataInband)
			if p.Flags&pktFlagCompletionRequested != 0 {
				typ = pktCompletion
			}
			if err := ch.Send(ctx, typ, 0, p.TransactionID, p.Payload); err != nil {
				return
			}
		}
		select {
		case <-ch.Signaled():
		case <-ch.Done():
			return
		}
	}
}
