package ext4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
)

// extentsPerInode is the number of extents i_block holds.
const extentsPerInode = (inBlockLen - ehSize) / entrySize

var (
	errNotWritable = errors.New("file not open for writing")
	errTooBig      = errors.New("file too large")
)

// leafMax is the number of extents one extent block holds.
func (f *FS) leafMax() int { return int(f.sb.BlockSize-ehSize) / entrySize }

// maxFileSize: logical block numbers are 32 bits.
func (f *FS) maxFileSize() int64 { return (1<<32 - 1) * f.sb.BlockSize }

// loadMapping returns in's extents and its leaf blocks for changing. The
// writer changes trees of depth 0 (in the inode) and depth 1 (up to four
// leaf blocks named by the inode); anything deeper is refused.
func (f *FS) loadMapping(in *Inode) ([]extent, []uint64, error) {
	if in.Flags&flagExtents == 0 {
		return nil, nil, &FeatureError{Reason: fmt.Sprintf("inode %d uses block maps, not extents", in.Ino)}
	}
	if in.Flags&flagHugeFile != 0 {
		return nil, nil, &FeatureError{Reason: fmt.Sprintf("inode %d counts i_blocks in file-system blocks", in.Ino)}
	}
	n, err := parseExtentNode(in.block[:], f.sb.BlocksCount)
	if err != nil {
		return nil, nil, fmt.Errorf("inode %d: %w", in.Ino, err)
	}
	switch n.depth {
	case 0:
		return n.leaves, nil, nil
	case 1:
		var xs []extent
		for _, c := range n.children {
			b, err := f.peek(c)
			if err != nil {
				return nil, nil, err
			}
			l, err := parseExtentNode(b, f.sb.BlocksCount)
			if err != nil {
				return nil, nil, fmt.Errorf("inode %d: %w", in.Ino, err)
			}
			if l.depth != 0 {
				return nil, nil, fmt.Errorf("%w: inode %d extent leaf depth %d", ErrCorrupt, in.Ino, l.depth)
			}
			xs = append(xs, l.leaves...)
		}
		if err := sortExtents(xs); err != nil {
			return nil, nil, fmt.Errorf("inode %d: %w", in.Ino, err)
		}
		return xs, slices.Clone(n.children), nil
	}
	return nil, nil, &FeatureError{Reason: fmt.Sprintf("inode %d has an extent tree of depth %d", in.Ino, n.depth)}
}

// maxExtentsWritable is the number of extents a tree the writer stores
// can hold: four full leaf blocks.
func (f *FS) maxExtentsWritable() int { return extentsPerInode * f.leafMax() }

// leavesFor is the number of leaf blocks n extents need (0: in i_block).
func (f *FS) leavesFor(n int) int {
	if n <= extentsPerInode {
		return 0
	}
	return (n + f.leafMax() - 1) / f.leafMax()
}

// addLeaves allocates leaf blocks until there are n, near goal.
func (f *FS) addLeaves(ino uint32, leaves []uint64, n int, goal uint64) ([]uint64, error) {
	for len(leaves) < n {
		blk, _, err := f.allocBlocks(goal, 1)
		if err != nil {
			return leaves, err
		}
		f.w.cache[blk] = make([]byte, f.sb.BlockSize)
		f.w.extBlocks[blk] = ino
		leaves = append(leaves, blk)
	}
	return leaves, nil
}

// findExtent returns the index of the extent holding logical block lb
// and true, or the index where one starting at lb would go and false.
func findExtent(xs []extent, lb uint64) (int, bool) {
	i, _ := slices.BinarySearchFunc(xs, lb, func(x extent, t uint64) int {
		switch {
		case uint64(x.logical)+uint64(x.length) <= t:
			return -1
		case uint64(x.logical) > t:
			return 1
		}
		return 0
	})
	return i, i < len(xs) && uint64(xs[i].logical) <= lb
}

// insertExtent adds x at index i, merging it with its neighbours when
// they continue each other.
func insertExtent(xs []extent, i int, x extent) []extent {
	joins := func(a, b extent) bool {
		return !a.uninit && !b.uninit && a.logical+a.length == b.logical && a.physical+uint64(a.length) == b.physical &&
			a.length+b.length <= initMaxLen
	}
	if i > 0 && joins(xs[i-1], x) {
		xs[i-1].length += x.length
		if i < len(xs) && joins(xs[i-1], xs[i]) {
			xs[i-1].length += xs[i].length
			xs = slices.Delete(xs, i, i+1)
		}
		return xs
	}
	if i < len(xs) && joins(x, xs[i]) {
		xs[i].logical, xs[i].physical, xs[i].length = x.logical, x.physical, x.length+xs[i].length
		return xs
	}
	return slices.Insert(xs, i, x)
}

// storeMapping writes the extent tree of inode ino (record rec) for xs:
// in i_block when it fits, else in leaf blocks (full but the last) named
// by index entries in i_block; leaf blocks are allocated or freed as
// needed. It returns the leaf blocks in use.
func (f *FS) storeMapping(ino uint32, rec []byte, xs []extent, leaves []uint64) ([]uint64, error) {
	ib := rec[inBlock : inBlock+inBlockLen]
	need := f.leavesFor(len(xs))
	if need > extentsPerInode {
		return leaves, &FeatureError{Reason: fmt.Sprintf("inode %d would need more than %d extents", ino, f.maxExtentsWritable())}
	}
	for len(leaves) > need {
		f.freeBlocks(leaves[len(leaves)-1], 1)
		leaves = leaves[:len(leaves)-1]
	}
	clear(ib)
	if need == 0 {
		putExtentHeader(ib, len(xs), extentsPerInode, 0)
		for i, x := range xs {
			putExtent(ib[ehSize+i*entrySize:], x)
		}
		return nil, nil
	}
	var err error
	if leaves, err = f.addLeaves(ino, leaves, need, xs[0].physical); err != nil {
		return leaves, err
	}
	putExtentHeader(ib, need, extentsPerInode, 1)
	per := f.leafMax()
	for k, leaf := range leaves {
		part := xs[k*per : min(len(xs), (k+1)*per)]
		b, err := f.meta(leaf)
		if err != nil {
			return leaves, err
		}
		clear(b)
		f.w.extBlocks[leaf] = ino
		putExtentHeader(b, len(part), per, 0)
		for i, x := range part {
			putExtent(b[ehSize+i*entrySize:], x)
		}
		putIndex(ib[ehSize+k*entrySize:], part[0].logical, leaf)
	}
	return leaves, nil
}

// storeInode writes size, block count, extent tree and times of ino.
func (f *FS) storeInode(in *Inode, xs []extent, leaves []uint64) ([]uint64, error) {
	rec, err := f.inodeRec(in.Ino)
	if err != nil {
		return leaves, err
	}
	le := binary.LittleEndian
	if leaves, err = f.storeMapping(in.Ino, rec, xs, leaves); err != nil {
		return leaves, err
	}
	blocks := uint64(len(leaves))
	for _, x := range xs {
		blocks += uint64(x.length)
	}
	if le.Uint32(rec[inFileACLLo:]) != 0 || le.Uint16(rec[inFileACLHi:]) != 0 {
		blocks++
	}
	sectors := blocks * uint64(f.sb.BlockSize/512)
	if sectors >= 1<<32 && f.sb.FeatureROCompat&roHugeFile == 0 || sectors >= 1<<48 {
		return leaves, errTooBig
	}
	le.PutUint32(rec[inBlocksLo:], uint32(sectors))
	if f.sb.FeatureROCompat&roHugeFile != 0 {
		le.PutUint16(rec[inBlocksHi:], uint16(sectors>>32))
	}
	le.PutUint32(rec[inSizeLo:], uint32(in.Size))
	le.PutUint32(rec[inSizeHi:], uint32(in.Size>>32))
	if in.Size >= 1<<31 && f.sb.FeatureROCompat&roLargeFile == 0 {
		f.sb.FeatureROCompat |= roLargeFile
		le.PutUint32(f.w.raw[sbFeatureROCompat:], f.sb.FeatureROCompat)
	}
	now := f.w.now()
	putTime(rec, inMtime, inMtimeExtra, now)
	putTime(rec, inCtime, inCtimeExtra, now)
	in.Mtime = now.UTC()
	copy(in.block[:], rec[inBlock:])
	return leaves, nil
}

// check refuses changes on a read-only mount or after a failed change.
func (f *FS) checkWritable() error {
	if f.w == nil {
		return ErrReadOnly
	}
	return f.w.err
}

// fail records an error that left the in-memory metadata half changed:
// the mount then refuses every change and Sync, so the disk keeps its
// last synced state.
func (f *FS) fail(err error) error {
	if err != nil && f.w.err == nil {
		f.w.err = fmt.Errorf("ext4: mount disabled after failed change: %w", err)
	}
	return err
}

// autoSync syncs when too much metadata waits in memory.
func (f *FS) autoSync() error {
	if f.w.err == nil && len(f.w.cache) > f.w.maxDirty {
		return f.syncLocked()
	}
	return nil
}

func (r *File) checkWrite(op string) error {
	switch {
	case r.closed:
		return &fs.PathError{Op: op, Path: r.name, Err: fs.ErrClosed}
	case !r.write:
		return &fs.PathError{Op: op, Path: r.name, Err: errNotWritable}
	}
	if err := r.fs.checkWritable(); err != nil {
		return &fs.PathError{Op: op, Path: r.name, Err: err}
	}
	return nil
}

// Write implements io.Writer (at the end of the file with O_APPEND).
func (r *File) Write(p []byte) (int, error) {
	r.fs.mu.Lock()
	defer r.fs.mu.Unlock()
	r.mu.Lock()
	off := r.off
	if r.append {
		off = int64(r.in.Size)
	}
	r.mu.Unlock()
	n, err := r.writeAtLocked(p, off)
	r.mu.Lock()
	r.off = off + int64(n)
	r.mu.Unlock()
	return n, err
}

// WriteAt implements io.WriterAt. Blocks are allocated as the write
// reaches them (holes stay holes); the data goes to the device at once,
// the metadata at the next Sync.
func (r *File) WriteAt(p []byte, off int64) (int, error) {
	r.fs.mu.Lock()
	defer r.fs.mu.Unlock()
	return r.writeAtLocked(p, off)
}

func (r *File) writeAtLocked(p []byte, off int64) (int, error) {
	if err := r.checkWrite("write"); err != nil {
		return 0, err
	}
	f := r.fs
	if off < 0 || off > f.maxFileSize() || int64(len(p)) > f.maxFileSize()-off {
		return 0, &fs.PathError{Op: "write", Path: r.name, Err: errTooBig}
	}
	if len(p) == 0 {
		return 0, nil
	}
	r.mu.Lock()
	r.cached = -1
	r.mu.Unlock()
	if off > int64(r.in.Size) {
		if err := r.zeroTail(); err != nil {
			return 0, &fs.PathError{Op: "write", Path: r.name, Err: f.fail(err)}
		}
	}
	n, werr := r.writeBlocks(p, off)
	if end := off + int64(n); end > int64(r.in.Size) {
		r.in.Size = uint64(end)
	}
	var err error
	if r.leaves, err = f.storeInode(r.in, r.xs, r.leaves); err != nil {
		return n, &fs.PathError{Op: "write", Path: r.name, Err: f.fail(err)}
	}
	if werr != nil {
		// Running out of space or into an extent the writer does not
		// change leaves the metadata consistent (the size covers what
		// was allocated); anything else disables the mount.
		var fe *FeatureError
		if !errors.Is(werr, ErrNoSpace) && !errors.As(werr, &fe) {
			f.fail(werr)
		}
		return n, &fs.PathError{Op: "write", Path: r.name, Err: werr}
	}
	if err := f.autoSync(); err != nil {
		return n, &fs.PathError{Op: "write", Path: r.name, Err: err}
	}
	return n, nil
}

// writeBlocks writes p at off, allocating blocks for holes. It returns
// how much was written; the mapping in r.xs covers it.
func (r *File) writeBlocks(p []byte, off int64) (int, error) {
	f := r.fs
	bs := f.sb.BlockSize
	done := 0
	for done < len(p) {
		o := off + int64(done)
		lb, in := uint64(o/bs), o%bs
		i, mapped := findExtent(r.xs, lb)
		var phys, avail uint64
		fresh := false
		if mapped {
			x := r.xs[i]
			if x.uninit {
				return done, &FeatureError{Reason: fmt.Sprintf("inode %d: writing into an uninitialised extent", r.in.Ino)}
			}
			phys, avail = x.physical+lb-uint64(x.logical), uint64(x.logical)+uint64(x.length)-lb
		} else {
			hole := uint64(1<<32) - lb
			if i < len(r.xs) {
				hole = uint64(r.xs[i].logical) - lb
			}
			need := min(hole, uint64((in+int64(len(p)-done)+bs-1)/bs))
			goal := f.tables[(r.in.Ino-1)/f.sb.InodesPerGroup]
			if i > 0 {
				goal = r.xs[i-1].physical + uint64(r.xs[i-1].length)
			}
			start, got, err := f.allocBlocks(goal, need)
			if err != nil {
				return done, err
			}
			// Change a copy (r.spare, reused: no allocation per write) so
			// that r.xs stays as it was when this fails.
			xs := insertExtent(append(r.spare[:0], r.xs...), i, extent{logical: uint32(lb), length: uint32(got), physical: start})
			if len(xs) > f.maxExtentsWritable() {
				return done, errors.Join(&FeatureError{Reason: fmt.Sprintf("inode %d would need more than %d extents", r.in.Ino, f.maxExtentsWritable())},
					f.unallocBlocks(start, got))
			}
			if need := f.leavesFor(len(xs)); len(r.leaves) < need {
				// Take the leaf blocks now, so that storing the tree
				// cannot run out of space.
				leaves, err := f.addLeaves(r.in.Ino, r.leaves, need, start+got)
				r.leaves = leaves
				if err != nil {
					return done, errors.Join(err, f.unallocBlocks(start, got))
				}
			}
			r.xs, r.spare = xs, r.xs
			phys, avail, fresh = start, got, true
		}
		n := int(min(int64(len(p)-done), int64(avail)*bs-in))
		if err := f.writeData(phys, in, p[done:done+n], fresh); err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// writeData writes p into contiguous blocks from phys, starting in at
// byte in of the first. Partial blocks are read and merged, or
// zero-filled when fresh (newly allocated).
func (f *FS) writeData(phys uint64, in int64, p []byte, fresh bool) error {
	bs := f.sb.BlockSize
	partial := func(blk uint64, at int64, q []byte) error {
		buf := f.w.buf
		if fresh {
			clear(buf)
		} else if err := f.readBlock(buf, blk); err != nil {
			return err
		}
		copy(buf[at:], q)
		return f.writeAt(buf, int64(blk)*bs)
	}
	if in != 0 || int64(len(p)) < bs {
		k := min(int64(len(p)), bs-in)
		if err := partial(phys, in, p[:k]); err != nil {
			return err
		}
		p, phys = p[k:], phys+1
	}
	if full := int64(len(p)) / bs * bs; full > 0 {
		if err := f.writeAt(p[:full], int64(phys)*bs); err != nil {
			return err
		}
		p, phys = p[full:], phys+uint64(full/bs)
	}
	if len(p) > 0 {
		return partial(phys, 0, p)
	}
	return nil
}

// zeroTail clears the bytes after the end of the file in its last
// block, so that growing the file exposes zeros.
func (r *File) zeroTail() error {
	f := r.fs
	bs := f.sb.BlockSize
	size := int64(r.in.Size)
	if size%bs == 0 {
		return nil
	}
	i, mapped := findExtent(r.xs, uint64(size/bs))
	if !mapped || r.xs[i].uninit {
		return nil
	}
	x := r.xs[i]
	blk := x.physical + uint64(size/bs) - uint64(x.logical)
	buf := f.w.buf
	if err := f.readBlock(buf, blk); err != nil {
		return err
	}
	clear(buf[size%bs:])
	return f.writeAt(buf, int64(blk)*bs)
}

// Truncate changes the file's size: growing leaves a hole, shrinking
// frees the blocks past the end (at the next Sync).
func (r *File) Truncate(size int64) error {
	r.fs.mu.Lock()
	defer r.fs.mu.Unlock()
	return r.truncateLocked(size)
}

func (r *File) truncateLocked(size int64) error {
	if err := r.checkWrite("truncate"); err != nil {
		return err
	}
	f := r.fs
	if size < 0 || size > f.maxFileSize() {
		return &fs.PathError{Op: "truncate", Path: r.name, Err: fs.ErrInvalid}
	}
	r.mu.Lock()
	r.cached = -1
	r.mu.Unlock()
	if size > int64(r.in.Size) {
		if err := r.zeroTail(); err != nil {
			return &fs.PathError{Op: "truncate", Path: r.name, Err: f.fail(err)}
		}
	} else {
		r.xs = f.cutExtents(r.xs, uint64((size+f.sb.BlockSize-1)/f.sb.BlockSize))
		r.in.Size = uint64(size)
		if err := r.zeroTail(); err != nil {
			return &fs.PathError{Op: "truncate", Path: r.name, Err: f.fail(err)}
		}
	}
	r.in.Size = uint64(size)
	var err error
	if r.leaves, err = f.storeInode(r.in, r.xs, r.leaves); err != nil {
		return &fs.PathError{Op: "truncate", Path: r.name, Err: f.fail(err)}
	}
	return f.autoSync()
}

// cutExtents frees every block from logical block keep on and returns
// the extents left.
func (f *FS) cutExtents(xs []extent, keep uint64) []extent {
	out := xs[:0:0]
	for _, x := range xs {
		end := uint64(x.logical) + uint64(x.length)
		switch {
		case end <= keep:
			out = append(out, x)
		case uint64(x.logical) >= keep:
			f.freeBlocks(x.physical, uint64(x.length))
		default:
			k := keep - uint64(x.logical)
			f.freeBlocks(x.physical+k, uint64(x.length)-k)
			x.length = uint32(k)
			out = append(out, x)
		}
	}
	return out
}

// Sync makes the file's changes (and every other change) durable.
func (r *File) Sync() error {
	r.fs.mu.Lock()
	defer r.fs.mu.Unlock()
	if r.closed {
		return &fs.PathError{Op: "sync", Path: r.name, Err: fs.ErrClosed}
	}
	if r.fs.w == nil {
		return nil
	}
	return r.fs.syncLocked()
}

var (
	_ io.WriterAt = (*File)(nil)
	_ io.Writer   = (*File)(nil)
)
