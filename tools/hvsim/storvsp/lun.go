package storvsp

import (
	"fmt"
	"sort"
	"sync"
)

// LUNConfig describes one disk attached to a controller.
type LUNConfig struct {
	// Store backs the disk; its size is rounded down to whole sectors.
	Store Store
	// SectorSize is the logical block size: 512 (default) or 4096.
	SectorSize int
	// PhysicalSectorSize is reported in READ CAPACITY(16) and VPD 0xB0
	// (default 4096; at least SectorSize).
	PhysicalSectorSize int
	// ReadOnly makes writes fail with DATA PROTECT and sets WP in MODE
	// SENSE. A store whose ReadOnly method says so forces it.
	ReadOnly bool
	// WriteCache models a volatile write-back cache (WCE in the caching
	// mode page): a completed write is durable only after SYNCHRONIZE
	// CACHE, or when it was FUA; Crash discards what was not. Without it
	// every write goes to the store before it completes.
	WriteCache bool
	// NoDiscard hides UNMAP and the unmap variant of WRITE SAME (VPD 0xB2
	// reports no provisioning).
	NoDiscard bool
	// Serial is the unit serial number (VPD 0x80); default derived from the
	// controller instance and the address.
	Serial string
	// ID is the 16-byte NAA identifier of VPD 0x83 (the first nibble is
	// forced to 6); default derived like Serial.
	ID [16]byte
}

// cacheBlock is the granule of the write-back cache model.
const cacheBlock = 4096

type block = [cacheBlock]byte

// lun is an attached disk: its config, the write-back cache model and
// counters.
type lun struct {
	cfg     LUNConfig
	sectors uint64
	size    int64 // sectors × SectorSize

	mu    sync.Mutex
	dirty map[int64]*block // by byte offset / cacheBlock
	free  []*block

	stats lunStats
}

type lunStats struct {
	mu                                 sync.Mutex
	reads, writes, flushes, unmaps     uint64
	bytesRead, bytesWritten, discarded uint64
}

func newLUN(cfg LUNConfig) (*lun, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("%w: no store", ErrAddress)
	}
	if ro, ok := cfg.Store.(interface{ ReadOnly() bool }); ok && ro.ReadOnly() {
		cfg.ReadOnly = true
	}
	if cfg.SectorSize == 0 {
		cfg.SectorSize = 512
	}
	if cfg.SectorSize != 512 && cfg.SectorSize != 4096 {
		return nil, fmt.Errorf("storvsp: sector size %d: want 512 or 4096", cfg.SectorSize)
	}
	if cfg.PhysicalSectorSize == 0 {
		cfg.PhysicalSectorSize = 4096
	}
	if cfg.PhysicalSectorSize < cfg.SectorSize || cfg.PhysicalSectorSize%cfg.SectorSize != 0 ||
		cfg.PhysicalSectorSize&(cfg.PhysicalSectorSize-1) != 0 {
		return nil, fmt.Errorf("storvsp: physical sector size %d with logical %d", cfg.PhysicalSectorSize, cfg.SectorSize)
	}
	sectors := uint64(cfg.Store.Size()) / uint64(cfg.SectorSize)
	if sectors == 0 {
		return nil, fmt.Errorf("storvsp: store of %d bytes holds no sector", cfg.Store.Size())
	}
	return &lun{cfg: cfg, sectors: sectors, size: int64(sectors) * int64(cfg.SectorSize),
		dirty: map[int64]*block{}}, nil
}

// readAt reads the disk as the guest sees it: store contents overlaid
// with the dirty cache blocks.
func (u *lun) readAt(p []byte, off int64) error {
	if _, err := u.cfg.Store.ReadAt(p, off); err != nil {
		return err
	}
	if !u.cfg.WriteCache {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.dirty) == 0 {
		return nil
	}
	for pos := off - off%cacheBlock; pos < off+int64(len(p)); pos += cacheBlock {
		b := u.dirty[pos/cacheBlock]
		if b == nil {
			continue
		}
		lo, hi := max(pos, off), min(pos+cacheBlock, off+int64(len(p)))
		copy(p[lo-off:hi-off], b[lo-pos:hi-pos])
	}
	return nil
}

// writeAt writes p at off. With the cache model it lands in dirty blocks
// (read-modify-write of partial blocks); fua writes those blocks through
// and syncs the store before returning.
func (u *lun) writeAt(p []byte, off int64, fua bool) error {
	if !u.cfg.WriteCache {
		if _, err := u.cfg.Store.WriteAt(p, off); err != nil {
			return err
		}
		if fua {
			return u.cfg.Store.Sync()
		}
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for pos := off - off%cacheBlock; pos < off+int64(len(p)); pos += cacheBlock {
		lo, hi := max(pos, off), min(pos+cacheBlock, off+int64(len(p)))
		b := u.dirty[pos/cacheBlock]
		if b == nil {
			b = u.getBlock()
			if lo != pos || hi != min(pos+cacheBlock, u.size) {
				if err := u.fill(b, pos); err != nil {
					u.free = append(u.free, b)
					return err
				}
			}
			u.dirty[pos/cacheBlock] = b
		}
		copy(b[lo-pos:hi-pos], p[lo-off:hi-off])
	}
	if !fua {
		return nil
	}
	for pos := off - off%cacheBlock; pos < off+int64(len(p)); pos += cacheBlock {
		if err := u.writeBack(pos / cacheBlock); err != nil {
			return err
		}
	}
	return u.cfg.Store.Sync()
}

func (u *lun) getBlock() *block {
	if n := len(u.free); n > 0 {
		b := u.free[n-1]
		u.free = u.free[:n-1]
		return b
	}
	return new(block)
}

// fill loads the store's bytes of the cache block at pos.
func (u *lun) fill(b *block, pos int64) error {
	n := min(int64(cacheBlock), u.size-pos)
	clear(b[n:])
	_, err := u.cfg.Store.ReadAt(b[:n], pos)
	return err
}

// writeBack writes dirty block i to the store and forgets it. u.mu held.
func (u *lun) writeBack(i int64) error {
	b := u.dirty[i]
	if b == nil {
		return nil
	}
	pos := i * cacheBlock
	n := min(int64(cacheBlock), u.size-pos)
	if _, err := u.cfg.Store.WriteAt(b[:n], pos); err != nil {
		return err
	}
	delete(u.dirty, i)
	u.free = append(u.free, b)
	return nil
}

// flush writes every dirty block back (in offset order) and syncs.
func (u *lun) flush() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.dirty) > 0 {
		idx := make([]int64, 0, len(u.dirty))
		for i := range u.dirty {
			idx = append(idx, i)
		}
		sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
		for _, i := range idx {
			if err := u.writeBack(i); err != nil {
				return err
			}
		}
	}
	return u.cfg.Store.Sync()
}

// crash discards the volatile cache: writes not flushed are lost.
func (u *lun) crash() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := len(u.dirty)
	for i, b := range u.dirty {
		u.free = append(u.free, b)
		delete(u.dirty, i)
	}
	return n
}

// dirtyBlocks counts the cache blocks not yet written back.
func (u *lun) dirtyBlocks() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.dirty)
}

// zero writes zeros over [off, off+n) (UNMAP with LBPRZ, WRITE SAME with
// a zero block), through the cache model like any write.
func (u *lun) zero(off, n int64, scratch []byte) error {
	clear(scratch)
	for n > 0 {
		m := min(n, int64(len(scratch)))
		if err := u.writeAt(scratch[:m], off, false); err != nil {
			return err
		}
		off += m
		n -= m
	}
	return nil
}
