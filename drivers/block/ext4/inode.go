package ext4

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"sort"
	"time"
)

// Inode offsets (section "Index Nodes").
const (
	inMode       = 0x00
	inUIDLo      = 0x02
	inSizeLo     = 0x04
	inMtime      = 0x10
	inGIDLo      = 0x18
	inLinks      = 0x1A
	inFlags      = 0x20
	inBlock      = 0x28 // i_block, 60 bytes
	inBlockLen   = 60
	inSizeHi     = 0x6C
	inUIDHi      = 0x78
	inGIDHi      = 0x7A
	inExtraIsize = 0x80
	inMtimeExtra = 0x88

	flagIndex      = 0x1000     // hash-tree directory
	flagExtents    = 0x80000    // i_block holds an extent tree
	flagInlineData = 0x10000000 // data in i_block (and an xattr)

	modeFmt  = 0xF000
	modeFIFO = 0x1000
	modeChr  = 0x2000
	modeDir  = 0x4000
	modeBlk  = 0x6000
	modeReg  = 0x8000
	modeLnk  = 0xA000
	modeSock = 0xC000
)

// Inode is the decoded part of an inode this reader uses; Sys() of a
// FileInfo returns it.
type Inode struct {
	Ino      uint32
	Mode     uint16 // i_mode: type and permission bits as on disk
	UID, GID uint32
	Links    uint16
	Size     uint64
	Flags    uint32
	Mtime    time.Time
	block    [inBlockLen]byte
	xattrs   []byte // in-inode extended attributes after the magic, or nil
}

// parseInode decodes inode number ino from its on-disk record b (at
// least 128 bytes).
func parseInode(b []byte, ino uint32) (*Inode, error) {
	if len(b) < goodOldInodeSize {
		return nil, fmt.Errorf("%w: inode %d record of %d bytes", ErrCorrupt, ino, len(b))
	}
	le := binary.LittleEndian
	in := &Inode{Ino: ino, Mode: le.Uint16(b[inMode:]), Links: le.Uint16(b[inLinks:]), Flags: le.Uint32(b[inFlags:])}
	in.UID = uint32(le.Uint16(b[inUIDLo:])) | uint32(le.Uint16(b[inUIDHi:]))<<16
	in.GID = uint32(le.Uint16(b[inGIDLo:])) | uint32(le.Uint16(b[inGIDHi:]))<<16
	in.Size = uint64(le.Uint32(b[inSizeLo:])) | uint64(le.Uint32(b[inSizeHi:]))<<32
	copy(in.block[:], b[inBlock:])
	sec := int64(int32(le.Uint32(b[inMtime:])))
	var nsec int64
	if len(b) >= inExtraIsize+2 {
		extra := int(le.Uint16(b[inExtraIsize:]))
		if goodOldInodeSize+extra > len(b) {
			return nil, fmt.Errorf("%w: inode %d extra size %d", ErrCorrupt, ino, extra)
		}
		if x := b[goodOldInodeSize+extra:]; len(x) >= 4 && le.Uint32(x) == xattrMagic {
			in.xattrs = append([]byte(nil), x[4:]...)
		}
		if extra >= inMtimeExtra+4-goodOldInodeSize {
			x := le.Uint32(b[inMtimeExtra:])
			sec += int64(x&3) << 32 // epoch bits extend the seconds
			nsec = int64(x >> 2)
			if nsec > 999999999 {
				nsec = 0
			}
		}
	}
	in.Mtime = time.Unix(sec, nsec).UTC()
	if in.Size > 1<<48 {
		return nil, fmt.Errorf("%w: inode %d size %d", ErrCorrupt, ino, in.Size)
	}
	return in, nil
}

// In-inode extended attributes (section "Extended Attributes"): a magic
// number, then entries; values are addressed from the first entry.
const (
	xattrMagic     = 0xEA020000
	xeNameLen      = 0
	xeNameIndex    = 1
	xeValueOffs    = 2
	xeValueInum    = 4
	xeValueSize    = 8
	xeName         = 16
	xattrSystem    = 7 // name index of "system." attributes
	inlineDataName = "data"
)

// systemData returns the value of the in-inode "system.data" attribute,
// where inline data continues past i_block (nil when absent).
func (in *Inode) systemData() ([]byte, error) {
	le := binary.LittleEndian
	x := in.xattrs
	for off := 0; off+xeName <= len(x) && le.Uint32(x[off:]) != 0; {
		e := x[off:]
		nl := int(e[xeNameLen])
		if off+xeName+nl > len(x) {
			break
		}
		if e[xeNameIndex] == xattrSystem && string(e[xeName:xeName+nl]) == inlineDataName {
			vo, vs := int(le.Uint16(e[xeValueOffs:])), int(le.Uint32(e[xeValueSize:]))
			if le.Uint32(e[xeValueInum:]) != 0 || vo > len(x) || vs > len(x)-vo {
				return nil, fmt.Errorf("%w: inode %d inline data attribute at %d+%d", ErrCorrupt, in.Ino, vo, vs)
			}
			return x[vo : vo+vs], nil
		}
		off += (xeName + nl + 3) &^ 3
	}
	return nil, nil
}

// fileMode converts i_mode to an fs.FileMode.
func (in *Inode) fileMode() fs.FileMode {
	m := fs.FileMode(in.Mode & 0o777)
	if in.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if in.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if in.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch in.Mode & modeFmt {
	case modeDir:
		m |= fs.ModeDir
	case modeLnk:
		m |= fs.ModeSymlink
	case modeChr:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case modeBlk:
		m |= fs.ModeDevice
	case modeFIFO:
		m |= fs.ModeNamedPipe
	case modeSock:
		m |= fs.ModeSocket
	case modeReg:
	default:
		m |= fs.ModeIrregular
	}
	return m
}

func (in *Inode) isDir() bool     { return in.Mode&modeFmt == modeDir }
func (in *Inode) isSymlink() bool { return in.Mode&modeFmt == modeLnk }

// extent maps logical blocks [Logical, Logical+Len) to physical blocks
// from Physical; Uninit extents read as zeros.
type extent struct {
	logical  uint32
	length   uint32
	physical uint64
	uninit   bool
}

// Extent tree offsets (section "The Contents of inode.i_block": Extent Tree).
const (
	ehMagic      = 0
	ehEntries    = 2
	ehMax        = 4
	ehDepth      = 6
	ehSize       = 12
	extMagic     = 0xF30A
	eiBlock      = 0 // index entry
	eiLeafLo     = 4
	eiLeafHi     = 8
	eeBlock      = 0 // leaf entry
	eeLen        = 4
	eeStartHi    = 6
	eeStartLo    = 8
	entrySize    = 12
	maxDepth     = 5
	initMaxLen   = 32768
	maxExtents   = 1 << 20 // bound on one file's extents
	maxNodeVisit = 1 << 20
)

// extentNode is a parsed node: either leaves or index entries.
type extentNode struct {
	depth    int
	leaves   []extent
	children []uint64 // index: child node blocks
	starts   []uint32 // index: first logical block of each child
}

// parseExtentNode decodes an extent tree node (the inode's i_block or a
// tree block), checking the header, counts against the space, and that
// entries are sorted by logical block.
func parseExtentNode(b []byte, blocks uint64) (extentNode, error) {
	var n extentNode
	if len(b) < ehSize {
		return n, fmt.Errorf("%w: extent node of %d bytes", ErrCorrupt, len(b))
	}
	le := binary.LittleEndian
	if le.Uint16(b[ehMagic:]) != extMagic {
		return n, fmt.Errorf("%w: extent header magic %#x", ErrCorrupt, le.Uint16(b[ehMagic:]))
	}
	entries, maxE, depth := int(le.Uint16(b[ehEntries:])), int(le.Uint16(b[ehMax:])), int(le.Uint16(b[ehDepth:]))
	if entries > maxE || maxE > (len(b)-ehSize)/entrySize || depth > maxDepth {
		return n, fmt.Errorf("%w: extent header entries %d max %d depth %d in %d bytes", ErrCorrupt, entries, maxE, depth, len(b))
	}
	n.depth = depth
	var last uint64
	for i := range entries {
		e := b[ehSize+i*entrySize:]
		lb := le.Uint32(e[eiBlock:])
		if i > 0 && uint64(lb) < last {
			return n, fmt.Errorf("%w: extent entries out of order", ErrCorrupt)
		}
		if depth > 0 {
			child := uint64(le.Uint32(e[eiLeafLo:])) | uint64(le.Uint16(e[eiLeafHi:]))<<32
			if child == 0 || child >= blocks {
				return n, fmt.Errorf("%w: extent index names block %d", ErrCorrupt, child)
			}
			n.children = append(n.children, child)
			n.starts = append(n.starts, lb)
			last = uint64(lb)
			continue
		}
		x := extent{logical: lb, length: uint32(le.Uint16(e[eeLen:]))}
		if x.length > initMaxLen {
			x.length -= initMaxLen
			x.uninit = true
		}
		x.physical = uint64(le.Uint32(e[eeStartLo:])) | uint64(le.Uint16(e[eeStartHi:]))<<32
		if x.length == 0 || x.physical == 0 || x.physical >= blocks || uint64(x.length) > blocks-x.physical ||
			uint64(x.logical)+uint64(x.length) > 1<<32 {
			return n, fmt.Errorf("%w: extent %d+%d at block %d", ErrCorrupt, x.logical, x.length, x.physical)
		}
		if i > 0 && uint64(lb) < last {
			return n, fmt.Errorf("%w: overlapping extents", ErrCorrupt)
		}
		last = uint64(x.logical) + uint64(x.length)
		n.leaves = append(n.leaves, x)
	}
	return n, nil
}

// sortExtents orders extents by logical block and rejects overlaps.
func sortExtents(xs []extent) error {
	sort.Slice(xs, func(i, j int) bool { return xs[i].logical < xs[j].logical })
	for i := 1; i < len(xs); i++ {
		if uint64(xs[i-1].logical)+uint64(xs[i-1].length) > uint64(xs[i].logical) {
			return fmt.Errorf("%w: overlapping extents at logical block %d", ErrCorrupt, xs[i].logical)
		}
	}
	return nil
}
