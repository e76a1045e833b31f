package ext4

import (
	"encoding/binary"
	"fmt"
)

// The jbd2 journal (section "Journal (jbd2)"). All journal fields are
// big-endian. The writer uses an internal journal only to make each Sync
// one atomic transaction: descriptor blocks with tags, the metadata
// blocks, a commit block; then the blocks in place, then the journal is
// marked empty again. It never leaves a transaction in the journal
// between Syncs, so it needs no revoke records.
const (
	sbJournalInum = 0xE0
	sbJournalDev  = 0xE4

	jMagic = 0xC03B3998

	// Block header.
	jhMagic     = 0x0
	jhBlockType = 0x4
	jhSequence  = 0x8
	jhSize      = 12

	jtDescriptor = 1
	jtCommit     = 2
	jtSuperV1    = 3
	jtSuperV2    = 4

	// Journal superblock.
	jsBlockSize = 0x0C
	jsMaxLen    = 0x10
	jsFirst     = 0x14
	jsSequence  = 0x18
	jsStart     = 0x1C
	jsCompat    = 0x24
	jsIncompat  = 0x28
	jsROCompat  = 0x2C
	jsUUID      = 0x30
	jsNrUsers   = 0x40
	jsCsumType  = 0x50
	jsNumFCBlks = 0x54
	jsChecksum  = 0xFC
	jsSize      = 1024
	jCsumCRC32C = 4
	jCompatCsum = 0x1 // v1 commit checksums
	jIncRevoke  = 0x1
	jInc64bit   = 0x2
	jIncCsumV3  = 0x10

	// Tags (journal_block_tag3_t with csum v3, else journal_block_tag_t).
	jTagSameUUID = 0x2
	jTagLast     = 0x8
	jTag3Size    = 16
	jTagSize     = 8 // plus 4 with 64bit
	jTailSize    = 4 // descriptor block tail (csum v2/v3)

	// Commit block.
	jcChksum     = 0x10
	jcCommitSec  = 0x30
	jcCommitNsec = 0x38
)

// journalSuper is the validated part of a journal superblock.
type journalSuper struct {
	BlockSize      uint32
	MaxLen, First  uint32
	Sequence       uint32
	Start          uint32
	Compat         uint32
	Incompat       uint32
	ROCompat       uint32
	UUID           [16]byte
	NrUsers        uint32
	ChecksumV3     bool
	Is64           bool
	unusableReason string // why the writer cannot log into it, or ""
}

// parseJournalSuper decodes and validates a journal superblock for a
// filesystem with fsBlockSize-byte blocks and a journal inode of blocks
// blocks. A journal the writer cannot use is not an error: its
// unusableReason says why (the writer then syncs without it).
func parseJournalSuper(b []byte, fsBlockSize int64, blocks uint64) (journalSuper, error) {
	var j journalSuper
	if len(b) < jsSize {
		return j, fmt.Errorf("%w: short journal superblock", ErrCorrupt)
	}
	be := binary.BigEndian
	if be.Uint32(b[jhMagic:]) != jMagic {
		return j, fmt.Errorf("%w: journal superblock magic %#x", ErrCorrupt, be.Uint32(b[jhMagic:]))
	}
	bt := be.Uint32(b[jhBlockType:])
	if bt != jtSuperV1 && bt != jtSuperV2 {
		return j, fmt.Errorf("%w: journal superblock type %d", ErrCorrupt, bt)
	}
	j.BlockSize, j.MaxLen, j.First = be.Uint32(b[jsBlockSize:]), be.Uint32(b[jsMaxLen:]), be.Uint32(b[jsFirst:])
	j.Sequence, j.Start = be.Uint32(b[jsSequence:]), be.Uint32(b[jsStart:])
	if bt == jtSuperV2 {
		j.Compat, j.Incompat, j.ROCompat = be.Uint32(b[jsCompat:]), be.Uint32(b[jsIncompat:]), be.Uint32(b[jsROCompat:])
		copy(j.UUID[:], b[jsUUID:])
		j.NrUsers = be.Uint32(b[jsNrUsers:])
	}
	switch {
	case int64(j.BlockSize) != fsBlockSize:
		return j, fmt.Errorf("%w: journal block size %d on a %d-byte block filesystem", ErrCorrupt, j.BlockSize, fsBlockSize)
	case j.First == 0 || j.First >= j.MaxLen || uint64(j.MaxLen) > blocks:
		return j, fmt.Errorf("%w: journal first block %d, length %d, %d blocks mapped", ErrCorrupt, j.First, j.MaxLen, blocks)
	case j.Start != 0 && (j.Start < j.First || j.Start >= j.MaxLen):
		return j, fmt.Errorf("%w: journal start %d", ErrCorrupt, j.Start)
	}
	j.ChecksumV3 = j.Incompat&jIncCsumV3 != 0
	j.Is64 = j.Incompat&jInc64bit != 0
	switch {
	case bt != jtSuperV2:
		j.unusableReason = "version 1 journal"
	case j.Incompat&^(jIncRevoke|jInc64bit|jIncCsumV3) != 0 || j.ROCompat != 0:
		j.unusableReason = fmt.Sprintf("journal features incompat %#x ro_compat %#x", j.Incompat, j.ROCompat)
	case j.Compat&jCompatCsum != 0:
		j.unusableReason = "journal with v1 checksums"
	case j.ChecksumV3 && b[jsCsumType] != jCsumCRC32C:
		j.unusableReason = fmt.Sprintf("journal checksum type %d", b[jsCsumType])
	case j.NrUsers > 1:
		j.unusableReason = "shared journal"
	case be.Uint32(b[jsNumFCBlks:]) != 0:
		j.unusableReason = "fast-commit area"
	}
	if j.ChecksumV3 {
		if want, got := be.Uint32(b[jsChecksum:]), journalSuperCsum(b); want != got {
			return j, fmt.Errorf("%w: journal superblock checksum %#08x, computed %#08x", ErrCorrupt, want, got)
		}
	}
	return j, nil
}

// journalSuperCsum is crc32c(~0) over the 1024-byte journal superblock
// with s_checksum as zero.
func journalSuperCsum(b []byte) uint32 {
	var zero [4]byte
	c := crc32c(^uint32(0), b[:jsChecksum])
	c = crc32c(c, zero[:])
	return crc32c(c, b[jsChecksum+4:jsSize])
}

// journal is an internal journal the writer logs into.
type journal struct {
	js   journalSuper
	xs   []extent // the journal inode's mapping
	sb   []byte   // journal block 0 as on disk
	seed uint32   // crc32c(~0, journal UUID)
}

// openJournal finds the internal journal. It returns nil (and why) when
// the writer has to sync without it, and an error when the journal is
// corrupt or holds a transaction to recover.
func (f *FS) openJournal() (*journal, string, error) {
	le := binary.LittleEndian
	raw := f.w.raw
	if f.sb.FeatureCompat&compatJournal == 0 {
		return nil, "no journal", nil
	}
	ino := le.Uint32(raw[sbJournalInum:])
	if ino == 0 || le.Uint32(raw[sbJournalDev:]) != 0 {
		return nil, "external journal", nil
	}
	in, err := f.inode(ino)
	if err != nil {
		return nil, "", err
	}
	xs, err := f.extents(in)
	if err != nil {
		return nil, "", err
	}
	mapped := uint64(0)
	for _, x := range xs {
		if x.uninit || uint64(x.logical) != mapped {
			return nil, "", fmt.Errorf("%w: journal inode has holes", ErrCorrupt)
		}
		mapped += uint64(x.length)
	}
	if mapped == 0 {
		return nil, "", fmt.Errorf("%w: empty journal inode", ErrCorrupt)
	}
	j := &journal{xs: xs, sb: make([]byte, f.sb.BlockSize)}
	if err := f.readBlock(j.sb, xs[0].physical); err != nil {
		return nil, "", err
	}
	if j.js, err = parseJournalSuper(j.sb, f.sb.BlockSize, mapped); err != nil {
		return nil, "", err
	}
	if j.js.Start != 0 {
		return nil, "", fmt.Errorf("%w: the journal holds transactions to recover", ErrNeedsCheck)
	}
	if j.js.unusableReason != "" {
		return nil, j.js.unusableReason, nil
	}
	j.seed = crc32c(^uint32(0), j.js.UUID[:])
	return j, "", nil
}

// phys maps journal block n to a filesystem block.
func (j *journal) phys(n uint32) uint64 {
	i, _ := findExtent(j.xs, uint64(n))
	return j.xs[i].physical + uint64(n) - uint64(j.xs[i].logical)
}

func (j *journal) tagSize() int {
	switch {
	case j.js.ChecksumV3:
		return jTag3Size
	case j.js.Is64:
		return jTagSize + 4
	}
	return jTagSize
}

// tagsPerDescriptor is how many tags fit a descriptor block after the
// header and the UUID that follows the first tag (and the tail).
func (j *journal) tagsPerDescriptor(bs int) int {
	space := bs - jhSize - 16
	if j.js.ChecksumV3 {
		space -= jTailSize
	}
	return space / j.tagSize()
}

// fits reports whether a transaction of n blocks fits the journal, and
// whether their numbers can be logged.
func (j *journal) fits(bs int, blks []uint64, data [][]byte) bool {
	per := j.tagsPerDescriptor(bs)
	need := len(blks) + (len(blks)+per-1)/per + 1
	if need > int(j.js.MaxLen-j.js.First) {
		return false
	}
	for i, b := range blks {
		if b>>32 != 0 && !j.js.Is64 {
			return false
		}
		if binary.BigEndian.Uint32(data[i]) == jMagic {
			return false // would need escaping; sync without the journal
		}
	}
	return true
}

// header writes a journal block header.
func jHeader(b []byte, typ, seq uint32) {
	be := binary.BigEndian
	be.PutUint32(b[jhMagic:], jMagic)
	be.PutUint32(b[jhBlockType:], typ)
	be.PutUint32(b[jhSequence:], seq)
}

// descriptor builds the descriptor block for blks (logged with sequence
// seq) whose contents are data.
func (j *journal) descriptor(bs int, seq uint32, blks []uint64, data [][]byte) []byte {
	be := binary.BigEndian
	d := make([]byte, bs)
	jHeader(d, jtDescriptor, seq)
	off := jhSize
	for i, blk := range blks {
		flags := uint32(jTagSameUUID)
		if i == 0 {
			flags = 0
		}
		if i == len(blks)-1 {
			flags |= jTagLast
		}
		t := d[off:]
		be.PutUint32(t[0:], uint32(blk))
		if j.js.ChecksumV3 {
			be.PutUint32(t[4:], flags)
			be.PutUint32(t[8:], uint32(blk>>32))
			c := crc32c(crc32cBE(j.seed, seq), data[i])
			be.PutUint32(t[12:], c)
		} else {
			be.PutUint16(t[4:], 0)
			be.PutUint16(t[6:], uint16(flags))
			if j.js.Is64 {
				be.PutUint32(t[8:], uint32(blk>>32))
			}
		}
		off += j.tagSize()
		if i == 0 {
			copy(d[off:], j.js.UUID[:])
			off += 16
		}
	}
	if j.js.ChecksumV3 {
		// Over the whole block, the tail's checksum field still zero.
		be.PutUint32(d[bs-jTailSize:], crc32c(j.seed, d))
	}
	return d
}

func crc32cBE(seed, v uint32) uint32 {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return crc32c(seed, b[:])
}

// commit builds the commit block of transaction seq.
func (j *journal) commit(bs int, seq uint32, sec int64, nsec int) []byte {
	be := binary.BigEndian
	c := make([]byte, bs)
	jHeader(c, jtCommit, seq)
	be.PutUint64(c[jcCommitSec:], uint64(sec))
	be.PutUint32(c[jcCommitNsec:], uint32(nsec))
	if j.js.ChecksumV3 {
		be.PutUint32(c[jcChksum:], crc32c(j.seed, c))
	}
	return c
}

// setSuper stores start and sequence in the journal superblock copy.
func (j *journal) setSuper(start, seq uint32) {
	be := binary.BigEndian
	be.PutUint32(j.sb[jsStart:], start)
	be.PutUint32(j.sb[jsSequence:], seq)
	if j.js.ChecksumV3 {
		be.PutUint32(j.sb[jsChecksum:], journalSuperCsum(j.sb))
	}
	j.js.Start, j.js.Sequence = start, seq
}

// writeJournalSuper writes the journal superblock.
func (f *FS) writeJournalSuper(j *journal) error {
	return f.writeAt(j.sb, int64(j.xs[0].physical)*f.sb.BlockSize)
}

// logTransaction writes blks (contents data) as one committed transaction
// and checkpoints it. mark writes the filesystem superblock flagged as
// needing recovery. Order, with a flush at each "|": journal superblock
// (start, sequence) and mark, descriptors and block copies | commit
// block | blocks in place | journal superblock empty |. A crash before
// the commit is durable leaves the old metadata (recovery finds no
// committed transaction); after it, recovery replays all of it.
func (f *FS) logTransaction(blks []uint64, data [][]byte, mark func() error) error {
	j := f.w.j
	bs := int(f.sb.BlockSize)
	seq := j.js.Sequence
	// The journal is marked non-empty, and the filesystem as needing
	// recovery, before anything of the transaction is durable.
	j.setSuper(j.js.First, seq)
	if err := f.writeJournalSuper(j); err != nil {
		return err
	}
	if err := mark(); err != nil {
		return err
	}
	pos := j.js.First
	per := j.tagsPerDescriptor(bs)
	for i := 0; i < len(blks); i += per {
		end := min(len(blks), i+per)
		if err := f.writeAt(j.descriptor(bs, seq, blks[i:end], data[i:end]), int64(j.phys(pos))*int64(bs)); err != nil {
			return err
		}
		pos++
		for k := i; k < end; k++ {
			if err := f.writeAt(data[k], int64(j.phys(pos))*int64(bs)); err != nil {
				return err
			}
			pos++
		}
	}
	if err := f.flush(); err != nil {
		return err
	}
	now := f.w.now()
	if err := f.writeAt(j.commit(bs, seq, now.Unix(), now.Nanosecond()), int64(j.phys(pos))*int64(bs)); err != nil {
		return err
	}
	if err := f.flush(); err != nil { // committed: recovery replays it from here on
		return err
	}
	for i, blk := range blks {
		if err := f.writeAt(data[i], int64(blk)*int64(bs)); err != nil {
			return err
		}
	}
	if err := f.flush(); err != nil {
		return err
	}
	j.setSuper(0, seq+1)
	if err := f.writeJournalSuper(j); err != nil {
		return err
	}
	return f.flush()
}
