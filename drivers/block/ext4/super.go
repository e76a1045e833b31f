package ext4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Superblock location and offsets (section "Super Block").
const (
	superOffset = 1024
	superSize   = 1024

	sbInodesCount     = 0x00
	sbBlocksCountLo   = 0x04
	sbFirstDataBlock  = 0x14
	sbLogBlockSize    = 0x18
	sbBlocksPerGroup  = 0x20
	sbInodesPerGroup  = 0x28
	sbMagic           = 0x38
	sbRevLevel        = 0x4C
	sbFirstIno        = 0x54
	sbInodeSize       = 0x58
	sbFeatureCompat   = 0x5C
	sbFeatureIncompat = 0x60
	sbFeatureROCompat = 0x64
	sbUUID            = 0x68
	sbVolumeName      = 0x78
	sbDescSize        = 0xFE
	sbBlocksCountHi   = 0x150
	sbChecksum        = 0x3FC

	magic = 0xEF53

	// Group descriptor offsets (section "Block Group Descriptors").
	bgInodeTableLo = 0x08
	bgInodeTableHi = 0x28
	descSize32     = 32
	descSize64Min  = 64

	goodOldInodeSize = 128
	goodOldFirstIno  = 11
	rootIno          = 2
)

// Feature flags (section "Super Block", s_feature_incompat/ro_compat).
const (
	incompatCompression = 0x1
	incompatFiletype    = 0x2
	incompatRecover     = 0x4
	incompatJournalDev  = 0x8
	incompatMetaBG      = 0x10
	incompatExtents     = 0x40
	incompat64bit       = 0x80
	incompatMMP         = 0x100
	incompatFlexBG      = 0x200
	incompatEAInode     = 0x400
	incompatDirData     = 0x1000
	incompatCsumSeed    = 0x2000
	incompatLargeDir    = 0x4000
	incompatInlineData  = 0x8000
	incompatEncrypt     = 0x10000
	incompatCasefold    = 0x20000

	incompatSupported = incompatFiletype | incompatRecover | incompatExtents | incompat64bit | incompatMMP |
		incompatFlexBG | incompatEAInode | incompatCsumSeed | incompatLargeDir | incompatInlineData | incompatCasefold

	roCompatMetadataCsum = 0x400
)

// Errors.
var (
	// ErrCorrupt: on-disk metadata fails validation.
	ErrCorrupt = errors.New("ext4: corrupt filesystem")
	// ErrUnsupported: a feature this reader does not implement.
	ErrUnsupported = errors.New("ext4: unsupported feature")
)

// Superblock is the validated part of the superblock this reader uses.
type Superblock struct {
	InodesCount     uint32
	BlocksCount     uint64
	FirstDataBlock  uint32
	BlockSize       int64
	BlocksPerGroup  uint32
	InodesPerGroup  uint32
	RevLevel        uint32
	FirstIno        uint32
	InodeSize       uint16
	FeatureCompat   uint32
	FeatureIncompat uint32
	FeatureROCompat uint32
	UUID            [16]byte
	Label           string
	DescSize        int
	Groups          uint32
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ParseSuperblock decodes and validates the 1024-byte superblock b.
func ParseSuperblock(b []byte) (Superblock, error) {
	var s Superblock
	if len(b) < superSize {
		return s, fmt.Errorf("%w: short superblock", ErrCorrupt)
	}
	le := binary.LittleEndian
	if le.Uint16(b[sbMagic:]) != magic {
		return s, fmt.Errorf("%w: no ext2/3/4 magic", ErrCorrupt)
	}
	s.InodesCount = le.Uint32(b[sbInodesCount:])
	s.BlocksCount = uint64(le.Uint32(b[sbBlocksCountLo:]))
	s.FirstDataBlock = le.Uint32(b[sbFirstDataBlock:])
	logBS := le.Uint32(b[sbLogBlockSize:])
	s.BlocksPerGroup = le.Uint32(b[sbBlocksPerGroup:])
	s.InodesPerGroup = le.Uint32(b[sbInodesPerGroup:])
	s.RevLevel = le.Uint32(b[sbRevLevel:])
	s.FirstIno, s.InodeSize = goodOldFirstIno, goodOldInodeSize
	if s.RevLevel >= 1 {
		s.FirstIno = le.Uint32(b[sbFirstIno:])
		s.InodeSize = le.Uint16(b[sbInodeSize:])
		s.FeatureCompat = le.Uint32(b[sbFeatureCompat:])
		s.FeatureIncompat = le.Uint32(b[sbFeatureIncompat:])
		s.FeatureROCompat = le.Uint32(b[sbFeatureROCompat:])
	}
	copy(s.UUID[:], b[sbUUID:])
	name := b[sbVolumeName : sbVolumeName+16]
	for i, c := range name {
		if c == 0 {
			name = name[:i]
			break
		}
	}
	s.Label = string(name)
	if un := s.FeatureIncompat &^ incompatSupported; un != 0 {
		return s, fmt.Errorf("%w: incompatible features %#x", ErrUnsupported, un)
	}
	s.DescSize = descSize32
	if s.FeatureIncompat&incompat64bit != 0 {
		s.BlocksCount |= uint64(le.Uint32(b[sbBlocksCountHi:])) << 32
		s.DescSize = int(le.Uint16(b[sbDescSize:]))
		if s.DescSize < descSize64Min || s.DescSize > 1024 || s.DescSize&(s.DescSize-1) != 0 {
			return s, fmt.Errorf("%w: group descriptor size %d", ErrCorrupt, s.DescSize)
		}
	}
	if s.FeatureROCompat&roCompatMetadataCsum != 0 {
		// The stored value is the raw CRC32C register (seed ~0, no final
		// inversion), the complement of the standard checksum.
		if want, got := le.Uint32(b[sbChecksum:]), ^crc32.Checksum(b[:sbChecksum], castagnoli); want != got {
			return s, fmt.Errorf("%w: superblock checksum %#08x, computed %#08x", ErrCorrupt, want, got)
		}
	}
	switch {
	case logBS > 6: // 1 KiB << 6 = 64 KiB
		return s, fmt.Errorf("%w: block size 2^(10+%d)", ErrCorrupt, logBS)
	case s.BlocksPerGroup == 0 || s.InodesPerGroup == 0:
		return s, fmt.Errorf("%w: %d blocks and %d inodes per group", ErrCorrupt, s.BlocksPerGroup, s.InodesPerGroup)
	case s.InodeSize < goodOldInodeSize || s.InodeSize&(s.InodeSize-1) != 0:
		return s, fmt.Errorf("%w: inode size %d", ErrCorrupt, s.InodeSize)
	case s.InodesCount < rootIno || s.FirstIno < 3 || s.FirstIno > s.InodesCount:
		return s, fmt.Errorf("%w: %d inodes, first %d", ErrCorrupt, s.InodesCount, s.FirstIno)
	}
	s.BlockSize = 1024 << logBS
	if int64(s.InodeSize) > s.BlockSize || s.BlocksPerGroup > uint32(8*s.BlockSize) {
		return s, fmt.Errorf("%w: inode size %d, %d blocks per group with %d-byte blocks", ErrCorrupt, s.InodeSize, s.BlocksPerGroup, s.BlockSize)
	}
	if want := uint32(0); s.BlockSize == 1024 {
		want = 1
		if s.FirstDataBlock != want {
			return s, fmt.Errorf("%w: first data block %d with 1 KiB blocks", ErrCorrupt, s.FirstDataBlock)
		}
	} else if s.FirstDataBlock != 0 {
		return s, fmt.Errorf("%w: first data block %d", ErrCorrupt, s.FirstDataBlock)
	}
	if s.BlocksCount <= uint64(s.FirstDataBlock) || s.BlocksCount > 1<<48 {
		return s, fmt.Errorf("%w: %d blocks", ErrCorrupt, s.BlocksCount)
	}
	groups := (s.BlocksCount - uint64(s.FirstDataBlock) + uint64(s.BlocksPerGroup) - 1) / uint64(s.BlocksPerGroup)
	if groups > 1<<32-1 || uint64(s.InodesCount) > groups*uint64(s.InodesPerGroup) {
		return s, fmt.Errorf("%w: %d groups for %d inodes", ErrCorrupt, groups, s.InodesCount)
	}
	s.Groups = uint32(groups)
	return s, nil
}

// parseInodeTables reads the inode table location of each group from the
// descriptor table b, checking each lies inside the filesystem.
func parseInodeTables(b []byte, s Superblock) ([]uint64, error) {
	if uint64(len(b)) < uint64(s.Groups)*uint64(s.DescSize) {
		return nil, fmt.Errorf("%w: descriptor table of %d bytes for %d groups", ErrCorrupt, len(b), s.Groups)
	}
	le := binary.LittleEndian
	tableBlocks := (uint64(s.InodesPerGroup)*uint64(s.InodeSize) + uint64(s.BlockSize) - 1) / uint64(s.BlockSize)
	out := make([]uint64, s.Groups)
	for g := range out {
		d := b[g*s.DescSize : (g+1)*s.DescSize]
		t := uint64(le.Uint32(d[bgInodeTableLo:]))
		if s.DescSize >= descSize64Min {
			t |= uint64(le.Uint32(d[bgInodeTableHi:])) << 32
		}
		if t == 0 || t >= s.BlocksCount || tableBlocks > s.BlocksCount-t {
			return nil, fmt.Errorf("%w: group %d inode table at block %d", ErrCorrupt, g, t)
		}
		out[g] = t
	}
	return out, nil
}
