package hv

import "strconv"

// CPUID facts of the Hyper-V interface (docs/hyperv-protocol.md §1.1–§1.4). Wire
// definitions only; Detect in detect.go interprets them.

// CPUIDResult is the register file returned by one CPUID instruction.
type CPUIDResult struct {
	EAX, EBX, ECX, EDX uint32
}

// CPUIDFunc executes CPUID with EAX = leaf and ECX = subleaf. The bare-metal
// implementation runs the instruction; tests pass a table.
type CPUIDFunc func(leaf, subleaf uint32) CPUIDResult

// Standard leaf 1 (docs/hyperv-protocol.md §1.1 step 1).
const (
	CPUIDLeafFeatureInfo uint32 = 0x00000001
	// CPUID1ECXHypervisor is CPUID(1).ECX bit 31, "hypervisor present".
	CPUID1ECXHypervisor uint32 = 1 << 31
)

// Hypervisor CPUID leaves (docs/hyperv-protocol.md §1.2).
const (
	CPUIDLeafVendor           uint32 = 0x40000000 // EAX max leaf, EBX/ECX/EDX vendor
	CPUIDLeafInterface        uint32 = 0x40000001 // EAX interface signature
	CPUIDLeafVersion          uint32 = 0x40000002 // build, version, service pack
	CPUIDLeafFeatures         uint32 = 0x40000003 // privilege mask, power, misc features
	CPUIDLeafRecommendations  uint32 = 0x40000004 // implementation recommendations
	CPUIDLeafLimits           uint32 = 0x40000005 // max VPs, LPs, remapped vectors
	CPUIDLeafHardwareFeatures uint32 = 0x40000006 // hardware features in use
	CPUIDLeafCPUManagement    uint32 = 0x40000007 // root partition only
	CPUIDLeafNestedFeatures   uint32 = 0x4000000A // nested virtualization
	CPUIDLeafIsolation        uint32 = 0x4000000C // isolation (confidential VMs)
	CPUIDLeafVSInterface      uint32 = 0x40000081 // EAX "VS#1"
	CPUIDLeafVSFeatures       uint32 = 0x40000082 // virtualization-stack properties
)

// MinMaxLeaf is the smallest acceptable max hypervisor leaf: Linux and
// FreeBSD both require 0x40000005 (docs/hyperv-protocol.md §1.1 step 2).
const MinMaxLeaf uint32 = CPUIDLeafLimits

// Vendor "Microsoft Hv" as CPUID(0x40000000) returns it (docs/hyperv-protocol.md §1.1).
const (
	VendorEBX uint32 = 0x7263694D // "Micr"
	VendorECX uint32 = 0x666F736F // "osof"
	VendorEDX uint32 = 0x76482074 // "t Hv"
	// VendorMicrosoft is the vendor string the registers spell.
	VendorMicrosoft = "Microsoft Hv"
)

// InterfaceSignature is CPUID(0x40000001).EAX on Hyper-V, "Hv#1"
// (docs/hyperv-protocol.md §1.1 step 3).
const InterfaceSignature uint32 = 0x31237648

// VSInterfaceSignature is CPUID(0x40000081).EAX, "VS#1" (docs/hyperv-protocol.md §1.2).
const VSInterfaceSignature uint32 = 0x31235356

// PrivilegeMask is the 64-bit partition privilege mask: CPUID(0x40000003)
// EAX in bits 31:0 and EBX in bits 63:32 (docs/hyperv-protocol.md §1.2, §1.3).
type PrivilegeMask uint64

// Partition privileges (docs/hyperv-protocol.md §1.3). Bits 31:0 grant MSR access, bits
// 63:32 hypercall rights.
const (
	PrivVPRuntime                PrivilegeMask = 1 << 0  // VP_RUNTIME MSR
	PrivPartitionRefCounter      PrivilegeMask = 1 << 1  // TIME_REF_COUNT MSR
	PrivSynIC                    PrivilegeMask = 1 << 2  // SynIC MSRs
	PrivSyntheticTimers          PrivilegeMask = 1 << 3  // STIMER MSRs
	PrivAPICMSRs                 PrivilegeMask = 1 << 4  // EOI/ICR/TPR MSRs
	PrivHypercallMSRs            PrivilegeMask = 1 << 5  // GUEST_OS_ID, HYPERCALL
	PrivVPIndex                  PrivilegeMask = 1 << 6  // VP_INDEX MSR
	PrivResetMSR                 PrivilegeMask = 1 << 7  // RESET MSR
	PrivStatisticsPages          PrivilegeMask = 1 << 8  // statistics pages
	PrivReferenceTSC             PrivilegeMask = 1 << 9  // REFERENCE_TSC MSR
	PrivGuestIdleMSR             PrivilegeMask = 1 << 10 // GUEST_IDLE MSR
	PrivFrequencyMSRs            PrivilegeMask = 1 << 11 // TSC/APIC frequency MSRs
	PrivReenlightenment          PrivilegeMask = 1 << 13 // re-enlightenment controls
	PrivTSCInvariantControl      PrivilegeMask = 1 << 15 // TSC_INVARIANT_CONTROL MSR
	PrivCreatePartitions         PrivilegeMask = 1 << (32 + 0)
	PrivAccessPartitionID        PrivilegeMask = 1 << (32 + 1)
	PrivPostMessages             PrivilegeMask = 1 << (32 + 4)
	PrivSignalEvents             PrivilegeMask = 1 << (32 + 5)
	PrivCPUManagement            PrivilegeMask = 1 << (32 + 12)
	PrivEnableExtendedHypercalls PrivilegeMask = 1 << (32 + 20)
	PrivIsolation                PrivilegeMask = 1 << (32 + 22)
)

// PrivVMBus is what a VMBus client needs: SynIC MSRs, hypercall MSRs,
// HvPostMessage and HvSignalEvent (docs/hyperv-protocol.md §1.1 step 4).
const PrivVMBus = PrivSynIC | PrivHypercallMSRs | PrivPostMessages | PrivSignalEvents

var privilegeNames = [64]string{
	0: "VPRuntime", 1: "PartitionRefCounter", 2: "SynIC", 3: "SyntheticTimers",
	4: "APICMSRs", 5: "HypercallMSRs", 6: "VPIndex", 7: "ResetMSR",
	8: "StatisticsPages", 9: "ReferenceTSC", 10: "GuestIdleMSR",
	11: "FrequencyMSRs", 13: "Reenlightenment", 15: "TSCInvariantControl",
	32: "CreatePartitions", 33: "AccessPartitionID", 36: "PostMessages",
	37: "SignalEvents", 44: "CPUManagement", 52: "EnableExtendedHypercalls",
	54: "Isolation",
}

// Has reports whether every privilege in want is granted.
func (m PrivilegeMask) Has(want PrivilegeMask) bool { return m&want == want }

// Names returns the names of the set bits, "bitN" for unnamed ones.
func (m PrivilegeMask) Names() []string {
	var out []string
	for i := range 64 {
		if m&(1<<i) == 0 {
			continue
		}
		if n := privilegeNames[i]; n != "" {
			out = append(out, n)
		} else {
			out = append(out, "bit"+strconv.Itoa(i))
		}
	}
	return out
}

// FeatureFlags is CPUID(0x40000003).EDX (docs/hyperv-protocol.md §1.3).
type FeatureFlags uint32

// Miscellaneous features (docs/hyperv-protocol.md §1.3).
const (
	FeatureMWAIT                FeatureFlags = 1 << 0 // deprecated
	FeatureXMMHypercallInput    FeatureFlags = 1 << 4
	FeatureGuestIdleState       FeatureFlags = 1 << 5
	FeatureFrequencyMSRs        FeatureFlags = 1 << 8
	FeatureGuestCrashMSRs       FeatureFlags = 1 << 10
	FeatureDebugMSRs            FeatureFlags = 1 << 11
	FeatureXMMHypercallOutput   FeatureFlags = 1 << 15
	FeatureSINTPolling          FeatureFlags = 1 << 17
	FeatureDirectSyntheticTimer FeatureFlags = 1 << 19 // STIMER config bit 12
)

// Has reports whether every flag in want is set.
func (f FeatureFlags) Has(want FeatureFlags) bool { return f&want == want }

// Recommendations is CPUID(0x40000004).EAX (docs/hyperv-protocol.md §1.4).
type Recommendations uint32

// Implementation recommendations (docs/hyperv-protocol.md §1.4).
const (
	RecommendHypercallAddressSpaceSwitch Recommendations = 1 << 0
	RecommendHypercallLocalFlush         Recommendations = 1 << 1
	RecommendHypercallRemoteFlush        Recommendations = 1 << 2
	RecommendAPICMSRs                    Recommendations = 1 << 3
	RecommendResetMSR                    Recommendations = 1 << 4
	RecommendRelaxedTiming               Recommendations = 1 << 5
	RecommendDMARemapping                Recommendations = 1 << 6 // deprecated
	RecommendInterruptRemapping          Recommendations = 1 << 7 // deprecated
	RecommendX2APICMSRs                  Recommendations = 1 << 8
	RecommendDeprecateAutoEOI            Recommendations = 1 << 9
	RecommendSyntheticClusterIPI         Recommendations = 1 << 10
	RecommendExProcessorMasks            Recommendations = 1 << 11
	RecommendNested                      Recommendations = 1 << 12
	RecommendEnlightenedVMCS             Recommendations = 1 << 14
	RecommendDirectLocalFlushEntire      Recommendations = 1 << 17
	RecommendNoNonArchCoreSharing        Recommendations = 1 << 18
	RecommendMMIOHypercalls              Recommendations = 1 << 21
)

// Has reports whether every recommendation in want is set.
func (r Recommendations) Has(want Recommendations) bool { return r&want == want }

// SpinlockNeverNotify in CPUID(0x40000004).EBX means "never call
// HvNotifyLongSpinWait" (docs/hyperv-protocol.md §1.2).
const SpinlockNeverNotify uint32 = 0xFFFFFFFF

// IsolationType is CPUID(0x4000000C).EBX bits 3:0 (docs/hyperv-protocol.md §1.2).
type IsolationType uint8

// Isolation types (docs/hyperv-protocol.md §1.2).
const (
	IsolationNone   IsolationType = 0
	IsolationVBS    IsolationType = 1
	IsolationSEVSNP IsolationType = 2
	IsolationTDX    IsolationType = 3
)

// String implements fmt.Stringer.
func (t IsolationType) String() string {
	switch t {
	case IsolationNone:
		return "none"
	case IsolationVBS:
		return "VBS"
	case IsolationSEVSNP:
		return "SEV-SNP"
	case IsolationTDX:
		return "TDX"
	}
	return "isolation(" + strconv.Itoa(int(t)) + ")"
}

// Bits of CPUID(0x4000000C) (docs/hyperv-protocol.md §1.2).
const (
	isolationEAXParavisor    uint32 = 1 << 0
	isolationEBXTypeMask     uint32 = 0xF
	isolationEBXSharedGPA    uint32 = 1 << 5
	isolationEBXBoundaryPos         = 6
	isolationEBXBoundaryMask uint32 = 0x3F
)

// Isolation describes a confidential (isolated) partition.
type Isolation struct {
	// Paravisor is CPUID(0x4000000C).EAX bit 0.
	Paravisor bool
	// Type is EBX bits 3:0.
	Type IsolationType
	// SharedGPABoundaryActive is EBX bit 5: guest physical addresses with
	// bit SharedGPABoundaryBit set are shared (unencrypted) with the host.
	SharedGPABoundaryActive bool
	// SharedGPABoundaryBit is EBX bits 11:6.
	SharedGPABoundaryBit uint8
}

// DecodeIsolation decodes CPUID(0x4000000C).
func DecodeIsolation(r CPUIDResult) Isolation {
	return Isolation{
		Paravisor:               r.EAX&isolationEAXParavisor != 0,
		Type:                    IsolationType(r.EBX & isolationEBXTypeMask),
		SharedGPABoundaryActive: r.EBX&isolationEBXSharedGPA != 0,
		SharedGPABoundaryBit:    uint8(r.EBX >> isolationEBXBoundaryPos & isolationEBXBoundaryMask),
	}
}

// VSFeatures is CPUID(0x40000082).EAX (docs/hyperv-protocol.md §1.2).
type VSFeatures uint32

// Virtualization-stack properties (docs/hyperv-protocol.md §1.2, [O]).
const (
	VSPortablePartition      VSFeatures = 1 << 0
	VSSyntheticDebugDevice   VSFeatures = 1 << 1
	VSExtendedIOAPICRTE      VSFeatures = 1 << 2
	VSConfidentialVMBusAvail VSFeatures = 1 << 3
)

// VendorString returns the 12-byte vendor string CPUID(0x40000000) spells
// in EBX, ECX, EDX (little-endian), trailing NULs removed.
func VendorString(r CPUIDResult) string {
	var b [12]byte
	for i, w := range [3]uint32{r.EBX, r.ECX, r.EDX} {
		b[4*i] = byte(w)
		b[4*i+1] = byte(w >> 8)
		b[4*i+2] = byte(w >> 16)
		b[4*i+3] = byte(w >> 24)
	}
	n := len(b)
	for n > 0 && b[n-1] == 0 {
		n--
	}
	return string(b[:n])
}
