package ext4

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gohv/gohv/drivers/block"
)

const (
	maxSymlinks  = 40
	maxDirSize   = 128 << 20 // directories larger than this are refused
	maxLinkSize  = 4096
	blockMapRefs = 12       // direct block pointers in i_block
	maxGDT       = 64 << 20 // 1M groups of 64 bytes: 128 TiB with 4 KiB blocks
)

// FS is a mounted ext2/3/4 filesystem: read-only from Mount, read-write
// from MountRW. Its methods are safe for concurrent use: reads share mu,
// changes hold it alone.
type FS struct {
	dev    block.Device
	ctx    context.Context
	sb     Superblock
	tables []uint64 // inode table block per group

	mu sync.RWMutex
	w  *writer // nil when read-only
}

var (
	_ fs.ReadFileFS = (*FS)(nil)
	_ fs.ReadDirFS  = (*FS)(nil)
	_ fs.StatFS     = (*FS)(nil)
	_ fs.ReadLinkFS = (*FS)(nil)
)

// Mount reads the superblock and group descriptors of the filesystem on
// dev. ctx bounds the mount; later reads use context.Background.
func Mount(ctx context.Context, dev block.Device) (*FS, error) {
	f := &FS{dev: dev, ctx: ctx}
	b := make([]byte, superSize)
	if err := f.readAt(b, superOffset); err != nil {
		return nil, err
	}
	sb, err := ParseSuperblock(b)
	if err != nil {
		return nil, err
	}
	if uint64(sb.BlockSize)*sb.BlocksCount > uint64(dev.Info().Size()) {
		return nil, fmt.Errorf("%w: %d blocks of %d bytes do not fit the %d-byte device", ErrCorrupt, sb.BlocksCount, sb.BlockSize, dev.Info().Size())
	}
	f.sb = sb
	// Without meta_bg the descriptor table sits in group 0, after the
	// superblock; bound it before allocating.
	gdtSize := uint64(sb.Groups) * uint64(sb.DescSize)
	if gdtSize > uint64(sb.BlocksPerGroup)*uint64(sb.BlockSize) || gdtSize > maxGDT {
		return nil, fmt.Errorf("%w: %d group descriptors of %d bytes", ErrCorrupt, sb.Groups, sb.DescSize)
	}
	gdt := make([]byte, gdtSize)
	if err := f.readAt(gdt, (int64(sb.FirstDataBlock)+1)*sb.BlockSize); err != nil {
		return nil, err
	}
	if f.tables, err = parseInodeTables(gdt, sb); err != nil {
		return nil, err
	}
	root, err := f.inode(rootIno)
	if err != nil {
		return nil, err
	}
	if !root.isDir() {
		return nil, fmt.Errorf("%w: root inode is not a directory", ErrCorrupt)
	}
	f.ctx = context.Background()
	return f, nil
}

// Superblock returns the validated superblock.
func (f *FS) Superblock() Superblock { return f.sb }

// NeedsRecovery reports a journal that was not replayed: recent changes
// may be missing from what this reader sees.
func (f *FS) NeedsRecovery() bool { return f.sb.FeatureIncompat&incompatRecover != 0 }

// readAt reads any byte range of the device through whole sectors.
func (f *FS) readAt(p []byte, off int64) error {
	ss := int64(f.dev.Info().SectorSize)
	start := off / ss * ss
	end := (off + int64(len(p)) + ss - 1) / ss * ss
	if start == off && end == off+int64(len(p)) {
		if _, err := f.dev.ReadAt(f.ctx, p, off); err != nil {
			return fmt.Errorf("ext4: read at %d: %w", off, err)
		}
		f.overlay(p, off)
		return nil
	}
	buf := make([]byte, end-start)
	if _, err := f.dev.ReadAt(f.ctx, buf, start); err != nil {
		return fmt.Errorf("ext4: read at %d: %w", start, err)
	}
	copy(p, buf[off-start:])
	f.overlay(p, off)
	return nil
}

func (f *FS) readBlock(p []byte, blk uint64) error {
	if blk >= f.sb.BlocksCount {
		return fmt.Errorf("%w: block %d past the end", ErrCorrupt, blk)
	}
	return f.readAt(p, int64(blk)*f.sb.BlockSize)
}

// inode reads inode ino.
func (f *FS) inode(ino uint32) (*Inode, error) {
	if ino == 0 || ino > f.sb.InodesCount {
		return nil, fmt.Errorf("%w: inode number %d", ErrCorrupt, ino)
	}
	g, idx := (ino-1)/f.sb.InodesPerGroup, (ino-1)%f.sb.InodesPerGroup
	b := make([]byte, f.sb.InodeSize)
	if err := f.readAt(b, int64(f.tables[g])*f.sb.BlockSize+int64(idx)*int64(f.sb.InodeSize)); err != nil {
		return nil, err
	}
	return parseInode(b, ino)
}

// extents returns the block mapping of in, sorted by logical block.
func (f *FS) extents(in *Inode) ([]extent, error) {
	if in.Flags&flagExtents != 0 {
		var out []extent
		visits := 0
		var walk func(node []byte, wantDepth int) error
		walk = func(node []byte, wantDepth int) error {
			if visits++; visits > maxNodeVisit {
				return fmt.Errorf("%w: extent tree too large", ErrCorrupt)
			}
			n, err := parseExtentNode(node, f.sb.BlocksCount)
			if err != nil {
				return err
			}
			if wantDepth >= 0 && n.depth != wantDepth {
				return fmt.Errorf("%w: extent node depth %d, want %d", ErrCorrupt, n.depth, wantDepth)
			}
			if len(out)+len(n.leaves) > maxExtents {
				return fmt.Errorf("%w: too many extents", ErrCorrupt)
			}
			out = append(out, n.leaves...)
			buf := make([]byte, f.sb.BlockSize)
			for _, c := range n.children {
				if err := f.readBlock(buf, c); err != nil {
					return err
				}
				if err := walk(buf, n.depth-1); err != nil {
					return err
				}
			}
			return nil
		}
		if err := walk(in.block[:], -1); err != nil {
			return nil, fmt.Errorf("inode %d: %w", in.Ino, err)
		}
		if err := sortExtents(out); err != nil {
			return nil, fmt.Errorf("inode %d: %w", in.Ino, err)
		}
		return out, nil
	}
	return f.blockMap(in)
}

// blockMap reads a legacy (ext2/3) block map: 12 direct pointers, then
// single, double and triple indirect blocks, as runs of extents.
func (f *FS) blockMap(in *Inode) ([]extent, error) {
	bs := uint64(f.sb.BlockSize)
	nblocks := (in.Size + bs - 1) / bs
	if nblocks > 1<<32 {
		return nil, fmt.Errorf("%w: inode %d size", ErrCorrupt, in.Ino)
	}
	le := binary.LittleEndian
	var out []extent
	add := func(lb uint64, pb uint32) error {
		if pb == 0 {
			return nil // hole
		}
		if uint64(pb) >= f.sb.BlocksCount {
			return fmt.Errorf("%w: inode %d maps block %d", ErrCorrupt, in.Ino, pb)
		}
		if n := len(out); n > 0 && uint64(out[n-1].logical)+uint64(out[n-1].length) == lb &&
			out[n-1].physical+uint64(out[n-1].length) == uint64(pb) && out[n-1].length < 1<<31 {
			out[n-1].length++
			return nil
		}
		if len(out) >= maxExtents {
			return fmt.Errorf("%w: inode %d too fragmented", ErrCorrupt, in.Ino)
		}
		out = append(out, extent{logical: uint32(lb), length: 1, physical: uint64(pb)})
		return nil
	}
	per := bs / 4
	var lb uint64
	// walk maps the subtree under pointer blk of the given level (0 =
	// data block) starting at logical block lb.
	var walk func(blk uint32, level int) error
	walk = func(blk uint32, level int) error {
		span := uint64(1)
		for range level {
			span *= per
		}
		if lb >= nblocks {
			return nil
		}
		if blk == 0 {
			lb += span
			return nil
		}
		if level == 0 {
			err := add(lb, blk)
			lb++
			return err
		}
		if uint64(blk) >= f.sb.BlocksCount {
			return fmt.Errorf("%w: inode %d indirect block %d", ErrCorrupt, in.Ino, blk)
		}
		buf := make([]byte, bs)
		if err := f.readBlock(buf, uint64(blk)); err != nil {
			return err
		}
		for i := range per {
			if lb >= nblocks {
				return nil
			}
			if err := walk(le.Uint32(buf[i*4:]), level-1); err != nil {
				return err
			}
		}
		return nil
	}
	for i := range blockMapRefs + 3 {
		level := max(0, i-blockMapRefs+1)
		if err := walk(le.Uint32(in.block[i*4:]), level); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readData reads len(p) bytes of the file at off using xs; holes and
// uninitialised extents read as zeros.
func (f *FS) readData(in *Inode, xs []extent, p []byte, off int64) error {
	bs := f.sb.BlockSize
	for len(p) > 0 {
		lb := uint64(off / bs)
		in0 := off % bs
		i, _ := slices.BinarySearchFunc(xs, lb, func(x extent, t uint64) int {
			switch {
			case uint64(x.logical)+uint64(x.length) <= t:
				return -1
			case uint64(x.logical) > t:
				return 1
			}
			return 0
		})
		var n int64
		if i < len(xs) && uint64(xs[i].logical) <= lb {
			x := xs[i]
			n = min(int64(len(p)), (int64(x.logical)+int64(x.length)-int64(lb))*bs-in0)
			if x.uninit {
				clear(p[:n])
			} else if err := f.readAt(p[:n], int64(x.physical+lb-uint64(x.logical))*bs+in0); err != nil {
				return err
			}
		} else {
			// A hole up to the next extent (or the end).
			next := int64(1) << 62
			if i < len(xs) {
				next = int64(xs[i].logical) * bs
			}
			n = min(int64(len(p)), next-off)
			clear(p[:n])
		}
		p, off = p[n:], off+n
	}
	return nil
}

// contents reads a whole small object (directory or symlink), at most
// limit bytes.
func (f *FS) contents(in *Inode, limit uint64) ([]byte, error) {
	if in.Size > limit {
		return nil, fmt.Errorf("%w: inode %d is %d bytes (limit %d)", ErrCorrupt, in.Ino, in.Size, limit)
	}
	if in.Flags&flagInlineData != 0 {
		return inlineData(in)
	}
	xs, err := f.extents(in)
	if err != nil {
		return nil, err
	}
	b := make([]byte, in.Size)
	return b, f.readData(in, xs, b, 0)
}

// inlineData returns the data of an inline-data inode: i_block, then the
// system.data extended attribute.
func inlineData(in *Inode) ([]byte, error) {
	sys, err := in.systemData()
	if err != nil {
		return nil, err
	}
	if in.Size > uint64(inBlockLen+len(sys)) {
		return nil, fmt.Errorf("%w: inode %d inline size %d beyond its %d bytes", ErrCorrupt, in.Ino, in.Size, inBlockLen+len(sys))
	}
	b := append(append([]byte(nil), in.block[:]...), sys...)
	return b[:in.Size], nil
}

// inlineDirOffset skips the parent inode number at the start of an
// inline directory's i_block.
const inlineDirOffset = 4

// dirent is a directory entry.
type dirent struct {
	name string
	ino  uint32
}

// Directory entry offsets (section "Directory Entries": ext4_dir_entry_2).
const (
	deInode   = 0
	deRecLen  = 4
	deNameLen = 6
	deType    = 7
	deName    = 8
)

// parseDirBlock decodes the entries of one directory block. Entries with
// inode 0 (free space, hash-tree interior nodes, checksum tails) and "."
// and ".." are skipped; names unusable in an io/fs path (containing '/'
// or NUL) are skipped.
func parseDirBlock(b []byte, filetype bool, inodes uint32) ([]dirent, error) {
	le := binary.LittleEndian
	var out []dirent
	for off := 0; off < len(b); {
		if len(b)-off < deName {
			return nil, fmt.Errorf("%w: directory entry at %d truncated", ErrCorrupt, off)
		}
		e := b[off:]
		rec := int(le.Uint16(e[deRecLen:]))
		if rec == 0 || rec == 0xFFFF {
			rec = 1 << 16 // 64 KiB blocks encode their length this way
		}
		nameLen := int(e[deNameLen])
		if !filetype {
			nameLen |= int(e[deType]) << 8
		}
		if rec < deName || rec%4 != 0 || rec > len(b)-off || nameLen > rec-deName {
			return nil, fmt.Errorf("%w: directory entry at %d: record %d name %d", ErrCorrupt, off, rec, nameLen)
		}
		ino := le.Uint32(e[deInode:])
		name := string(e[deName : deName+nameLen])
		off += rec
		if ino == 0 || name == "." || name == ".." || name == "" || strings.ContainsAny(name, "/\x00") {
			continue
		}
		if ino > inodes {
			return nil, fmt.Errorf("%w: entry %q names inode %d", ErrCorrupt, name, ino)
		}
		out = append(out, dirent{name: name, ino: ino})
	}
	return out, nil
}

// readDir lists directory in (hash-tree directories linearly).
func (f *FS) readDir(in *Inode) ([]dirent, error) {
	filetype := f.sb.FeatureIncompat&incompatFiletype != 0
	if in.Flags&flagInlineData != 0 {
		out, err := parseDirBlock(in.block[inlineDirOffset:], filetype, f.sb.InodesCount)
		if err != nil {
			return nil, fmt.Errorf("directory inode %d: %w", in.Ino, err)
		}
		sys, err := in.systemData()
		if err != nil || len(sys) == 0 {
			return out, err
		}
		more, err := parseDirBlock(sys, filetype, f.sb.InodesCount)
		if err != nil {
			return nil, fmt.Errorf("directory inode %d: %w", in.Ino, err)
		}
		return append(out, more...), nil
	}
	b, err := f.contents(in, maxDirSize)
	if err != nil {
		return nil, err
	}
	if int64(len(b))%f.sb.BlockSize != 0 {
		return nil, fmt.Errorf("%w: directory %d size %d is not whole blocks", ErrCorrupt, in.Ino, len(b))
	}
	var out []dirent
	for off := int64(0); off < int64(len(b)); off += f.sb.BlockSize {
		es, err := parseDirBlock(b[off:off+f.sb.BlockSize], filetype, f.sb.InodesCount)
		if err != nil {
			return nil, fmt.Errorf("directory inode %d: %w", in.Ino, err)
		}
		out = append(out, es...)
	}
	return out, nil
}

// readLink returns a symlink's target.
func (f *FS) readLink(in *Inode) (string, error) {
	if in.Size > maxLinkSize {
		return "", fmt.Errorf("%w: symlink of %d bytes", ErrCorrupt, in.Size)
	}
	// A target shorter than i_block is kept in it (a "fast" symlink).
	if in.Flags&flagInlineData == 0 && in.Size < inBlockLen {
		return string(in.block[:in.Size]), nil
	}
	b, err := f.contents(in, maxLinkSize)
	return string(b), err
}

// lookup resolves name to an inode. follow says whether a symlink as the
// last element is followed (intermediate ones always are).
func (f *FS) lookup(op, name string, follow bool) (*Inode, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	hops := 0
	cur := name
restart:
	in, err := f.inode(rootIno)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	if cur == "." {
		return in, nil
	}
	els := strings.Split(cur, "/")
	for i, el := range els {
		if !in.isDir() {
			return nil, &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("%s: not a directory: %w", el, fs.ErrNotExist)}
		}
		ents, err := f.readDir(in)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		k := slices.IndexFunc(ents, func(d dirent) bool { return d.name == el })
		if k < 0 {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		next, err := f.inode(ents[k].ino)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		last := i == len(els)-1
		if next.isSymlink() && (!last || follow) {
			if hops++; hops > maxSymlinks {
				return nil, &fs.PathError{Op: op, Path: name, Err: errors.New("too many levels of symbolic links")}
			}
			target, err := f.readLink(next)
			if err != nil {
				return nil, &fs.PathError{Op: op, Path: name, Err: err}
			}
			// Resolve relative to the link's directory; "/" is the root
			// of this filesystem; ".." never leaves it.
			base := strings.Join(els[:i], "/")
			if strings.HasPrefix(target, "/") {
				base = ""
			}
			cur = path.Join(append([]string{"/", base, target}, els[i+1:]...)...)[1:]
			for strings.HasPrefix(cur, "../") || cur == ".." {
				cur = strings.TrimPrefix(strings.TrimPrefix(cur, ".."), "/")
			}
			if cur == "" {
				cur = "."
			}
			goto restart
		}
		in = next
	}
	return in, nil
}

// fileInfo is an fs.FileInfo.
type fileInfo struct {
	name string
	in   *Inode
}

func (i *fileInfo) Name() string { return i.name }
func (i *fileInfo) Size() int64 {
	if i.in.isDir() {
		return 0
	}
	return int64(i.in.Size)
}
func (i *fileInfo) Mode() fs.FileMode  { return i.in.fileMode() }
func (i *fileInfo) ModTime() time.Time { return i.in.Mtime }
func (i *fileInfo) IsDir() bool        { return i.in.isDir() }
func (i *fileInfo) Sys() any           { return i.in }

// Stat implements fs.StatFS (following symlinks).
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	in, err := f.lookup("stat", name, true)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: path.Base(name), in: in}, nil
}

// Lstat implements fs.ReadLinkFS.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	in, err := f.lookup("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: path.Base(name), in: in}, nil
}

// ReadLink implements fs.ReadLinkFS.
func (f *FS) ReadLink(name string) (string, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	in, err := f.lookup("readlink", name, false)
	if err != nil {
		return "", err
	}
	if !in.isSymlink() {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	t, err := f.readLink(in)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return t, nil
}

// ReadDir implements fs.ReadDirFS: entries sorted by name, with types
// from the inodes (symlinks are not followed).
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	in, err := f.lookup("readdir", name, true)
	if err != nil {
		return nil, err
	}
	return f.dirEntries(name, in)
}

func (f *FS) dirEntries(name string, in *Inode) ([]fs.DirEntry, error) {
	if !in.isDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	ents, err := f.readDir(in)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, 0, len(ents))
	for _, e := range ents {
		ci, err := f.inode(e.ino)
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
		}
		out = append(out, fs.FileInfoToDirEntry(&fileInfo{name: e.name, in: ci}))
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// ReadFile implements fs.ReadFileFS.
func (f *FS) ReadFile(name string) ([]byte, error) {
	file, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	r, ok := file.(*File)
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	b := make([]byte, r.in.Size)
	if _, err := r.ReadAt(b, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return b, nil
}

// Open implements fs.FS. Regular files are *File (io.ReaderAt,
// io.Seeker); directories implement fs.ReadDirFile.
func (f *FS) Open(name string) (fs.File, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	in, err := f.lookup("open", name, true)
	if err != nil {
		return nil, err
	}
	info := &fileInfo{name: path.Base(name), in: in}
	if in.isDir() {
		return &dirFile{fs: f, name: name, info: info}, nil
	}
	file := &File{fs: f, name: name, in: in, info: info}
	switch {
	case in.Flags&flagInlineData != 0:
		if file.inline, err = inlineData(in); err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
	case in.Mode&modeFmt == modeReg:
		if file.xs, err = f.extents(in); err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
	default: // devices, fifos, sockets: no data to read
		file.in = &Inode{Ino: in.Ino, Mode: in.Mode}
	}
	return file, nil
}

// File is an open regular file (or a special file, which reads empty).
// A handle from OpenFile or Create on a read-write mount may also write
// (io.WriterAt, Truncate, Sync). Its methods are safe for concurrent use,
// though Read, Write and Seek share one offset.
type File struct {
	fs     *FS
	name   string
	in     *Inode
	info   *fileInfo
	xs     []extent
	inline []byte
	off    int64

	// Write handles only (guarded by fs.mu).
	write  bool
	append bool
	closed bool
	leaves []uint64 // the extent tree's leaf blocks (none: in-inode tree)
	spare  []extent // scratch for changing xs

	mu     sync.Mutex // guards cache, cached
	cache  []byte     // one block of the file
	cached int64      // its logical block number, or -1
}

// Stat implements fs.File.
func (r *File) Stat() (fs.FileInfo, error) {
	r.fs.mu.RLock()
	defer r.fs.mu.RUnlock()
	in := *r.in
	return &fileInfo{name: r.info.name, in: &in}, nil
}

// Close implements fs.File. Closing a write handle does not flush the
// device: call Sync (on the file or the FS) for durability.
func (r *File) Close() error {
	if !r.write {
		return nil
	}
	r.fs.mu.Lock()
	defer r.fs.mu.Unlock()
	if r.closed {
		return &fs.PathError{Op: "close", Path: r.name, Err: fs.ErrClosed}
	}
	r.closed = true
	w := r.fs.w
	if w.open[r.in.Ino]--; w.open[r.in.Ino] <= 0 {
		delete(w.open, r.in.Ino)
	}
	return r.fs.autoSync()
}

// Read implements io.Reader.
func (r *File) Read(p []byte) (int, error) {
	r.mu.Lock()
	off := r.off
	r.mu.Unlock()
	n, err := r.ReadAt(p, off)
	r.mu.Lock()
	r.off = off + int64(n)
	r.mu.Unlock()
	return n, err
}

// ReadAt implements io.ReaderAt.
func (r *File) ReadAt(p []byte, off int64) (int, error) {
	r.fs.mu.RLock()
	defer r.fs.mu.RUnlock()
	if r.closed {
		return 0, &fs.PathError{Op: "read", Path: r.name, Err: fs.ErrClosed}
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: r.name, Err: fs.ErrInvalid}
	}
	size := int64(r.in.Size)
	if off >= size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), size-off))
	switch {
	case r.inline != nil:
		copy(p, r.inline[off:])
	case int64(n) < r.fs.sb.BlockSize:
		if err := r.readSmall(p[:n], off); err != nil {
			return 0, &fs.PathError{Op: "read", Path: r.name, Err: err}
		}
	default:
		if err := r.fs.readData(r.in, r.xs, p[:n], off); err != nil {
			return 0, &fs.PathError{Op: "read", Path: r.name, Err: err}
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// readSmall serves reads shorter than a block from a one-block cache, so
// that byte-sized reads do not each go to the device.
func (r *File) readSmall(p []byte, off int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	bs := r.fs.sb.BlockSize
	for len(p) > 0 {
		lb := off / bs
		if r.cache == nil || r.cached != lb {
			if r.cache == nil {
				r.cache = make([]byte, bs)
			}
			r.cached = -1
			if err := r.fs.readData(r.in, r.xs, r.cache, lb*bs); err != nil {
				return err
			}
			r.cached = lb
		}
		n := copy(p, r.cache[off%bs:])
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// Seek implements io.Seeker.
func (r *File) Seek(offset int64, whence int) (int64, error) {
	r.fs.mu.RLock()
	size := int64(r.in.Size)
	r.fs.mu.RUnlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	switch whence {
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += size
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: r.name, Err: fs.ErrInvalid}
	}
	r.off = offset
	return offset, nil
}

// dirFile is an open directory.
type dirFile struct {
	fs    *FS
	name  string
	info  *fileInfo
	pager block.DirPager
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errors.New("is a directory")}
}

// ReadDir implements fs.ReadDirFile.
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	return d.pager.ReadDir(n, func() ([]fs.DirEntry, error) {
		d.fs.mu.RLock()
		defer d.fs.mu.RUnlock()
		return d.fs.dirEntries(d.name, d.info.in)
	})
}
