package part

import (
	"context"
	"fmt"

	"github.com/gohv/gohv/drivers/block"
)

// Device is a window [Start, Start+Sectors) of a parent device: a
// partition. Its offsets start at 0; every request is checked against the
// window before it is passed on, so a partition can never touch sectors
// outside itself.
type Device struct {
	parent block.Device
	start  int64 // bytes
	info   block.Info
}

// NewDevice returns the window of sectors sectors from LBA start of parent.
func NewDevice(parent block.Device, start, sectors uint64, name string) (*Device, error) {
	pi := parent.Info()
	if start > pi.Sectors || sectors > pi.Sectors-start {
		return nil, fmt.Errorf("part: window %d+%d outside %s (%d sectors): %w", start, sectors, pi.Name, pi.Sectors, block.ErrOutOfRange)
	}
	info := pi
	info.Name, info.Sectors = name, sectors
	return &Device{parent: parent, start: int64(start) * int64(pi.SectorSize), info: info}, nil
}

// Info implements block.Device. ReadOnly follows the parent's.
func (d *Device) Info() block.Info {
	i := d.info
	i.ReadOnly = d.parent.Info().ReadOnly
	return i
}

// ReadAt implements block.Device.
func (d *Device) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if err := block.Check(d.info, block.OpRead, off, int64(len(p))); err != nil {
		return 0, err
	}
	return d.parent.ReadAt(ctx, p, d.start+off)
}

// WriteAt implements block.Device.
func (d *Device) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	if err := block.Check(d.Info(), block.OpWrite, off, int64(len(p))); err != nil {
		return 0, err
	}
	return d.parent.WriteAt(ctx, p, d.start+off)
}

// Flush implements block.Device (flushes the whole parent).
func (d *Device) Flush(ctx context.Context) error { return d.parent.Flush(ctx) }

// Discard implements block.Device.
func (d *Device) Discard(ctx context.Context, off, n int64) error {
	if err := block.Check(d.Info(), block.OpDiscard, off, n); err != nil {
		return err
	}
	return d.parent.Discard(ctx, d.start+off, n)
}
