// Package gen2 owns gohv's Generation 2 (UEFI) boot path: a small EFI
// application written in assembly (loader.asm, committed with its assembled
// loader.efi) and BuildEFI, which appends a gohv kernel image (GKI,
// docs/boot.md, "The gohv kernel image (GKI)") to that application as its
// last PE section. The result is the \EFI\BOOT\BOOTX64.EFI of a GPT/ESP
// disk.
//
// At boot the loader finds the ".gohvkrn" section through its own loaded
// image, validates the GKI (magic, version, sizes, CRC-32), allocates and
// fills each segment at its physical address, collects the ACPI RSDP and the
// final UEFI memory map (as E820 entries), calls ExitBootServices, leaves long
// mode and enters the kernel's PVH entry with EBX = &hvm_start_info, exactly
// as the Gen1 loader and QEMU's -kernel do.
//
// This package is host-side and pure Go. It does not build disk images
// (tools/image does) and does not parse the kernel ELF (boot/kimage does).
package gen2
