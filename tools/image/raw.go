package image

import (
	"fmt"
	"io"
	"os"
)

// copyBlock is the unit in which the raw writer reads a Source.
const copyBlock = 1 << 20

// WriteRaw writes the contents of src to path as a raw disk image. Blocks
// that are all zero become holes in the output file.
func WriteRaw(path string, src Source) error {
	if src.Size() <= 0 || src.Size()%SectorSize != 0 {
		return fmt.Errorf("raw image: disk size %d is not a positive multiple of %d bytes", src.Size(), SectorSize)
	}
	return CreateAtomic(path, func(f *os.File) error {
		if err := f.Truncate(src.Size()); err != nil {
			return fmt.Errorf("raw image: size %s: %w", f.Name(), err)
		}
		return CopyData(f, 0, src)
	})
}

// CopyData writes every non-zero block of src to w at base+offset. Zero
// blocks are skipped: the destination must already read as zero there
// (a freshly truncated file does).
func CopyData(w io.WriterAt, base int64, src Source) error {
	buf := make([]byte, copyBlock)
	for off := int64(0); off < src.Size(); off += copyBlock {
		n := min(int64(copyBlock), src.Size()-off)
		if !MayHoldData(src, off, n) {
			continue
		}
		b := buf[:n]
		if err := ReadFull(src, b, off); err != nil {
			return err
		}
		if IsZero(b) {
			continue
		}
		m, err := w.WriteAt(b, base+off)
		if err == nil && m != len(b) {
			err = io.ErrShortWrite
		}
		if err != nil {
			return fmt.Errorf("write disk data at offset %d: %w", base+off, err)
		}
	}
	return nil
}
