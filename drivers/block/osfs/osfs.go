// Package osfs makes a mounted filesystem (an io/fs.FS from block/mount,
// block/fat or block/ext4) reachable through Go's os package on TamaGo,
// so that os.ReadFile("/disk/config.txt") works in a gohv kernel.
//
// TamaGo serves os's file calls from an in-memory filesystem inside its
// syscall package (tamago-go src/syscall/fs_tamago.go, adapted from NaCl).
// Its one extension hook is syscall.MkDev(path, mode, open), which makes a
// character-device node whose reads and writes go to a syscall.DevFile
// (Pread/Pwrite). There is no hook to mount a whole filesystem; this
// package therefore mirrors one: Mirror walks the FS once, creates its
// directories in the in-memory tree and one device node per regular file
// whose Pread/Pwrite reach the file on the disk.
//
// Limitations that follow from the hook: the tree is a snapshot (files
// created later through the FS API are not visible through os until
// Mirror runs again), os.Stat reports size 0 (a device node), reads reach
// EOF at the file's end as usual, and writes through os overwrite in place
// (no truncation, no creation; use the fat or ext4 API for those).
//
// Mirror is portable and tested on the host with stand-in hooks; Install
// (install_tamago.go, GOOS=tamago only) passes TamaGo's syscall.Mkdir and
// syscall.MkDev. The package owns nothing else.
package osfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"

	"github.com/gohv/gohv/drivers/block/ext4"
	"github.com/gohv/gohv/drivers/block/fat"
)

// DevFile has the method set of TamaGo's syscall.DevFile.
type DevFile interface {
	Pread(b []byte, off int64) (int, error)
	Pwrite(b []byte, off int64) (int, error)
}

// WriteFunc writes p at off of the file name (an io/fs path).
type WriteFunc func(name string, p []byte, off int64) (int, error)

// Hooks are the operations of the target tree.
type Hooks struct {
	Mkdir func(path string, perm uint32) error
	MkDev func(path string, mode uint32, open func() (DevFile, error)) error
	// Write, when not nil, makes the files writable through os.
	Write WriteFunc
}

// Mirror creates under root (an absolute path of the target tree) every
// directory and regular file of fsys. Existing directories are fine;
// symlinks and special files are skipped.
func Mirror(fsys fs.FS, root string, h Hooks) error {
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := path.Join(root, p)
		switch {
		case d.IsDir():
			if err := h.Mkdir(target, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
		case d.Type().IsRegular():
			mode := uint32(0o444)
			if h.Write != nil {
				mode |= 0o222
			}
			f := &file{fsys: fsys, name: p, write: h.Write}
			return h.MkDev(target, mode, func() (DevFile, error) { return f, nil })
		}
		return nil
	})
}

// file is one mirrored file. Each call opens the file afresh so that it
// always sees the current contents and holds nothing between calls (the
// device hook has no close).
type file struct {
	fsys  fs.FS
	name  string
	write WriteFunc
}

// Pread reads at off; (0, nil) at or past the end, which os turns into
// io.EOF.
func (f *file) Pread(b []byte, off int64) (int, error) {
	r, err := f.fsys.Open(f.name)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	ra, ok := r.(io.ReaderAt)
	if !ok {
		return 0, errors.ErrUnsupported
	}
	n, err := ra.ReadAt(b, off)
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// Pwrite writes at off when the mirror is writable.
func (f *file) Pwrite(b []byte, off int64) (int, error) {
	if f.write == nil {
		return 0, fs.ErrPermission
	}
	return f.write(f.name, b, off)
}

// FATWriter returns a WriteFunc writing through a mounted FAT volume; each
// write opens, writes and closes the file (the entry's size and time are
// updated), without flushing the device.
func FATWriter(v *fat.FS) WriteFunc { return writerOf(v.OpenFile) }

// Ext4Writer is FATWriter for an ext4 volume mounted read-write
// (ext4.MountRW): what it writes is durable after the volume's Sync.
func Ext4Writer(v *ext4.FS) WriteFunc { return writerOf(v.OpenFile) }

// writableFile is what both filesystems' OpenFile returns.
type writableFile interface {
	WriteAt(p []byte, off int64) (int, error)
	Close() error
}

func writerOf[F writableFile](open func(name string, flag int, perm fs.FileMode) (F, error)) WriteFunc {
	return func(name string, p []byte, off int64) (int, error) {
		w, err := open(name, os.O_WRONLY, 0)
		if err != nil {
			return 0, err
		}
		n, err := w.WriteAt(p, off)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		return n, err
	}
}
