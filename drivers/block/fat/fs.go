package fat

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/gohv/gohv/drivers/block"
)

const (
	// maxFileSize is the largest FAT file (DIR_FileSize is 32 bits).
	maxFileSize = 0xFFFFFFFF
	// maxDepth bounds path depth (see resolve).
	maxDepth = 255
)

var (
	_ fs.ReadFileFS = (*FS)(nil)
	_ fs.ReadDirFS  = (*FS)(nil)
	_ fs.StatFS     = (*FS)(nil)
)

// resolve finds name: its parent directory and entry. For the root both
// are nil. Every component but the last must be a directory.
func (f *FS) resolve(op, name string) (*dir, *entry, error) {
	if !fs.ValidPath(name) {
		return nil, nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return nil, nil, nil
	}
	cur := f.root
	els := strings.Split(name, "/")
	if len(els) > maxDepth {
		// A corrupt volume can link a directory to an ancestor; the
		// depth bound keeps a walk of it finite.
		return nil, nil, &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("%w: more than %d levels of directories", ErrFormat, maxDepth)}
	}
	for i, el := range els {
		d, err := f.readDir(cur)
		if err != nil {
			return nil, nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		e, ok := d.lookup(el)
		if !ok {
			if i < len(els)-1 {
				d = nil // only a missing last element has a parent to create it in
			}
			return d, nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		if i == len(els)-1 {
			return d, e, nil
		}
		if !e.isDir() || e.cluster == 0 {
			return nil, nil, &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("%s is not a directory: %w", el, fs.ErrNotExist)}
		}
		cur = e.cluster
	}
	panic("unreachable")
}

// resolveDir returns the directory name, which must exist.
func (f *FS) resolveDir(op, name string) (*dir, error) {
	_, e, err := f.resolve(op, name)
	if err != nil {
		return nil, err
	}
	if e == nil {
		d, err := f.readDir(f.root)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		return d, nil
	}
	if !e.isDir() || e.cluster == 0 {
		return nil, &fs.PathError{Op: op, Path: name, Err: errNotDir}
	}
	d, err := f.readDir(e.cluster)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return d, nil
}

var (
	errNotDir   = errors.New("not a directory")
	errIsDir    = errors.New("is a directory")
	errNotEmpty = errors.New("directory not empty")
)

// Open implements fs.FS: files and directories, for reading.
func (f *FS) Open(name string) (fs.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, e, err := f.resolve("open", name)
	if err != nil {
		return nil, err
	}
	if e == nil || e.isDir() {
		return &dirFile{fs: f, name: name, info: f.infoOf(name, e)}, nil
	}
	return f.newFile(name, d, e, false)
}

func (f *FS) newFile(name string, d *dir, e *entry, write bool) (*File, error) {
	chain, err := f.chain(e.cluster, maxFileSize/int(f.clusterSize)+1)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if int64(e.size) > int64(len(chain))*f.clusterSize {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%w: %d bytes in %d clusters", ErrFormat, e.size, len(chain))}
	}
	file := &File{fs: f, name: name, d: d, e: *e, chain: chain, size: int64(e.size), write: write}
	if write {
		f.open[file.ref()]++
	}
	return file, nil
}

// ReadFile implements fs.ReadFileFS.
func (f *FS) ReadFile(name string) ([]byte, error) {
	file, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	ff, ok := file.(*File)
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errIsDir}
	}
	b := make([]byte, ff.size)
	if _, err := ff.ReadAt(b, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return b, nil
}

// ReadDir implements fs.ReadDirFS: the entries sorted by name.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.resolveDir("readdir", name)
	if err != nil {
		return nil, err
	}
	out := make([]fs.DirEntry, 0, len(d.entries))
	for i := range d.entries {
		out = append(out, fs.FileInfoToDirEntry(f.infoOf(d.entries[i].name, &d.entries[i])))
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// Stat implements fs.StatFS.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, e, err := f.resolve("stat", name)
	if err != nil {
		return nil, err
	}
	return f.infoOf(name, e), nil
}

// fileInfo is an fs.FileInfo of an entry.
type fileInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
}

func (i *fileInfo) Name() string       { return i.name }
func (i *fileInfo) Size() int64        { return i.size }
func (i *fileInfo) Mode() fs.FileMode  { return i.mode }
func (i *fileInfo) ModTime() time.Time { return i.mtime }
func (i *fileInfo) IsDir() bool        { return i.mode.IsDir() }
func (i *fileInfo) Sys() any           { return nil }

func (f *FS) infoOf(name string, e *entry) *fileInfo {
	if e == nil {
		return &fileInfo{name: ".", mode: fs.ModeDir | 0o755}
	}
	i := &fileInfo{name: path.Base(name), size: int64(e.size), mode: 0o644, mtime: e.mtime}
	if e.isDir() {
		i.mode, i.size = fs.ModeDir|0o755, 0
	}
	if e.attr&attrRO != 0 {
		i.mode &^= 0o222
	}
	return i
}

// dirFile is an open directory.
type dirFile struct {
	fs    *FS
	name  string
	info  *fileInfo
	pager block.DirPager
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errIsDir}
}
func (d *dirFile) Close() error { return nil }

// ReadDir implements fs.ReadDirFile.
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	return d.pager.ReadDir(n, func() ([]fs.DirEntry, error) { return d.fs.ReadDir(d.name) })
}

// Create creates or truncates the file name for reading and writing.
func (f *FS) Create(name string) (*File, error) {
	return f.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

// OpenFile opens name with os.O_* flags (O_RDONLY, O_WRONLY, O_RDWR,
// O_CREATE, O_EXCL, O_TRUNC, O_APPEND). perm only decides the read-only
// attribute (no write bit for anyone).
func (f *FS) OpenFile(name string, flag int, perm fs.FileMode) (*File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	write := flag&(os.O_WRONLY|os.O_RDWR) != 0
	if (write || flag&(os.O_CREATE|os.O_TRUNC) != 0) && f.ro {
		return nil, &fs.PathError{Op: "open", Path: name, Err: ErrReadOnly}
	}
	d, e, err := f.resolve("open", name)
	switch {
	case err == nil && e == nil:
		return nil, &fs.PathError{Op: "open", Path: name, Err: errIsDir}
	case err == nil && flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case err == nil && e.isDir():
		if write {
			return nil, &fs.PathError{Op: "open", Path: name, Err: errIsDir}
		}
	case errors.Is(err, fs.ErrNotExist) && d != nil && flag&os.O_CREATE != 0:
		attr := byte(attrArchive)
		if perm&0o222 == 0 {
			attr |= attrRO
		}
		if e, err = f.create(d, path.Base(name), attr, 0); err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
	case err != nil:
		return nil, err
	}
	if e.isDir() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errIsDir}
	}
	file, err := f.newFile(name, d, e, write)
	if err != nil {
		return nil, err
	}
	file.append = flag&os.O_APPEND != 0
	if flag&os.O_TRUNC != 0 && write && file.size > 0 {
		if err := file.truncateLocked(0); err != nil {
			file.closeLocked()
			return nil, err
		}
	}
	return file, nil
}

// create adds an entry called base to d.
func (f *FS) create(d *dir, base string, attr byte, cluster uint32) (*entry, error) {
	if err := checkName(base); err != nil {
		return nil, err
	}
	short, lfn := d.newShortName(base)
	slot, err := f.addEntry(d, encodeEntry(base, short, lfn, attr, cluster, 0, f.now()))
	if err != nil {
		return nil, err
	}
	for i := range d.entries {
		if d.entries[i].first == slot {
			return &d.entries[i], nil
		}
	}
	return nil, fmt.Errorf("%w: new entry not found", ErrFormat)
}

// Mkdir creates the directory name; its parent must exist.
func (f *FS) Mkdir(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ro {
		return &fs.PathError{Op: "mkdir", Path: name, Err: ErrReadOnly}
	}
	d, _, err := f.resolve("mkdir", name)
	switch {
	case err == nil:
		return &fs.PathError{Op: "mkdir", Path: name, Err: fs.ErrExist}
	case !errors.Is(err, fs.ErrNotExist) || d == nil:
		return err
	}
	base := path.Base(name)
	if err := checkName(base); err != nil {
		return &fs.PathError{Op: "mkdir", Path: name, Err: err}
	}
	// The new directory's cluster is complete ("." and "..") before the
	// parent's entry points at it.
	c, err := f.allocZeroed(0)
	if err != nil {
		return &fs.PathError{Op: "mkdir", Path: name, Err: err}
	}
	parent := d.first
	if parent == f.root {
		parent = 0 // spec: ".." of a root child names cluster 0
	}
	ts := f.now()
	var dot, dotdot [11]byte
	copy(dot[:], ".          ")
	copy(dotdot[:], "..         ")
	b := append(encodeEntry("", dot, false, attrDir, c, 0, ts), encodeEntry("", dotdot, false, attrDir, parent, 0, ts)...)
	if err := f.writeRaw(b, f.clusterOff(c)); err != nil {
		return &fs.PathError{Op: "mkdir", Path: name, Err: err}
	}
	if _, err := f.create(d, base, attrDir, c); err != nil {
		return &fs.PathError{Op: "mkdir", Path: name, Err: err}
	}
	return nil
}

// Remove removes a file or an empty directory. The entry is marked free
// before its clusters are: a crash in between leaks clusters (fsck
// reclaims them) but never leaves an entry pointing at free space.
func (f *FS) Remove(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ro {
		return &fs.PathError{Op: "remove", Path: name, Err: ErrReadOnly}
	}
	d, e, err := f.resolve("remove", name)
	if err != nil {
		return err
	}
	if e == nil {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrInvalid}
	}
	if err := f.removeEntry(d, e); err != nil {
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	}
	return nil
}

func (f *FS) removeEntry(d *dir, e *entry) error {
	if f.open[entryRef{d.first, e.slot}] > 0 {
		return ErrBusy
	}
	if e.isDir() && e.cluster != 0 {
		sub, err := f.readDir(e.cluster)
		if err != nil {
			return err
		}
		if len(sub.entries) > 0 {
			return errNotEmpty
		}
	}
	chain, err := f.chain(e.cluster, int(f.clusters)+1)
	if err != nil {
		return err
	}
	if err := f.deleteEntry(d, e); err != nil {
		return err
	}
	return f.freeChain(chain)
}

// Rename moves oldname to newname, replacing a file (not a directory)
// already there. The new entry is written before the old one is freed: a
// crash in between leaves both names on the same clusters, which fsck
// reports and repairs, but never loses the file.
func (f *FS) Rename(oldname, newname string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.rename(oldname, newname)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	return nil
}

func (f *FS) rename(oldname, newname string) error {
	if f.ro {
		return ErrReadOnly
	}
	od, oe, err := f.resolve("rename", oldname)
	if err != nil {
		return err
	}
	if oe == nil {
		return fs.ErrInvalid
	}
	if oe.isDir() && (strings.HasPrefix(strings.ToUpper(newname), strings.ToUpper(oldname)+"/")) {
		return fmt.Errorf("cannot move a directory into itself: %w", fs.ErrInvalid)
	}
	if f.open[entryRef{od.first, oe.slot}] > 0 {
		return ErrBusy
	}
	nd, ne, err := f.resolve("rename", newname)
	switch {
	case err == nil && ne == nil:
		return fs.ErrExist
	case errors.Is(err, fs.ErrNotExist) && nd != nil:
	case err != nil:
		return err
	}
	if nd.first == od.first {
		nd = od // one in-memory copy of a directory changed twice
	}
	base := path.Base(newname)
	if err := checkName(base); err != nil {
		return err
	}
	old := *oe
	oldSlot := slices.Clone(od.data[old.slot*entrySize : (old.slot+1)*entrySize])
	if ne != nil {
		if ne.slot == old.slot && nd == od {
			ne = nil // a change of case only
		} else if ne.isDir() || old.isDir() {
			return fs.ErrExist
		}
	}
	var victim []uint32
	if ne != nil {
		if f.open[entryRef{nd.first, ne.slot}] > 0 {
			return ErrBusy
		}
		if victim, err = f.chain(ne.cluster, int(f.clusters)+1); err != nil {
			return err
		}
		if err := f.deleteEntry(nd, ne); err != nil {
			return err
		}
	}
	if nd == od && strings.EqualFold(base, old.name) {
		// Case change in place: free the old slots first so the short
		// name is available again, then write the new ones.
		if err := f.deleteEntry(od, &old); err != nil {
			return err
		}
	}
	short, lfn := nd.newShortName(base)
	slots := encodeEntry(base, short, lfn, old.attr, old.cluster, old.size, f.now())
	s := slots[len(slots)-entrySize:]
	copy(s[deNTRes:deFstClusHI], oldSlot[deNTRes:deFstClusHI]) // creation and access times
	copy(s[deWrtTime:deFstClusLO], oldSlot[deWrtTime:deFstClusLO])
	s[deNTRes] = 0
	if _, err := f.addEntry(nd, slots); err != nil {
		return err
	}
	if !(nd == od && strings.EqualFold(base, old.name)) {
		// Re-find the old entry: addEntry re-parsed od if nd == od.
		var cur *entry
		for i := range od.entries {
			if od.entries[i].slot == old.slot {
				cur = &od.entries[i]
			}
		}
		if cur == nil {
			return fmt.Errorf("%w: renamed entry vanished", ErrFormat)
		}
		if err := f.deleteEntry(od, cur); err != nil {
			return err
		}
	}
	if old.isDir() && nd.first != od.first && old.cluster != 0 {
		sub, err := f.readDir(old.cluster)
		if err != nil {
			return err
		}
		parent := nd.first
		if parent == f.root {
			parent = 0
		}
		dd := sub.data[entrySize : 2*entrySize]
		if string(dd[:11]) == "..         " {
			putEntryCluster(dd, parent)
			if err := f.writeSlots(sub, 1, 2); err != nil {
				return err
			}
		}
	}
	return f.freeChain(victim)
}
