// Package pvh decodes the boot information every gohv boot path hands the
// kernel: Xen's PVH hvm_start_info (QEMU's -kernel, the Gen1 BIOS loader and
// the Gen2 UEFI loader all use it) and its E820-style memory map, and plans
// the kernel's use of RAM from it (the DMA region for host-visible buffers
// placed inside usable RAM, clear of the kernel image).
//
// It is pure: memory is read through a PhysReader, so hosted tests feed it
// bytes. The boot loader is trusted no more than it must be: counts and
// addresses are validated, and a bad map is an error, not a panic.
package pvh
