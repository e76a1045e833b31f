package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Options describe the volume itself.
type Options struct {
	// Label is the volume label (at most 11 characters of A-Z, 0-9, space
	// and the short-name punctuation); empty means "NO NAME".
	Label string
	// VolumeID is the serial number in the boot sector.
	VolumeID uint32
	// HiddenSectors is the volume's first LBA on the disk, recorded in the
	// BPB for software that boots from it.
	HiddenSectors uint32
	// Time stamps every entry; zero means 2000-01-01 00:00 so that images
	// are reproducible unless the caller asks otherwise.
	Time time.Time
}

// ErrSize reports a volume size FAT32 cannot have.
var ErrSize = errors.New("fat: unsupported volume size")

// Geometry is the computed layout of a volume.
type Geometry struct {
	TotalSectors      uint32
	SectorsPerCluster uint32
	FATSectors        uint32
	Clusters          uint32 // data clusters, numbered from 2
	DataOffset        int64  // byte offset of cluster 2 in the volume
}

// NewGeometry lays out a FAT32 volume of size bytes.
func NewGeometry(size int64) (Geometry, error) {
	if size%sectorSize != 0 || size/sectorSize > 0xFFFFFFFF {
		return Geometry{}, fmt.Errorf("%w: %d bytes is not a whole number of sectors below 2 TiB", ErrSize, size)
	}
	g := Geometry{TotalSectors: uint32(size / sectorSize), SectorsPerCluster: uint32(clusterSize(size) / sectorSize)}
	// FAT size per the spec's "FAT Data Structure" formula for FAT32.
	tmp1 := uint64(g.TotalSectors) - reservedSectors
	if g.TotalSectors <= reservedSectors {
		tmp1 = 0
	}
	tmp2 := (256*uint64(g.SectorsPerCluster) + numFATs) / 2
	g.FATSectors = uint32((tmp1 + tmp2 - 1) / tmp2)
	data := int64(g.TotalSectors) - reservedSectors - numFATs*int64(g.FATSectors)
	if data <= 0 {
		return Geometry{}, fmt.Errorf("%w: %d bytes leaves no data area", ErrSize, size)
	}
	g.Clusters = uint32(data / int64(g.SectorsPerCluster))
	if g.Clusters < minClusters {
		least := int64(minClusters)*int64(g.SectorsPerCluster)*sectorSize + (reservedSectors+2*((minClusters+2)*4/sectorSize+1))*sectorSize
		return Geometry{}, fmt.Errorf("%w: %d bytes gives %d clusters; FAT32 needs at least %d (a volume of about %d MiB or more)",
			ErrSize, size, g.Clusters, minClusters, (least+(1<<20)-1)>>20)
	}
	if g.Clusters > maxClusters {
		return Geometry{}, fmt.Errorf("%w: %d bytes gives too many clusters", ErrSize, size)
	}
	g.DataOffset = int64(reservedSectors+numFATs*g.FATSectors) * sectorSize
	return g, nil
}

// Write builds the volume holding t at [off, off+size) of w. It writes the
// reserved sectors, both FATs up to the last used cluster, the directories
// and the files; the rest of the range must already read as zero (a fresh
// image.MemDisk or truncated file does).
func Write(w io.WriterAt, off, size int64, t *Tree, o Options) error {
	g, err := NewGeometry(size)
	if err != nil {
		return err
	}
	if t == nil {
		t = &Tree{}
	}
	label, err := volumeLabel(o.Label)
	if err != nil {
		return err
	}
	ts := o.Time
	if ts.IsZero() {
		ts = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	t.root.dir = true
	sortChildren(&t.root)

	// Allocate clusters: every directory, breadth-first from the root at
	// cluster 2 so they sit together near the FAT, then every file, each a
	// contiguous run.
	cb := int64(g.SectorsPerCluster) * sectorSize
	next := uint32(rootCluster)
	var order []*node
	alloc := func(n *node, bytes int64) error {
		n.clusters = (bytes + cb - 1) / cb
		if n.clusters == 0 {
			return nil // empty file: no cluster, DIR_FstClus 0
		}
		if int64(next)-2+n.clusters > int64(g.Clusters) {
			return fmt.Errorf("%w: the files need more than the volume's %d clusters of %d bytes; make the partition larger",
				ErrSize, g.Clusters, cb)
		}
		n.cluster = next
		next += uint32(n.clusters)
		order = append(order, n)
		return nil
	}
	for queue := []*node{&t.root}; len(queue) > 0; queue = queue[1:] {
		d := queue[0]
		assignShortNames(d)
		entries := int64(2) // "." and "..", or the root's label (and one spare)
		for _, c := range d.children {
			entries++
			if c.lfn {
				entries += int64(lfnEntries(c.name))
			}
			if c.dir {
				c.parent = d
				queue = append(queue, c)
			}
		}
		if entries > maxDirEntries {
			return fmt.Errorf("fat: directory %q needs %d entries; FAT allows %d", d.name, entries, maxDirEntries)
		}
		if err := alloc(d, entries*entrySize); err != nil {
			return err
		}
	}
	// order holds exactly the directories here; the range below sees only
	// them even though alloc appends the files to order as it goes.
	for _, d := range order {
		for _, c := range d.children {
			if !c.dir {
				if err := alloc(c, int64(len(c.data))); err != nil {
					return err
				}
			}
		}
	}
	used := next - 2

	put := func(b []byte, at int64) error {
		if _, err := w.WriteAt(b, off+at); err != nil {
			return fmt.Errorf("fat: write at %d: %w", off+at, err)
		}
		return nil
	}
	// FAT: entries 0 and 1 are reserved, then one chain per node.
	fat := make([]byte, int64(next)*fatEntrySz)
	le := binary.LittleEndian
	le.PutUint32(fat[0:], fatEntry0)
	le.PutUint32(fat[4:], fatEntry1)
	for _, n := range order {
		for i := range uint32(n.clusters) {
			v := uint32(fatEOC)
			if int64(i) < n.clusters-1 {
				v = n.cluster + i + 1
			}
			le.PutUint32(fat[(n.cluster+i)*fatEntrySz:], v)
		}
	}
	for i := range int64(numFATs) {
		if err := put(fat, (reservedSectors+i*int64(g.FATSectors))*sectorSize); err != nil {
			return err
		}
	}
	boot := bootSector(g, label, o)
	info := fsInfo(g.Clusters-used, next)
	for _, s := range []struct {
		b   []byte
		sec int64
	}{{boot, 0}, {info, fsInfoSector}, {boot, backupBoot}, {info, backupBoot + 1}} {
		if err := put(s.b, s.sec*sectorSize); err != nil {
			return err
		}
	}
	clusterOff := func(c uint32) int64 { return g.DataOffset + int64(c-2)*cb }
	for _, n := range order {
		if n.clusters == 0 {
			continue
		}
		var b []byte
		if n.dir {
			// ".." of a child of the root names cluster 0, not the root's
			// cluster (spec "FAT Directory Structure").
			parent := uint32(0)
			if n.parent != nil && n.parent != &t.root {
				parent = n.parent.cluster
			}
			b = dirBytes(n, n == &t.root, label, parent, ts, n.clusters*cb)
		} else {
			b = n.data
		}
		if err := put(b, clusterOff(n.cluster)); err != nil {
			return err
		}
	}
	return nil
}

// volumeLabel validates and pads a label to 11 bytes.
func volumeLabel(l string) ([11]byte, error) {
	var b [11]byte
	if l == "" {
		l = "NO NAME"
	}
	l = strings.ToUpper(l)
	if len(l) > 11 {
		return b, fmt.Errorf("%w: volume label %q is longer than 11 characters", ErrName, l)
	}
	for _, r := range l {
		if r != ' ' && !shortOK(r) {
			return b, fmt.Errorf("%w: volume label %q contains %q", ErrName, l, r)
		}
	}
	copy(b[:], l+strings.Repeat(" ", 11-len(l)))
	return b, nil
}

func bootSector(g Geometry, label [11]byte, o Options) []byte {
	b := make([]byte, sectorSize)
	le := binary.LittleEndian
	copy(b[bsJmpBoot:], []byte{0xEB, 0x58, 0x90})
	copy(b[bsOEMName:], "MSWIN4.1") // the OEM name the spec recommends for compatibility
	le.PutUint16(b[bpbBytsPerSc:], sectorSize)
	b[bpbSecPerClu] = byte(g.SectorsPerCluster)
	le.PutUint16(b[bpbRsvdSecCn:], reservedSectors)
	b[bpbNumFATs] = numFATs
	le.PutUint16(b[bpbRootEntCn:], 0)
	le.PutUint16(b[bpbTotSec16:], 0)
	b[bpbMedia] = mediaFixed
	le.PutUint16(b[bpbFATSz16:], 0)
	le.PutUint16(b[bpbSecPerTrk:], 63)
	le.PutUint16(b[bpbNumHeads:], 255)
	le.PutUint32(b[bpbHiddSec:], o.HiddenSectors)
	le.PutUint32(b[bpbTotSec32:], g.TotalSectors)
	le.PutUint32(b[bpbFATSz32:], g.FATSectors)
	le.PutUint16(b[bpbExtFlags:], 0) // FATs mirrored
	le.PutUint16(b[bpbFSVer:], 0)
	le.PutUint32(b[bpbRootClus:], rootCluster)
	le.PutUint16(b[bpbFSInfo:], fsInfoSector)
	le.PutUint16(b[bpbBkBootSec:], backupBoot)
	b[bsDrvNum] = 0x80
	b[bsBootSig] = 0x29
	le.PutUint32(b[bsVolID:], o.VolumeID)
	copy(b[bsVolLab:], label[:])
	copy(b[bsFilSysType:], "FAT32   ")
	b[bsSignature], b[bsSignature+1] = 0x55, 0xAA
	return b
}

func fsInfo(free, nextFree uint32) []byte {
	b := make([]byte, sectorSize)
	le := binary.LittleEndian
	le.PutUint32(b[fsiLeadSig:], fsiLeadSigValue)
	le.PutUint32(b[fsiStrucSig:], fsiStrucSigValue)
	le.PutUint32(b[fsiFreeCount:], free)
	le.PutUint32(b[fsiNxtFree:], nextFree)
	le.PutUint32(b[fsiTrailSig:], fsiTrailSigValue)
	return b
}

// fatDateTime encodes t in the FAT date and time formats.
func fatDateTime(t time.Time) (date, tm uint16) {
	t = t.UTC()
	y := max(t.Year(), 1980)
	date = uint16((y-1980)<<9 | int(t.Month())<<5 | t.Day())
	tm = uint16(t.Hour()<<11 | t.Minute()<<5 | t.Second()/2)
	return date, tm
}

// dirBytes encodes the entries of directory n into size bytes.
func dirBytes(n *node, root bool, label [11]byte, parent uint32, ts time.Time, size int64) []byte {
	b := make([]byte, size)
	at := 0
	put := func(slots []byte) { at += copy(b[at:], slots) }
	if root {
		put(encodeEntry("", label, false, attrVolume, 0, 0, ts))
	} else {
		var dot, dotdot [11]byte
		copy(dot[:], ".          ")
		copy(dotdot[:], "..         ")
		put(encodeEntry("", dot, false, attrDir, n.cluster, 0, ts))
		put(encodeEntry("", dotdot, false, attrDir, parent, 0, ts))
	}
	for _, c := range n.children {
		attr, size := byte(attrArchive), uint32(len(c.data))
		if c.dir {
			attr, size = attrDir, 0
		}
		put(encodeEntry(c.name, c.short, c.lfn, attr, c.cluster, size, ts))
	}
	return b
}
