package ext4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

var (
	errIsDir    = errors.New("is a directory")
	errNotDir   = errors.New("not a directory")
	errNotEmpty = errors.New("directory not empty")
	errName     = errors.New("invalid file name")
)

// checkName accepts a directory entry name: 1 to 255 bytes, no '/' or
// NUL, not "." or "..".
func checkName(name string) error {
	if name == "" || len(name) > maxNameLen || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%w: %q", errName, name)
	}
	return nil
}

// resolveParent finds the directory holding name and the inode its last
// element names (0 when there is no such entry).
func (f *FS) resolveParent(op, name string) (*Inode, string, uint32, error) {
	if !fs.ValidPath(name) || name == "." {
		return nil, "", 0, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	dir, err := f.lookup(op, path.Dir(name), true)
	if err != nil {
		return nil, "", 0, err
	}
	if !dir.isDir() {
		return nil, "", 0, &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("%w: %w", errNotDir, fs.ErrNotExist)}
	}
	base := path.Base(name)
	ents, err := f.readDir(dir)
	if err != nil {
		return nil, "", 0, &fs.PathError{Op: op, Path: name, Err: err}
	}
	for _, e := range ents {
		if e.name == base {
			return dir, base, e.ino, nil
		}
	}
	return dir, base, 0, nil
}

// dirSlot is a directory entry's place: block, offset, and the offset of
// the entry before it in the block (-1 for the first).
type dirSlot struct {
	blk       uint64
	off, prev int
	rec       int
	ino       uint32
	nameLen   int
}

// walkDir calls fn for each entry of directory in (by block), stopping
// when fn returns true. Blocks are read through the cache.
func (f *FS) walkDir(in *Inode, xs []extent, fn func(b []byte, s dirSlot, name string) bool) error {
	bs := f.sb.BlockSize
	le := binary.LittleEndian
	if int64(in.Size)%bs != 0 {
		return fmt.Errorf("%w: directory %d size %d", ErrCorrupt, in.Ino, in.Size)
	}
	for lb := uint64(0); lb < in.Size/uint64(bs); lb++ {
		i, ok := findExtent(xs, lb)
		if !ok || xs[i].uninit {
			return fmt.Errorf("%w: directory %d has a hole at block %d", ErrCorrupt, in.Ino, lb)
		}
		blk := xs[i].physical + lb - uint64(xs[i].logical)
		b, err := f.peek(blk)
		if err != nil {
			return err
		}
		prev := -1
		for off := 0; off < len(b); {
			if len(b)-off < deName {
				return fmt.Errorf("%w: directory %d block %d entry at %d", ErrCorrupt, in.Ino, lb, off)
			}
			rec := int(le.Uint16(b[off+deRecLen:]))
			nl := int(b[off+deNameLen])
			if rec < deName || rec%4 != 0 || rec > len(b)-off || nl > rec-deName {
				return fmt.Errorf("%w: directory %d block %d entry at %d: record %d", ErrCorrupt, in.Ino, lb, off, rec)
			}
			s := dirSlot{blk: blk, off: off, prev: prev, rec: rec, ino: le.Uint32(b[off+deInode:]), nameLen: nl}
			if fn(b, s, string(b[off+deName:off+deName+nl])) {
				return nil
			}
			prev, off = off, off+rec
		}
	}
	return nil
}

// dirBlock returns a directory block for changing.
func (f *FS) dirBlock(blk uint64, owner uint32) ([]byte, error) {
	b, err := f.meta(blk)
	if err != nil {
		return nil, err
	}
	if f.w.csum && !hasDirTail(b) {
		return nil, &FeatureError{Reason: fmt.Sprintf("directory %d block %d has no checksum tail", owner, blk)}
	}
	f.w.dirBlocks[blk] = owner
	return b, nil
}

// findEntry locates name in directory in.
func (f *FS) findEntry(in *Inode, name string) (dirSlot, error) {
	xs, _, err := f.loadMapping(in)
	if err != nil {
		return dirSlot{}, err
	}
	var found *dirSlot
	err = f.walkDir(in, xs, func(_ []byte, s dirSlot, n string) bool {
		if s.ino != 0 && n == name {
			found = &s
			return true
		}
		return false
	})
	if err != nil {
		return dirSlot{}, err
	}
	if found == nil {
		return dirSlot{}, fs.ErrNotExist
	}
	return *found, nil
}

// canAddEntry reports why an entry cannot be added to directory in.
func (f *FS) canAddEntry(in *Inode) error {
	_, _, err := f.loadMapping(in)
	return err
}

// unindex turns hashed (dir_index) directory in into a linear one, as
// the writer does not maintain hash trees: the root block's ".." entry
// grows over the index (and a checksum tail is put after it), interior
// index blocks become empty directory blocks, and the inode loses its
// index flag. The leaf blocks are ordinary directory blocks already.
// e2fsck and Linux accept linear directories of any size.
func (f *FS) unindex(in *Inode, xs []extent) error {
	bs := int(f.sb.BlockSize)
	limit := bs
	if f.w.csum {
		limit -= dirTailSize
	}
	le := binary.LittleEndian
	for lb := uint64(0); lb < in.Size/uint64(bs); lb++ {
		i, ok := findExtent(xs, lb)
		if !ok || xs[i].uninit {
			return fmt.Errorf("%w: directory %d has a hole at block %d", ErrCorrupt, in.Ino, lb)
		}
		blk := xs[i].physical + lb - uint64(xs[i].logical)
		b, err := f.peek(blk)
		if err != nil {
			return err
		}
		switch {
		case lb == 0:
			// "." (12 bytes) then ".." whose record covers the index.
			dot := int(le.Uint16(b[deRecLen:]))
			if dot != dirRecLen(1) || b[deNameLen] != 1 || b[dot+deNameLen] != 2 {
				return fmt.Errorf("%w: hashed directory %d root block", ErrCorrupt, in.Ino)
			}
			if b, err = f.meta(blk); err != nil {
				return err
			}
			clear(b[dot+dirRecLen(2):])
			le.PutUint16(b[dot+deRecLen:], uint16(limit-dot))
		case le.Uint32(b[deInode:]) == 0 && int(le.Uint16(b[deRecLen:])) == bs && b[deNameLen] == 0:
			// An interior index block (a leaf with a checksum tail
			// never has a first record of the whole block).
			if !f.w.csum {
				continue // already reads as an empty block
			}
			if b, err = f.meta(blk); err != nil {
				return err
			}
			clear(b)
			le.PutUint16(b[deRecLen:], uint16(limit))
		default:
			continue
		}
		if f.w.csum {
			putDirTail(b)
		}
		f.w.dirBlocks[blk] = in.Ino
	}
	rec, err := f.inodeRec(in.Ino)
	if err != nil {
		return err
	}
	in.Flags &^= flagIndex
	le.PutUint32(rec[inFlags:], in.Flags)
	return nil
}

// addEntry links name to ino (of file type ft) in directory in, in the
// first gap large enough or in a new block.
func (f *FS) addEntry(in *Inode, name string, ino uint32, ft byte) error {
	xs, leaves, err := f.loadMapping(in)
	if err != nil {
		return err
	}
	if in.Flags&flagIndex != 0 {
		if err := f.unindex(in, xs); err != nil {
			return err
		}
	}
	bs := int(f.sb.BlockSize)
	limit := bs
	if f.w.csum {
		limit -= dirTailSize
	}
	need := dirRecLen(len(name))
	var at *dirSlot
	err = f.walkDir(in, xs, func(b []byte, s dirSlot, _ string) bool {
		used := 0
		if s.ino != 0 {
			used = dirRecLen(s.nameLen)
		}
		if s.off < limit && s.off+s.rec <= limit && s.rec-used >= need {
			at = &s
			return true
		}
		return false
	})
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	if at != nil {
		b, err := f.dirBlock(at.blk, in.Ino)
		if err != nil {
			return err
		}
		if at.ino == 0 {
			putDirent(b[at.off:], ino, at.rec, name, ft)
		} else {
			used := dirRecLen(at.nameLen)
			le.PutUint16(b[at.off+deRecLen:], uint16(used))
			putDirent(b[at.off+used:], ino, at.rec-used, name, ft)
		}
		return f.touch(in.Ino)
	}
	// A new block at the end of the directory.
	lb := in.Size / uint64(bs)
	goal := f.tables[(in.Ino-1)/f.sb.InodesPerGroup]
	if n := len(xs); n > 0 {
		goal = xs[n-1].physical + uint64(xs[n-1].length)
	}
	blk, _, err := f.allocBlocks(goal, 1)
	if err != nil {
		return err
	}
	b := make([]byte, bs)
	putDirent(b, ino, limit, name, ft)
	if f.w.csum {
		putDirTail(b)
	}
	f.w.cache[blk] = b
	f.w.dirBlocks[blk] = in.Ino
	i, _ := findExtent(xs, lb)
	xs = insertExtent(xs, i, extent{logical: uint32(lb), length: 1, physical: blk})
	in.Size += uint64(bs)
	_, err = f.storeInode(in, xs, leaves)
	return err
}

// removeEntry unlinks name from directory in: the entry joins the one
// before it, or (first in its block) gets inode 0.
func (f *FS) removeEntry(in *Inode, name string) error {
	s, err := f.findEntry(in, name)
	if err != nil {
		return err
	}
	b, err := f.dirBlock(s.blk, in.Ino)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	if s.prev >= 0 {
		le.PutUint16(b[s.prev+deRecLen:], le.Uint16(b[s.prev+deRecLen:])+uint16(s.rec))
	} else {
		le.PutUint32(b[s.off+deInode:], 0)
	}
	return f.touch(in.Ino)
}

// touch sets mtime and ctime of ino to now.
func (f *FS) touch(ino uint32) error {
	rec, err := f.inodeRec(ino)
	if err != nil {
		return err
	}
	now := f.w.now()
	putTime(rec, inMtime, inMtimeExtra, now)
	putTime(rec, inCtime, inCtimeExtra, now)
	return nil
}

// addLinks adds d (±1) to ino's link count; for directories with
// dir_nlink a count past the limit is stored as 1 ("many").
func (f *FS) addLinks(ino uint32, d int) error {
	rec, err := f.inodeRec(ino)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	n := int(le.Uint16(rec[inLinks:]))
	dir := le.Uint16(rec[inMode:])&modeFmt == modeDir
	switch {
	case dir && n == 1 && f.sb.FeatureROCompat&roDirNlink != 0:
		// stays "many"
	case n+d >= maxLinks:
		if !dir || f.sb.FeatureROCompat&roDirNlink == 0 {
			return fmt.Errorf("too many links to inode %d", ino)
		}
		n = 1
	default:
		n += d
	}
	le.PutUint16(rec[inLinks:], uint16(n))
	putTime(rec, inCtime, inCtimeExtra, f.w.now())
	return nil
}

// newInode allocates and initialises an inode of the given mode near
// directory parent.
func (f *FS) newInode(parent uint32, mode uint16, links uint16) (*Inode, error) {
	ino, err := f.allocInode((parent-1)/f.sb.InodesPerGroup, mode&modeFmt == modeDir)
	if err != nil {
		return nil, err
	}
	rec, err := f.inodeRec(ino)
	if err != nil {
		return nil, err
	}
	clear(rec)
	le := binary.LittleEndian
	le.PutUint16(rec[inMode:], mode)
	le.PutUint16(rec[inLinks:], links)
	le.PutUint32(rec[inFlags:], flagExtents)
	putExtentHeader(rec[inBlock:], 0, extentsPerInode, 0)
	f.w.gen++
	le.PutUint32(rec[inGeneration:], f.w.gen)
	if isz := int(f.sb.InodeSize); isz > goodOldInodeSize {
		extra := int(le.Uint16(f.w.raw[sbWantExtraIsize:]))
		if extra < inCrtimeExtra+4-goodOldInodeSize {
			extra = 32
		}
		extra = min(extra, isz-goodOldInodeSize) &^ 3
		le.PutUint16(rec[inExtraIsize:], uint16(extra))
	}
	now := f.w.now()
	for _, t := range [][2]int{{inAtime, inAtimeExtra}, {inCtime, inCtimeExtra}, {inMtime, inMtimeExtra}} {
		putTime(rec, t[0], t[1], now)
	}
	if len(rec) > goodOldInodeSize && goodOldInodeSize+int(le.Uint16(rec[inExtraIsize:])) >= inCrtimeExtra+4 {
		putTime(rec, inCrtime, inCrtimeExtra, now)
	}
	return parseInode(rec, ino)
}

// releaseInode drops one link of a non-directory; at zero its blocks and
// inode are freed. prepare checks first that this can be done.
func (f *FS) releaseInode(in *Inode) error {
	if in.Links > 1 {
		return f.addLinks(in.Ino, -1)
	}
	xs, leaves, err := f.releasable(in)
	if err != nil {
		return err
	}
	for _, x := range xs {
		f.freeBlocks(x.physical, uint64(x.length))
	}
	for _, l := range leaves {
		f.freeBlocks(l, 1)
	}
	return f.freeInode(in.Ino, in.isDir())
}

// releasable returns the blocks of an inode about to be freed, or why it
// cannot be.
func (f *FS) releasable(in *Inode) ([]extent, []uint64, error) {
	if f.w.open[in.Ino] > 0 {
		return nil, nil, ErrBusy
	}
	rec, err := f.inodeRec(in.Ino)
	if err != nil {
		return nil, nil, err
	}
	le := binary.LittleEndian
	if le.Uint32(rec[inFileACLLo:]) != 0 || le.Uint16(rec[inFileACLHi:]) != 0 {
		return nil, nil, &FeatureError{Reason: fmt.Sprintf("inode %d has an extended attribute block", in.Ino)}
	}
	if in.Flags&flagExtents == 0 {
		if le.Uint32(rec[inBlocksLo:]) != 0 || in.Flags&flagInlineData != 0 {
			return nil, nil, &FeatureError{Reason: fmt.Sprintf("inode %d uses block maps", in.Ino)}
		}
		return nil, nil, nil // fast symlink or device: no blocks
	}
	return f.loadMapping(in)
}

// Create creates or truncates the file name for reading and writing.
func (f *FS) Create(name string) (*File, error) {
	return f.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

// OpenFile opens name with os.O_* flags (O_RDONLY, O_WRONLY, O_RDWR,
// O_CREATE, O_EXCL, O_TRUNC, O_APPEND); perm's permission bits are the
// new file's mode. Writing needs a MountRW volume.
func (f *FS) OpenFile(name string, flag int, perm fs.FileMode) (*File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	write := flag&(os.O_WRONLY|os.O_RDWR) != 0
	if write || flag&(os.O_CREATE|os.O_TRUNC) != 0 {
		if err := f.checkWritable(); err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
	}
	dir, base, ino, err := f.resolveParent("open", name)
	if err != nil {
		return nil, err
	}
	var in *Inode
	switch {
	case ino != 0 && flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case ino != 0:
		if in, err = f.lookup("open", name, true); err != nil {
			return nil, err
		}
	case flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	default:
		if err := checkName(base); err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		if err := f.canAddEntry(dir); err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		if err := f.haveSpace(2, 1); err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		if in, err = f.newInode(dir.Ino, modeReg|uint16(perm.Perm()), 1); err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: f.fail(err)}
		}
		if err := f.addEntry(dir, base, in.Ino, ftReg); err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: f.fail(err)}
		}
	}
	if in.isDir() {
		if write {
			return nil, &fs.PathError{Op: "open", Path: name, Err: errIsDir}
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%w: use Open for directories", errIsDir)}
	}
	file := &File{fs: f, name: name, in: in, info: &fileInfo{name: path.Base(name), in: in}, cached: -1,
		write: write, append: flag&os.O_APPEND != 0}
	switch {
	case write && in.Mode&modeFmt != modeReg:
		return nil, &fs.PathError{Op: "open", Path: name, Err: &FeatureError{Reason: "writing a special file"}}
	case write:
		if file.xs, file.leaves, err = f.loadMapping(in); err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		f.w.open[in.Ino]++
	case in.Flags&flagInlineData != 0:
		if file.inline, err = inlineData(in); err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
	case in.Mode&modeFmt == modeReg:
		if file.xs, err = f.extents(in); err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
	default:
		file.in = &Inode{Ino: in.Ino, Mode: in.Mode}
	}
	if flag&os.O_TRUNC != 0 && write && in.Size > 0 {
		if err := file.truncateLocked(0); err != nil {
			file.closed = true
			f.w.open[in.Ino]--
			return nil, err
		}
	}
	return file, nil
}

// Mkdir creates the directory name (mode 0755); its parent must exist.
func (f *FS) Mkdir(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.mkdir(name); err != nil {
		return &fs.PathError{Op: "mkdir", Path: name, Err: err}
	}
	return f.autoSync()
}

func (f *FS) mkdir(name string) error {
	if err := f.checkWritable(); err != nil {
		return err
	}
	dir, base, ino, err := f.resolveParent("mkdir", name)
	switch {
	case err != nil:
		return err
	case ino != 0:
		return fs.ErrExist
	}
	if err := checkName(base); err != nil {
		return err
	}
	if err := f.canAddEntry(dir); err != nil {
		return err
	}
	if err := f.haveSpace(3, 1); err != nil {
		return err
	}
	in, err := f.newInode(dir.Ino, modeDir|0o755, 2)
	if err != nil {
		return f.fail(err)
	}
	blk, _, err := f.allocBlocks(f.tables[(in.Ino-1)/f.sb.InodesPerGroup], 1)
	if err != nil {
		return f.fail(err)
	}
	bs := int(f.sb.BlockSize)
	limit := bs
	if f.w.csum {
		limit -= dirTailSize
	}
	b := make([]byte, bs)
	putDirent(b, in.Ino, dirRecLen(1), ".", ftDir)
	putDirent(b[dirRecLen(1):], dir.Ino, limit-dirRecLen(1), "..", ftDir)
	if f.w.csum {
		putDirTail(b)
	}
	f.w.cache[blk] = b
	f.w.dirBlocks[blk] = in.Ino
	in.Size = uint64(bs)
	if _, err := f.storeInode(in, []extent{{logical: 0, length: 1, physical: blk}}, nil); err != nil {
		return f.fail(err)
	}
	if err := f.addEntry(dir, base, in.Ino, ftDir); err != nil {
		return f.fail(err)
	}
	return f.fail(f.addLinks(dir.Ino, 1))
}

// Remove removes a file or an empty directory. A file open for writing
// is not removed (ErrBusy).
func (f *FS) Remove(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.remove(name); err != nil {
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	}
	return f.autoSync()
}

func (f *FS) remove(name string) error {
	if err := f.checkWritable(); err != nil {
		return err
	}
	dir, base, ino, err := f.resolveParent("remove", name)
	switch {
	case err != nil:
		return err
	case ino == 0:
		return fs.ErrNotExist
	}
	in, err := f.inode(ino)
	if err != nil {
		return err
	}
	if _, err := f.findEntry(dir, base); err != nil {
		return err
	}
	if in.isDir() {
		ents, err := f.readDir(in)
		if err != nil {
			return err
		}
		if len(ents) > 0 {
			return errNotEmpty
		}
		if _, _, err := f.releasable(in); err != nil {
			return err
		}
		if err := f.removeEntry(dir, base); err != nil {
			return f.fail(err)
		}
		if err := f.addLinks(dir.Ino, -1); err != nil {
			return f.fail(err)
		}
		in.Links = 1
		return f.fail(f.releaseInode(in))
	}
	if in.Links <= 1 {
		if _, _, err := f.releasable(in); err != nil {
			return err
		}
	}
	if err := f.removeEntry(dir, base); err != nil {
		return f.fail(err)
	}
	return f.fail(f.releaseInode(in))
}

// Rename moves oldname to newname, replacing a file (not a directory)
// there. Directories may move to another directory, not into
// themselves.
func (f *FS) Rename(oldname, newname string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.rename(oldname, newname); err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	return f.autoSync()
}

func (f *FS) rename(oldname, newname string) error {
	if err := f.checkWritable(); err != nil {
		return err
	}
	od, obase, oino, err := f.resolveParent("rename", oldname)
	if err != nil {
		return err
	}
	if oino == 0 {
		return fs.ErrNotExist
	}
	nd, nbase, nino, err := f.resolveParent("rename", newname)
	if err != nil {
		return err
	}
	if err := checkName(nbase); err != nil {
		return err
	}
	if nino == oino {
		return nil // the same file (or another link to it)
	}
	oin, err := f.inode(oino)
	if err != nil {
		return err
	}
	ft := byte(ftReg)
	switch oin.Mode & modeFmt {
	case modeDir:
		ft = ftDir
	case modeLnk:
		ft = ftSymlink
	case modeReg:
	default:
		return &FeatureError{Reason: "renaming a special file"}
	}
	move := oin.isDir() && od.Ino != nd.Ino
	if move {
		// The destination must not be inside the directory moved.
		for d, hops := nd.Ino, 0; d != rootIno; hops++ {
			if d == oino {
				return fmt.Errorf("cannot move a directory into itself: %w", fs.ErrInvalid)
			}
			if hops > 1<<16 {
				return fmt.Errorf("%w: directory loop", ErrCorrupt)
			}
			if d, err = f.parentOf(d); err != nil {
				return err
			}
		}
		if _, _, err := f.loadMapping(oin); err != nil {
			return err
		}
	}
	var victim *Inode
	if nino != 0 {
		if victim, err = f.inode(nino); err != nil {
			return err
		}
		if victim.isDir() || oin.isDir() {
			return fs.ErrExist
		}
		if victim.Links <= 1 {
			if _, _, err := f.releasable(victim); err != nil {
				return err
			}
		}
		if _, err := f.findEntry(nd, nbase); err != nil {
			return err
		}
	} else if err := f.canAddEntry(nd); err != nil {
		return err
	} else if err := f.haveSpace(2, 0); err != nil {
		return err
	}
	if _, err := f.findEntry(od, obase); err != nil {
		return err
	}
	// Checks done: from here a failure disables the mount.
	if victim != nil {
		s, err := f.findEntry(nd, nbase)
		if err != nil {
			return f.fail(err)
		}
		b, err := f.dirBlock(s.blk, nd.Ino)
		if err != nil {
			return f.fail(err)
		}
		binary.LittleEndian.PutUint32(b[s.off+deInode:], oino)
		b[s.off+deType] = ft
		if err := f.touch(nd.Ino); err != nil {
			return f.fail(err)
		}
		if err := f.releaseInode(victim); err != nil {
			return f.fail(err)
		}
	} else if err := f.addEntry(nd, nbase, oino, ft); err != nil {
		return f.fail(err)
	}
	if od.Ino == nd.Ino {
		if od, err = f.inode(od.Ino); err != nil { // addEntry may have grown it
			return f.fail(err)
		}
	}
	if err := f.removeEntry(od, obase); err != nil {
		return f.fail(err)
	}
	if move {
		if oin.Flags&flagIndex != 0 {
			// ".." lives in the hash tree's root block, whose checksum
			// the writer does not keep: make the directory linear.
			xs, _, err := f.loadMapping(oin)
			if err != nil {
				return f.fail(err)
			}
			if err := f.unindex(oin, xs); err != nil {
				return f.fail(err)
			}
		}
		if err := f.setParent(oin, nd.Ino); err != nil {
			return f.fail(err)
		}
		if err := f.addLinks(od.Ino, -1); err != nil {
			return f.fail(err)
		}
		if err := f.addLinks(nd.Ino, 1); err != nil {
			return f.fail(err)
		}
	}
	rec, err := f.inodeRec(oino)
	if err != nil {
		return f.fail(err)
	}
	putTime(rec, inCtime, inCtimeExtra, f.w.now())
	return nil
}

// dotdot locates the ".." entry of directory in: the second entry of its
// first block.
func (f *FS) dotdot(in *Inode) (dirSlot, error) {
	xs, _, err := f.loadMapping(in)
	if err != nil {
		return dirSlot{}, err
	}
	var s dirSlot
	n := 0
	err = f.walkDir(in, xs, func(b []byte, e dirSlot, name string) bool {
		n++
		if n == 2 {
			if name == ".." {
				s = e
			}
			return true
		}
		return false
	})
	if err == nil && s.rec == 0 {
		err = fmt.Errorf("%w: directory %d has no '..'", ErrCorrupt, in.Ino)
	}
	return s, err
}

// parentOf returns the inode named by directory ino's "..".
func (f *FS) parentOf(ino uint32) (uint32, error) {
	in, err := f.inode(ino)
	if err != nil {
		return 0, err
	}
	s, err := f.dotdot(in)
	return s.ino, err
}

// setParent points directory in's ".." at parent.
func (f *FS) setParent(in *Inode, parent uint32) error {
	s, err := f.dotdot(in)
	if err != nil {
		return err
	}
	b, err := f.dirBlock(s.blk, in.Ino)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(b[s.off+deInode:], parent)
	return nil
}
