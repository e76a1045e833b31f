package gen1_test

import (
	"encoding/binary"

	"github.com/gohv/gohv/boot/gen1"
)

// mbrPart is one MBR partition entry for test disks.
type mbrPart struct {
	active  bool
	typ     byte
	lba     uint32
	sectors uint32
}

// rawDisk lays out a Gen1 disk as docs/boot.md ("Gen1 disk layout (MBR)") describes: MBR with
// stage 1 and a partition table, stage 2 from LBA 1, and payload at LBA
// 2048. size is the disk size in bytes (a whole number of MiB, as Azure
// wants). It stands in for tools/image in these tests.
func rawDisk(size int, payload []byte, parts ...mbrPart) []byte {
	d := make([]byte, size)
	copy(d, gen1.Stage1())
	binary.LittleEndian.PutUint32(d[440:], 0x76686f67) // disk signature "gohv"
	for i, p := range parts {
		e := d[446+16*i:]
		if p.active {
			e[0] = 0x80
		}
		copy(e[1:4], []byte{0xfe, 0xff, 0xff}) // CHS unused: LBA only
		e[4] = p.typ
		copy(e[5:8], []byte{0xfe, 0xff, 0xff})
		binary.LittleEndian.PutUint32(e[8:], p.lba)
		binary.LittleEndian.PutUint32(e[12:], p.sectors)
	}
	d[510], d[511] = 0x55, 0xaa
	copy(d[gen1.Stage2LBA*512:], gen1.Stage2())
	copy(d[gen1.KernelPartitionLBA*512:], payload)
	return d
}

// kernelPart is the usual kernel partition: active, type 0xDA, LBA 2048 to
// the end of a disk of size bytes.
func kernelPart(size int) mbrPart {
	return mbrPart{active: true, typ: gen1.KernelPartitionType, lba: gen1.KernelPartitionLBA, sectors: uint32(size/512 - gen1.KernelPartitionLBA)}
}
