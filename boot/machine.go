package boot

import (
	"fmt"

	"github.com/gohv/gohv/hv"
)

// Machine describes the platform the board found.
type Machine struct {
	// HypervisorVendor is the CPUID 0x40000000 vendor ("Microsoft Hv",
	// "TCGTCGTCGTCG", "KVMKVMKVM", "" on bare metal).
	HypervisorVendor string
	// HyperV is set when Hyper-V is present; VMBusErr is nil when VMBus
	// can run.
	HyperV   bool
	VMBusErr error
	HV       hv.Info
	// Clock is Nanotime's source; TSCHz is the calibrated TSC rate (0 when
	// the reference TSC page is used).
	Clock ClockSource
	TSCHz uint64
	// CPUs is the number of enabled processors in the MADT (the board
	// runs on the first only).
	CPUs int
	// RAM layout chosen from the memory map.
	Layout Layout
	// HighDMA is the size of the DMA region above 4 GiB (0: none).
	HighDMA uint64
}

// String is one line for a console.
func (m Machine) String() string {
	what := "bare metal or unknown hypervisor"
	switch {
	case m.HyperV && m.VMBusErr == nil:
		what = fmt.Sprintf("Hyper-V %d.%d build %d, VMBus available", m.HV.Version.Major, m.HV.Version.Minor, m.HV.Version.Build)
	case m.HyperV:
		what = "Hyper-V without VMBus (" + m.VMBusErr.Error() + ")"
	case m.HypervisorVendor != "":
		what = fmt.Sprintf("hypervisor %q (not Hyper-V)", m.HypervisorVendor)
	}
	clk := m.Clock.String()
	if m.TSCHz != 0 {
		clk += fmt.Sprintf(", %d.%03d MHz", m.TSCHz/1e6, m.TSCHz/1e3%1000)
	}
	high := ""
	if m.HighDMA != 0 {
		high = fmt.Sprintf(" + %d MiB above 4 GiB", m.HighDMA>>20)
	}
	return fmt.Sprintf("%s; %d CPU(s) (1 used); clock: %s; heap %d MiB, DMA %d MiB%s",
		what, m.CPUs, clk, m.Layout.Heap>>20, m.Layout.DMASize>>20, high)
}
