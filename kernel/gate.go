package kernel

import (
	"context"

	"github.com/gohv/gohv/drivers/block"
	"github.com/gohv/gohv/drivers/vss"
)

// gatedDisk is how a disk appears in Kernel.Disks: its writes and discards
// pass the VSS write gate, so that from FREEZE to THAW nothing lands on it
// and a host backup of the VM sees the disks as they were flushed. Reads
// and flushes are not held. The driver's own device, with its asynchronous
// Submit, is not gated; Unwrap returns it.
type gatedDisk struct {
	block.Device
	gate *vss.WriteGate
}

func (d *gatedDisk) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	if err := d.gate.Enter(ctx); err != nil {
		return 0, err
	}
	defer d.gate.Exit()
	return d.Device.WriteAt(ctx, p, off)
}

func (d *gatedDisk) Discard(ctx context.Context, off, n int64) error {
	if err := d.gate.Enter(ctx); err != nil {
		return err
	}
	defer d.gate.Exit()
	return d.Device.Discard(ctx, off, n)
}

// Unwrap returns the driver's device (storvsc's *Disk).
func (d *gatedDisk) Unwrap() block.Device { return d.Device }
