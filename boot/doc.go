// Package boot is gohv's TamaGo board for Hyper-V guests (Generation 1 and
// 2, and QEMU for testing): it owns the machine from the PVH hand-off to the
// application's main and back to power-off.
//
// Import it for its side effects (`import _ "github.com/gohv/gohv/boot"`) in
// a program built with GOOS=tamago GOARCH=amd64 and the build tags
// linkcpuinit,linkramstart. It provides the CPU entry (cpuinit: page tables,
// long mode), the runtime hooks tamago's amd64 package leaves to a board
// (RamStart/RamSize from the real memory map, Hwinit1, Printk on COM1,
// Nanotime from the Hyper-V reference TSC page or a calibrated TSC, Exit as
// an ACPI power-off), and Platform, the bare-metal hv.Platform (hypercall
// page, HvPostMessage, HvSignalEvent, SynIC, host-visible memory).
//
// Build a kernel with
//
//	GOOS=tamago GOARCH=amd64 GOOSPKG=github.com/usbarmory/tamago $TAMAGO build \
//	    -tags linkcpuinit,linkramstart -ldflags "-T 0x02010000 -R 0x1000" ./examples/hello
//
// tamago v1.26.6's amd64 package keeps three hooks for itself with no
// opt-out tag: Hwinit0 (empty), InitRNG and GetRandomData (RDRAND). The
// board therefore does its pre-runtime work (memory map, RAM layout, page
// tables) from cpuinit, calling Go on a stand-in g, and requires RDRAND
// (checked before the runtime starts, with a console message).
//
// The logic is pure and tested hosted (untagged files: the allocation-free
// memory-map walker, RAM layout, page-table plan, clock-source choice,
// 16550 programming); only the thin glue that executes privileged
// instructions carries //go:build tamago. Decoding of boot information and
// firmware tables lives in boot/pvh and boot/acpi, clock arithmetic in
// boot/clock, Hyper-V facts in hv. The sub-packages of boot/ (loaders, image
// format) belong to others and are not touched from here.
package boot
