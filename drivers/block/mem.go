package block

import (
	"context"
	"fmt"
	"sync"
)

// Mem is a Device backed by a byte slice: a RAM disk, and the disk tests
// use. The zero value is not usable; call NewMem or NewMemFrom.
type Mem struct {
	mu      sync.RWMutex // guards data (contents), removed, info.ReadOnly
	info    Info
	data    []byte
	removed bool
	flushes int
}

// NewMem returns a zero-filled memory disk of sectors sectors.
func NewMem(name string, sectorSize int, sectors uint64) (*Mem, error) {
	if sectorSize <= 0 || sectorSize&(sectorSize-1) != 0 {
		return nil, fmt.Errorf("block: sector size %d is not a power of two", sectorSize)
	}
	if sectors > uint64(maxInt/sectorSize) {
		return nil, fmt.Errorf("block: %d sectors do not fit in memory", sectors)
	}
	return NewMemFrom(name, sectorSize, make([]byte, int(sectors)*sectorSize))
}

const maxInt = int(^uint(0) >> 1)

// NewMemFrom returns a memory disk over data (not copied: the disk and the
// caller share it). len(data) must be a multiple of sectorSize.
func NewMemFrom(name string, sectorSize int, data []byte) (*Mem, error) {
	if sectorSize <= 0 || sectorSize&(sectorSize-1) != 0 || len(data)%sectorSize != 0 {
		return nil, fmt.Errorf("block: %d bytes is not a whole number of %d-byte sectors", len(data), sectorSize)
	}
	return &Mem{
		info: Info{Name: name, SectorSize: sectorSize, Sectors: uint64(len(data) / sectorSize),
			CanDiscard: true, Queues: 1},
		data: data,
	}, nil
}

// Info implements Device.
func (m *Mem) Info() Info {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.info
}

// SetReadOnly makes later writes and discards fail with ErrReadOnly (or
// allows them again).
func (m *Mem) SetReadOnly(ro bool) {
	m.mu.Lock()
	m.info.ReadOnly = ro
	m.mu.Unlock()
}

// Remove simulates a hot-remove: every later call fails with ErrRemoved.
func (m *Mem) Remove() {
	m.mu.Lock()
	m.removed = true
	m.mu.Unlock()
}

// Bytes returns the disk's contents (shared, not a copy).
func (m *Mem) Bytes() []byte { return m.data }

// Flushes counts Flush calls (tests check that a filesystem syncs).
func (m *Mem) Flushes() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.flushes
}

func (m *Mem) check(op Op, off, n int64) error {
	if m.removed {
		return &IOError{Op: op, Off: off, Err: ErrRemoved}
	}
	return Check(m.info, op, off, n)
}

// ReadAt implements Device.
func (m *Mem) ReadAt(_ context.Context, p []byte, off int64) (int, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if err := m.check(OpRead, off, int64(len(p))); err != nil {
		return 0, err
	}
	return copy(p, m.data[off:]), nil
}

// WriteAt implements Device.
func (m *Mem) WriteAt(_ context.Context, p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(OpWrite, off, int64(len(p))); err != nil {
		return 0, err
	}
	return copy(m.data[off:], p), nil
}

// Flush implements Device; memory is always "durable".
func (m *Mem) Flush(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.removed {
		return &IOError{Op: OpFlush, Err: ErrRemoved}
	}
	m.flushes++
	return nil
}

// Discard implements Device: the range reads back as zeros.
func (m *Mem) Discard(_ context.Context, off, n int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(OpDiscard, off, n); err != nil {
		return err
	}
	clear(m.data[off : off+n])
	return nil
}
