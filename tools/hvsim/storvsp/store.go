package storvsp

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/gohv/gohv/tools/image/vhdx"
)

// Store is the backing of one LUN: a flat byte array of Size bytes.
// ReadAt and WriteAt are called concurrently from several channels (for
// different or overlapping ranges, like a disk); Sync makes every completed
// WriteAt durable.
type Store interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	Size() int64
	Sync() error
}

// A Store that also has ReadOnly() bool reporting true makes its LUN
// read-only (FileStore and VHDXStore opened read-only do).

// ErrReadOnlyStore is returned by WriteAt of a store opened read-only.
var ErrReadOnlyStore = errors.New("storvsp: store is read-only")

// FileStore is a raw image file.
type FileStore struct {
	imageFile
	size int64
}

// imageFile is the open image file a FileStore or VHDXStore keeps, with
// the methods both have alike.
type imageFile struct {
	f        *os.File
	readOnly bool
}

// Sync implements Store with fsync (nothing to do for a read-only file).
func (i imageFile) Sync() error {
	if i.readOnly {
		return nil
	}
	return i.f.Sync()
}

// Close closes the file.
func (i imageFile) Close() error { return i.f.Close() }

// ReadOnly reports whether the file was opened read-only.
func (i imageFile) ReadOnly() bool { return i.readOnly }

// OpenRaw opens a raw disk image; its size is the file's size.
func OpenRaw(path string, readOnly bool) (*FileStore, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("storvsp: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("storvsp: %w", err)
	}
	return &FileStore{imageFile: imageFile{f: f, readOnly: readOnly}, size: st.Size()}, nil
}

// ReadAt implements Store.
func (s *FileStore) ReadAt(p []byte, off int64) (int, error) { return s.f.ReadAt(p, off) }

// WriteAt implements Store.
func (s *FileStore) WriteAt(p []byte, off int64) (int, error) {
	if s.readOnly {
		return 0, ErrReadOnlyStore
	}
	return s.f.WriteAt(p, off)
}

// Size implements Store.
func (s *FileStore) Size() int64 { return s.size }

// VHDXStore is a VHDX image (fixed or dynamic, no parent, empty log) read
// and written in place through tools/image/vhdx: a write to a block a
// dynamic file does not store yet appends the block first
// (vhdx.Disk.AllocateBlock).
type VHDXStore struct {
	imageFile

	mu  sync.RWMutex // d's block table changes on allocation
	d   *vhdx.Disk
	end int64 // file size
}

// OpenVHDX opens a VHDX image (no parent, empty log).
func OpenVHDX(path string, readOnly bool) (*VHDXStore, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("storvsp: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("storvsp: %w", err)
	}
	d, err := vhdx.Open(f, st.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("storvsp: %s: %w", path, err)
	}
	return &VHDXStore{imageFile: imageFile{f: f, readOnly: readOnly}, d: d, end: st.Size()}, nil
}

// ReadAt implements Store.
func (s *VHDXStore) ReadAt(p []byte, off int64) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.d.ReadAt(p, off)
}

// WriteAt implements Store.
func (s *VHDXStore) WriteAt(p []byte, off int64) (int, error) {
	if s.readOnly {
		return 0, ErrReadOnlyStore
	}
	if off < 0 || off > s.d.Size() || int64(len(p)) > s.d.Size()-off {
		return 0, fmt.Errorf("storvsp: VHDX write at %d+%d: %w", off, len(p), io.ErrShortWrite)
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		s.mu.RLock()
		fileOff, run, ok := s.d.PayloadOffset(pos)
		s.mu.RUnlock()
		if !ok {
			if err := s.allocate(pos); err != nil {
				return n, err
			}
			continue
		}
		m := int(min(run, int64(len(p)-n)))
		if _, err := s.f.WriteAt(p[n:n+m], fileOff); err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}

// allocate makes the block holding virtual offset pos present.
func (s *VHDXStore) allocate(pos int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, _, ok := s.d.PayloadOffset(pos); ok {
		return nil // another writer was first
	}
	end, err := s.d.AllocateBlock(s.f, s.end, pos/int64(s.d.Layout.BlockSize))
	s.end = end
	if err != nil {
		return fmt.Errorf("storvsp: %w", err)
	}
	return nil
}

// Size implements Store.
func (s *VHDXStore) Size() int64 { return s.d.Size() }

// MemStore is a store in memory, for benchmarks and tests. Sync does
// nothing: everything written is "durable" for as long as the value lives.
type MemStore struct {
	mu   sync.RWMutex
	data []byte
}

// NewMemStore returns a zeroed store of size bytes.
func NewMemStore(size int64) *MemStore { return &MemStore{data: make([]byte, size)} }

// ReadAt implements Store.
func (s *MemStore) ReadAt(p []byte, off int64) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if off < 0 || off >= int64(len(s.data)) {
		return 0, io.EOF
	}
	n := copy(p, s.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt implements Store.
func (s *MemStore) WriteAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if off < 0 || off > int64(len(s.data)) || int64(len(p)) > int64(len(s.data))-off {
		return 0, io.ErrShortWrite
	}
	return copy(s.data[off:], p), nil
}

// Size implements Store.
func (s *MemStore) Size() int64 { return int64(len(s.data)) }

// Sync implements Store.
func (s *MemStore) Sync() error { return nil }

// Bytes returns the store's contents (shared, not a copy).
func (s *MemStore) Bytes() []byte { return s.data }
