// Package e2e holds only tests: the whole Gen2 chain with gohv's own pieces
// (boot/testpayload's PVH kernel ELF, boot/kimage, gen2.BuildEFI,
// tools/image/layout and its raw, VHDX and fixed-VHD writers) booted under
// QEMU and OVMF. It lives apart from package gen2 so that gen2's own tests
// never depend on the other packages compiling.
package e2e
