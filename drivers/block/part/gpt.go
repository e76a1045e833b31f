package part

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"unicode/utf16"
)

// GPT header offsets (UEFI 2.10 §5.3.2, "GPT Header").
const (
	gptSignature      = 0  // 8 bytes "EFI PART"
	gptRevision       = 8  // u32
	gptHeaderSize     = 12 // u32
	gptHeaderCRC      = 16 // u32
	gptMyLBA          = 24 // u64
	gptAlternateLBA   = 32 // u64
	gptFirstUsableLBA = 40 // u64
	gptLastUsableLBA  = 48 // u64
	gptDiskGUID       = 56 // 16 bytes
	gptEntryLBA       = 72 // u64
	gptNumEntries     = 80 // u32
	gptEntrySize      = 84 // u32
	gptEntriesCRC     = 88 // u32
	gptMinHeaderSize  = 92

	// Partition entry offsets (UEFI 2.10 §5.3.3, "GPT Partition Entry Array").
	peTypeGUID   = 0  // 16 bytes
	peUniqueGUID = 16 // 16 bytes
	peStartLBA   = 32 // u64
	peEndLBA     = 40 // u64, inclusive
	peAttributes = 48 // u64
	peName       = 56 // 72 bytes, UTF-16LE
	peNameLen    = 72
	peMinSize    = 128

	// maxEntryArray bounds the entry array we are willing to read.
	maxEntryArray = 1 << 20
)

var efiPart = []byte("EFI PART")

// GUID is a GUID in its on-disk (mixed-endian) byte order.
type GUID [16]byte

// String formats g the usual way (the first three fields little-endian).
func (g GUID) String() string {
	le := binary.LittleEndian
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X", le.Uint32(g[0:]), le.Uint16(g[4:]), le.Uint16(g[6:]), g[8:10], g[10:16])
}

// Well-known partition type GUIDs (UEFI 2.10 §5.3.3 and the Linux/Microsoft
// registries), in on-disk byte order.
var (
	TypeEFISystem     = mustGUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
	TypeBIOSBoot      = mustGUID("21686148-6449-6E6F-744E-656564454649")
	TypeMicrosoftData = mustGUID("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")
	TypeLinuxData     = mustGUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
)

// ParseGUID parses the textual form "XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX".
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("part: malformed GUID %q", s)
	}
	hex := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	var raw [16]byte
	for i := range raw {
		var v byte
		for _, c := range hex[2*i : 2*i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			case c >= 'a' && c <= 'f':
				v |= byte(c - 'a' + 10)
			case c >= 'A' && c <= 'F':
				v |= byte(c - 'A' + 10)
			default:
				return g, fmt.Errorf("part: malformed GUID %q", s)
			}
		}
		raw[i] = v
	}
	// First three fields are stored little-endian.
	g[0], g[1], g[2], g[3] = raw[3], raw[2], raw[1], raw[0]
	g[4], g[5] = raw[5], raw[4]
	g[6], g[7] = raw[7], raw[6]
	copy(g[8:], raw[8:])
	return g, nil
}

func mustGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// GPTHeader is a decoded GPT header.
type GPTHeader struct {
	Revision       uint32
	HeaderSize     uint32
	MyLBA          uint64
	AlternateLBA   uint64
	FirstUsableLBA uint64
	LastUsableLBA  uint64
	DiskGUID       GUID
	EntryLBA       uint64
	NumEntries     uint32
	EntrySize      uint32
	EntriesCRC     uint32
}

// entryBytes is the entry array's size in bytes.
func (h GPTHeader) entryBytes() int { return int(h.NumEntries) * int(h.EntrySize) }

// ParseGPTHeader decodes and validates the header in sector b, read from
// LBA lba of a disk of sectors sectors. It checks the signature, sizes,
// CRC, MyLBA and that every LBA it names lies on the disk.
func ParseGPTHeader(b []byte, lba, sectors uint64) (GPTHeader, error) {
	var h GPTHeader
	le := binary.LittleEndian
	if len(b) < gptMinHeaderSize {
		return h, fmt.Errorf("%w: %d-byte sector", ErrGPT, len(b))
	}
	if !bytes.Equal(b[gptSignature:gptSignature+8], efiPart) {
		return h, fmt.Errorf("%w: no signature at LBA %d", ErrGPT, lba)
	}
	h.Revision = le.Uint32(b[gptRevision:])
	h.HeaderSize = le.Uint32(b[gptHeaderSize:])
	if h.HeaderSize < gptMinHeaderSize || h.HeaderSize > uint32(len(b)) {
		return h, fmt.Errorf("%w: header size %d", ErrGPT, h.HeaderSize)
	}
	hdr := make([]byte, h.HeaderSize)
	copy(hdr, b)
	want := le.Uint32(hdr[gptHeaderCRC:])
	le.PutUint32(hdr[gptHeaderCRC:], 0)
	if got := crc32.ChecksumIEEE(hdr); got != want {
		return h, fmt.Errorf("%w: header CRC %#08x, computed %#08x", ErrGPT, want, got)
	}
	h.MyLBA = le.Uint64(b[gptMyLBA:])
	h.AlternateLBA = le.Uint64(b[gptAlternateLBA:])
	h.FirstUsableLBA = le.Uint64(b[gptFirstUsableLBA:])
	h.LastUsableLBA = le.Uint64(b[gptLastUsableLBA:])
	copy(h.DiskGUID[:], b[gptDiskGUID:])
	h.EntryLBA = le.Uint64(b[gptEntryLBA:])
	h.NumEntries = le.Uint32(b[gptNumEntries:])
	h.EntrySize = le.Uint32(b[gptEntrySize:])
	h.EntriesCRC = le.Uint32(b[gptEntriesCRC:])
	ss := uint64(len(b))
	switch {
	case h.MyLBA != lba:
		return h, fmt.Errorf("%w: header at LBA %d says MyLBA %d", ErrGPT, lba, h.MyLBA)
	case h.AlternateLBA >= sectors || h.AlternateLBA == lba:
		return h, fmt.Errorf("%w: AlternateLBA %d", ErrGPT, h.AlternateLBA)
	case h.FirstUsableLBA > h.LastUsableLBA || h.LastUsableLBA >= sectors || h.FirstUsableLBA < 2:
		return h, fmt.Errorf("%w: usable LBAs %d-%d on a disk of %d sectors", ErrGPT, h.FirstUsableLBA, h.LastUsableLBA, sectors)
	case h.EntrySize < peMinSize || h.EntrySize&(h.EntrySize-1) != 0 || h.EntrySize > maxEntryArray:
		return h, fmt.Errorf("%w: entry size %d", ErrGPT, h.EntrySize)
	case uint64(h.NumEntries)*uint64(h.EntrySize) > maxEntryArray:
		return h, fmt.Errorf("%w: %d entries of %d bytes", ErrGPT, h.NumEntries, h.EntrySize)
	}
	arr := (uint64(h.entryBytes()) + ss - 1) / ss
	if h.EntryLBA < 2 || h.EntryLBA >= sectors || arr > sectors-h.EntryLBA {
		return h, fmt.Errorf("%w: entry array at LBA %d (%d sectors) off the disk", ErrGPT, h.EntryLBA, arr)
	}
	// The array must not overlap the usable area or the header itself.
	end := h.EntryLBA + arr // exclusive
	if h.EntryLBA <= lba && lba < end || h.EntryLBA <= h.LastUsableLBA && end > h.FirstUsableLBA {
		return h, fmt.Errorf("%w: entry array LBAs %d-%d overlap the header or usable area", ErrGPT, h.EntryLBA, end-1)
	}
	return h, nil
}

// ParseGPTEntries decodes and validates the entry array b described by h
// (len(b) ≥ NumEntries×EntrySize). Empty entries (zero type GUID) are
// skipped; Index counts from 1 over all slots, as sgdisk numbers them.
func ParseGPTEntries(b []byte, h GPTHeader) ([]Partition, error) {
	n := h.entryBytes()
	if h.EntrySize < peMinSize || len(b) < n {
		return nil, fmt.Errorf("%w: entry array of %d bytes, header says %d", ErrGPT, len(b), n)
	}
	if got := crc32.ChecksumIEEE(b[:n]); got != h.EntriesCRC {
		return nil, fmt.Errorf("%w: entry array CRC %#08x, computed %#08x", ErrGPT, h.EntriesCRC, got)
	}
	le := binary.LittleEndian
	var parts []Partition
	for i := range int(h.NumEntries) {
		e := b[i*int(h.EntrySize) : (i+1)*int(h.EntrySize)]
		var p Partition
		copy(p.Type[:], e[peTypeGUID:])
		if p.Type == (GUID{}) {
			continue
		}
		p.Index = i + 1
		copy(p.GUID[:], e[peUniqueGUID:])
		start, last := le.Uint64(e[peStartLBA:]), le.Uint64(e[peEndLBA:])
		if start > last || start < h.FirstUsableLBA || last > h.LastUsableLBA {
			return nil, fmt.Errorf("%w: partition %d LBAs %d-%d outside the usable %d-%d", ErrGPT, p.Index, start, last, h.FirstUsableLBA, h.LastUsableLBA)
		}
		p.Start, p.Sectors = start, last-start+1
		p.Attributes = le.Uint64(e[peAttributes:])
		u := make([]uint16, 0, peNameLen/2)
		for j := 0; j < peNameLen; j += 2 {
			c := le.Uint16(e[peName+j:])
			if c == 0 {
				break
			}
			u = append(u, c)
		}
		p.Name = string(utf16.Decode(u))
		parts = append(parts, p)
	}
	if err := checkOverlap(parts); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrGPT, err)
	}
	return parts, nil
}

// sameTable reports how a backup header disagrees with the primary.
func sameTable(p, b GPTHeader) error {
	switch {
	case p.DiskGUID != b.DiskGUID:
		return fmt.Errorf("disk GUIDs %v and %v differ", p.DiskGUID, b.DiskGUID)
	case p.FirstUsableLBA != b.FirstUsableLBA || p.LastUsableLBA != b.LastUsableLBA:
		return fmt.Errorf("usable ranges %d-%d and %d-%d differ", p.FirstUsableLBA, p.LastUsableLBA, b.FirstUsableLBA, b.LastUsableLBA)
	case p.NumEntries != b.NumEntries || p.EntrySize != b.EntrySize || p.EntriesCRC != b.EntriesCRC:
		return fmt.Errorf("entry arrays differ (%d×%d CRC %#x vs %d×%d CRC %#x)", p.NumEntries, p.EntrySize, p.EntriesCRC, b.NumEntries, b.EntrySize, b.EntriesCRC)
	case p.AlternateLBA != b.MyLBA || b.AlternateLBA != p.MyLBA:
		return fmt.Errorf("headers do not point at each other (primary's alternate %d, backup at %d names %d)", p.AlternateLBA, b.MyLBA, b.AlternateLBA)
	}
	return nil
}
