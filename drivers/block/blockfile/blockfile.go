// Package blockfile is a block.Device backed by a host file (a raw disk
// image), for tests and hosted tools. The kernel does not use it.
//
// It owns only the mapping of Device calls onto *os.File; bounds,
// alignment and read-only checks are block.Check's.
package blockfile

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/gohv/gohv/drivers/block"
)

// File is a raw image file as a block device.
type File struct {
	f    *os.File
	info block.Info

	mu     sync.RWMutex // guards closed
	closed bool
}

// Open opens the image at path with the given sector size; its size must
// be a multiple of it.
func Open(path string, sectorSize int, readOnly bool) (*File, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if sectorSize <= 0 || st.Size()%int64(sectorSize) != 0 {
		f.Close()
		return nil, fmt.Errorf("blockfile: %s is %d bytes, not a whole number of %d-byte sectors", path, st.Size(), sectorSize)
	}
	return &File{f: f, info: block.Info{Name: path, SectorSize: sectorSize,
		Sectors: uint64(st.Size() / int64(sectorSize)), ReadOnly: readOnly, WriteCache: true, Queues: 1}}, nil
}

// Info implements block.Device.
func (d *File) Info() block.Info { return d.info }

func (d *File) check(op block.Op, off, n int64) error {
	if d.closed {
		return &block.IOError{Op: op, Off: off, Err: block.ErrRemoved}
	}
	return block.Check(d.info, op, off, n)
}

// ReadAt implements block.Device.
func (d *File) ReadAt(_ context.Context, p []byte, off int64) (int, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if err := d.check(block.OpRead, off, int64(len(p))); err != nil {
		return 0, err
	}
	n, err := d.f.ReadAt(p, off)
	if err != nil {
		return n, &block.IOError{Op: block.OpRead, Off: off, Err: err}
	}
	return n, nil
}

// WriteAt implements block.Device.
func (d *File) WriteAt(_ context.Context, p []byte, off int64) (int, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if err := d.check(block.OpWrite, off, int64(len(p))); err != nil {
		return 0, err
	}
	n, err := d.f.WriteAt(p, off)
	if err != nil {
		return n, &block.IOError{Op: block.OpWrite, Off: off, Err: err}
	}
	return n, nil
}

// Flush implements block.Device with fsync.
func (d *File) Flush(context.Context) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if err := d.check(block.OpFlush, 0, 0); err != nil {
		return err
	}
	if err := d.f.Sync(); err != nil {
		return &block.IOError{Op: block.OpFlush, Err: err}
	}
	return nil
}

// Discard implements block.Device: not supported.
func (d *File) Discard(_ context.Context, off, _ int64) error {
	return &block.IOError{Op: block.OpDiscard, Off: off, Err: block.ErrNotSupported}
}

// Close closes the file; later calls fail with block.ErrRemoved.
func (d *File) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	return d.f.Close()
}
