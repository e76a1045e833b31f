package gen2

import (
	"encoding/binary"
	"hash/crc32"
)

// testSeg is one GKI segment for makeGKI.
type testSeg struct {
	paddr uint64
	data  []byte
	memsz uint64
}

// makeGKI lays out a GKI by the table of docs/boot.md, "The gohv kernel image (GKI)", independently of
// boot/kimage, so the loader is tested against docs/boot.md itself.
func makeGKI(entry uint32, segs ...testSeg) []byte {
	le := binary.LittleEndian
	hdr := alignUp(uint64(32+24*len(segs)), 512)
	total := hdr
	offs := make([]uint64, len(segs))
	for i, s := range segs {
		offs[i] = total
		total += alignUp(uint64(len(s.data)), 512)
	}
	b := make([]byte, total)
	copy(b, "GOHVKIMG")
	le.PutUint32(b[8:], 1)
	le.PutUint32(b[12:], uint32(hdr))
	le.PutUint32(b[16:], entry)
	le.PutUint32(b[20:], uint32(len(segs)))
	le.PutUint32(b[24:], uint32(total))
	for i, s := range segs {
		e := b[32+24*i:]
		le.PutUint64(e[0:], s.paddr)
		le.PutUint32(e[8:], uint32(offs[i]))
		le.PutUint32(e[12:], uint32(len(s.data)))
		le.PutUint64(e[16:], s.memsz)
		copy(b[offs[i]:], s.data)
	}
	le.PutUint32(b[28:], crc32.ChecksumIEEE(b[hdr:]))
	return b
}
