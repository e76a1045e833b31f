// Package layout assembles the virtual disks gohv boots from, per
// docs/boot.md: Gen1 (BIOS) disks with an MBR, the loader's two stages and a
// kernel partition holding the GKI, and Gen2 (UEFI) disks with a GPT and an
// EFI System Partition holding \EFI\BOOT\BOOTX64.EFI; both optionally with
// a FAT32 data partition filled from an fs.FS.
//
// It takes the loader, kernel and EFI bytes as inputs and never imports the
// packages that build them (boot/...): the result is an image.MemDisk that a
// writer in image, image/vhd or image/vhdx turns into a file.
//
// The GPT comes from go-diskfs. The MBR is written here because
// docs/boot.md fixes its bytes (stage 1, disk signature), and FAT32 volumes come
// from package fat because go-diskfs v1.9.4's FAT32 writer produces volumes
// that fsck.fat repairs (wrong ".." clusters, clusters for empty files).
package layout
