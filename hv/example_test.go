package hv_test

import (
	"errors"
	"fmt"

	"github.com/gohv/gohv/hv"
)

func ExampleDetect() {
	// On bare metal the function executes CPUID; here a table stands in
	// for a Windows Server 2022 host.
	table := map[uint32]hv.CPUIDResult{
		0x00000001: {ECX: 1 << 31},
		0x40000000: {EAX: 0x4000000B, EBX: hv.VendorEBX, ECX: hv.VendorECX, EDX: hv.VendorEDX},
		0x40000001: {EAX: hv.InterfaceSignature},
		0x40000002: {EAX: 20348, EBX: 10 << 16},
		0x40000003: {EAX: 0xAE7F, EBX: 0x3B8030, EDX: 0xBED7B},
		0x40000004: {EAX: 0x20C24},
	}
	info, err := hv.Detect(func(leaf, _ uint32) hv.CPUIDResult { return table[leaf] })
	switch {
	case errors.Is(err, hv.ErrNotHyperV):
		fmt.Println("not Hyper-V:", err)
	case errors.Is(err, hv.ErrMissingFeature):
		fmt.Println("Hyper-V without VMBus:", err)
	default:
		fmt.Println(info.Vendor, info.Version)
		fmt.Println("VMBus:", info.HasVMBusFeatures(), "TSC page:", info.ReferenceTSCAvailable(),
			"AutoEOI deprecated:", info.AutoEOIDeprecated())
	}

	// KVM is told apart by its vendor string.
	_, err = hv.Detect(func(leaf, _ uint32) hv.CPUIDResult {
		if leaf == 1 {
			return hv.CPUIDResult{ECX: 1 << 31}
		}
		return hv.CPUIDResult{EAX: 0x40000001, EBX: 0x4B4D564B, ECX: 0x564B4D56, EDX: 0x4D}
	})
	fmt.Println(err)
	// Output:
	// Microsoft Hv 10.0.20348
	// VMBus: true TSC page: true AutoEOI deprecated: false
	// hv: not running on Hyper-V: hypervisor vendor "KVMKVMKVM"
}

func ExampleGuestOSID() {
	// What gohv writes to GUEST_OS_ID before enabling the hypercall page.
	fmt.Printf("%#016x\n", hv.GohvGuestOSID)
	// Linux 5.15.0 for comparison: OS type 1, version in bits 47:16.
	fmt.Printf("%#016x\n", hv.GuestOSID(hv.GuestOSTypeLinux, 0, 0x050F00, 0))
	// Output:
	// 0xff00000001000000
	// 0x810000050f000000
}
