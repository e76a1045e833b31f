package ext4

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"time"

	"github.com/gohv/gohv/drivers/block"
)

// maxDirtyBlocks bounds the metadata held in memory between Syncs: an
// operation that leaves more dirty blocks than this syncs by itself.
const maxDirtyBlocks = 4096

// WriteOptions adjust MountRW.
type WriteOptions struct {
	// Now stamps changed inodes; nil means time.Now.
	Now func() time.Time
}

// writer is the state of a read-write mount; FS.mu guards all of it.
type writer struct {
	raw  []byte // the superblock as on disk
	seed uint32 // metadata checksum seed
	csum bool   // metadata_csum
	now  func() time.Time
	gen  uint32 // next i_generation

	// cache holds every metadata block changed since the last Sync
	// (bitmaps, descriptor, inode table, directory and extent blocks);
	// nothing in it reaches the device before Sync. Reads see it.
	cache     map[uint64][]byte
	groups    map[uint32]bool   // groups whose descriptor changed
	inodes    map[uint32]bool   // inodes whose record changed
	dirBlocks map[uint64]uint32 // cached directory blocks and their owner
	extBlocks map[uint64]uint32 // cached extent blocks and their owner
	pending   []blockRun        // blocks freed since the last Sync
	open      map[uint32]int    // inodes with write handles
	j         *journal          // nil: Sync without the journal
	maxDirty  int               // changed blocks that make an operation Sync
	noJournal string            // why j is nil
	dirty     bool
	err       error  // set when a change failed half-way: no more changes or Syncs
	buf       []byte // one block, for partial block writes
}

// blockRun is a range of physical blocks.
type blockRun struct {
	start uint64
	n     uint64
}

// MountRW mounts the filesystem on dev for reading and writing. It
// refuses (with a *FeatureError wrapping ErrUnsupported) volumes whose
// features the writer does not handle, and volumes that are not clean
// (ErrNeedsCheck); Mount still reads those. See the package
// documentation for the crash guarantees.
func MountRW(ctx context.Context, dev block.Device, o WriteOptions) (*FS, error) {
	info := dev.Info()
	if info.ReadOnly {
		return nil, ErrReadOnly
	}
	f, err := Mount(ctx, dev)
	if err != nil {
		return nil, err
	}
	raw := make([]byte, superSize)
	f.ctx = ctx
	if err := f.readAt(raw, superOffset); err != nil {
		return nil, err
	}
	f.ctx = context.Background()
	if err := writable(f.sb, raw); err != nil {
		return nil, err
	}
	if ss := int64(info.SectorSize); ss > f.sb.BlockSize || f.sb.BlockSize%ss != 0 {
		return nil, &FeatureError{Reason: fmt.Sprintf("%d-byte blocks on %d-byte sectors", f.sb.BlockSize, ss)}
	}
	if f.sb.BlockSize > 1<<15 {
		return nil, &FeatureError{Reason: "64 KiB blocks (directory record lengths need their special encoding)"}
	}
	if int64(f.sb.InodesPerGroup) > 8*f.sb.BlockSize {
		return nil, fmt.Errorf("%w: %d inodes per group with %d-byte blocks", ErrCorrupt, f.sb.InodesPerGroup, f.sb.BlockSize)
	}
	w := &writer{raw: raw, csum: f.sb.FeatureROCompat&roCompatMetadataCsum != 0, now: o.Now,
		cache: map[uint64][]byte{}, groups: map[uint32]bool{}, inodes: map[uint32]bool{},
		dirBlocks: map[uint64]uint32{}, extBlocks: map[uint64]uint32{}, open: map[uint32]int{},
		buf: make([]byte, f.sb.BlockSize)}
	if w.now == nil {
		w.now = time.Now
	}
	w.seed = csumSeed(f.sb, raw)
	w.gen = uint32(w.now().UnixNano())
	f.w = w
	if w.j, w.noJournal, err = f.openJournal(); err != nil {
		return nil, err
	}
	w.maxDirty = maxDirtyBlocks
	if w.j != nil {
		// Sync well before a transaction outgrows the journal (a single
		// operation changes a few blocks; one that does not fit is
		// synced without the journal).
		per := w.j.tagsPerDescriptor(int(f.sb.BlockSize))
		room := int(w.j.js.MaxLen-w.j.js.First) * per / (per + 1)
		w.maxDirty = min(w.maxDirty, room/2)
	}
	return f, nil
}

// Writable reports whether f was mounted read-write.
func (f *FS) Writable() bool { return f.w != nil }

// Journaled reports whether Syncs are jbd2 transactions in the volume's
// journal; when not, it says why.
func (f *FS) Journaled() (bool, string) {
	if f.w == nil {
		return false, "read-only"
	}
	return f.w.j != nil, f.w.noJournal
}

// writeAt writes any byte range of the device (read-modify-write of
// partial sectors).
func (f *FS) writeAt(p []byte, off int64) error {
	ss := int64(f.dev.Info().SectorSize)
	start := off / ss * ss
	end := (off + int64(len(p)) + ss - 1) / ss * ss
	if start == off && end == off+int64(len(p)) {
		if _, err := f.dev.WriteAt(f.ctx, p, off); err != nil {
			return fmt.Errorf("ext4: write at %d: %w", off, err)
		}
		return nil
	}
	buf := make([]byte, end-start)
	if _, err := f.dev.ReadAt(f.ctx, buf, start); err != nil {
		return fmt.Errorf("ext4: read at %d: %w", start, err)
	}
	copy(buf[off-start:], p)
	if _, err := f.dev.WriteAt(f.ctx, buf, start); err != nil {
		return fmt.Errorf("ext4: write at %d: %w", start, err)
	}
	return nil
}

// overlay copies the cached (changed, unsynced) blocks over p, read from
// the device at off.
func (f *FS) overlay(p []byte, off int64) {
	if f.w == nil || len(f.w.cache) == 0 || len(p) == 0 {
		return
	}
	bs := f.sb.BlockSize
	first, last := off/bs, (off+int64(len(p))-1)/bs
	if last-first > int64(len(f.w.cache)) {
		for blk, b := range f.w.cache {
			if int64(blk) >= first && int64(blk) <= last {
				f.copyBlock(p, off, int64(blk), b)
			}
		}
		return
	}
	for blk := first; blk <= last; blk++ {
		if b, ok := f.w.cache[uint64(blk)]; ok {
			f.copyBlock(p, off, blk, b)
		}
	}
}

func (f *FS) copyBlock(p []byte, off, blk int64, b []byte) {
	bs := f.sb.BlockSize
	bo := blk * bs
	s, e := max(bo, off), min(bo+bs, off+int64(len(p)))
	copy(p[s-off:e-off], b[s-bo:e-bo])
}

// meta returns block blk for changing: the cached copy, or the device's
// contents, now cached. The caller records why it changed it.
func (f *FS) meta(blk uint64) ([]byte, error) {
	if b, ok := f.w.cache[blk]; ok {
		return b, nil
	}
	if blk == 0 || blk >= f.sb.BlocksCount {
		return nil, fmt.Errorf("%w: metadata block %d", ErrCorrupt, blk)
	}
	b := make([]byte, f.sb.BlockSize)
	if err := f.readBlock(b, blk); err != nil {
		return nil, err
	}
	f.w.cache[blk] = b
	f.w.dirty = true
	return b, nil
}

// peek returns block blk for reading (cached or freshly read).
func (f *FS) peek(blk uint64) ([]byte, error) {
	if b, ok := f.w.cache[blk]; ok {
		return b, nil
	}
	b := make([]byte, f.sb.BlockSize)
	return b, f.readBlock(b, blk)
}

// gd returns group g's descriptor, for changing when write is set.
func (f *FS) gd(g uint32, write bool) ([]byte, error) {
	ds := int64(f.sb.DescSize)
	off := (int64(f.sb.FirstDataBlock)+1)*f.sb.BlockSize + int64(g)*ds
	blk := uint64(off / f.sb.BlockSize)
	var b []byte
	var err error
	if write {
		b, err = f.meta(blk)
		f.w.groups[g] = true
	} else {
		b, err = f.peek(blk)
	}
	if err != nil {
		return nil, err
	}
	o := off % f.sb.BlockSize
	return b[o : o+ds], nil
}

// gd16 reads a descriptor count split into 16-bit halves.
func (f *FS) gd16(d []byte, lo, hi int) uint32 {
	le := binary.LittleEndian
	v := uint32(le.Uint16(d[lo:]))
	if f.sb.DescSize >= descSize64Min {
		v |= uint32(le.Uint16(d[hi:])) << 16
	}
	return v
}

func (f *FS) putGD16(d []byte, lo, hi int, v uint32) {
	le := binary.LittleEndian
	le.PutUint16(d[lo:], uint16(v))
	if f.sb.DescSize >= descSize64Min {
		le.PutUint16(d[hi:], uint16(v>>16))
	}
}

// gdBlock reads a block number split into 32-bit halves, checking it.
func (f *FS) gdBlock(d []byte, lo, hi int) (uint64, error) {
	le := binary.LittleEndian
	v := uint64(le.Uint32(d[lo:]))
	if f.sb.DescSize >= descSize64Min {
		v |= uint64(le.Uint32(d[hi:])) << 32
	}
	if v == 0 || v >= f.sb.BlocksCount {
		return 0, fmt.Errorf("%w: bitmap at block %d", ErrCorrupt, v)
	}
	return v, nil
}

// groupStart is the first block of group g; groupBlocks its block count.
func (f *FS) groupStart(g uint32) uint64 {
	return uint64(f.sb.FirstDataBlock) + uint64(g)*uint64(f.sb.BlocksPerGroup)
}

func (f *FS) groupBlocks(g uint32) uint64 {
	return min(uint64(f.sb.BlocksPerGroup), f.sb.BlocksCount-f.groupStart(g))
}

// blockBitmap returns group g's block bitmap, building it when the group
// is still BLOCK_UNINIT; write caches it (and clears the flag).
func (f *FS) blockBitmap(g uint32, write bool) ([]byte, error) {
	d, err := f.gd(g, false)
	if err != nil {
		return nil, err
	}
	blk, err := f.gdBlock(d, bgBlockBitmapLo, bgBlockBitmapHi)
	if err != nil {
		return nil, err
	}
	if b, ok := f.w.cache[blk]; ok {
		return b, nil
	}
	if binary.LittleEndian.Uint16(d[bgFlags:])&bgFlagBlockUninit == 0 {
		if write {
			return f.meta(blk)
		}
		return f.peek(blk)
	}
	b, err := f.initBlockBitmap(g)
	if err != nil {
		return nil, err
	}
	if write {
		f.w.cache[blk] = b
		f.w.dirty = true
		d, err := f.gd(g, true)
		if err != nil {
			return nil, err
		}
		le := binary.LittleEndian
		le.PutUint16(d[bgFlags:], le.Uint16(d[bgFlags:])&^bgFlagBlockUninit)
	}
	return b, nil
}

// initBlockBitmap computes the bitmap of a BLOCK_UNINIT group: its
// superblock and descriptor copies, and every group's bitmaps and inode
// table that lie in it (flex_bg packs them into few groups). The result
// must agree with the descriptor's free count.
func (f *FS) initBlockBitmap(g uint32) ([]byte, error) {
	bs := f.sb.BlockSize
	b := make([]byte, bs)
	start, n := f.groupStart(g), f.groupBlocks(g)
	for i := n; i < uint64(8*bs); i++ {
		setBit(b, i)
	}
	if hasSuperBackup(f.sb, g) {
		gdt := (uint64(f.sb.Groups)*uint64(f.sb.DescSize) + uint64(bs) - 1) / uint64(bs)
		res := uint64(binary.LittleEndian.Uint16(f.w.raw[sbReservedGDTBlocks:]))
		for i := uint64(0); i < 1+gdt+res && i < n; i++ {
			setBit(b, i)
		}
	}
	tableBlocks := (uint64(f.sb.InodesPerGroup)*uint64(f.sb.InodeSize) + uint64(bs) - 1) / uint64(bs)
	mark := func(blk, cnt uint64) {
		for i := range cnt {
			if x := blk + i; x >= start && x < start+n {
				setBit(b, x-start)
			}
		}
	}
	for h := range f.sb.Groups {
		d, err := f.gd(h, false)
		if err != nil {
			return nil, err
		}
		bb, err := f.gdBlock(d, bgBlockBitmapLo, bgBlockBitmapHi)
		if err != nil {
			return nil, err
		}
		ib, err := f.gdBlock(d, bgInodeBitmapLo, bgInodeBitmapHi)
		if err != nil {
			return nil, err
		}
		mark(bb, 1)
		mark(ib, 1)
		mark(f.tables[h], tableBlocks)
	}
	d, err := f.gd(g, false)
	if err != nil {
		return nil, err
	}
	used := uint64(0)
	for _, c := range b {
		used += uint64(bits.OnesCount8(c))
	}
	if free := uint64(8*bs) - used; free != uint64(f.gd16(d, bgFreeBlocksLo, bgFreeBlocksHi)) {
		return nil, fmt.Errorf("%w: uninitialised group %d: %d free blocks computed, descriptor says %d", ErrCorrupt, g, free, f.gd16(d, bgFreeBlocksLo, bgFreeBlocksHi))
	}
	return b, nil
}

// inodeBitmap returns group g's inode bitmap (all free when INODE_UNINIT;
// write then caches it and clears the flag).
func (f *FS) inodeBitmap(g uint32, write bool) ([]byte, error) {
	d, err := f.gd(g, false)
	if err != nil {
		return nil, err
	}
	blk, err := f.gdBlock(d, bgInodeBitmapLo, bgInodeBitmapHi)
	if err != nil {
		return nil, err
	}
	if b, ok := f.w.cache[blk]; ok {
		return b, nil
	}
	if binary.LittleEndian.Uint16(d[bgFlags:])&bgFlagInodeUninit == 0 {
		if write {
			return f.meta(blk)
		}
		return f.peek(blk)
	}
	b := make([]byte, f.sb.BlockSize)
	for i := uint64(f.sb.InodesPerGroup); i < uint64(8*f.sb.BlockSize); i++ {
		setBit(b, i)
	}
	if write {
		f.w.cache[blk] = b
		f.w.dirty = true
		d, err := f.gd(g, true)
		if err != nil {
			return nil, err
		}
		le := binary.LittleEndian
		le.PutUint16(d[bgFlags:], le.Uint16(d[bgFlags:])&^bgFlagInodeUninit)
	}
	return b, nil
}

func setBit(b []byte, i uint64)      { b[i/8] |= 1 << (i % 8) }
func clearBit(b []byte, i uint64)    { b[i/8] &^= 1 << (i % 8) }
func bitSet(b []byte, i uint64) bool { return b[i/8]&(1<<(i%8)) != 0 }

// firstClear finds the first clear bit in [from, to), or to.
func firstClear(b []byte, from, to uint64) uint64 {
	for i := from; i < to; {
		if i%8 == 0 && b[i/8] == 0xFF {
			i += 8
			continue
		}
		if !bitSet(b, i) {
			return i
		}
		i++
	}
	return to
}

// allocBlocks takes up to want free blocks in one run, the first at or
// after goal when possible.
func (f *FS) allocBlocks(goal uint64, want uint64) (uint64, uint64, error) {
	want = min(want, initMaxLen)
	gg := uint32(0)
	if goal >= uint64(f.sb.FirstDataBlock) && goal < f.sb.BlocksCount {
		gg = uint32((goal - uint64(f.sb.FirstDataBlock)) / uint64(f.sb.BlocksPerGroup))
	}
	for i := uint32(0); i <= f.sb.Groups; i++ {
		g := (gg + i) % f.sb.Groups
		d, err := f.gd(g, false)
		if err != nil {
			return 0, 0, err
		}
		if f.gd16(d, bgFreeBlocksLo, bgFreeBlocksHi) == 0 {
			continue
		}
		bm, err := f.blockBitmap(g, false)
		if err != nil {
			return 0, 0, err
		}
		n, from := f.groupBlocks(g), uint64(0)
		if i == 0 && goal > f.groupStart(g) {
			from = min(goal-f.groupStart(g), n)
		}
		k := firstClear(bm, from, n)
		if k == n {
			continue
		}
		got := uint64(1)
		for k+got < n && got < want && !bitSet(bm, k+got) {
			got++
		}
		if bm, err = f.blockBitmap(g, true); err != nil {
			return 0, 0, err
		}
		for j := range got {
			setBit(bm, k+j)
		}
		if d, err = f.gd(g, true); err != nil {
			return 0, 0, err
		}
		free := f.gd16(d, bgFreeBlocksLo, bgFreeBlocksHi)
		if free < uint32(got) {
			return 0, 0, fmt.Errorf("%w: group %d free count %d below its bitmap", ErrCorrupt, g, free)
		}
		f.putGD16(d, bgFreeBlocksLo, bgFreeBlocksHi, free-uint32(got))
		return f.groupStart(g) + k, got, nil
	}
	return 0, 0, ErrNoSpace
}

// unallocBlocks returns blocks taken in this transaction that nothing
// references yet (their data was never written).
func (f *FS) unallocBlocks(start, n uint64) error {
	return f.releaseBlocks(blockRun{start, n})
}

// freeBlocks frees blocks at the next Sync: until then they stay marked
// in use, so nothing written before the Sync lands on blocks the synced
// metadata still references.
func (f *FS) freeBlocks(start, n uint64) {
	if n > 0 {
		f.w.pending = append(f.w.pending, blockRun{start, n})
		f.w.dirty = true
	}
}

// releaseBlocks clears a run's bits and adds it to the free counts.
func (f *FS) releaseBlocks(r blockRun) error {
	for r.n > 0 {
		if r.start < uint64(f.sb.FirstDataBlock) || r.start >= f.sb.BlocksCount {
			return fmt.Errorf("%w: freeing block %d", ErrCorrupt, r.start)
		}
		g := uint32((r.start - uint64(f.sb.FirstDataBlock)) / uint64(f.sb.BlocksPerGroup))
		k := r.start - f.groupStart(g)
		cnt := min(r.n, f.groupBlocks(g)-k)
		bm, err := f.blockBitmap(g, true)
		if err != nil {
			return err
		}
		for j := range cnt {
			if !bitSet(bm, k+j) {
				return fmt.Errorf("%w: freeing free block %d", ErrCorrupt, r.start+j)
			}
			clearBit(bm, k+j)
		}
		d, err := f.gd(g, true)
		if err != nil {
			return err
		}
		f.putGD16(d, bgFreeBlocksLo, bgFreeBlocksHi, f.gd16(d, bgFreeBlocksLo, bgFreeBlocksHi)+uint32(cnt))
		r.start, r.n = r.start+cnt, r.n-cnt
	}
	return nil
}

// haveSpace checks that blocks blocks and inodes inodes are free, so
// that an operation needing them does not fail half-way.
func (f *FS) haveSpace(blocks uint64, inodes uint32) error {
	var fb uint64
	var fi uint32
	for g := range f.sb.Groups {
		d, err := f.gd(g, false)
		if err != nil {
			return err
		}
		fb += uint64(f.gd16(d, bgFreeBlocksLo, bgFreeBlocksHi))
		fi += f.gd16(d, bgFreeInodesLo, bgFreeInodesHi)
	}
	if fb < blocks || fi < inodes {
		return ErrNoSpace
	}
	return nil
}

// allocInode takes a free inode, preferring group goal.
func (f *FS) allocInode(goal uint32, dir bool) (uint32, error) {
	ipg := uint64(f.sb.InodesPerGroup)
	for i := range f.sb.Groups {
		g := (goal + i) % f.sb.Groups
		d, err := f.gd(g, false)
		if err != nil {
			return 0, err
		}
		if f.gd16(d, bgFreeInodesLo, bgFreeInodesHi) == 0 {
			continue
		}
		bm, err := f.inodeBitmap(g, false)
		if err != nil {
			return 0, err
		}
		from := uint64(0)
		if g == 0 {
			from = uint64(f.sb.FirstIno) - 1
		}
		k := firstClear(bm, from, ipg)
		if k == ipg || uint64(g)*ipg+k+1 > uint64(f.sb.InodesCount) {
			continue
		}
		if bm, err = f.inodeBitmap(g, true); err != nil {
			return 0, err
		}
		setBit(bm, k)
		if _, err := f.blockBitmap(g, true); err != nil { // as Linux: a group with inodes has a block bitmap
			return 0, err
		}
		if d, err = f.gd(g, true); err != nil {
			return 0, err
		}
		f.putGD16(d, bgFreeInodesLo, bgFreeInodesHi, f.gd16(d, bgFreeInodesLo, bgFreeInodesHi)-1)
		if dir {
			f.putGD16(d, bgUsedDirsLo, bgUsedDirsHi, f.gd16(d, bgUsedDirsLo, bgUsedDirsHi)+1)
		}
		if f.w.csum {
			if unused := uint64(f.gd16(d, bgItableUnusedLo, bgItableUnusedHi)); k >= ipg-min(unused, ipg) {
				f.putGD16(d, bgItableUnusedLo, bgItableUnusedHi, uint32(ipg-k-1))
			}
		}
		return uint32(uint64(g)*ipg + k + 1), nil
	}
	return 0, ErrNoSpace
}

// freeInode marks ino free and its record deleted.
func (f *FS) freeInode(ino uint32, dir bool) error {
	g, k := (ino-1)/f.sb.InodesPerGroup, uint64((ino-1)%f.sb.InodesPerGroup)
	bm, err := f.inodeBitmap(g, true)
	if err != nil {
		return err
	}
	if !bitSet(bm, k) {
		return fmt.Errorf("%w: freeing free inode %d", ErrCorrupt, ino)
	}
	clearBit(bm, k)
	d, err := f.gd(g, true)
	if err != nil {
		return err
	}
	f.putGD16(d, bgFreeInodesLo, bgFreeInodesHi, f.gd16(d, bgFreeInodesLo, bgFreeInodesHi)+1)
	if dir {
		f.putGD16(d, bgUsedDirsLo, bgUsedDirsHi, f.gd16(d, bgUsedDirsLo, bgUsedDirsHi)-1)
	}
	rec, err := f.inodeRec(ino)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	le.PutUint16(rec[inLinks:], 0)
	le.PutUint32(rec[inDtime:], uint32(f.w.now().Unix()))
	return nil
}

// inodeRec returns inode ino's record for changing (its checksum is set
// at Sync).
func (f *FS) inodeRec(ino uint32) ([]byte, error) {
	if ino == 0 || ino > f.sb.InodesCount {
		return nil, fmt.Errorf("%w: inode number %d", ErrCorrupt, ino)
	}
	g, idx := (ino-1)/f.sb.InodesPerGroup, (ino-1)%f.sb.InodesPerGroup
	off := int64(f.tables[g])*f.sb.BlockSize + int64(idx)*int64(f.sb.InodeSize)
	b, err := f.meta(uint64(off / f.sb.BlockSize))
	if err != nil {
		return nil, err
	}
	f.w.inodes[ino] = true
	o := off % f.sb.BlockSize
	return b[o : o+int64(f.sb.InodeSize)], nil
}

// Sync makes every change durable and the volume consistent on disk.
// With a usable internal journal the changed metadata is one jbd2
// transaction (logged, committed, written in place, journal emptied);
// without one Sync writes the superblock marked "not clean", the
// changed metadata, and then the superblock marked clean. See the
// package documentation.
func (f *FS) Sync() error {
	if f.w == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncLocked()
}

func (f *FS) syncLocked() error {
	w := f.w
	if w.err != nil {
		return w.err
	}
	if !w.dirty {
		return f.flush()
	}
	if err := f.commitLocked(); err != nil {
		return f.fail(err)
	}
	clear(w.cache)
	clear(w.groups)
	clear(w.inodes)
	clear(w.dirBlocks)
	clear(w.extBlocks)
	w.dirty = false
	return nil
}

func (f *FS) commitLocked() error {
	w := f.w
	// Blocks freed in this transaction become free now; drop cached
	// copies of freed metadata blocks (they need not be written).
	for _, r := range w.pending {
		if err := f.releaseBlocks(r); err != nil {
			return err
		}
	}
	for blk := range w.cache {
		for _, r := range w.pending {
			if blk >= r.start && blk < r.start+r.n {
				delete(w.cache, blk)
				delete(w.dirBlocks, blk)
				delete(w.extBlocks, blk)
			}
		}
	}
	w.pending = w.pending[:0]
	if err := f.checksums(); err != nil {
		return err
	}
	var freeB uint64
	var freeI uint32
	for g := range f.sb.Groups {
		d, err := f.gd(g, false)
		if err != nil {
			return err
		}
		freeB += uint64(f.gd16(d, bgFreeBlocksLo, bgFreeBlocksHi))
		freeI += f.gd16(d, bgFreeInodesLo, bgFreeInodesHi)
	}
	blks := make([]uint64, 0, len(w.cache)+1)
	for blk := range w.cache {
		blks = append(blks, blk)
	}
	slices.Sort(blks)
	data := make([][]byte, len(blks), len(blks)+1)
	for i, blk := range blks {
		data[i] = w.cache[blk]
	}
	le := binary.LittleEndian
	old := slices.Clone(w.raw)
	le.PutUint32(w.raw[sbFreeBlocksLo:], uint32(freeB))
	if f.sb.FeatureIncompat&incompat64bit != 0 {
		le.PutUint32(w.raw[sbFreeBlocksHi:], uint32(freeB>>32))
	}
	le.PutUint32(w.raw[sbFreeInodes:], freeI)
	le.PutUint32(w.raw[sbWtime:], uint32(w.now().Unix()))
	inc := le.Uint32(w.raw[sbFeatureIncompat:])
	st := le.Uint16(w.raw[sbState:])

	if j := w.j; j != nil {
		// The superblock's block is logged too, with the new counts (and
		// needs_recovery set, as recovery expects and then clears).
		bs := f.sb.BlockSize
		sbBlk := uint64(superOffset / bs)
		blkData := make([]byte, bs)
		if err := f.readBlock(blkData, sbBlk); err != nil {
			return err
		}
		copy(blkData[superOffset%bs:], f.superImage(w.raw, inc|incompatRecover, st))
		lblks, ldata := append(blks, sbBlk), append(data, blkData)
		if j.fits(int(bs), lblks, ldata) {
			mark := func() error {
				// The on-disk superblock, as it was, flagged for recovery.
				return f.writeAt(f.superImage(old, inc|incompatRecover, st), superOffset)
			}
			if err := f.logTransaction(lblks, ldata, mark); err != nil {
				return err
			}
			if err := f.writeAt(f.superImage(w.raw, inc&^incompatRecover, st), superOffset); err != nil {
				return err
			}
			copy(w.raw, f.superImage(w.raw, inc&^incompatRecover, st))
			return f.flush()
		}
	}
	// Without the journal: mark the volume not clean while metadata is
	// written in place.
	if err := f.writeAt(f.superImage(old, inc, st&^stateValid), superOffset); err != nil {
		return err
	}
	if err := f.flush(); err != nil { // also makes the file data written so far durable
		return err
	}
	for i, blk := range blks {
		if err := f.writeAt(data[i], int64(blk)*f.sb.BlockSize); err != nil {
			return err
		}
	}
	if err := f.flush(); err != nil {
		return err
	}
	copy(w.raw, f.superImage(w.raw, inc, st|stateValid))
	if err := f.writeAt(w.raw, superOffset); err != nil {
		return err
	}
	return f.flush()
}

func (f *FS) flush() error {
	if err := f.dev.Flush(f.ctx); err != nil {
		return fmt.Errorf("ext4: flush: %w", err)
	}
	return nil
}

// superImage returns a copy of superblock raw with incompat features inc,
// state st and its checksum.
func (f *FS) superImage(raw []byte, inc uint32, st uint16) []byte {
	b := slices.Clone(raw)
	le := binary.LittleEndian
	le.PutUint32(b[sbFeatureIncompat:], inc)
	le.PutUint16(b[sbState:], st)
	if f.w.csum {
		le.PutUint32(b[sbChecksum:], crc32c(^uint32(0), b[:sbChecksum]))
	}
	return b
}

// checksums sets the checksums of everything changed: bitmaps and
// descriptors of changed groups, inodes, directory and extent blocks.
func (f *FS) checksums() error {
	w := f.w
	if !w.csum {
		return nil
	}
	le := binary.LittleEndian
	for g := range w.groups {
		d, err := f.gd(g, true)
		if err != nil {
			return err
		}
		flags := le.Uint16(d[bgFlags:])
		if flags&bgFlagBlockUninit == 0 {
			bm, err := f.blockBitmap(g, false)
			if err != nil {
				return err
			}
			c := crc32c(w.seed, bm[:f.sb.BlocksPerGroup/8])
			le.PutUint16(d[bgBlockCsumLo:], uint16(c))
			if f.sb.DescSize >= bgBlockCsumHiEnd {
				le.PutUint16(d[bgBlockCsumHi:], uint16(c>>16))
			}
		}
		if flags&bgFlagInodeUninit == 0 {
			bm, err := f.inodeBitmap(g, false)
			if err != nil {
				return err
			}
			c := crc32c(w.seed, bm[:f.sb.InodesPerGroup/8])
			le.PutUint16(d[bgInodeCsumLo:], uint16(c))
			if f.sb.DescSize >= bgInodeCsumHiEnd {
				le.PutUint16(d[bgInodeCsumHi:], uint16(c>>16))
			}
		}
		le.PutUint16(d[bgChecksum:], groupDescCsum(w.seed, g, d))
	}
	gen := func(ino uint32) (uint32, error) {
		rec, err := f.inodeRec(ino)
		if err != nil {
			return 0, err
		}
		return le.Uint32(rec[inGeneration:]), nil
	}
	for blk, ino := range w.dirBlocks {
		b := w.cache[blk]
		if b == nil || !hasDirTail(b) {
			continue
		}
		g, err := gen(ino)
		if err != nil {
			return err
		}
		t := len(b) - dirTailSize
		le.PutUint32(b[t+dirTailCsum:], crc32c(ownerSeed(w.seed, ino, g), b[:t]))
	}
	for blk, ino := range w.extBlocks {
		b := w.cache[blk]
		if b == nil {
			continue
		}
		t := ehSize + entrySize*int(le.Uint16(b[ehMax:]))
		if t+extTailSize > len(b) {
			continue
		}
		g, err := gen(ino)
		if err != nil {
			return err
		}
		le.PutUint32(b[t:], crc32c(ownerSeed(w.seed, ino, g), b[:t]))
	}
	for ino := range w.inodes {
		rec, err := f.inodeRec(ino)
		if err != nil {
			return err
		}
		setInodeCsum(w.seed, ino, rec)
	}
	return nil
}
