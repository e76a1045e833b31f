package fat

import "encoding/binary"

// Boot sector / BPB offsets (spec "Boot Sector and BPB", FAT32 layout).
const (
	bsJmpBoot    = 0
	bsOEMName    = 3
	bpbBytsPerSc = 11
	bpbSecPerClu = 13
	bpbRsvdSecCn = 14
	bpbNumFATs   = 16
	bpbRootEntCn = 17
	bpbTotSec16  = 19
	bpbMedia     = 21
	bpbFATSz16   = 22
	bpbSecPerTrk = 24
	bpbNumHeads  = 26
	bpbHiddSec   = 28
	bpbTotSec32  = 32
	bpbFATSz32   = 36
	bpbExtFlags  = 40
	bpbFSVer     = 42
	bpbRootClus  = 44
	bpbFSInfo    = 48
	bpbBkBootSec = 50
	bsDrvNum     = 64
	bsBootSig    = 66
	bsVolID      = 67
	bsVolLab     = 71
	bsFilSysType = 82
	bsSignature  = 510

	// FSInfo sector (spec "FSInfo Sector Structure").
	fsiLeadSig   = 0
	fsiStrucSig  = 484
	fsiFreeCount = 488
	fsiNxtFree   = 492
	fsiTrailSig  = 508

	fsiLeadSigValue  = 0x41615252
	fsiStrucSigValue = 0x61417272
	fsiTrailSigValue = 0xAA550000

	sectorSize      = 512
	reservedSectors = 32 // first FAT 16 KiB into the volume
	numFATs         = 2
	fsInfoSector    = 1
	backupBoot      = 6 // the spec's recommended backup boot sector
	rootCluster     = 2
	mediaFixed      = 0xF8

	// minClusters is the count below which a volume is FAT16 by definition
	// (spec "FAT Type Determination"); maxClusters keeps clear of the
	// reserved values 0x0FFFFFF7 (bad) and up.
	minClusters = 65525
	maxClusters = 0x0FFFFFF5 - 2

	fatEOC     = 0x0FFFFFFF
	fatEntry0  = 0x0FFFFF00 | mediaFixed
	fatEntry1  = 0x0FFFFFFF // clean shut down, no I/O errors
	fatEntrySz = 4
	entrySize  = 32
	maxNameLen = 255
	// maxDirEntries is the most entries a directory may have (its size is
	// capped at 2 MiB, spec "Directory Structure").
	maxDirEntries = 65536
	lfnChars      = 13
	attrRO        = 0x01
	attrVolume    = 0x08
	attrDir       = 0x10
	attrArchive   = 0x20
	attrLFN       = 0x0F
	lfnLast       = 0x40
)

// Directory entry offsets (spec "Directory Structure").
const (
	deName       = 0
	deAttr       = 11
	deCrtTime    = 14
	deCrtDate    = 16
	deLstAccDate = 18
	deFstClusHI  = 20
	deWrtTime    = 22
	deWrtDate    = 24
	deFstClusLO  = 26
	deFileSize   = 28

	// Long name entry offsets (spec "Long File Name Implementation").
	ldOrd      = 0
	ldName1    = 1
	ldAttr     = 11
	ldChksum   = 13
	ldName2    = 14
	ldFstClsLO = 26
	ldName3    = 28
)

// clusterSize follows the table Microsoft's format uses (and mkfs.fat),
// keyed by volume size.
func clusterSize(size int64) int64 {
	switch {
	case size <= 260<<20:
		return 512
	case size <= 8<<30:
		return 4 << 10
	case size <= 16<<30:
		return 8 << 10
	case size <= 32<<30:
		return 16 << 10
	default:
		return 32 << 10
	}
}

// shortNameChecksum is the checksum of an 11-byte short name that every
// long-name entry carries (spec "Long File Name Implementation").
func shortNameChecksum(name [11]byte) byte {
	var sum byte
	for _, c := range name {
		sum = (sum&1)<<7 + sum>>1 + c
	}
	return sum
}

func putEntryCluster(e []byte, cluster uint32) {
	binary.LittleEndian.PutUint16(e[deFstClusHI:], uint16(cluster>>16))
	binary.LittleEndian.PutUint16(e[deFstClusLO:], uint16(cluster))
}
