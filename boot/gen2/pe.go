package gen2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// PE/COFF layout facts (Microsoft PE format specification), limited to what
// appending a section needs. Offsets are from the start of the structure
// named in the prefix.
const (
	dosLfanewOff = 0x3c // e_lfanew: file offset of the PE signature

	peSigSize     = 4 // "PE\0\0"
	coffSize      = 20
	coffNSectOff  = 2
	coffOptSzOff  = 16
	optMagicPE32P = 0x20b

	// PE32+ optional header.
	optSizeOfInitDataOff = 8
	optSectAlignOff      = 32
	optFileAlignOff      = 36
	optSizeOfImageOff    = 56
	optSizeOfHeadersOff  = 60
	optCheckSumOff       = 64
	optFixedSize         = 112 // through NumberOfRvaAndSizes

	// Section header.
	shSize         = 40
	shVirtSizeOff  = 8
	shVirtAddrOff  = 12
	shRawSizeOff   = 16
	shRawPtrOff    = 20
	shCharsOff     = 36
	maxSections    = 96 // the PE loader in Windows refuses more
	scnInitData    = 0x00000040
	scnMemRead     = 0x40000000
	kernelSectName = ".gohvkrn"
)

// ErrBadPE reports an input that is not a PE32+ image this package can extend.
var ErrBadPE = errors.New("gen2: bad PE image")

// peLayout is what appendSection reads from a PE32+ image, validated.
type peLayout struct {
	opt        int // file offset of the optional header
	nsect      int
	sectTable  int // file offset of the section table
	sectAlign  uint32
	fileAlign  uint32
	sizeOfImg  uint32
	sizeOfHdrs uint32
	rawEnd     uint64 // end of the last section's raw data
	virtEnd    uint64 // end of the last section's memory image
}

func badPE(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadPE, fmt.Sprintf(format, a...))
}

func isPow2(v uint32) bool { return v != 0 && v&(v-1) == 0 }

func alignUp(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }

// parsePE validates the headers of a PE32+ image and returns its layout. It
// never panics on arbitrary input.
func parsePE(img []byte) (*peLayout, error) {
	le := binary.LittleEndian
	if len(img) < dosLfanewOff+4 || img[0] != 'M' || img[1] != 'Z' {
		return nil, badPE("no MZ header")
	}
	sig := uint64(le.Uint32(img[dosLfanewOff:]))
	opt := sig + peSigSize + coffSize
	if opt+optFixedSize > uint64(len(img)) {
		return nil, badPE("PE header at %#x beyond the file", sig)
	}
	if string(img[sig:sig+peSigSize]) != "PE\x00\x00" {
		return nil, badPE("no PE signature")
	}
	coff := sig + peSigSize
	nsect := int(le.Uint16(img[coff+coffNSectOff:]))
	optSize := uint64(le.Uint16(img[coff+coffOptSzOff:]))
	if optSize < optFixedSize {
		return nil, badPE("optional header of %d bytes", optSize)
	}
	if m := le.Uint16(img[opt:]); m != optMagicPE32P {
		return nil, badPE("optional header magic %#x, want PE32+", m)
	}
	l := &peLayout{
		opt:        int(opt),
		nsect:      nsect,
		sectAlign:  le.Uint32(img[opt+optSectAlignOff:]),
		fileAlign:  le.Uint32(img[opt+optFileAlignOff:]),
		sizeOfImg:  le.Uint32(img[opt+optSizeOfImageOff:]),
		sizeOfHdrs: le.Uint32(img[opt+optSizeOfHeadersOff:]),
	}
	if !isPow2(l.fileAlign) || l.fileAlign < 512 || l.fileAlign > 0x10000 {
		return nil, badPE("FileAlignment %#x", l.fileAlign)
	}
	if !isPow2(l.sectAlign) || l.sectAlign < l.fileAlign {
		return nil, badPE("SectionAlignment %#x", l.sectAlign)
	}
	if nsect > maxSections {
		return nil, badPE("%d sections", nsect)
	}
	table := opt + optSize
	tableEnd := table + uint64(nsect)*shSize
	if tableEnd > uint64(l.sizeOfHdrs) || uint64(l.sizeOfHdrs) > uint64(len(img)) {
		return nil, badPE("section table [%#x,%#x) outside headers of %#x bytes", table, tableEnd, l.sizeOfHdrs)
	}
	l.sectTable = int(table)
	l.rawEnd = uint64(l.sizeOfHdrs)
	l.virtEnd = uint64(l.sizeOfHdrs)
	for i := range nsect {
		sh := img[table+uint64(i)*shSize:][:shSize]
		va := uint64(le.Uint32(sh[shVirtAddrOff:]))
		vs := uint64(le.Uint32(sh[shVirtSizeOff:]))
		rp := uint64(le.Uint32(sh[shRawPtrOff:]))
		rs := uint64(le.Uint32(sh[shRawSizeOff:]))
		if rs != 0 {
			if rp < uint64(l.sizeOfHdrs) || rp+rs > uint64(len(img)) {
				return nil, badPE("section %d raw data [%#x,%#x) outside the file", i, rp, rp+rs)
			}
			l.rawEnd = max(l.rawEnd, rp+rs)
		}
		if va < uint64(l.sizeOfHdrs) {
			return nil, badPE("section %d at RVA %#x inside the headers", i, va)
		}
		l.virtEnd = max(l.virtEnd, va+max(vs, rs))
	}
	if l.virtEnd > uint64(l.sizeOfImg) {
		return nil, badPE("sections end at RVA %#x beyond SizeOfImage %#x", l.virtEnd, l.sizeOfImg)
	}
	return l, nil
}

// appendSection returns a copy of the PE32+ image img with data added as a
// new last section named name (at most 8 bytes), characteristics chars. The
// headers must have room for one more section header, and that room must
// be zero. The PE checksum is recomputed.
func appendSection(img []byte, name string, data []byte, chars uint32) ([]byte, error) {
	if len(name) > 8 {
		return nil, fmt.Errorf("gen2: section name %q longer than 8 bytes", name)
	}
	l, err := parsePE(img)
	if err != nil {
		return nil, err
	}
	sh := l.sectTable + l.nsect*shSize
	if sh+shSize > int(l.sizeOfHdrs) {
		return nil, badPE("no room for another section header in %#x bytes of headers", l.sizeOfHdrs)
	}
	for _, b := range img[sh : sh+shSize] {
		if b != 0 {
			return nil, badPE("section header slot %d is not free", l.nsect)
		}
	}
	fa, sa := uint64(l.fileAlign), uint64(l.sectAlign)
	va := alignUp(max(l.virtEnd, uint64(l.sizeOfImg)), sa)
	rawPtr := alignUp(max(l.rawEnd, uint64(len(img))), fa)
	rawSize := alignUp(uint64(len(data)), fa)
	sizeOfImg := alignUp(va+uint64(len(data)), sa)
	if rawPtr+rawSize > math.MaxUint32 || sizeOfImg > math.MaxUint32 {
		return nil, fmt.Errorf("gen2: %d bytes of section data make the image exceed 4 GiB", len(data))
	}

	out := make([]byte, rawPtr+rawSize)
	copy(out, img)
	copy(out[rawPtr:], data)

	le := binary.LittleEndian
	h := out[sh : sh+shSize]
	copy(h, name)
	le.PutUint32(h[shVirtSizeOff:], uint32(len(data)))
	le.PutUint32(h[shVirtAddrOff:], uint32(va))
	le.PutUint32(h[shRawSizeOff:], uint32(rawSize))
	le.PutUint32(h[shRawPtrOff:], uint32(rawPtr))
	le.PutUint32(h[shCharsOff:], chars)

	coff := l.opt - coffSize
	le.PutUint16(out[coff+coffNSectOff:], uint16(l.nsect+1))
	le.PutUint32(out[l.opt+optSizeOfImageOff:], uint32(sizeOfImg))
	if chars&scnInitData != 0 {
		p := out[l.opt+optSizeOfInitDataOff:]
		le.PutUint32(p, le.Uint32(p)+uint32(rawSize))
	}
	le.PutUint32(out[l.opt+optCheckSumOff:], peChecksum(out, l.opt+optCheckSumOff))
	return out, nil
}

// peChecksum is the PE image checksum: the ones'-complement-style 16-bit
// sum of the file with the CheckSum field itself taken as zero, plus the file
// length.
func peChecksum(b []byte, csOff int) uint32 {
	var sum uint64
	for i := 0; i < len(b); i += 2 {
		if i == csOff || i == csOff+2 {
			continue
		}
		w := uint64(b[i])
		if i+1 < len(b) {
			w |= uint64(b[i+1]) << 8
		}
		sum += w
		sum = (sum & 0xffff) + (sum >> 16)
	}
	sum = (sum & 0xffff) + (sum >> 16)
	return uint32(sum) + uint32(len(b))
}

// sectionData returns the bytes of the section called name as the loader
// sees them: VirtualSize bytes, of which only SizeOfRawData come from the
// file (a shorter raw part is an error here: the GKI is never zero-padded).
func sectionData(img []byte, name string) ([]byte, error) {
	l, err := parsePE(img)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	var want [8]byte
	copy(want[:], name)
	for i := range l.nsect {
		sh := img[l.sectTable+i*shSize:][:shSize]
		if [8]byte(sh[:8]) != want {
			continue
		}
		vs := uint64(le.Uint32(sh[shVirtSizeOff:]))
		rs := uint64(le.Uint32(sh[shRawSizeOff:]))
		rp := uint64(le.Uint32(sh[shRawPtrOff:]))
		if vs > rs || rs == 0 {
			return nil, badPE("section %q holds %d of its %d bytes in the file", name, rs, vs)
		}
		return img[rp : rp+vs : rp+vs], nil // parsePE checked rp+rs is in the file
	}
	return nil, fmt.Errorf("%w: no %q section", ErrBadPE, name)
}
