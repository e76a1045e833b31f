package heartbeat

import (
	"context"

	"github.com/gohv/gohv/drivers/ic"
	"github.com/gohv/gohv/vmbus"
)

// Attach opens the heartbeat channel ch and starts answering the host.
// It can be called again for a channel offered after a rescind; the
// counters carry over.
func (d *Driver) Attach(ctx context.Context, ch *vmbus.Channel) error { return d.attach(ctx, ch) }

func (d *Driver) attach(ctx context.Context, ch ic.Channel) error {
	svc, err := ic.NewService(d.config())
	if err != nil {
		return err
	}
	if err := svc.Start(ctx, ch); err != nil {
		return err
	}
	d.svc.Store(svc)
	return nil
}

// Close stops answering heartbeats and closes the current channel.
func (d *Driver) Close(ctx context.Context) error {
	if svc := d.svc.Load(); svc != nil {
		return svc.Close(ctx)
	}
	return nil
}
