package fat

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// Directory entry values (spec "Directory Structure").
const (
	deNTRes       = 12   // DIR_NTRes: case of the short name
	ntLowerBase   = 0x08 // base name displayed in lower case
	ntLowerExt    = 0x10 // extension displayed in lower case
	slotFree      = 0xE5 // DIR_Name[0] of a deleted entry
	slotEnd       = 0x00 // DIR_Name[0]: this and every later entry is free
	slotKanji     = 0x05 // DIR_Name[0] standing for a real 0xE5
	attrHidden    = 0x02
	attrSystem    = 0x04
	lfnOrdMask    = 0x3F
	maxDirBytes   = maxDirEntries * entrySize
	maxLFNEntries = 20 // 255 characters / 13
)

// entry is a decoded directory entry (a short entry plus its long name).
type entry struct {
	name    string // long name, or the short name for display
	short   [11]byte
	attr    byte
	ntres   byte
	cluster uint32
	size    uint32
	mtime   time.Time
	first   int // slot of the first long-name entry (== slot without one)
	slot    int // slot of the short entry
}

func (e *entry) isDir() bool { return e.attr&attrDir != 0 }

// dir is a directory read into memory: its cluster chain and contents.
type dir struct {
	first   uint32 // first cluster (the root's is the BPB's)
	chain   []uint32
	data    []byte
	entries []entry
}

// readDir loads the directory starting at cluster first.
func (f *FS) readDir(first uint32) (*dir, error) {
	chain, err := f.chain(first, int(maxDirBytes/f.clusterSize)+1)
	if err != nil {
		return nil, err
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: directory without clusters", ErrFormat)
	}
	d := &dir{first: first, chain: chain, data: make([]byte, int64(len(chain))*f.clusterSize)}
	for i, c := range chain {
		if err := f.readRaw(d.data[int64(i)*f.clusterSize:int64(i+1)*f.clusterSize], f.clusterOff(c)); err != nil {
			return nil, err
		}
	}
	d.entries = parseDir(d.data, f.entryCluster(first))
	return d, nil
}

// entryCluster returns the check parseDir applies to the first cluster
// of the entries of directory first: on the volume, and a directory never
// names the root or itself (a loop on a corrupt volume).
func (f *FS) entryCluster(first uint32) func(uint32, bool) bool {
	return func(c uint32, isDir bool) bool {
		return f.validCluster(c) && !(isDir && (c == first || c == f.root))
	}
}

// parseDir decodes the live entries of a directory's bytes. Long names
// whose ordinals or checksum do not match their short entry are ignored
// (the short name is used), as the spec requires; entries naming a
// cluster outside the volume are skipped. "." and ".." and the volume
// label are not returned.
func parseDir(b []byte, valid func(c uint32, isDir bool) bool) []entry {
	le := binary.LittleEndian
	var out []entry
	var lfn []uint16
	lfnStart, lfnNext, lfnSum := -1, 0, byte(0)
	for i := 0; (i+1)*entrySize <= len(b); i++ {
		e := b[i*entrySize : (i+1)*entrySize]
		if e[0] == slotEnd {
			break
		}
		if e[0] == slotFree {
			lfnStart = -1
			continue
		}
		if e[deAttr]&0x3F == attrLFN {
			ord := e[ldOrd]
			n := int(ord & lfnOrdMask)
			switch {
			case ord&lfnLast != 0 && n >= 1 && n <= maxLFNEntries:
				lfnStart, lfnNext, lfnSum = i, n-1, e[ldChksum]
				lfn = make([]uint16, n*lfnChars)
			case lfnStart >= 0 && n == lfnNext && n >= 1 && e[ldChksum] == lfnSum:
				lfnNext--
			default:
				lfnStart = -1
				continue
			}
			at := (n - 1) * lfnChars
			for j := range lfnChars {
				lfn[at+j] = le.Uint16(e[lfnCharOff(j):])
			}
			continue
		}
		var s entry
		copy(s.short[:], e[deName:deName+11])
		s.attr, s.ntres = e[deAttr], e[deNTRes]
		s.cluster = uint32(le.Uint16(e[deFstClusHI:]))<<16 | uint32(le.Uint16(e[deFstClusLO:]))
		s.size = le.Uint32(e[deFileSize:])
		s.mtime = fatTime(le.Uint16(e[deWrtDate:]), le.Uint16(e[deWrtTime:]))
		s.slot, s.first = i, i
		hasLFN := lfnStart >= 0 && lfnNext == 0 && shortNameChecksum(s.short) == lfnSum
		if hasLFN {
			s.first = lfnStart
		}
		lfnStart = -1
		if s.attr&attrVolume != 0 || s.short[0] == '.' {
			continue // label, ".", ".."
		}
		if s.cluster != 0 && !valid(s.cluster, s.attr&attrDir != 0) {
			continue
		}
		if hasLFN {
			s.name = decodeLFN(lfn)
		}
		if s.name == "" {
			s.name = displayShort(s.short, s.ntres)
		}
		out = append(out, s)
	}
	return out
}

func lfnCharOff(j int) int {
	switch {
	case j < 5:
		return ldName1 + 2*j
	case j < 11:
		return ldName2 + 2*(j-5)
	}
	return ldName3 + 2*(j-11)
}

func decodeLFN(u []uint16) string {
	for i, c := range u {
		if c == 0 {
			u = u[:i]
			break
		}
	}
	s := string(utf16.Decode(u))
	if strings.ContainsAny(s, "/\x00") || s == "." || s == ".." {
		return "" // unusable as an fs.FS name: fall back to the short name
	}
	return s
}

// displayShort renders an 8.3 name, in lower case where DIR_NTRes says
// so. Bytes above 0x7F (an OEM code page) are shown as Latin-1.
func displayShort(s [11]byte, ntres byte) string {
	if s[0] == slotKanji {
		s[0] = slotFree
	}
	conv := func(b []byte, lower bool) string {
		var r []rune
		for _, c := range trimSpace(b) {
			if c == '/' || c < 0x20 {
				c = '_'
			}
			if lower && c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			r = append(r, rune(c))
		}
		return string(r)
	}
	name := conv(s[:8], ntres&ntLowerBase != 0)
	if ext := conv(s[8:], ntres&ntLowerExt != 0); ext != "" {
		name += "." + ext
	}
	if name == "" || name == "." || name == ".." {
		name = "_"
	}
	return name
}

// fatTime decodes a FAT date and time (local time, stored as UTC here).
func fatTime(date, tm uint16) time.Time {
	if date == 0 {
		return time.Time{}
	}
	return time.Date(1980+int(date>>9), time.Month(date>>5&0xF), int(date&0x1F),
		int(tm>>11), int(tm>>5&0x3F), 2*int(tm&0x1F), 0, time.UTC)
}

// lookup finds name (case-insensitively, by long or short name) in d.
func (d *dir) lookup(name string) (*entry, bool) {
	for i := range d.entries {
		e := &d.entries[i]
		if strings.EqualFold(e.name, name) || strings.EqualFold(displayShort(e.short, 0), name) {
			return e, true
		}
	}
	return nil, false
}

// newShortName picks the short name for a new entry called name in d and
// says whether a long name is needed.
func (d *dir) newShortName(name string) ([11]byte, bool) {
	used := map[[11]byte]bool{}
	for _, e := range d.entries {
		used[e.short] = true
	}
	if s, ok := exactShort(name); ok && !used[s] {
		return s, false
	}
	base, ext := basis(name)
	for i := 1; ; i++ {
		tail := "~" + strconv.Itoa(i)
		var s [11]byte
		copy(s[:], "           ")
		copy(s[:8], base[:min(len(base), 8-len(tail))]+tail)
		copy(s[8:], ext)
		if !used[s] {
			return s, true
		}
	}
}

// encodeEntry builds the slots for a new entry: long-name entries (if
// needed) followed by the short entry.
func encodeEntry(name string, short [11]byte, lfn bool, attr byte, cluster, size uint32, ts time.Time) []byte {
	n := 0
	var u []uint16
	if lfn {
		u = utf16.Encode([]rune(name))
		n = (len(u) + lfnChars - 1) / lfnChars
	}
	b := make([]byte, (n+1)*entrySize)
	le := binary.LittleEndian
	sum := shortNameChecksum(short)
	for k := n; k >= 1; k-- {
		e := b[(n-k)*entrySize:]
		ord := byte(k)
		if k == n {
			ord |= lfnLast
		}
		e[ldOrd], e[ldAttr], e[ldChksum] = ord, attrLFN, sum
		for j := range lfnChars {
			idx := (k-1)*lfnChars + j
			var ch uint16 = 0xFFFF
			switch {
			case idx < len(u):
				ch = u[idx]
			case idx == len(u):
				ch = 0
			}
			le.PutUint16(e[lfnCharOff(j):], ch)
		}
	}
	e := b[n*entrySize:]
	copy(e[deName:], short[:])
	e[deAttr] = attr
	date, tm := fatDateTime(ts)
	le.PutUint16(e[deCrtTime:], tm)
	le.PutUint16(e[deCrtDate:], date)
	le.PutUint16(e[deLstAccDate:], date)
	le.PutUint16(e[deWrtTime:], tm)
	le.PutUint16(e[deWrtDate:], date)
	putEntryCluster(e, cluster)
	le.PutUint32(e[deFileSize:], size)
	return b
}

// writeSlots writes d.data's bytes of slots [from, to) back to disk.
func (f *FS) writeSlots(d *dir, from, to int) error {
	for from < to {
		off := int64(from) * entrySize
		ci := off / f.clusterSize
		end := min(int64(to)*entrySize, (ci+1)*f.clusterSize)
		if err := f.writeRaw(d.data[off:end], f.clusterOff(d.chain[ci])+off%f.clusterSize); err != nil {
			return err
		}
		from = int(end / entrySize)
	}
	return nil
}

// addEntry stores slots (from encodeEntry) in d: in the first run of free
// slots long enough, else in a new cluster appended to d (zeroed first,
// then linked). It returns the index of the first slot.
func (f *FS) addEntry(d *dir, slots []byte) (int, error) {
	k := len(slots) / entrySize
	total := len(d.data) / entrySize
	run, at := 0, -1
	for i := 0; i < total; i++ {
		c := d.data[i*entrySize]
		if c == slotEnd {
			if total-i >= k {
				at = i
			}
			break
		}
		if c == slotFree {
			if run++; run == k {
				at = i - k + 1
				break
			}
		} else {
			run = 0
		}
	}
	if at < 0 {
		// Append clusters until the entry fits after the last used slot.
		end := total
		for end > 0 && d.data[(end-1)*entrySize] == slotEnd {
			end--
		}
		for len(d.data)/entrySize-end < k {
			if len(d.data)+int(f.clusterSize) > maxDirBytes {
				return 0, fmt.Errorf("fat: directory full (%d entries)", maxDirEntries)
			}
			c, err := f.allocZeroed(d.chain[len(d.chain)-1])
			if err != nil {
				return 0, err
			}
			d.chain = append(d.chain, c)
			d.data = append(d.data, make([]byte, f.clusterSize)...)
		}
		at = end
	}
	copy(d.data[at*entrySize:], slots)
	if err := f.writeSlots(d, at, at+k); err != nil {
		return 0, err
	}
	d.entries = parseDir(d.data, f.entryCluster(d.first))
	return at, nil
}

// allocZeroed allocates a cluster, zeroes it, then links it after prev:
// the contents are valid before anything points at them.
func (f *FS) allocZeroed(prev uint32) (uint32, error) {
	c, err := f.alloc(0)
	if err != nil {
		return 0, err
	}
	if err := f.zeroCluster(c); err != nil {
		return 0, err
	}
	if prev != 0 {
		if err := f.set(prev, c); err != nil {
			return 0, err
		}
	}
	return c, nil
}

// deleteEntry marks e's slots free on disk.
func (f *FS) deleteEntry(d *dir, e *entry) error {
	first, last := e.first, e.slot
	for i := first; i <= last; i++ {
		d.data[i*entrySize] = slotFree
	}
	if err := f.writeSlots(d, first, last+1); err != nil {
		return err
	}
	d.entries = parseDir(d.data, f.entryCluster(d.first))
	return nil
}

// updateEntry rewrites the short entry at slot with a new cluster, size
// and modification time.
func (f *FS) updateEntry(d *dir, slot int, cluster, size uint32, ts time.Time) error {
	e := d.data[slot*entrySize : (slot+1)*entrySize]
	putEntryCluster(e, cluster)
	binary.LittleEndian.PutUint32(e[deFileSize:], size)
	date, tm := fatDateTime(ts)
	binary.LittleEndian.PutUint16(e[deWrtTime:], tm)
	binary.LittleEndian.PutUint16(e[deWrtDate:], date)
	binary.LittleEndian.PutUint16(e[deLstAccDate:], date)
	if err := f.writeSlots(d, slot, slot+1); err != nil {
		return err
	}
	d.entries = parseDir(d.data, f.entryCluster(d.first))
	return nil
}
