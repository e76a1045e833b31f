package image

import (
	"errors"
	"fmt"
	"io"
	"slices"
)

// chunkSize is the allocation granule of a MemDisk: small enough that a
// FAT's scattered metadata writes stay cheap, large enough that the chunk
// map of a multi-GiB disk stays short.
const chunkSize = 64 << 10

// MemDisk is a sparse in-memory virtual disk. Only chunks that were written
// with non-zero bytes take memory, so a layout can be assembled on a disk
// of many GiB. It implements SparseSource and io.WriterAt.
// A MemDisk is not safe for concurrent use.
type MemDisk struct {
	size   int64
	chunks map[int64][]byte // chunk index -> chunkSize bytes
}

// ErrOutOfRange is returned for an access outside the disk.
var ErrOutOfRange = errors.New("access outside the disk")

// NewMemDisk returns an all-zero disk of size bytes.
func NewMemDisk(size int64) (*MemDisk, error) {
	if size <= 0 || size%SectorSize != 0 {
		return nil, fmt.Errorf("disk size %d is not a positive multiple of %d bytes", size, SectorSize)
	}
	return &MemDisk{size: size, chunks: make(map[int64][]byte)}, nil
}

// Size returns the disk size in bytes.
func (d *MemDisk) Size() int64 { return d.size }

// ReadAt reads like io.ReaderAt; unwritten bytes read as zero.
func (d *MemDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at %d: %w", off, ErrOutOfRange)
	}
	if off >= d.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	var err error
	if rest := d.size - off; int64(len(p)) > rest {
		p, err = p[:rest], io.EOF
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		idx, in := pos/chunkSize, int(pos%chunkSize)
		m := min(len(p)-n, chunkSize-in)
		if c := d.chunks[idx]; c != nil {
			copy(p[n:n+m], c[in:])
		} else {
			clear(p[n : n+m])
		}
		n += m
	}
	return n, err
}

// WriteAt writes like io.WriterAt. Writing past the end is an error: a
// disk does not grow.
func (d *MemDisk) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off > d.size || int64(len(p)) > d.size-off {
		return 0, fmt.Errorf("write of %d bytes at %d on a %d-byte disk: %w", len(p), off, d.size, ErrOutOfRange)
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		idx, in := pos/chunkSize, int(pos%chunkSize)
		m := min(len(p)-n, chunkSize-in)
		c := d.chunks[idx]
		if c == nil {
			if IsZero(p[n : n+m]) {
				n += m
				continue
			}
			c = make([]byte, chunkSize)
			d.chunks[idx] = c
		}
		copy(c[in:], p[n:n+m])
		n += m
	}
	return n, nil
}

// DataExtents implements SparseSource.
func (d *MemDisk) DataExtents() []Extent {
	idx := make([]int64, 0, len(d.chunks))
	for i := range d.chunks {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	var ext []Extent
	for _, i := range idx {
		off := i * chunkSize
		n := min(int64(chunkSize), d.size-off)
		if k := len(ext) - 1; k >= 0 && ext[k].End() == off {
			ext[k].Len += n
			continue
		}
		ext = append(ext, Extent{off, n})
	}
	return ext
}
