package vhd

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gohv/gohv/tools/image"
)

// Azure's limits on an uploaded fixed VHD: a whole number of MiB, between
// these bounds.
const (
	MinSize = 20 * image.MiB
	MaxSize = 32 * image.TiB
)

// ErrSize reports a disk size a fixed VHD for Azure cannot have.
var ErrSize = errors.New("vhd: unsupported disk size")

// CheckSize reports whether size is valid for an Azure fixed VHD and, if
// not, names the nearest valid sizes.
func CheckSize(size int64) error {
	switch {
	case size < MinSize:
		return fmt.Errorf("%w: %s (%d bytes) is below Azure's minimum of %s; use -size %s or more",
			ErrSize, image.FormatSize(size), size, image.FormatSize(MinSize), image.FormatSize(MinSize))
	case size > MaxSize:
		return fmt.Errorf("%w: %s is above Azure's maximum of %s",
			ErrSize, image.FormatSize(size), image.FormatSize(MaxSize))
	case size%image.MiB != 0:
		lo := size / image.MiB * image.MiB
		hi := lo + image.MiB
		alt := fmt.Sprintf("%s (%d bytes) or %s (%d bytes)", image.FormatSize(lo), lo, image.FormatSize(hi), hi)
		if lo < MinSize {
			alt = fmt.Sprintf("%s (%d bytes)", image.FormatSize(hi), hi)
		}
		return fmt.Errorf("%w: %d bytes is not a whole number of MiB, which Azure requires; use %s",
			ErrSize, size, alt)
	}
	return nil
}

// Options control a fixed VHD.
type Options struct {
	// Time is stored as the creation timestamp; zero means now.
	Time time.Time
	// Rand supplies the unique id; nil means crypto/rand.
	Rand io.Reader
}

// WriteFixed writes src to path as a fixed VHD: the disk's bytes followed by
// the footer. The file appears only when complete.
func WriteFixed(path string, src image.Source, opts Options) error {
	size := src.Size()
	if err := CheckSize(size); err != nil {
		return err
	}
	f := Footer{Size: size, Timestamp: opts.Time}
	if f.Timestamp.IsZero() {
		f.Timestamp = time.Now()
	}
	r := opts.Rand
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, f.UniqueID[:]); err != nil {
		return fmt.Errorf("vhd: unique id: %w", err)
	}
	return image.CreateAtomic(path, func(out *os.File) error {
		if err := out.Truncate(size); err != nil {
			return fmt.Errorf("vhd: size file: %w", err)
		}
		if err := image.CopyData(out, 0, src); err != nil {
			return fmt.Errorf("vhd: %w", err)
		}
		if _, err := out.WriteAt(f.Encode(), size); err != nil {
			return fmt.Errorf("vhd: write footer: %w", err)
		}
		return nil
	})
}
