package boot

import (
	"fmt"
	"testing"

	"github.com/gohv/gohv/hv"
)

func TestMachineString(t *testing.T) {
	l := Layout{Heap: 700 << 20, DMASize: 94 << 20}
	cases := []struct {
		m    Machine
		want string
	}{
		{Machine{HypervisorVendor: "TCGTCGTCGTCG", Clock: ClockTSCPMTimer, TSCHz: 2_893_456_789, CPUs: 1, Layout: l},
			`hypervisor "TCGTCGTCGTCG" (not Hyper-V); 1 CPU(s) (1 used); clock: TSC calibrated against the ACPI PM timer, 2893.456 MHz; heap 700 MiB, DMA 94 MiB`},
		{Machine{HypervisorVendor: hv.VendorMicrosoft, HyperV: true, HV: hv.Info{Version: hv.Version{Major: 10, Minor: 0, Build: 20348}}, Clock: ClockReferenceTSC, CPUs: 2, Layout: l},
			"Hyper-V 10.0 build 20348, VMBus available; 2 CPU(s) (1 used); clock: Hyper-V reference TSC page; heap 700 MiB, DMA 94 MiB"},
		{Machine{HyperV: true, VMBusErr: fmt.Errorf("%w: VMBus privileges missing", hv.ErrMissingFeature)},
			"Hyper-V without VMBus (hv: Hyper-V feature missing: VMBus privileges missing); 0 CPU(s) (1 used); clock: uncalibrated TSC; heap 0 MiB, DMA 0 MiB"},
		{Machine{}, "bare metal or unknown hypervisor; 0 CPU(s) (1 used); clock: uncalibrated TSC; heap 0 MiB, DMA 0 MiB"},
	}
	for _, c := range cases {
		if got := c.m.String(); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}
}
