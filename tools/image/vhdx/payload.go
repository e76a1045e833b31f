package vhdx

import (
	"encoding/binary"
	"fmt"
	"io"
)

// PayloadOffset maps virtual disk offset off to where its bytes live in
// the file, for callers that write a VHDX in place (tools/hvsim/storvsp).
// It returns the file offset, how many bytes from there on stay inside the
// same payload block (and the disk), and ok == false when off is outside
// the disk or its block is not stored in the file (fully present, MS-VHDX
// §2.5.1.1).
func (d *Disk) PayloadOffset(off int64) (fileOff, run int64, ok bool) {
	if off < 0 || off >= d.Layout.Size {
		return 0, 0, false
	}
	bs := int64(d.Layout.BlockSize)
	i, in := off/bs, off%bs
	e := d.bat[i]
	if e&batStateMask != PayloadFullyPresent {
		return 0, 0, false
	}
	run = min(bs-in, d.Layout.Size-off)
	return int64(e>>batOffsetShift)*alignment + in, run, true
}

// AllocateBlock makes payload block i of a dynamic VHDX present: it places
// the block at the first 1 MiB boundary at or after fileEnd (the file's
// current size), extends the file with zeros to the block's end, then
// writes the block's BAT entry as fully present (MS-VHDX §2.5.1), in that
// order, so a crash in between leaves at worst an unused block. It returns
// the new file size. The block reads as zero until written through
// PayloadOffset.
//
// The file's header is not touched: its data-write GUID is not renewed and
// nothing goes through the log, which MS-VHDX asks of a writer that wants
// other readers to notice the change; Hyper-V and qemu-img open the result.
// The caller serialises AllocateBlock against every other use of d.
func (d *Disk) AllocateBlock(w io.WriterAt, fileEnd, i int64) (newEnd int64, err error) {
	if i < 0 || i >= int64(len(d.bat)) {
		return fileEnd, fmt.Errorf("vhdx: block %d of %d", i, len(d.bat))
	}
	if d.bat[i]&batStateMask == PayloadFullyPresent {
		return fileEnd, nil
	}
	off := alignUp(max(fileEnd, headerSectionSize), alignment)
	bs := int64(d.Layout.BlockSize)
	// Extend the file: a zero byte at the block's last position.
	if _, err := w.WriteAt([]byte{0}, off+bs-1); err != nil {
		return fileEnd, fmt.Errorf("vhdx: extend for block %d: %w", i, err)
	}
	e := batEntry(PayloadFullyPresent, off)
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], e)
	if _, err := w.WriteAt(b[:], d.Layout.BATOffset+batIndex(i, d.Layout.BlockSize)*8); err != nil {
		return off + bs, fmt.Errorf("vhdx: BAT entry of block %d: %w", i, err)
	}
	d.bat[i] = e
	d.PresentBlocks++
	return off + bs, nil
}
