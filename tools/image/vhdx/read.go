package vhdx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf16"
)

// ErrFormat reports a file that is not a VHDX this package can read.
var ErrFormat = errors.New("vhdx: malformed file")

// Info is what Open learned about a VHDX file.
type Info struct {
	Creator              string
	Sequence             uint64 // sequence number of the current header
	LogGUID              GUID
	FileWriteGUID        GUID
	DataWriteGUID        GUID
	Page83               GUID
	Layout               Layout
	LeaveBlocksAllocated bool
	LogicalSectorSize    uint32
	PhysicalSectorSize   uint32
	PresentBlocks        int64 // payload blocks stored in the file
}

// Disk reads the virtual disk inside a VHDX file. It implements
// image.Source. Only files without a parent and with an empty log are
// supported: a log to replay means the file was not closed cleanly.
type Disk struct {
	Info
	r   io.ReaderAt
	bat []uint64 // one entry per payload block (bitmap entries dropped)
}

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// Open parses the VHDX file r of fileSize bytes. Every offset and length
// in the file is checked against fileSize and the spec's limits before it
// is used; a damaged file gives an error, never a panic.
func Open(r io.ReaderAt, fileSize int64) (*Disk, error) {
	read := func(off, n int64) ([]byte, error) {
		if off < 0 || n < 0 || off > fileSize || n > fileSize-off {
			return nil, formatErr("structure at %d (+%d) lies outside the %d-byte file", off, n, fileSize)
		}
		b := make([]byte, n)
		if _, err := r.ReadAt(b, off); err != nil {
			return nil, fmt.Errorf("vhdx: read at %d: %w", off, err)
		}
		return b, nil
	}
	id, err := read(fileIDOffset, 8+512)
	if err != nil {
		return nil, err
	}
	if string(id[:8]) != fileSignature {
		return nil, formatErr("no %q signature", fileSignature)
	}
	d := &Disk{r: r}
	d.Creator = decodeUTF16(id[8:])

	var hdr []byte
	for _, off := range []int64{header1Offset, header2Offset} {
		b, err := read(off, headerSize)
		if err != nil {
			return nil, err
		}
		le := binary.LittleEndian
		if le.Uint32(b[hdrSignature:]) != headerSignature || le.Uint32(b[hdrChecksum:]) != checksum(b, hdrChecksum) {
			continue
		}
		if hdr == nil || le.Uint64(b[hdrSequenceNumber:]) > le.Uint64(hdr[hdrSequenceNumber:]) {
			hdr = b
		}
	}
	if hdr == nil {
		return nil, formatErr("neither header is valid")
	}
	le := binary.LittleEndian
	d.Sequence = le.Uint64(hdr[hdrSequenceNumber:])
	copy(d.FileWriteGUID[:], hdr[hdrFileWriteGUID:])
	copy(d.DataWriteGUID[:], hdr[hdrDataWriteGUID:])
	copy(d.LogGUID[:], hdr[hdrLogGUID:])
	if v := le.Uint16(hdr[hdrVersion:]); v != formatVersion {
		return nil, formatErr("version %d, want %d", v, formatVersion)
	}
	if d.LogGUID != (GUID{}) {
		return nil, formatErr("log %s must be replayed first (open and close the file in Hyper-V or qemu-img)", d.LogGUID)
	}
	d.Layout.LogOffset = int64(le.Uint64(hdr[hdrLogOffset:]))
	d.Layout.LogLength = int64(le.Uint32(hdr[hdrLogLength:]))

	rt, err := read(regionTable1Offset, regionTableSize)
	if err != nil {
		return nil, err
	}
	if le.Uint32(rt[rtSignature:]) != regionSignature || le.Uint32(rt[rtChecksum:]) != checksum(rt, rtChecksum) {
		if rt, err = read(regionTable2Offset, regionTableSize); err != nil {
			return nil, err
		}
		if le.Uint32(rt[rtSignature:]) != regionSignature || le.Uint32(rt[rtChecksum:]) != checksum(rt, rtChecksum) {
			return nil, formatErr("neither region table is valid")
		}
	}
	n := le.Uint32(rt[rtEntryCount:])
	if n > rtMaxEntries {
		return nil, formatErr("%d region table entries, at most %d allowed", n, rtMaxEntries)
	}
	var haveBAT, haveMeta bool
	for i := range int(n) {
		e := rt[rtEntries+i*rtEntrySize:]
		var g GUID
		copy(g[:], e[reGUID:])
		off, length := int64(le.Uint64(e[reFileOffset:])), int64(le.Uint32(e[reLength:]))
		if off%alignment != 0 || length%alignment != 0 || off < headerSectionSize {
			return nil, formatErr("region %s at %d (+%d) is not 1 MiB aligned after the header section", g, off, length)
		}
		switch g {
		case batRegionGUID:
			d.Layout.BATOffset, d.Layout.BATLength, haveBAT = off, length, true
		case metadataRegionGUID:
			d.Layout.MetadataOffset, d.Layout.MetadataLength, haveMeta = off, length, true
		default:
			if le.Uint32(e[reRequired:])&regionRequired != 0 {
				return nil, formatErr("unknown required region %s", g)
			}
		}
	}
	if !haveBAT || !haveMeta {
		return nil, formatErr("region table lacks the BAT or the metadata region")
	}
	if err := d.readMetadata(read); err != nil {
		return nil, err
	}
	return d, d.readBAT(read, fileSize)
}

func (d *Disk) readMetadata(read func(off, n int64) ([]byte, error)) error {
	m, err := read(d.Layout.MetadataOffset, d.Layout.MetadataLength)
	if err != nil {
		return err
	}
	if len(m) < metadataTableLen || string(m[:8]) != metadataSignature {
		return formatErr("no metadata table signature")
	}
	le := binary.LittleEndian
	n := int(le.Uint16(m[mtEntryCount:]))
	if n > mtMaxEntries {
		return formatErr("%d metadata entries, at most %d allowed", n, mtMaxEntries)
	}
	item := func(g GUID, want int) ([]byte, error) {
		for i := range n {
			e := m[mtEntries+i*mtEntrySize:]
			if GUID(e[meItemID:meItemID+16]) != g {
				continue
			}
			off, length := int64(le.Uint32(e[meOffset:])), int64(le.Uint32(e[meLength:]))
			if length != int64(want) || off < metadataTableLen || off+length > int64(len(m)) {
				return nil, formatErr("metadata item %s at %d (+%d) is misplaced", g, off, length)
			}
			return m[off : off+length], nil
		}
		return nil, formatErr("metadata item %s missing", g)
	}
	for i := range n {
		e := m[mtEntries+i*mtEntrySize:]
		if GUID(e[meItemID:meItemID+16]) == parentLocatorGUID {
			return formatErr("differencing disks are not supported")
		}
	}
	p, err := item(fileParametersGUID, 8)
	if err != nil {
		return err
	}
	d.Layout.BlockSize = le.Uint32(p)
	flags := le.Uint32(p[4:])
	if flags&paramHasParent != 0 {
		return formatErr("differencing disks are not supported")
	}
	d.LeaveBlocksAllocated = flags&paramLeaveBlocksAllocated != 0
	s, err := item(virtualDiskSizeGUID, 8)
	if err != nil {
		return err
	}
	d.Layout.Size = int64(le.Uint64(s))
	pg, err := item(page83DataGUID, 16)
	if err != nil {
		return err
	}
	copy(d.Page83[:], pg)
	ls, err := item(logicalSectorSizeGUID, 4)
	if err != nil {
		return err
	}
	d.LogicalSectorSize = le.Uint32(ls)
	ps, err := item(physicalSectorSizeGUID, 4)
	if err != nil {
		return err
	}
	d.PhysicalSectorSize = le.Uint32(ps)
	if d.LogicalSectorSize != 512 && d.LogicalSectorSize != 4096 {
		return formatErr("logical sector size %d", d.LogicalSectorSize)
	}
	if d.PhysicalSectorSize != 512 && d.PhysicalSectorSize != 4096 {
		return formatErr("physical sector size %d", d.PhysicalSectorSize)
	}
	bs := d.Layout.BlockSize
	if bs < MinBlockSize || bs > MaxBlockSize || bs&(bs-1) != 0 {
		return formatErr("block size %d", bs)
	}
	if sz := d.Layout.Size; sz <= 0 || sz > MaxSize || sz%int64(d.LogicalSectorSize) != 0 {
		return formatErr("virtual disk size %d", sz)
	}
	return nil
}

func (d *Disk) readBAT(read func(off, n int64) ([]byte, error), fileSize int64) error {
	l := &d.Layout
	l.DataBlocks, l.BATEntries = batEntries(l.Size, l.BlockSize)
	if l.BATEntries*8 > l.BATLength {
		return formatErr("BAT region of %d bytes cannot hold %d entries", l.BATLength, l.BATEntries)
	}
	b, err := read(l.BATOffset, l.BATEntries*8)
	if err != nil {
		return err
	}
	d.bat = make([]uint64, l.DataBlocks)
	bs := int64(l.BlockSize)
	for i := range l.DataBlocks {
		e := binary.LittleEndian.Uint64(b[batIndex(i, l.BlockSize)*8:])
		mb := e >> batOffsetShift
		off := int64(mb) * alignment
		switch e & batStateMask {
		case PayloadNotPresent, PayloadUndefined, PayloadZero, PayloadUnmapped:
			e = 0
		case PayloadFullyPresent:
			if mb > uint64(fileSize/alignment) || off < headerSectionSize || off > fileSize-min(bs, l.Size-i*bs) {
				return formatErr("block %d at %d lies outside the %d-byte file", i, off, fileSize)
			}
			d.PresentBlocks++
		default:
			return formatErr("block %d has unsupported state %d", i, e&batStateMask)
		}
		d.bat[i] = e
	}
	return nil
}

// Size returns the virtual disk size.
func (d *Disk) Size() int64 { return d.Layout.Size }

// BlockState returns the BAT state of payload block i.
func (d *Disk) BlockState(i int64) uint64 { return d.bat[i] & batStateMask }

// ReadAt reads the virtual disk; absent blocks read as zero.
func (d *Disk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= d.Layout.Size {
		return 0, io.EOF
	}
	var tail error
	if rest := d.Layout.Size - off; int64(len(p)) > rest {
		p, tail = p[:rest], io.EOF
	}
	bs := int64(d.Layout.BlockSize)
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		i, in := pos/bs, pos%bs
		m := int(min(int64(len(p)-n), bs-in))
		e := d.bat[i]
		if e&batStateMask == PayloadFullyPresent {
			if _, err := d.r.ReadAt(p[n:n+m], int64(e>>batOffsetShift)*alignment+in); err != nil {
				return n, fmt.Errorf("vhdx: read block %d: %w", i, err)
			}
		} else {
			clear(p[n : n+m])
		}
		n += m
	}
	return n, tail
}

func decodeUTF16(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}
