package vhdx

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf16"

	"github.com/gohv/gohv/tools/image"
)

// Options control a VHDX file.
type Options struct {
	// Fixed makes every payload block present and marks the file "leave
	// blocks allocated". Otherwise the file is dynamic: blocks that read as
	// zero are left out.
	Fixed bool
	// BlockSize is the payload block size: a power of two between 1 MiB
	// and 256 MiB. Zero means DefaultBlockSize.
	BlockSize uint32
	// Rand supplies the bytes of the file's GUIDs (file write, data write,
	// page 83). Nil means crypto/rand; tests pass a fixed stream to make
	// output reproducible.
	Rand io.Reader
	// Creator names the program in the file type identifier. Empty means
	// "gohv mkimage".
	Creator string
}

// ErrSize reports a virtual disk size VHDX cannot describe.
var ErrSize = errors.New("vhdx: unsupported virtual disk size")

// Layout is where the parts of a VHDX file go.
type Layout struct {
	Size           int64  // virtual disk size
	BlockSize      uint32 // payload block size
	DataBlocks     int64  // payload blocks covering Size
	BATEntries     int64  // entries including sector bitmap entries
	LogOffset      int64
	LogLength      int64
	MetadataOffset int64
	MetadataLength int64
	BATOffset      int64
	BATLength      int64
	DataOffset     int64 // first payload block
}

// NewLayout places the log, metadata region, BAT and payload of a VHDX
// for a disk of size bytes. The order and alignment follow what Hyper-V
// and qemu-img produce: everything 1 MiB aligned after the header section.
func NewLayout(size int64, blockSize uint32) (Layout, error) {
	if blockSize == 0 {
		blockSize = DefaultBlockSize
	}
	if blockSize < MinBlockSize || blockSize > MaxBlockSize || blockSize&(blockSize-1) != 0 {
		return Layout{}, fmt.Errorf("vhdx: block size %d is not a power of two between 1 MiB and 256 MiB", blockSize)
	}
	if size <= 0 || size%logicalSectorSize != 0 || size > MaxSize {
		return Layout{}, fmt.Errorf("%w: %d bytes; it must be a positive multiple of %d bytes no larger than 64 TiB",
			ErrSize, size, logicalSectorSize)
	}
	l := Layout{Size: size, BlockSize: blockSize}
	l.DataBlocks, l.BATEntries = batEntries(size, blockSize)
	l.LogOffset = headerSectionSize
	l.LogLength = alignment
	l.MetadataOffset = l.LogOffset + l.LogLength
	l.MetadataLength = alignment
	l.BATOffset = l.MetadataOffset + l.MetadataLength
	l.BATLength = alignUp(l.BATEntries*8, alignment)
	l.DataOffset = l.BATOffset + l.BATLength
	return l, nil
}

// Write writes the contents of src to path as a VHDX file. The file appears
// only when complete.
func Write(path string, src image.Source, opts Options) error {
	l, err := NewLayout(src.Size(), opts.BlockSize)
	if err != nil {
		return err
	}
	return image.CreateAtomic(path, func(f *os.File) error {
		return write(f, l, src, opts)
	})
}

type ids struct{ fileWrite, dataWrite, page83 GUID }

func newIDs(r io.Reader) (ids, error) {
	if r == nil {
		r = rand.Reader
	}
	var b [48]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return ids{}, fmt.Errorf("vhdx: random GUIDs: %w", err)
	}
	var v ids
	for i, g := range []*GUID{&v.fileWrite, &v.dataWrite, &v.page83} {
		copy(g[:], b[16*i:])
		// Random (version 4, RFC 4122 variant) GUIDs in Microsoft byte order.
		g[7] = g[7]&0x0f | 0x40
		g[8] = g[8]&0x3f | 0x80
	}
	return v, nil
}

func write(f *os.File, l Layout, src image.Source, opts Options) error {
	id, err := newIDs(opts.Rand)
	if err != nil {
		return err
	}
	bat := make([]byte, l.BATLength)
	end := l.DataOffset
	bs := int64(l.BlockSize)
	buf := make([]byte, bs)
	for i := int64(0); i < l.DataBlocks; i++ {
		off := i * bs
		var data []byte
		if image.MayHoldData(src, off, bs) {
			if err := image.ReadFull(src, buf, off); err != nil {
				return fmt.Errorf("vhdx: %w", err)
			}
			if !image.IsZero(buf) {
				data = buf
			}
		}
		if data == nil && !opts.Fixed {
			continue // PAYLOAD_BLOCK_NOT_PRESENT: the entry stays zero
		}
		pos := l.DataOffset + i*bs
		if !opts.Fixed {
			pos = end
		}
		if data != nil {
			if _, err := f.WriteAt(data, pos); err != nil {
				return fmt.Errorf("vhdx: write block %d: %w", i, err)
			}
		}
		end = max(end, pos+bs)
		binary.LittleEndian.PutUint64(bat[batIndex(i, l.BlockSize)*8:], batEntry(PayloadFullyPresent, pos))
	}
	// Zero blocks of a fixed file are holes in the host file: they read as
	// zero, which is what the block holds.
	if err := f.Truncate(end); err != nil {
		return fmt.Errorf("vhdx: size file: %w", err)
	}
	parts := []struct {
		off int64
		b   []byte
	}{
		{fileIDOffset, encodeFileID(opts.Creator)},
		{header1Offset, encodeHeader(l, id, 1)},
		{header2Offset, encodeHeader(l, id, 2)},
		{regionTable1Offset, encodeRegionTable(l)},
		{regionTable2Offset, encodeRegionTable(l)},
		{l.MetadataOffset, encodeMetadata(l, id, opts.Fixed)},
		{l.BATOffset, bat},
	}
	for _, p := range parts {
		if _, err := f.WriteAt(p.b, p.off); err != nil {
			return fmt.Errorf("vhdx: write structure at %d: %w", p.off, err)
		}
	}
	return nil
}

// encodeFileID builds the file type identifier (§2.2.1): signature and a
// UTF-16LE creator string of up to 256 code units.
func encodeFileID(creator string) []byte {
	if creator == "" {
		creator = "gohv mkimage"
	}
	b := make([]byte, fileIDSize)
	copy(b, fileSignature)
	u := utf16.Encode([]rune(creator))
	for i := 0; i < len(u) && i < 255; i++ {
		binary.LittleEndian.PutUint16(b[8+2*i:], u[i])
	}
	return b
}

// encodeHeader builds one header (§2.2.2). Both copies are valid; the one
// with the larger sequence number is current. The log GUID is zero: there
// is nothing to replay.
func encodeHeader(l Layout, id ids, seq uint64) []byte {
	b := make([]byte, headerSize)
	le := binary.LittleEndian
	le.PutUint32(b[hdrSignature:], headerSignature)
	le.PutUint64(b[hdrSequenceNumber:], seq)
	copy(b[hdrFileWriteGUID:], id.fileWrite[:])
	copy(b[hdrDataWriteGUID:], id.dataWrite[:])
	le.PutUint16(b[hdrLogVersion:], 0)
	le.PutUint16(b[hdrVersion:], formatVersion)
	le.PutUint32(b[hdrLogLength:], uint32(l.LogLength))
	le.PutUint64(b[hdrLogOffset:], uint64(l.LogOffset))
	le.PutUint32(b[hdrChecksum:], checksum(b, hdrChecksum))
	return b
}

// encodeRegionTable builds the region table (§2.2.3) naming the BAT and the
// metadata region, both required.
func encodeRegionTable(l Layout) []byte {
	b := make([]byte, regionTableSize)
	le := binary.LittleEndian
	le.PutUint32(b[rtSignature:], regionSignature)
	le.PutUint32(b[rtEntryCount:], 2)
	for i, r := range []struct {
		g        GUID
		off, len int64
	}{{batRegionGUID, l.BATOffset, l.BATLength}, {metadataRegionGUID, l.MetadataOffset, l.MetadataLength}} {
		e := b[rtEntries+i*rtEntrySize:]
		copy(e[reGUID:], r.g[:])
		le.PutUint64(e[reFileOffset:], uint64(r.off))
		le.PutUint32(e[reLength:], uint32(r.len))
		le.PutUint32(e[reRequired:], regionRequired)
	}
	le.PutUint32(b[rtChecksum:], checksum(b, rtChecksum))
	return b
}

// Offsets of the metadata items inside the metadata region; items start
// after the 64 KiB table (§2.6.1).
const (
	itemFileParameters     = metadataTableLen
	itemVirtualDiskSize    = itemFileParameters + 8
	itemPage83Data         = itemVirtualDiskSize + 8
	itemLogicalSectorSize  = itemPage83Data + 16
	itemPhysicalSectorSize = itemLogicalSectorSize + 4
	itemsEnd               = itemPhysicalSectorSize + 4
)

// encodeMetadata builds the metadata region: table and the five required
// items of a disk without a parent (§2.6.2).
func encodeMetadata(l Layout, id ids, fixed bool) []byte {
	b := make([]byte, itemsEnd)
	le := binary.LittleEndian
	copy(b[mtSignature:], metadataSignature)
	items := []struct {
		g      GUID
		off    uint32
		length uint32
		flags  uint32
	}{
		{fileParametersGUID, itemFileParameters, 8, metaIsRequired},
		{virtualDiskSizeGUID, itemVirtualDiskSize, 8, metaIsVirtualDisk | metaIsRequired},
		{page83DataGUID, itemPage83Data, 16, metaIsVirtualDisk | metaIsRequired},
		{logicalSectorSizeGUID, itemLogicalSectorSize, 4, metaIsVirtualDisk | metaIsRequired},
		{physicalSectorSizeGUID, itemPhysicalSectorSize, 4, metaIsVirtualDisk | metaIsRequired},
	}
	le.PutUint16(b[mtEntryCount:], uint16(len(items)))
	for i, it := range items {
		e := b[mtEntries+i*mtEntrySize:]
		copy(e[meItemID:], it.g[:])
		le.PutUint32(e[meOffset:], it.off)
		le.PutUint32(e[meLength:], it.length)
		le.PutUint32(e[meFlags:], it.flags)
	}
	var params uint32
	if fixed {
		params |= paramLeaveBlocksAllocated
	}
	le.PutUint32(b[itemFileParameters:], l.BlockSize)
	le.PutUint32(b[itemFileParameters+4:], params)
	le.PutUint64(b[itemVirtualDiskSize:], uint64(l.Size))
	copy(b[itemPage83Data:], id.page83[:])
	le.PutUint32(b[itemLogicalSectorSize:], logicalSectorSize)
	le.PutUint32(b[itemPhysicalSectorSize:], physicalSectorSize)
	return b
}
