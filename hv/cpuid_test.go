package hv

import "testing"

func TestCPUIDConstants(t *testing.T) {
	// Values literal from docs/hyperv-protocol.md §1.1–§1.4.
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"leaf vendor", uint64(CPUIDLeafVendor), 0x40000000},
		{"leaf interface", uint64(CPUIDLeafInterface), 0x40000001},
		{"leaf version", uint64(CPUIDLeafVersion), 0x40000002},
		{"leaf features", uint64(CPUIDLeafFeatures), 0x40000003},
		{"leaf recommendations", uint64(CPUIDLeafRecommendations), 0x40000004},
		{"leaf limits", uint64(CPUIDLeafLimits), 0x40000005},
		{"leaf hw features", uint64(CPUIDLeafHardwareFeatures), 0x40000006},
		{"leaf nested", uint64(CPUIDLeafNestedFeatures), 0x4000000A},
		{"leaf isolation", uint64(CPUIDLeafIsolation), 0x4000000C},
		{"leaf VS interface", uint64(CPUIDLeafVSInterface), 0x40000081},
		{"leaf VS features", uint64(CPUIDLeafVSFeatures), 0x40000082},
		{"hypervisor bit", uint64(CPUID1ECXHypervisor), 0x80000000},
		{"min max leaf", uint64(MinMaxLeaf), 0x40000005},
		{"vendor EBX", uint64(VendorEBX), 0x7263694D},
		{"vendor ECX", uint64(VendorECX), 0x666F736F},
		{"vendor EDX", uint64(VendorEDX), 0x76482074},
		{"Hv#1", uint64(InterfaceSignature), 0x31237648},
		{"VS#1", uint64(VSInterfaceSignature), 0x31235356},
		{"EAX.2 SynIC", uint64(PrivSynIC), 1 << 2},
		{"EAX.3 stimer", uint64(PrivSyntheticTimers), 1 << 3},
		{"EAX.5 hypercall MSRs", uint64(PrivHypercallMSRs), 1 << 5},
		{"EAX.9 ref TSC", uint64(PrivReferenceTSC), 1 << 9},
		{"EAX.11 freq MSRs", uint64(PrivFrequencyMSRs), 1 << 11},
		{"EAX.15 TSC invariant", uint64(PrivTSCInvariantControl), 1 << 15},
		{"EBX.4 PostMessages", uint64(PrivPostMessages), 1 << 36},
		{"EBX.5 SignalEvents", uint64(PrivSignalEvents), 1 << 37},
		{"EBX.22 Isolation", uint64(PrivIsolation), 1 << 54},
		{"EDX.4 XMM input", uint64(FeatureXMMHypercallInput), 1 << 4},
		{"EDX.17 SINT polling", uint64(FeatureSINTPolling), 1 << 17},
		{"EDX.19 direct stimer", uint64(FeatureDirectSyntheticTimer), 1 << 19},
		{"rec 5 relaxed", uint64(RecommendRelaxedTiming), 1 << 5},
		{"rec 8 x2APIC", uint64(RecommendX2APICMSRs), 1 << 8},
		{"rec 9 AutoEOI", uint64(RecommendDeprecateAutoEOI), 1 << 9},
		{"rec 12 nested", uint64(RecommendNested), 1 << 12},
		{"rec 21 MMIO", uint64(RecommendMMIOHypercalls), 1 << 21},
		{"VS confidential VMBus", uint64(VSConfidentialVMBusAvail), 1 << 3},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

func TestVendorString(t *testing.T) {
	for _, c := range []struct {
		r    CPUIDResult
		want string
	}{
		{CPUIDResult{EBX: 0x7263694D, ECX: 0x666F736F, EDX: 0x76482074}, "Microsoft Hv"},
		{CPUIDResult{EBX: 0x4B4D564B, ECX: 0x564B4D56, EDX: 0x0000004D}, "KVMKVMKVM"},
		{CPUIDResult{EBX: 0x54474354, ECX: 0x43544743, EDX: 0x47435447}, "TCGTCGTCGTCG"},
		{CPUIDResult{}, ""},
	} {
		if got := VendorString(c.r); got != c.want {
			t.Errorf("VendorString(%+v) = %q, want %q", c.r, got, c.want)
		}
	}
	if VendorMicrosoft != "Microsoft Hv" {
		t.Errorf("VendorMicrosoft = %q", VendorMicrosoft)
	}
}

func TestDecodeIsolation(t *testing.T) {
	for _, c := range []struct {
		r    CPUIDResult
		want Isolation
	}{
		{CPUIDResult{}, Isolation{}},
		{CPUIDResult{EAX: 1, EBX: 0x00000BA2}, Isolation{Paravisor: true, Type: IsolationSEVSNP, SharedGPABoundaryActive: true, SharedGPABoundaryBit: 46}},
		{CPUIDResult{EBX: 0x00000C23}, Isolation{Type: IsolationTDX, SharedGPABoundaryActive: true, SharedGPABoundaryBit: 48}},
		{CPUIDResult{EBX: 0x00000001}, Isolation{Type: IsolationVBS}},
		// Bits above 11 and bit 4 are not part of any field.
		{CPUIDResult{EAX: 0xFFFFFFFE, EBX: 0xFFFFF010}, Isolation{}},
	} {
		if got := DecodeIsolation(c.r); got != c.want {
			t.Errorf("DecodeIsolation(%+v) = %+v, want %+v", c.r, got, c.want)
		}
	}
	if IsolationSEVSNP.String() != "SEV-SNP" || IsolationType(9).String() != "isolation(9)" {
		t.Errorf("IsolationType.String wrong")
	}
}
