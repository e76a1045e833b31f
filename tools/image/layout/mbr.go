package layout

import (
	"encoding/binary"
	"fmt"
)

// MBR layout (docs/boot.md, "Gen1 disk layout").
const (
	mbrBootCodeSize  = 440
	mbrDiskSignature = 440
	mbrPartitions    = 446
	mbrEntrySize     = 16
	mbrBootSignature = 510

	// Partition entry fields.
	peStatus   = 0
	peCHSFirst = 1
	peType     = 4
	peCHSLast  = 5
	peLBAStart = 8
	peSectors  = 12

	statusActive = 0x80

	// KernelPartitionType marks the partition holding the GKI; the Gen1
	// loader looks for the active partition of this type.
	KernelPartitionType = 0xDA
	// FAT32PartitionType is FAT32 with LBA addressing.
	FAT32PartitionType = 0x0C

	// chsHeads and chsSectors are the translated geometry BIOSes use for
	// disks beyond 504 MiB; addresses past 1023 cylinders saturate.
	chsHeads   = 255
	chsSectors = 63
)

// mbrPartition is one primary partition entry.
type mbrPartition struct {
	active  bool
	typ     byte
	start   uint32 // LBA
	sectors uint32
}

// chs encodes lba in the three-byte CHS form of a partition entry.
func chs(lba uint32) [3]byte {
	c := lba / (chsHeads * chsSectors)
	h := (lba / chsSectors) % chsHeads
	s := lba%chsSectors + 1
	if c > 1023 {
		c, h, s = 1023, 254, 63
	}
	return [3]byte{byte(h), byte(s) | byte(c>>8)<<6, byte(c)}
}

// encodeMBR builds sector 0: boot code, disk signature and up to four
// partition entries.
func encodeMBR(bootCode []byte, signature uint32, parts []mbrPartition) ([]byte, error) {
	if len(bootCode) > mbrBootCodeSize {
		return nil, fmt.Errorf("stage 1 is %d bytes; the MBR has room for %d", len(bootCode), mbrBootCodeSize)
	}
	if len(parts) > 4 {
		return nil, fmt.Errorf("%d partitions; an MBR holds 4", len(parts))
	}
	b := make([]byte, 512)
	copy(b, bootCode)
	binary.LittleEndian.PutUint32(b[mbrDiskSignature:], signature)
	for i, p := range parts {
		e := b[mbrPartitions+i*mbrEntrySize:]
		if p.active {
			e[peStatus] = statusActive
		}
		first, last := chs(p.start), chs(p.start+p.sectors-1)
		copy(e[peCHSFirst:], first[:])
		e[peType] = p.typ
		copy(e[peCHSLast:], last[:])
		binary.LittleEndian.PutUint32(e[peLBAStart:], p.start)
		binary.LittleEndian.PutUint32(e[peSectors:], p.sectors)
	}
	b[mbrBootSignature], b[mbrBootSignature+1] = 0x55, 0xAA
	return b, nil
}
