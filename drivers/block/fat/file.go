package fat

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
)

// File is an open regular file. Its methods are safe for concurrent use
// (the volume's mutex serialises them), though concurrent Read/Write share
// one offset. A handle knows the file's clusters from when it was opened:
// a read-only handle does not see later growth through another handle.
type File struct {
	fs     *FS
	name   string
	d      *dir // parent directory; only the entry's own slot is used
	e      entry
	chain  []uint32
	size   int64
	off    int64
	write  bool
	append bool
	closed bool
	dirty  bool // modification time to write at Close/Sync
}

var (
	_ io.ReaderAt = (*File)(nil)
	_ io.WriterAt = (*File)(nil)
	_ io.Seeker   = (*File)(nil)

	errClosed   = fs.ErrClosed
	errReadOnly = errors.New("file not open for writing")
	errTooBig   = errors.New("FAT files are below 4 GiB")
)

func (fl *File) ref() entryRef { return entryRef{fl.d.first, fl.e.slot} }

// Stat implements fs.File.
func (fl *File) Stat() (fs.FileInfo, error) {
	fl.fs.mu.Lock()
	defer fl.fs.mu.Unlock()
	i := fl.fs.infoOf(fl.name, &fl.e)
	i.size = fl.size
	return i, nil
}

// Read implements io.Reader.
func (fl *File) Read(p []byte) (int, error) {
	fl.fs.mu.Lock()
	defer fl.fs.mu.Unlock()
	n, err := fl.readAtLocked(p, fl.off)
	fl.off += int64(n)
	return n, err
}

// ReadAt implements io.ReaderAt.
func (fl *File) ReadAt(p []byte, off int64) (int, error) {
	fl.fs.mu.Lock()
	defer fl.fs.mu.Unlock()
	return fl.readAtLocked(p, off)
}

func (fl *File) readAtLocked(p []byte, off int64) (int, error) {
	if fl.closed {
		return 0, &fs.PathError{Op: "read", Path: fl.name, Err: errClosed}
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: fl.name, Err: fs.ErrInvalid}
	}
	if off >= fl.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := len(p)
	p = p[:min(int64(len(p)), fl.size-off)]
	n, err := fl.io(p, off, false)
	if err != nil {
		return n, &fs.PathError{Op: "read", Path: fl.name, Err: err}
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// io moves p to or from the file's clusters at off (inside the chain),
// one run of contiguous clusters at a time.
func (fl *File) io(p []byte, off int64, write bool) (int, error) {
	cs := fl.fs.clusterSize
	done := 0
	for len(p) > 0 {
		ci := off / cs
		in := off % cs
		run := int64(1)
		for ci+run < int64(len(fl.chain)) && fl.chain[ci+run] == fl.chain[ci]+uint32(run) {
			run++
		}
		n := min(int64(len(p)), run*cs-in)
		at := fl.fs.clusterOff(fl.chain[ci]) + in
		var err error
		if write {
			err = fl.fs.writeRaw(p[:n], at)
		} else {
			err = fl.fs.readRaw(p[:n], at)
		}
		if err != nil {
			return done, err
		}
		done += int(n)
		p, off = p[n:], off+n
	}
	return done, nil
}

// Seek implements io.Seeker.
func (fl *File) Seek(offset int64, whence int) (int64, error) {
	fl.fs.mu.Lock()
	defer fl.fs.mu.Unlock()
	switch whence {
	case io.SeekCurrent:
		offset += fl.off
	case io.SeekEnd:
		offset += fl.size
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: fl.name, Err: fs.ErrInvalid}
	}
	fl.off = offset
	return offset, nil
}

// Write implements io.Writer (at the end of the file with O_APPEND).
func (fl *File) Write(p []byte) (int, error) {
	fl.fs.mu.Lock()
	defer fl.fs.mu.Unlock()
	if fl.append {
		fl.off = fl.size
	}
	n, err := fl.writeAtLocked(p, fl.off)
	fl.off += int64(n)
	return n, err
}

// WriteAt implements io.WriterAt.
func (fl *File) WriteAt(p []byte, off int64) (int, error) {
	fl.fs.mu.Lock()
	defer fl.fs.mu.Unlock()
	return fl.writeAtLocked(p, off)
}

func (fl *File) checkWrite(op string) error {
	switch {
	case fl.closed:
		return &fs.PathError{Op: op, Path: fl.name, Err: errClosed}
	case !fl.write:
		return &fs.PathError{Op: op, Path: fl.name, Err: errReadOnly}
	}
	return nil
}

// writeAtLocked writes in the order that keeps the volume consistent at
// every step: clusters are allocated (marked end-of-chain, then linked),
// the gap between the old end and off is zeroed, the data is written, and
// only then does the directory entry get the new size.
func (fl *File) writeAtLocked(p []byte, off int64) (int, error) {
	if err := fl.checkWrite("write"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "write", Path: fl.name, Err: fs.ErrInvalid}
	}
	end := off + int64(len(p))
	if end > maxFileSize {
		return 0, &fs.PathError{Op: "write", Path: fl.name, Err: errTooBig}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := fl.grow(end); err != nil {
		return 0, &fs.PathError{Op: "write", Path: fl.name, Err: err}
	}
	if off > fl.size {
		if _, err := fl.io(make([]byte, off-fl.size), fl.size, true); err != nil {
			return 0, &fs.PathError{Op: "write", Path: fl.name, Err: err}
		}
	}
	n, err := fl.io(p, off, true)
	if err != nil {
		return n, &fs.PathError{Op: "write", Path: fl.name, Err: err}
	}
	fl.dirty = true
	if end > fl.size {
		fl.size = end
		if err := fl.writeEntry(); err != nil {
			return n, &fs.PathError{Op: "write", Path: fl.name, Err: err}
		}
	}
	return n, nil
}

// grow allocates clusters until the chain holds size bytes. When that
// fails (the volume is full) the clusters it took are released again, so
// the chain keeps matching the entry's size.
func (fl *File) grow(size int64) error {
	cs := fl.fs.clusterSize
	had := len(fl.chain)
	for int64(len(fl.chain))*cs < size {
		var prev uint32
		if len(fl.chain) > 0 {
			prev = fl.chain[len(fl.chain)-1]
		}
		c, err := fl.fs.alloc(prev)
		if err != nil {
			if had > 0 && len(fl.chain) > had {
				if e := fl.fs.set(fl.chain[had-1], fatEOC); e != nil {
					return errors.Join(err, e)
				}
			}
			if e := fl.fs.freeChain(fl.chain[had:]); e != nil {
				return errors.Join(err, e)
			}
			fl.chain = fl.chain[:had]
			return err
		}
		fl.chain = append(fl.chain, c)
	}
	return nil
}

// writeEntry stores size, first cluster and time in the directory entry.
func (fl *File) writeEntry() error {
	first := uint32(0)
	if len(fl.chain) > 0 {
		first = fl.chain[0]
	}
	fl.e.cluster, fl.e.size = first, uint32(fl.size)
	fl.dirty = false
	return fl.fs.updateEntry(fl.d, fl.e.slot, first, uint32(fl.size), fl.fs.now())
}

// Truncate changes the file's size. Shrinking writes the entry's new size
// first and frees clusters after; growing zero-fills.
func (fl *File) Truncate(size int64) error {
	fl.fs.mu.Lock()
	defer fl.fs.mu.Unlock()
	return fl.truncateLocked(size)
}

func (fl *File) truncateLocked(size int64) error {
	if err := fl.checkWrite("truncate"); err != nil {
		return err
	}
	if size < 0 || size > maxFileSize {
		return &fs.PathError{Op: "truncate", Path: fl.name, Err: fs.ErrInvalid}
	}
	if size > fl.size {
		if err := fl.grow(size); err != nil {
			return &fs.PathError{Op: "truncate", Path: fl.name, Err: err}
		}
		if _, err := fl.io(make([]byte, size-fl.size), fl.size, true); err != nil {
			return &fs.PathError{Op: "truncate", Path: fl.name, Err: err}
		}
		fl.size = size
		return fl.writeEntry()
	}
	keep := int((size + fl.fs.clusterSize - 1) / fl.fs.clusterSize)
	cut := fl.chain[keep:]
	fl.chain = fl.chain[:keep:keep]
	fl.size = size
	if err := fl.writeEntry(); err != nil {
		return &fs.PathError{Op: "truncate", Path: fl.name, Err: err}
	}
	if keep > 0 && len(cut) > 0 {
		if err := fl.fs.set(fl.chain[keep-1], fatEOC); err != nil {
			return err
		}
	}
	if err := fl.fs.freeChain(cut); err != nil {
		return &fs.PathError{Op: "truncate", Path: fl.name, Err: err}
	}
	return nil
}

// Sync writes the entry and FSInfo and flushes the device.
func (fl *File) Sync() error {
	fl.fs.mu.Lock()
	defer fl.fs.mu.Unlock()
	if fl.closed {
		return &fs.PathError{Op: "sync", Path: fl.name, Err: errClosed}
	}
	if fl.dirty {
		if err := fl.writeEntry(); err != nil {
			return err
		}
	}
	return fl.fs.syncLocked()
}

// Close writes a pending modification time and releases the file. It
// does not flush the device (call Sync or FS.Sync for durability).
func (fl *File) Close() error {
	fl.fs.mu.Lock()
	defer fl.fs.mu.Unlock()
	if fl.closed {
		return &fs.PathError{Op: "close", Path: fl.name, Err: errClosed}
	}
	var err error
	if fl.dirty {
		err = fl.writeEntry()
	}
	fl.closeLocked()
	if err != nil {
		return fmt.Errorf("fat: close %s: %w", fl.name, err)
	}
	return nil
}

func (fl *File) closeLocked() {
	fl.closed = true
	if fl.write {
		r := fl.ref()
		if fl.fs.open[r]--; fl.fs.open[r] <= 0 {
			delete(fl.fs.open, r)
		}
	}
}
