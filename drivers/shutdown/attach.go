package shutdown

import (
	"context"

	"github.com/gohv/gohv/drivers/ic"
	"github.com/gohv/gohv/vmbus"
)

// Attach opens the shutdown channel ch and starts taking requests.
// It can be called again for a channel offered after a rescind; the
// counters carry over.
func (d *Driver) Attach(ctx context.Context, ch vmbus.DriverChannel) error { return d.attach(ctx, ch) }

func (d *Driver) attach(ctx context.Context, ch ic.Channel) error {
	return d.att.Attach(ctx, d.config(), ch)
}

// Close stops taking requests and closes the current channel.
func (d *Driver) Close(ctx context.Context) error { return d.att.Close(ctx) }
