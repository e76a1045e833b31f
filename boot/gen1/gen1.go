// Package gen1 owns the Generation 1 (BIOS) boot loader of gohv: the MBR
// boot code (stage 1) and the stage 2 loader that reads the gohv kernel
// image (GKI) from the kernel partition and enters the kernel through the
// PVH hand-off (docs/boot.md, "Gen1 disk layout (MBR)").
//
// The loader is written in assembly (src/stage1.asm, src/stage2.asm);
// the assembled binaries are committed and embedded so that building an
// image needs no assembler. `go generate` re-assembles them with nasm and
// a test checks that the committed binaries match the sources (they were
// assembled with NASM 2.16.01; another NASM version may encode an
// instruction differently, which that test would report).
//
// This package only hands out bytes. Placing them on a disk is the image
// builder's job (tools/image); the GKI format belongs to boot/kimage.
package gen1

import (
	_ "embed"
	"slices"
)

//go:generate nasm -f bin -o stage1.bin src/stage1.asm
//go:generate nasm -f bin -o stage2.bin src/stage2.asm

var (
	//go:embed stage1.bin
	stage1 []byte
	//go:embed stage2.bin
	stage2 []byte
)

// Disk layout constants (docs/boot.md, "Gen1 disk layout (MBR)").
const (
	// KernelPartitionType is the MBR partition type of the partition
	// holding the GKI; stage 2 boots the first active one.
	KernelPartitionType = 0xDA
	// Stage1Size is the size of the MBR boot code area, bytes 0..439.
	Stage1Size = 440
	// Stage2LBA is the first sector of stage 2.
	Stage2LBA = 1
	// Stage2MaxSectors is the largest stage 2 that stage 1 reads;
	// docs/boot.md ("Gen1 disk layout (MBR)") allows up to 2046 sectors before LBA 2048.
	Stage2MaxSectors = 64
	// KernelPartitionLBA is where image builders start the kernel
	// partition (1 MiB aligned).
	KernelPartitionLBA = 2048
)

// Stage1 returns the MBR boot code: exactly Stage1Size bytes, to be
// written at offset 0 of LBA 0 (the disk signature and the partition table
// follow it). The caller owns the returned slice.
func Stage1() []byte { return slices.Clone(stage1) }

// Stage2 returns the stage 2 loader, a whole number of 512-byte sectors
// (at most Stage2MaxSectors), to be written from LBA Stage2LBA. The caller
// owns the returned slice.
func Stage2() []byte { return slices.Clone(stage2) }
