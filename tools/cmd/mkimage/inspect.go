package main

import (
	"errors"
	"io"

	"github.com/gohv/gohv/internal/diskinfo"
)

// inspect describes an image file: its container (VHDX, fixed VHD or raw),
// partitions, kernel image and data files (internal/diskinfo, shared with
// gohv inspect). It trusts nothing in the file: the parsers validate every
// offset before use.
func inspect(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: mkimage inspect file")
	}
	r, err := diskinfo.Inspect(args[0])
	if err != nil {
		return err
	}
	r.Print(stdout)
	return nil
}
