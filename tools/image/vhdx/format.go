package vhdx

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"strings"
)

// File layout facts from MS-VHDX §2 (section numbers refer to that spec).
const (
	// Header section (§2.2): 1 MiB of five 64 KiB structures.
	fileIDOffset       = 0
	header1Offset      = 64 << 10
	header2Offset      = 128 << 10
	regionTable1Offset = 192 << 10
	regionTable2Offset = 256 << 10
	headerSectionSize  = 1 << 20

	fileIDSize       = 64 << 10
	headerSize       = 4 << 10 // checksummed part of a header (§2.2.2)
	regionTableSize  = 64 << 10
	metadataTableLen = 64 << 10 // §2.6.1: table at the start of the region

	// Every region, the log and every payload block sit on 1 MiB (§2.2.3.1,
	// §2.5).
	alignment = 1 << 20

	logicalSectorSize  = 512
	physicalSectorSize = 4096

	// Block size limits (§2.6.2.1).
	MinBlockSize = 1 << 20
	MaxBlockSize = 256 << 20
	// DefaultBlockSize keeps dynamic images of small programs small;
	// Microsoft recommends 1 MiB blocks for Linux guests for the same
	// reason. Hyper-V's own default is 32 MiB.
	DefaultBlockSize = 1 << 20

	// MaxSize is the largest virtual disk size VHDX allows (§2.6.2.2).
	MaxSize = 64 << 40

	// chunkBytes is the span of virtual disk one sector-bitmap block covers:
	// 2^23 sectors (§2.5, "chunk ratio").
	chunkSectors = 1 << 23
)

// Signatures (§2.2.1, §2.2.2, §2.2.3, §2.6.1.1), as their little-endian
// integer values where the spec defines them that way.
const (
	fileSignature     = "vhdxfile"
	headerSignature   = 0x64616568 // "head"
	regionSignature   = 0x69676572 // "regi"
	metadataSignature = "metadata"
)

// Field offsets of a header (§2.2.2).
const (
	hdrSignature      = 0
	hdrChecksum       = 4
	hdrSequenceNumber = 8
	hdrFileWriteGUID  = 16
	hdrDataWriteGUID  = 32
	hdrLogGUID        = 48
	hdrLogVersion     = 64
	hdrVersion        = 66
	hdrLogLength      = 68
	hdrLogOffset      = 72

	formatVersion = 1
)

// Region table (§2.2.3): 16-byte header, then 32-byte entries.
const (
	rtSignature  = 0
	rtChecksum   = 4
	rtEntryCount = 8
	rtEntries    = 16
	rtEntrySize  = 32
	rtMaxEntries = 2047

	reGUID       = 0
	reFileOffset = 16
	reLength     = 24
	reRequired   = 28

	regionRequired = 1 // bit 0 of the entry's last word
)

// Metadata table (§2.6.1): 32-byte header, 32-byte entries.
const (
	mtSignature  = 0
	mtEntryCount = 10
	mtEntries    = 32
	mtEntrySize  = 32
	mtMaxEntries = 2047

	meItemID = 0
	meOffset = 16
	meLength = 20
	meFlags  = 24

	metaIsUser        = 1 << 0
	metaIsVirtualDisk = 1 << 1
	metaIsRequired    = 1 << 2

	// File Parameters flags (§2.6.2.1).
	paramLeaveBlocksAllocated = 1 << 0
	paramHasParent            = 1 << 1
)

// BAT entry (§2.5.1): state in bits 0-2, file offset in MiB in bits 20-63.
const (
	PayloadNotPresent       = 0
	PayloadUndefined        = 1
	PayloadZero             = 2
	PayloadUnmapped         = 3
	PayloadFullyPresent     = 6
	PayloadPartiallyPresent = 7

	SectorBitmapNotPresent = 0
	SectorBitmapPresent    = 6

	batStateMask   = 7
	batOffsetShift = 20
)

// GUID is a GUID in the mixed-endian byte order Microsoft stores on disk:
// the first three groups little-endian, the last two as written.
type GUID [16]byte

// mustGUID parses the textual form "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".
func mustGUID(s string) GUID {
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		panic("vhdx: bad GUID literal " + s)
	}
	var g GUID
	binary.LittleEndian.PutUint32(g[0:], binary.BigEndian.Uint32(b[0:]))
	binary.LittleEndian.PutUint16(g[4:], binary.BigEndian.Uint16(b[4:]))
	binary.LittleEndian.PutUint16(g[6:], binary.BigEndian.Uint16(b[6:]))
	copy(g[8:], b[8:])
	return g
}

// String renders the GUID in its usual textual form.
func (g GUID) String() string {
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X",
		binary.LittleEndian.Uint32(g[0:]), binary.LittleEndian.Uint16(g[4:]),
		binary.LittleEndian.Uint16(g[6:]), g[8:10], g[10:])
}

// Well-known GUIDs: regions (§2.2.3.1) and metadata items (§2.6.2).
var (
	batRegionGUID      = mustGUID("2DC27766-F623-4200-9D64-115E9BFD4A08")
	metadataRegionGUID = mustGUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")

	fileParametersGUID     = mustGUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
	virtualDiskSizeGUID    = mustGUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
	page83DataGUID         = mustGUID("BECA12AB-B2E6-4523-93EF-C309E000C746")
	logicalSectorSizeGUID  = mustGUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
	physicalSectorSizeGUID = mustGUID("CDA348C7-445D-4471-9CC9-E9885251C556")
	parentLocatorGUID      = mustGUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum computes the CRC-32C of b with the 4-byte field at off taken as
// zero, as the header and region table checksums are defined.
func checksum(b []byte, off int) uint32 {
	var zero [4]byte
	c := crc32.Update(0, castagnoli, b[:off])
	c = crc32.Update(c, castagnoli, zero[:])
	return crc32.Update(c, castagnoli, b[off+4:])
}

// chunkRatio is the number of payload blocks per sector bitmap block.
func chunkRatio(blockSize uint32) int64 {
	return chunkSectors * logicalSectorSize / int64(blockSize)
}

// batEntries returns the number of BAT entries of a disk without a parent:
// every payload block, plus a sector bitmap entry after each full chunk
// (§2.5).
func batEntries(size int64, blockSize uint32) (dataBlocks, entries int64) {
	dataBlocks = (size + int64(blockSize) - 1) / int64(blockSize)
	return dataBlocks, dataBlocks + (dataBlocks-1)/chunkRatio(blockSize)
}

// batIndex returns the BAT index of payload block i: payload entries of a
// chunk are followed by that chunk's sector bitmap entry.
func batIndex(i int64, blockSize uint32) int64 {
	return i + i/chunkRatio(blockSize)
}

// batEntry encodes a BAT entry.
func batEntry(state uint64, fileOffset int64) uint64 {
	return state | uint64(fileOffset/alignment)<<batOffsetShift
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }
