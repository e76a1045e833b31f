package netvsc

import (
	"context"
	"sync"

	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// Class is the synthetic NIC's interface type (§5), the class Driver is
// registered for.
var Class = chanmsg.ClassNetwork

// Driver is the netvsc kernel.Driver: it opens a NIC on every network
// class offer (§5) it is attached to.
type Driver struct {
	// Config is used for every NIC; SubChannels is filled in from the
	// attached channel when nil.
	Config Config
	// OnNIC, if set, is called with each NIC once it is open, on the
	// goroutine that called Attach.
	OnNIC func(*NIC)

	mu   sync.Mutex
	nics []*NIC
}

// Name identifies the driver.
func (d *Driver) Name() string { return "netvsc" }

// Attach opens a NIC on the primary channel ch.
func (d *Driver) Attach(ctx context.Context, ch vmbus.DriverChannel) error {
	cfg := d.Config
	if cfg.SubChannels == nil {
		cfg.SubChannels = DriverSubChannels(ch)
	}
	n, err := Open(ctx, ch, cfg)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.nics = append(d.nics, n)
	d.mu.Unlock()
	if d.OnNIC != nil {
		d.OnNIC(n)
	}
	return nil
}

// NICs returns the NICs opened so far.
func (d *Driver) NICs() []*NIC {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*NIC(nil), d.nics...)
}
