package timesync

import (
	"context"

	"github.com/gohv/gohv/drivers/ic"
	"github.com/gohv/gohv/vmbus"
)

// Attach opens the time sync channel ch and starts applying the host's
// time. It can be called again for a channel offered after a rescind; the
// counters and the last sync carry over, and the host's first message on
// the new channel is a SYNC that steps the clock again.
func (d *Driver) Attach(ctx context.Context, ch vmbus.DriverChannel) error { return d.attach(ctx, ch) }

func (d *Driver) attach(ctx context.Context, ch ic.Channel) error {
	return d.att.Attach(ctx, d.config(), ch)
}

// Close stops applying host time and closes the current channel.
func (d *Driver) Close(ctx context.Context) error { return d.att.Close(ctx) }
