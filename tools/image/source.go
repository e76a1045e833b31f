package image

import (
	"errors"
	"fmt"
	"io"
	"sort"
)

// SectorSize is the logical sector size of every disk gohv builds.
const SectorSize = 512

// Source is the content of a virtual disk: Size bytes readable at any offset.
// Bytes a Source does not hold read as zero.
type Source interface {
	io.ReaderAt
	Size() int64
}

// Extent is a byte range [Off, Off+Len) of a virtual disk.
type Extent struct {
	Off, Len int64
}

// End returns the first offset after the extent.
func (e Extent) End() int64 { return e.Off + e.Len }

// SparseSource is a Source that knows where its data lies, so that writers
// of sparse formats need not read (and compare to zero) the holes.
type SparseSource interface {
	Source
	// DataExtents reports, sorted and non-overlapping, the ranges that may
	// hold non-zero bytes. Every byte outside them reads as zero.
	DataExtents() []Extent
}

// MayHoldData reports whether [off, off+n) of src may hold non-zero bytes.
// It is true for any range of a Source that is not a SparseSource.
func MayHoldData(src Source, off, n int64) bool {
	ss, ok := src.(SparseSource)
	if !ok {
		return true
	}
	ext := ss.DataExtents()
	i := sort.Search(len(ext), func(i int) bool { return ext[i].End() > off })
	return i < len(ext) && ext[i].Off < off+n
}

// ReadFull reads len(p) bytes at off into p; bytes past the end of src read
// as zero, so callers can fill a whole block at the end of the disk.
func ReadFull(src Source, p []byte, off int64) error {
	n := int64(len(p))
	if rest := src.Size() - off; rest < n {
		if rest < 0 {
			rest = 0
		}
		clear(p[rest:])
		n = rest
	}
	if n == 0 {
		return nil
	}
	got, err := src.ReadAt(p[:n], off)
	if int64(got) == n {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read disk contents at offset %d: %w", off, err)
}

// IsZero reports whether every byte of b is zero.
func IsZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// bytesSource is a Source over a byte slice.
type bytesSource []byte

func (b bytesSource) Size() int64 { return int64(len(b)) }

func (b bytesSource) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// BytesSource returns a Source whose contents are b (not copied).
func BytesSource(b []byte) Source { return bytesSource(b) }

// SizedReaderAt turns any io.ReaderAt of known size (an *os.File, an
// io.SectionReader) into a Source.
func SizedReaderAt(r io.ReaderAt, size int64) Source { return sizedReaderAt{r, size} }

type sizedReaderAt struct {
	io.ReaderAt
	size int64
}

func (s sizedReaderAt) Size() int64 { return s.size }
