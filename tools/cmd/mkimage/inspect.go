package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/gohv/gohv/tools/image"
	"github.com/gohv/gohv/tools/image/vhd"
	"github.com/gohv/gohv/tools/image/vhdx"
)

// inspect describes an image file: VHDX structures, or a fixed VHD footer,
// or a raw disk. It trusts nothing in the file: the parsers validate every
// offset before use.
func inspect(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: mkimage inspect file")
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	sig := make([]byte, 8)
	if _, err := f.ReadAt(sig, 0); err == nil && string(sig) == "vhdxfile" {
		d, err := vhdx.Open(f, st.Size())
		if err != nil {
			return err
		}
		kind := "dynamic"
		if d.LeaveBlocksAllocated {
			kind = "fixed"
		}
		fmt.Fprintf(stdout, "%s: VHDX (%s), virtual size %s (%d bytes), block size %s, %d of %d blocks present\n",
			args[0], kind, image.FormatSize(d.Size()), d.Size(), image.FormatSize(int64(d.Layout.BlockSize)),
			d.PresentBlocks, d.Layout.DataBlocks)
		fmt.Fprintf(stdout, "  creator %q, sectors %d/%d (logical/physical), page 83 id %s\n",
			d.Creator, d.LogicalSectorSize, d.PhysicalSectorSize, d.Page83)
		return nil
	}
	if st.Size() >= vhd.FooterSize {
		b := make([]byte, vhd.FooterSize)
		if _, err := f.ReadAt(b, st.Size()-vhd.FooterSize); err != nil {
			return err
		}
		if string(b[:8]) == "conectix" {
			p, err := vhd.ParseFooter(b)
			if err != nil {
				return err
			}
			if p.Size != st.Size()-vhd.FooterSize {
				return fmt.Errorf("%s: footer says %d bytes of data, file holds %d", args[0], p.Size, st.Size()-vhd.FooterSize)
			}
			fmt.Fprintf(stdout, "%s: fixed VHD, size %s (%d bytes), creator %q, CHS %d/%d/%d, created %s\n",
				args[0], image.FormatSize(p.Size), p.Size, p.CreatorApp,
				p.Geometry.Cylinders, p.Geometry.Heads, p.Geometry.Sectors, p.Timestamp.Format("2006-01-02 15:04:05 UTC"))
			return nil
		}
	}
	fmt.Fprintf(stdout, "%s: raw, %s (%d bytes)\n", args[0], image.FormatSize(st.Size()), st.Size())
	return nil
}
