package ext4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"time"
)

// Superblock fields the writer changes or checks (section "Super Block").
const (
	sbFreeBlocksLo      = 0x0C
	sbFreeInodes        = 0x10
	sbWtime             = 0x30
	sbState             = 0x3A
	sbReservedGDTBlocks = 0xCE
	sbFreeBlocksHi      = 0x158
	sbWantExtraIsize    = 0x15E
	sbChecksumSeed      = 0x270

	stateValid  = 0x1 // cleanly unmounted
	stateErrors = 0x2 // errors detected
)

// Group descriptor fields (section "Block Group Descriptors"); the _hi
// halves exist when the descriptor is 64 bytes or more.
const (
	bgBlockBitmapLo   = 0x00
	bgInodeBitmapLo   = 0x04
	bgFreeBlocksLo    = 0x0C
	bgFreeInodesLo    = 0x0E
	bgUsedDirsLo      = 0x10
	bgFlags           = 0x12
	bgBlockCsumLo     = 0x18
	bgInodeCsumLo     = 0x1A
	bgItableUnusedLo  = 0x1C
	bgChecksum        = 0x1E
	bgBlockBitmapHi   = 0x20
	bgInodeBitmapHi   = 0x24
	bgFreeBlocksHi    = 0x2C
	bgFreeInodesHi    = 0x2E
	bgUsedDirsHi      = 0x30
	bgItableUnusedHi  = 0x32
	bgBlockCsumHi     = 0x38
	bgInodeCsumHi     = 0x3A
	bgBlockCsumHiEnd  = 0x3A
	bgInodeCsumHiEnd  = 0x3C
	bgFlagInodeUninit = 0x1
	bgFlagBlockUninit = 0x2
)

// More inode fields (section "Index Nodes").
const (
	inAtime       = 0x08
	inCtime       = 0x0C
	inDtime       = 0x14
	inBlocksLo    = 0x1C
	inGeneration  = 0x64
	inFileACLLo   = 0x68
	inBlocksHi    = 0x74
	inFileACLHi   = 0x76
	inChecksumLo  = 0x7C
	inChecksumHi  = 0x82
	inCtimeExtra  = 0x84
	inAtimeExtra  = 0x8C
	inCrtime      = 0x90
	inCrtimeExtra = 0x94
	inCsumHiEnd   = 0x84 // i_checksum_hi is present when 128+extra_isize reaches this

	flagHugeFile = 0x40000 // i_blocks counts file-system blocks
	maxLinks     = 65000   // EXT4_LINK_MAX
)

// Directory entry file types (ext4_dir_entry_2.file_type) and the
// checksum tail of a linear directory block (section "Directory Entries").
const (
	ftReg         = 1
	ftDir         = 2
	ftSymlink     = 7
	dirTailSize   = 12
	dirTailFT     = 0xDE
	dirTailCsum   = 8
	extTailSize   = 4
	maxNameLen    = 255
	compatJournal = 0x4
)

// Feature flags the writer handles. A read-write mount is refused when
// the volume has any flag outside these sets (see doc.go for why each is
// safe to ignore).
const (
	compatExtAttr     = 0x8
	compatResizeInode = 0x10
	compatDirIndex    = 0x20
	compatOrphanFile  = 0x1000

	roSparseSuper = 0x1
	roLargeFile   = 0x2
	roHugeFile    = 0x8
	roGDTCsum     = 0x10
	roDirNlink    = 0x20
	roExtraIsize  = 0x40

	writeCompat   = compatJournal | compatExtAttr | compatResizeInode | compatDirIndex | compatOrphanFile | 0x1 /* dir_prealloc */ | 0x2 /* imagic_inodes */
	writeIncompat = incompatFiletype | incompatExtents | incompat64bit | incompatFlexBG | incompatCsumSeed
	writeROCompat = roSparseSuper | roLargeFile | roHugeFile | roGDTCsum | roDirNlink | roExtraIsize | roCompatMetadataCsum
	needIncompat  = incompatFiletype | incompatExtents
)

// Errors of the write API.
var (
	// ErrReadOnly: a change on a volume mounted read-only.
	ErrReadOnly = errors.New("ext4: read-only volume")
	// ErrNoSpace: no free block or inode left.
	ErrNoSpace = errors.New("ext4: no space left")
	// ErrBusy: the file is open for writing and cannot be removed or
	// replaced until it is closed.
	ErrBusy = errors.New("ext4: file is open")
	// ErrNeedsCheck: the volume is not marked clean (or has errors or a
	// journal to replay); run e2fsck before mounting it read-write.
	ErrNeedsCheck = errors.New("ext4: volume needs e2fsck")
)

// FeatureError says why a volume cannot be mounted read-write: the
// feature flags outside the set the writer handles, or a structure it
// cannot change safely (Reason). It wraps ErrUnsupported.
type FeatureError struct {
	Compat, Incompat, ROCompat uint32 // unsupported flags, or 0
	Reason                     string
}

func (e *FeatureError) Error() string {
	var b strings.Builder
	b.WriteString("ext4: cannot write")
	if e.Compat|e.Incompat|e.ROCompat != 0 {
		fmt.Fprintf(&b, ": features compat %#x incompat %#x ro_compat %#x", e.Compat, e.Incompat, e.ROCompat)
	}
	if e.Reason != "" {
		b.WriteString(": " + e.Reason)
	}
	return b.String()
}

// Unwrap returns ErrUnsupported.
func (e *FeatureError) Unwrap() error { return ErrUnsupported }

// writable checks that the writer handles every feature of s; raw is the
// superblock as on disk.
func writable(s Superblock, raw []byte) error {
	e := &FeatureError{
		Compat:   s.FeatureCompat &^ writeCompat,
		Incompat: s.FeatureIncompat &^ writeIncompat,
		ROCompat: s.FeatureROCompat &^ writeROCompat,
	}
	switch {
	case e.Compat|e.Incompat|e.ROCompat != 0:
		return e
	case s.FeatureIncompat&needIncompat != needIncompat:
		e.Reason = "needs the extent and filetype features"
		return e
	case s.FeatureROCompat&roGDTCsum != 0 && s.FeatureROCompat&roCompatMetadataCsum == 0:
		e.Reason = "uninit_bg without metadata_csum (crc16 group checksums) is not implemented"
		return e
	case s.RevLevel < 1:
		e.Reason = "revision 0 superblock"
		return e
	}
	st := binary.LittleEndian.Uint16(raw[sbState:])
	if st&stateValid == 0 || st&stateErrors != 0 || s.FeatureIncompat&incompatRecover != 0 {
		return fmt.Errorf("%w: state %#x, journal recovery %v", ErrNeedsCheck, st, s.FeatureIncompat&incompatRecover != 0)
	}
	return nil
}

// crc32c continues the raw CRC32C register seed over p, as the kernel's
// ext4_chksum does (no pre- or post-inversion); Go's crc32.Update inverts
// on entry and exit, hence the complements.
func crc32c(seed uint32, p []byte) uint32 { return ^crc32.Update(^seed, castagnoli, p) }

func crc32cU32(seed, v uint32) uint32 {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	return crc32c(seed, b[:])
}

// csumSeed is the metadata checksum seed (section "Checksums"): stored in
// the superblock with metadata_csum_seed, else crc32c(~0, UUID).
func csumSeed(s Superblock, raw []byte) uint32 {
	if s.FeatureIncompat&incompatCsumSeed != 0 {
		return binary.LittleEndian.Uint32(raw[sbChecksumSeed:])
	}
	return crc32c(^uint32(0), s.UUID[:])
}

// inodeCsum computes the checksum of inode record rec (the whole inode
// size) with both checksum fields taken as zero.
func inodeCsum(seed uint32, ino uint32, rec []byte) uint32 {
	le := binary.LittleEndian
	s := crc32cU32(crc32cU32(seed, ino), le.Uint32(rec[inGeneration:]))
	var zero [2]byte
	c := crc32c(s, rec[:inChecksumLo])
	c = crc32c(c, zero[:])
	c = crc32c(c, rec[inChecksumLo+2:goodOldInodeSize])
	if len(rec) > goodOldInodeSize {
		hi := goodOldInodeSize+int(le.Uint16(rec[inExtraIsize:])) >= inCsumHiEnd
		c = crc32c(c, rec[goodOldInodeSize:inChecksumHi])
		off := inChecksumHi
		if hi {
			c = crc32c(c, zero[:])
			off += 2
		}
		c = crc32c(c, rec[off:])
	}
	return c
}

// setInodeCsum stores inodeCsum in the record.
func setInodeCsum(seed uint32, ino uint32, rec []byte) {
	le := binary.LittleEndian
	c := inodeCsum(seed, ino, rec)
	le.PutUint16(rec[inChecksumLo:], uint16(c))
	if len(rec) > goodOldInodeSize && goodOldInodeSize+int(le.Uint16(rec[inExtraIsize:])) >= inCsumHiEnd {
		le.PutUint16(rec[inChecksumHi:], uint16(c>>16))
	}
}

// ownerSeed is the per-inode seed of directory and extent block
// checksums: crc32c over the inode number and generation.
func ownerSeed(seed, ino, gen uint32) uint32 { return crc32cU32(crc32cU32(seed, ino), gen) }

// groupDescCsum is the metadata_csum group descriptor checksum: crc32c
// over the group number and the descriptor with bg_checksum as zero,
// truncated to 16 bits.
func groupDescCsum(seed, g uint32, d []byte) uint16 {
	var zero [2]byte
	c := crc32cU32(seed, g)
	c = crc32c(c, d[:bgChecksum])
	c = crc32c(c, zero[:])
	c = crc32c(c, d[bgChecksum+2:])
	return uint16(c)
}

// putTime stores t as seconds (at off) and, when the inode has room,
// the extra field at extraOff (epoch bits and nanoseconds).
func putTime(rec []byte, off, extraOff int, t time.Time) {
	le := binary.LittleEndian
	sec := t.Unix()
	le.PutUint32(rec[off:], uint32(int32(sec)))
	if len(rec) > goodOldInodeSize && goodOldInodeSize+int(le.Uint16(rec[inExtraIsize:])) >= extraOff+4 {
		epoch := uint32((sec-int64(int32(sec)))>>32) & 3
		le.PutUint32(rec[extraOff:], epoch|uint32(t.Nanosecond())<<2)
	}
}

// dirRecLen is the space a directory entry with an n-byte name needs.
func dirRecLen(n int) int { return (deName + n + 3) &^ 3 }

// putDirent writes a directory entry at b[0:].
func putDirent(b []byte, ino uint32, rec int, name string, ft byte) {
	le := binary.LittleEndian
	le.PutUint32(b[deInode:], ino)
	le.PutUint16(b[deRecLen:], uint16(rec))
	b[deNameLen] = byte(len(name))
	b[deType] = ft
	copy(b[deName:], name)
}

// putDirTail writes the empty checksum tail entry in the last 12 bytes
// of directory block b (the checksum itself is set at Sync).
func putDirTail(b []byte) {
	t := b[len(b)-dirTailSize:]
	clear(t)
	binary.LittleEndian.PutUint16(t[deRecLen:], dirTailSize)
	t[deType] = dirTailFT
}

// hasDirTail reports whether directory block b ends in a checksum tail.
func hasDirTail(b []byte) bool {
	t := b[len(b)-dirTailSize:]
	le := binary.LittleEndian
	return le.Uint32(t[deInode:]) == 0 && le.Uint16(t[deRecLen:]) == dirTailSize && t[deNameLen] == 0 && t[deType] == dirTailFT
}

// putExtentHeader writes an extent node header.
func putExtentHeader(b []byte, entries, maxE, depth int) {
	le := binary.LittleEndian
	le.PutUint16(b[ehMagic:], extMagic)
	le.PutUint16(b[ehEntries:], uint16(entries))
	le.PutUint16(b[ehMax:], uint16(maxE))
	le.PutUint16(b[ehDepth:], uint16(depth))
	le.PutUint32(b[8:], 0) // eh_generation
}

// putExtent writes a leaf entry.
func putExtent(b []byte, x extent) {
	le := binary.LittleEndian
	le.PutUint32(b[eeBlock:], x.logical)
	n := x.length
	if x.uninit {
		n += initMaxLen
	}
	le.PutUint16(b[eeLen:], uint16(n))
	le.PutUint16(b[eeStartHi:], uint16(x.physical>>32))
	le.PutUint32(b[eeStartLo:], uint32(x.physical))
}

// putIndex writes an index entry naming child block blk from logical lb.
func putIndex(b []byte, lb uint32, blk uint64) {
	le := binary.LittleEndian
	le.PutUint32(b[eiBlock:], lb)
	le.PutUint32(b[eiLeafLo:], uint32(blk))
	le.PutUint16(b[eiLeafHi:], uint16(blk>>32))
	le.PutUint16(b[10:], 0)
}

// hasSuperBackup reports whether group g holds a superblock copy: every
// group without sparse_super, else 0, 1 and powers of 3, 5 and 7.
func hasSuperBackup(s Superblock, g uint32) bool {
	if g <= 1 || s.FeatureROCompat&roSparseSuper == 0 {
		return true
	}
	for _, p := range []uint32{3, 5, 7} {
		n := p
		for n < g {
			n *= p
		}
		if n == g {
			return true
		}
	}
	return false
}
