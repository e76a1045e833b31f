package ic

import (
	"context"
	"sync/atomic"
)

// Attachment holds the Service currently serving a driver's channel. A
// driver embeds one so that it can be attached again to the channel of a
// later offer (after a rescind) while its own counters carry over. Safe for
// concurrent use.
type Attachment struct {
	svc atomic.Pointer[Service]
}

// Attach builds a Service from cfg and starts it on ch, replacing the
// previous one.
func (a *Attachment) Attach(ctx context.Context, cfg Config, ch Channel) error {
	svc, err := NewService(cfg)
	if err != nil {
		return err
	}
	if err := svc.Start(ctx, ch); err != nil {
		return err
	}
	a.svc.Store(svc)
	return nil
}

// Close stops the current Service and closes its channel; without one it
// does nothing.
func (a *Attachment) Close(ctx context.Context) error {
	if svc := a.svc.Load(); svc != nil {
		return svc.Close(ctx)
	}
	return nil
}

// Stats returns the current Service's counters (zero before Attach).
func (a *Attachment) Stats() Stats {
	if svc := a.svc.Load(); svc != nil {
		return svc.Stats()
	}
	return Stats{}
}
