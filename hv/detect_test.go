package hv

import (
	"errors"
	"strings"
	"testing"
)

// cpuidTable is a fake CPUID: missing leaves read as zero, like leaves a
// hypervisor does not implement. It records every leaf read.
type cpuidTable map[uint32]CPUIDResult

func (t cpuidTable) with(leaf uint32, r CPUIDResult) cpuidTable {
	n := make(cpuidTable, len(t)+1)
	for k, v := range t {
		n[k] = v
	}
	n[leaf] = r
	return n
}

func (t cpuidTable) fn(read *[]uint32) CPUIDFunc {
	return func(leaf, subleaf uint32) CPUIDResult {
		if read != nil {
			*read = append(*read, leaf)
		}
		return t[leaf]
	}
}

// Register values literal from docs/hyperv-protocol.md §1.1 (vendor, signature).
var (
	leaf1Hypervisor = CPUIDResult{EAX: 0x000906EA, EBX: 0x00100800, ECX: 0xFEDA3203, EDX: 0x1F8BFBFF}
	leaf1BareMetal  = CPUIDResult{EAX: 0x000906EA, EBX: 0x00100800, ECX: 0x7FFAFBBF, EDX: 0xBFEBFBFF}
	vendorMicrosoft = CPUIDResult{EBX: 0x7263694D, ECX: 0x666F736F, EDX: 0x76482074}
	hvSignature     = CPUIDResult{EAX: 0x31237648}
)

func vendorLeaf(max uint32, v CPUIDResult) CPUIDResult {
	v.EAX = max
	return v
}

// ws2022 is shaped like Windows Server 2022 Hyper-V (build 20348, 10.0).
var ws2022 = cpuidTable{
	0x00000001: leaf1Hypervisor,
	0x40000000: vendorLeaf(0x4000000B, vendorMicrosoft),
	0x40000001: hvSignature,
	0x40000002: {EAX: 20348, EBX: 0x000A0000, ECX: 0, EDX: 0x01000A2E},
	0x40000003: {EAX: 0x0000AE7F, EBX: 0x003B8030, ECX: 0x00000002, EDX: 0x000BED7B},
	0x40000004: {EAX: 0x00020C24, EBX: 0xFFFFFFFF, ECX: 0x0000002E},
	0x40000005: {EAX: 0x00000800, EBX: 0x00000200, ECX: 0x000006A8},
	0x40000006: {EAX: 0x0000000E},
	0x4000000A: {EAX: 0x000E0101},
	// 0x4000000C above max leaf: must not be read. Give it a value that
	// would show up as isolation if it were.
	0x4000000C: {EAX: 1, EBX: 3},
}

// azureSNP is shaped like an Azure SEV-SNP confidential VM with a
// paravisor: isolation type 2, shared GPA boundary at bit 46.
var azureSNP = cpuidTable{
	0x00000001: leaf1Hypervisor,
	0x40000000: vendorLeaf(0x4000000C, vendorMicrosoft),
	0x40000001: hvSignature,
	0x40000002: {EAX: 26100, EBX: 0x000A0000},
	0x40000003: {EAX: 0x0000AE7F, EBX: 0x007B8030, ECX: 0x00000002, EDX: 0x000BED7B},
	0x40000004: {EAX: 0x00020F24, EBX: 0xFFFFFFFF, ECX: 0x00000030},
	0x40000005: {EAX: 0x00000800, EBX: 0x00000200},
	0x4000000C: {EAX: 0x00000001, EBX: 0x00000BA2}, // 2 | 1<<5 | 46<<6
	0x40000081: {EAX: 0x31235356},                  // "VS#1"
	0x40000082: {EAX: 0x00000008},
}

var kvm = cpuidTable{
	0x00000001: leaf1Hypervisor,
	// "KVMKVMKVM\0\0\0"
	0x40000000: {EAX: 0x40000001, EBX: 0x4B4D564B, ECX: 0x564B4D56, EDX: 0x0000004D},
	0x40000001: {EAX: 0x01007AFB},
}

// kvmHv is KVM with hv-relaxed and hv-vapic: the Microsoft vendor and
// "Hv#1", APIC MSRs, but no hypercall MSRs.
var kvmHv = cpuidTable{
	0x00000001: leaf1Hypervisor,
	0x40000000: vendorLeaf(0x4000000A, vendorMicrosoft),
	0x40000001: hvSignature,
	0x40000003: {EAX: 0x00000010},
	0x40000004: {EAX: 0x00000020, EBX: 0xFFFFFFFF},
	0x40000100: {EAX: 0x40000101, EBX: 0x4B4D564B, ECX: 0x564B4D56, EDX: 0x0000004D},
}

var tcg = cpuidTable{
	0x00000001: leaf1Hypervisor,
	// "TCGTCGTCGTCG"
	0x40000000: {EAX: 0x40000001, EBX: 0x54474354, ECX: 0x43544743, EDX: 0x47435447},
}

// bareMetal has no hypervisor bit; its 0x40000000 even spells the
// Microsoft vendor (CPUs return unrelated data there), which Detect must
// never read.
var bareMetal = cpuidTable{
	0x00000001: leaf1BareMetal,
	0x40000000: vendorLeaf(0x4000000C, vendorMicrosoft),
	0x40000001: hvSignature,
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name       string
		table      cpuidTable
		notHyperV  string // substring of the reason; "" = is Hyper-V
		missing    PrivilegeMask
		isolated   IsolationType
		wantVendor string
		check      func(t *testing.T, info Info)
	}{
		{name: "ws2022", table: ws2022, wantVendor: "Microsoft Hv", check: func(t *testing.T, info Info) {
			want := Version{Build: 20348, Major: 10, Minor: 0, ServiceBranch: 1, ServiceNumber: 0xA2E}
			if info.Version != want {
				t.Errorf("Version = %+v, want %+v", info.Version, want)
			}
			if info.Privileges != 0x003B80300000AE7F {
				t.Errorf("Privileges = %#x", uint64(info.Privileges))
			}
			if !info.HasVMBusFeatures() || !info.ReferenceTSCAvailable() || !info.InvariantTSCControlAvailable() ||
				!info.SyntheticTimers() || !info.DirectSyntheticTimers() || !info.FrequencyMSRs() {
				t.Errorf("feature helpers wrong: %+v", info)
			}
			if info.AutoEOIDeprecated() || info.UseX2APIC() || !info.RelaxedTiming() {
				t.Errorf("recommendations %#x decoded wrong", uint32(info.Recommendations))
			}
			if info.Isolated() || info.Isolation != (Isolation{}) {
				t.Errorf("read leaf 0x4000000C above max leaf: %+v", info.Isolation)
			}
			if info.SpinlockRetries != SpinlockNeverNotify || info.PhysicalAddressBits != 46 {
				t.Errorf("leaf 4 EBX/ECX: %#x %d", info.SpinlockRetries, info.PhysicalAddressBits)
			}
			if info.MaxVirtualProcessors != 2048 || info.MaxLogicalProcessors != 512 || info.MaxInterruptVectors != 0x6A8 {
				t.Errorf("limits: %+v", info)
			}
			if info.HardwareFeatures != 0xE || info.NestedFeatures != 0x000E0101 || info.VSFeatures != 0 {
				t.Errorf("leaves 6/A/82: %#x %#x %#x", info.HardwareFeatures, info.NestedFeatures, info.VSFeatures)
			}
		}},
		{name: "azure-snp", table: azureSNP, isolated: IsolationSEVSNP, wantVendor: "Microsoft Hv", check: func(t *testing.T, info Info) {
			want := Isolation{Paravisor: true, Type: IsolationSEVSNP, SharedGPABoundaryActive: true, SharedGPABoundaryBit: 46}
			if info.Isolation != want || !info.Isolated() {
				t.Errorf("Isolation = %+v, want %+v", info.Isolation, want)
			}
			if !info.Privileges.Has(PrivIsolation) || !info.AutoEOIDeprecated() || !info.UseX2APIC() {
				t.Errorf("privileges/recommendations: %#x %#x", uint64(info.Privileges), uint32(info.Recommendations))
			}
			if info.VSFeatures != VSConfidentialVMBusAvail {
				t.Errorf("VSFeatures = %#x", info.VSFeatures)
			}
		}},
		{name: "azure-tdx", table: azureSNP.with(0x4000000C, CPUIDResult{EAX: 1, EBX: 3}), isolated: IsolationTDX, wantVendor: "Microsoft Hv"},
		{name: "vbs-no-paravisor", table: azureSNP.with(0x4000000C, CPUIDResult{EBX: 1}), isolated: IsolationVBS, wantVendor: "Microsoft Hv"},
		{name: "isolation-leaf-none", table: azureSNP.with(0x4000000C, CPUIDResult{}), wantVendor: "Microsoft Hv"},
		{name: "no-postmessages", table: ws2022.with(0x40000003, CPUIDResult{EAX: 0xAE7F, EBX: 0x003B8020}),
			missing: PrivPostMessages, wantVendor: "Microsoft Hv"},
		{name: "no-synic-no-signal", table: ws2022.with(0x40000003, CPUIDResult{EAX: 0xAE7B, EBX: 0x003B8010}),
			missing: PrivSynIC | PrivSignalEvents, wantVendor: "Microsoft Hv"},
		{name: "kvm", table: kvm, notHyperV: `vendor "KVMKVMKVM"`, wantVendor: "KVMKVMKVM"},
		{name: "kvm-hv-enlightened", table: kvmHv, notHyperV: "without hypercall MSRs", wantVendor: "Microsoft Hv"},
		{name: "kvm-hv-low-max-leaf", table: kvmHv.with(0x40000000, vendorLeaf(0x40000004, vendorMicrosoft)),
			notHyperV: "max hypervisor leaf 0x40000004", wantVendor: "Microsoft Hv"},
		{name: "wrong-interface", table: ws2022.with(0x40000001, CPUIDResult{EAX: 0x31235356}),
			notHyperV: "interface signature", wantVendor: "Microsoft Hv"},
		{name: "tcg", table: tcg, notHyperV: `vendor "TCGTCGTCGTCG"`, wantVendor: "TCGTCGTCGTCG"},
		{name: "bare-metal", table: bareMetal, notHyperV: "hypervisor bit clear"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var read []uint32
			info, err := Detect(tt.table.fn(&read))
			maxLeaf := tt.table[CPUIDLeafVendor].EAX
			for _, l := range read {
				if l > maxLeaf && l != CPUIDLeafVSInterface && l != CPUIDLeafVSFeatures && l > CPUIDLeafFeatureInfo {
					t.Errorf("read leaf %#x above max leaf %#x", l, maxLeaf)
				}
			}
			if info.Vendor != tt.wantVendor {
				t.Errorf("Vendor = %q, want %q", info.Vendor, tt.wantVendor)
			}
			switch {
			case tt.notHyperV != "":
				var nh *NotHyperVError
				if !errors.Is(err, ErrNotHyperV) || !errors.As(err, &nh) || !strings.Contains(nh.Reason, tt.notHyperV) {
					t.Fatalf("err = %v, want ErrNotHyperV with %q", err, tt.notHyperV)
				}
				if errors.Is(err, ErrMissingFeature) {
					t.Errorf("err %v also matches ErrMissingFeature", err)
				}
				if tt.name == "bare-metal" && (info.Present || len(read) != 1) {
					t.Errorf("bare metal: Present=%v, leaves read %#x", info.Present, read)
				}
			case tt.isolated != IsolationNone:
				var ie *IsolatedError
				if !errors.Is(err, ErrIsolated) || !errors.As(err, &ie) || ie.Isolation.Type != tt.isolated {
					t.Fatalf("err = %v, want ErrIsolated of type %v", err, tt.isolated)
				}
				if errors.Is(err, ErrNotHyperV) || errors.Is(err, ErrMissingFeature) || !info.HasVMBusFeatures() {
					t.Errorf("err %v / info %+v inconsistent", err, info)
				}
				if !strings.Contains(err.Error(), tt.isolated.String()) {
					t.Errorf("message %q does not name the isolation type", err)
				}
			case tt.missing != 0:
				var mf *MissingFeatureError
				if !errors.Is(err, ErrMissingFeature) || !errors.As(err, &mf) || mf.Missing != tt.missing {
					t.Fatalf("err = %v, want missing %#x", err, uint64(tt.missing))
				}
				if errors.Is(err, ErrNotHyperV) || info.HasVMBusFeatures() || info.Interface != InterfaceSignature {
					t.Errorf("err %v / info %+v inconsistent", err, info)
				}
			default:
				if err != nil {
					t.Fatalf("Detect: %v", err)
				}
				if !info.Present || info.Interface != 0x31237648 || info.MaxLeaf != maxLeaf {
					t.Errorf("info = %+v", info)
				}
			}
			if tt.check != nil {
				tt.check(t, info)
			}
		})
	}
}

func TestMissingFeatureErrorNames(t *testing.T) {
	err := Info{Privileges: PrivHypercallMSRs}.Require(PrivVMBus | PrivilegeMask(1)<<63)
	want := "hv: Hyper-V feature missing: SynIC, PostMessages, SignalEvents, bit63"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if err := (Info{Privileges: PrivVMBus}).Require(PrivVMBus); err != nil {
		t.Fatalf("Require with all present: %v", err)
	}
}
