package layout

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/diskfs/go-diskfs/backend"

	"github.com/gohv/gohv/tools/image"
)

// diskBackend lets go-diskfs write onto an image.MemDisk.
type diskBackend struct {
	d   *image.MemDisk
	pos int64
}

var _ backend.Storage = (*diskBackend)(nil)

func (b *diskBackend) ReadAt(p []byte, off int64) (int, error)  { return b.d.ReadAt(p, off) }
func (b *diskBackend) WriteAt(p []byte, off int64) (int, error) { return b.d.WriteAt(p, off) }
func (b *diskBackend) Close() error                             { return nil }
func (b *diskBackend) Path() string                             { return "" }
func (b *diskBackend) Stat() (fs.FileInfo, error)               { return diskInfo{b.d.Size()}, nil }
func (b *diskBackend) Writable() (backend.WritableFile, error)  { return b, nil }
func (b *diskBackend) Sys() (*os.File, error) {
	return nil, errors.New("in-memory disk has no OS file")
}

func (b *diskBackend) Read(p []byte) (int, error) {
	n, err := b.d.ReadAt(p, b.pos)
	b.pos += int64(n)
	return n, err
}

func (b *diskBackend) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += b.pos
	case io.SeekEnd:
		off += b.d.Size()
	default:
		return 0, errors.New("bad whence")
	}
	if off < 0 {
		return 0, errors.New("negative position")
	}
	b.pos = off
	return off, nil
}

type diskInfo struct{ size int64 }

func (i diskInfo) Name() string       { return "disk" }
func (i diskInfo) Size() int64        { return i.size }
func (i diskInfo) Mode() fs.FileMode  { return 0o644 }
func (i diskInfo) ModTime() time.Time { return time.Time{} }
func (i diskInfo) IsDir() bool        { return false }
func (i diskInfo) Sys() any           { return nil }
