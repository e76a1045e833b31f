package vhdx

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
