package fat

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gohv/gohv/drivers/block"
)

// FAT entry values (spec "FAT Data Structure"; FAT32 entries are 28 bits).
const (
	fatMask    = 0x0FFFFFFF
	fatFree    = 0
	fatBad     = 0x0FFFFFF7
	fatEOCMin  = 0x0FFFFFF8
	extMirror  = 0x80 // BPB_ExtFlags bit 7: only the active FAT is used
	extActive  = 0x0F
	maxClusSz  = 64 << 10
	minBPBSize = 512
)

// Errors of the mounted filesystem.
var (
	// ErrFormat: the volume is not a FAT32 volume this package accepts, or
	// its metadata is corrupt (a broken cluster chain, a directory loop).
	ErrFormat = errors.New("fat: invalid or unsupported FAT32 volume")
	// ErrFull: no free cluster left.
	ErrFull = errors.New("fat: volume full")
	// ErrBusy: the file is open for writing and cannot be removed or
	// renamed until it is closed.
	ErrBusy = errors.New("fat: file is open")
	// ErrReadOnly: a write on a volume mounted read-only.
	ErrReadOnly = errors.New("fat: read-only volume")
)

// MountOptions adjust Mount.
type MountOptions struct {
	// ReadOnly refuses every change (also implied by a read-only device).
	ReadOnly bool
	// Now stamps modified entries; nil means time.Now.
	Now func() time.Time
}

// FS is a mounted FAT32 volume. Its methods are safe for concurrent use;
// one mutex serialises them (FAT volumes are small and this keeps the
// on-disk update order simple, see the package documentation).
type FS struct {
	dev block.Device
	ctx context.Context
	now func() time.Time
	ro  bool

	// Geometry, from the BPB (validated at Mount).
	bps         int64  // bytes per sector
	clusterSize int64  // bytes
	fatOff      int64  // byte offset of FAT 0
	fatBytes    int64  // bytes per FAT
	fatCopies   []int  // FAT numbers written on update
	activeFAT   int    // FAT read from
	dataOff     int64  // byte offset of cluster 2
	clusters    uint32 // data clusters: valid numbers are 2..clusters+1
	root        uint32
	fsInfo      int64 // byte offset of FSInfo, or -1

	mu       sync.Mutex       // guards everything below and the volume
	fatCache map[int64][]byte // FAT sectors by index, as on disk
	free     uint32           // free clusters, or ^0 when unknown
	nextFree uint32           // allocation hint
	open     map[entryRef]int // entries with write handles
	secBuf   []byte           // one device sector, for partial writes
}

// entryRef names a directory entry: the directory's first cluster and the
// index of its short entry.
type entryRef struct {
	dir  uint32
	slot int
}

// Mount reads the volume on dev. ctx bounds the mount itself; later I/O
// uses context.Background (bound it with the device's own timeouts).
func Mount(ctx context.Context, dev block.Device, o MountOptions) (*FS, error) {
	info := dev.Info()
	dss := int64(info.SectorSize)
	if dss <= 0 {
		return nil, fmt.Errorf("%w: device sector size %d", ErrFormat, dss)
	}
	b := make([]byte, max(dss, minBPBSize))
	if int64(len(b)) > info.Size() {
		return nil, fmt.Errorf("%w: device of %d bytes", ErrFormat, info.Size())
	}
	if _, err := dev.ReadAt(ctx, b, 0); err != nil {
		return nil, fmt.Errorf("fat: boot sector: %w", err)
	}
	bpb, err := ParseBootSector(b)
	if err != nil {
		return nil, err
	}
	if bpb.TotalSectors*uint64(bpb.BytesPerSector) > uint64(info.Size()) {
		return nil, fmt.Errorf("%w: volume of %d sectors is larger than the %d-byte device", ErrFormat, bpb.TotalSectors, info.Size())
	}
	f := &FS{dev: dev, ctx: context.Background(), now: o.Now, ro: o.ReadOnly || info.ReadOnly,
		fatCache: map[int64][]byte{}, open: map[entryRef]int{}, secBuf: make([]byte, dss)}
	if f.now == nil {
		f.now = time.Now
	}
	f.bps = int64(bpb.BytesPerSector)
	f.clusterSize = f.bps * int64(bpb.SectorsPerCluster)
	f.fatOff = int64(bpb.ReservedSectors) * f.bps
	f.fatBytes = int64(bpb.FATSectors) * f.bps
	f.dataOff = f.fatOff + int64(bpb.NumFATs)*f.fatBytes
	f.clusters = bpb.Clusters
	f.root = bpb.RootCluster
	if bpb.ExtFlags&extMirror != 0 {
		f.activeFAT = int(bpb.ExtFlags & extActive)
		f.fatCopies = []int{f.activeFAT}
	} else {
		for i := range int(bpb.NumFATs) {
			f.fatCopies = append(f.fatCopies, i)
		}
	}
	f.free, f.nextFree = ^uint32(0), 2
	f.fsInfo = -1
	if bpb.FSInfoSector != 0 && bpb.FSInfoSector < bpb.ReservedSectors {
		f.fsInfo = int64(bpb.FSInfoSector) * f.bps
		fi := make([]byte, f.bps)
		if err := f.readRaw(fi, f.fsInfo); err != nil {
			return nil, err
		}
		le := binary.LittleEndian
		if le.Uint32(fi[fsiLeadSig:]) == fsiLeadSigValue && le.Uint32(fi[fsiStrucSig:]) == fsiStrucSigValue {
			if n := le.Uint32(fi[fsiFreeCount:]); n <= f.clusters {
				f.free = n
			}
			if n := le.Uint32(fi[fsiNxtFree:]); n >= 2 && n <= f.clusters+1 {
				f.nextFree = n
			}
		} else {
			f.fsInfo = -1
		}
	}
	return f, nil
}

// BootSector is the validated BPB of a FAT32 volume.
type BootSector struct {
	BytesPerSector    uint16
	SectorsPerCluster uint8
	ReservedSectors   uint16
	NumFATs           uint8
	TotalSectors      uint64
	FATSectors        uint32
	ExtFlags          uint16
	RootCluster       uint32
	FSInfoSector      uint16
	VolumeID          uint32
	Label             string
	Clusters          uint32 // data clusters
}

// ParseBootSector decodes and validates a FAT32 boot sector (the first
// 512 bytes of b). A FAT12/16 volume (FATSz16 ≠ 0 or a fixed root
// directory) is ErrFormat: only FAT32 is supported.
func ParseBootSector(b []byte) (BootSector, error) {
	var s BootSector
	if len(b) < minBPBSize || b[bsSignature] != 0x55 || b[bsSignature+1] != 0xAA {
		return s, fmt.Errorf("%w: no boot sector signature", ErrFormat)
	}
	le := binary.LittleEndian
	s.BytesPerSector = le.Uint16(b[bpbBytsPerSc:])
	s.SectorsPerCluster = b[bpbSecPerClu]
	s.ReservedSectors = le.Uint16(b[bpbRsvdSecCn:])
	s.NumFATs = b[bpbNumFATs]
	s.TotalSectors = uint64(le.Uint16(b[bpbTotSec16:]))
	if s.TotalSectors == 0 {
		s.TotalSectors = uint64(le.Uint32(b[bpbTotSec32:]))
	}
	s.FATSectors = le.Uint32(b[bpbFATSz32:])
	s.ExtFlags = le.Uint16(b[bpbExtFlags:])
	s.RootCluster = le.Uint32(b[bpbRootClus:])
	s.FSInfoSector = le.Uint16(b[bpbFSInfo:])
	if b[bsBootSig] == 0x29 {
		s.VolumeID = le.Uint32(b[bsVolID:])
		s.Label = string(trimSpace(b[bsVolLab : bsVolLab+11]))
	}
	bps, spc := int64(s.BytesPerSector), int64(s.SectorsPerCluster)
	switch {
	case bps != 512 && bps != 1024 && bps != 2048 && bps != 4096:
		return s, fmt.Errorf("%w: %d bytes per sector", ErrFormat, bps)
	case spc == 0 || spc&(spc-1) != 0 || bps*spc > maxClusSz:
		return s, fmt.Errorf("%w: %d sectors per cluster", ErrFormat, spc)
	case le.Uint16(b[bpbFATSz16:]) != 0 || le.Uint16(b[bpbRootEntCn:]) != 0:
		return s, fmt.Errorf("%w: FAT12/16 volume (only FAT32 is supported)", ErrFormat)
	case s.ReservedSectors == 0 || s.NumFATs == 0 || s.NumFATs > 4 || s.FATSectors == 0:
		return s, fmt.Errorf("%w: %d reserved sectors, %d FATs of %d sectors", ErrFormat, s.ReservedSectors, s.NumFATs, s.FATSectors)
	case s.ExtFlags&extMirror != 0 && int(s.ExtFlags&extActive) >= int(s.NumFATs):
		return s, fmt.Errorf("%w: active FAT %d of %d", ErrFormat, s.ExtFlags&extActive, s.NumFATs)
	}
	meta := uint64(s.ReservedSectors) + uint64(s.NumFATs)*uint64(s.FATSectors)
	if s.TotalSectors <= meta {
		return s, fmt.Errorf("%w: %d sectors leave no data area", ErrFormat, s.TotalSectors)
	}
	clusters := (s.TotalSectors - meta) / uint64(spc)
	if clusters == 0 || clusters > maxClusters {
		return s, fmt.Errorf("%w: %d clusters", ErrFormat, clusters)
	}
	if uint64(s.FATSectors)*uint64(bps)/fatEntrySz < clusters+2 {
		return s, fmt.Errorf("%w: a FAT of %d sectors cannot map %d clusters", ErrFormat, s.FATSectors, clusters)
	}
	s.Clusters = uint32(clusters)
	if s.RootCluster < 2 || s.RootCluster > s.Clusters+1 {
		return s, fmt.Errorf("%w: root cluster %d", ErrFormat, s.RootCluster)
	}
	return s, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == 0) {
		b = b[:len(b)-1]
	}
	return b
}

// readRaw reads len(p) bytes at byte offset off of the device, any
// alignment (partial sectors go through secBuf; callers hold mu or are
// Mount).
func (f *FS) readRaw(p []byte, off int64) error {
	ss := int64(len(f.secBuf))
	for len(p) > 0 {
		in := off % ss
		if in == 0 && int64(len(p)) >= ss {
			n := int64(len(p)) / ss * ss
			if _, err := f.dev.ReadAt(f.ctx, p[:n], off); err != nil {
				return fmt.Errorf("fat: read: %w", err)
			}
			p, off = p[n:], off+n
			continue
		}
		if _, err := f.dev.ReadAt(f.ctx, f.secBuf, off-in); err != nil {
			return fmt.Errorf("fat: read: %w", err)
		}
		n := copy(p, f.secBuf[in:])
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// writeRaw writes p at byte offset off, reading and rewriting partial
// device sectors.
func (f *FS) writeRaw(p []byte, off int64) error {
	if f.ro {
		return ErrReadOnly
	}
	ss := int64(len(f.secBuf))
	for len(p) > 0 {
		in := off % ss
		if in == 0 && int64(len(p)) >= ss {
			n := int64(len(p)) / ss * ss
			if _, err := f.dev.WriteAt(f.ctx, p[:n], off); err != nil {
				return fmt.Errorf("fat: write: %w", err)
			}
			p, off = p[n:], off+n
			continue
		}
		if _, err := f.dev.ReadAt(f.ctx, f.secBuf, off-in); err != nil {
			return fmt.Errorf("fat: read: %w", err)
		}
		n := copy(f.secBuf[in:], p)
		if _, err := f.dev.WriteAt(f.ctx, f.secBuf, off-in); err != nil {
			return fmt.Errorf("fat: write: %w", err)
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// fatSector returns FAT sector i (of the active FAT), cached.
func (f *FS) fatSector(i int64) ([]byte, error) {
	if s, ok := f.fatCache[i]; ok {
		return s, nil
	}
	s := make([]byte, f.bps)
	if err := f.readRaw(s, f.fatOff+int64(f.activeFAT)*f.fatBytes+i*f.bps); err != nil {
		return nil, err
	}
	f.fatCache[i] = s
	return s, nil
}

// get returns the FAT entry of cluster c (2 ≤ c ≤ clusters+1).
func (f *FS) get(c uint32) (uint32, error) {
	off := int64(c) * fatEntrySz
	s, err := f.fatSector(off / f.bps)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(s[off%f.bps:]) & fatMask, nil
}

// set writes the FAT entry of cluster c to every FAT copy in use,
// keeping the entry's reserved top four bits.
func (f *FS) set(c, v uint32) error {
	off := int64(c) * fatEntrySz
	i := off / f.bps
	s, err := f.fatSector(i)
	if err != nil {
		return err
	}
	e := s[off%f.bps:]
	binary.LittleEndian.PutUint32(e, binary.LittleEndian.Uint32(e)&^fatMask|v&fatMask)
	for _, n := range f.fatCopies {
		if err := f.writeRaw(s, f.fatOff+int64(n)*f.fatBytes+i*f.bps); err != nil {
			return err
		}
	}
	return nil
}

func (f *FS) validCluster(c uint32) bool { return c >= 2 && c <= f.clusters+1 }

// chain returns the clusters of the chain starting at first (none for
// first == 0), validating every link.
func (f *FS) chain(first uint32, limit int) ([]uint32, error) {
	var cs []uint32
	for c := first; c != 0; {
		if !f.validCluster(c) {
			return nil, fmt.Errorf("%w: cluster %d in the chain from %d", ErrFormat, c, first)
		}
		if len(cs) >= limit || len(cs) > int(f.clusters) {
			return nil, fmt.Errorf("%w: the chain from cluster %d is too long (a loop?)", ErrFormat, first)
		}
		cs = append(cs, c)
		next, err := f.get(c)
		if err != nil {
			return nil, err
		}
		switch {
		case next >= fatEOCMin:
			return cs, nil
		case next == fatFree || next == fatBad || next == 1:
			return nil, fmt.Errorf("%w: cluster %d links to %#x", ErrFormat, c, next)
		}
		c = next
	}
	return cs, nil
}

// countFree scans the FAT once to learn the free count.
func (f *FS) countFree() error {
	var n uint32
	for c := uint32(2); c <= f.clusters+1; c++ {
		v, err := f.get(c)
		if err != nil {
			return err
		}
		if v == fatFree {
			n++
		}
	}
	f.free = n
	return nil
}

// alloc takes one free cluster, marks it end-of-chain and, when prev is
// not 0, links prev to it (in that order: a crash in between leaks the
// cluster instead of linking to garbage).
func (f *FS) alloc(prev uint32) (uint32, error) {
	if f.ro {
		return 0, ErrReadOnly
	}
	if f.free == ^uint32(0) {
		if err := f.countFree(); err != nil {
			return 0, err
		}
	}
	if f.free == 0 {
		return 0, ErrFull
	}
	start := f.nextFree
	if !f.validCluster(start) {
		start = 2
	}
	c := start
	for {
		v, err := f.get(c)
		if err != nil {
			return 0, err
		}
		if v == fatFree {
			break
		}
		if c++; c > f.clusters+1 {
			c = 2
		}
		if c == start {
			f.free = 0
			return 0, ErrFull
		}
	}
	if err := f.set(c, fatEOC); err != nil {
		return 0, err
	}
	if prev != 0 {
		if err := f.set(prev, c); err != nil {
			return 0, err
		}
	}
	f.free--
	f.nextFree = c + 1
	return c, nil
}

// freeChain releases every cluster of cs.
func (f *FS) freeChain(cs []uint32) error {
	for _, c := range cs {
		if err := f.set(c, fatFree); err != nil {
			return err
		}
		if f.free != ^uint32(0) {
			f.free++
		}
	}
	return nil
}

func (f *FS) clusterOff(c uint32) int64 { return f.dataOff + int64(c-2)*f.clusterSize }

// zeroCluster fills cluster c with zeros.
func (f *FS) zeroCluster(c uint32) error {
	return f.writeRaw(make([]byte, f.clusterSize), f.clusterOff(c))
}

// Sync writes the FSInfo free count and flushes the device.
func (f *FS) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncLocked()
}

func (f *FS) syncLocked() error {
	if f.ro {
		return nil
	}
	if f.fsInfo >= 0 && f.free == ^uint32(0) {
		if err := f.countFree(); err != nil {
			return err
		}
	}
	if f.fsInfo >= 0 {
		b := make([]byte, 8)
		binary.LittleEndian.PutUint32(b, f.free)
		binary.LittleEndian.PutUint32(b[4:], f.nextFree)
		if err := f.writeRaw(b, f.fsInfo+fsiFreeCount); err != nil {
			return err
		}
	}
	if err := f.dev.Flush(f.ctx); err != nil {
		return fmt.Errorf("fat: flush: %w", err)
	}
	return nil
}
