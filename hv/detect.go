package hv

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotHyperV is matched (errors.Is) by every Detect error that means the
// machine is not Hyper-V: bare metal, another hypervisor, or one that imitates
// Hyper-V without the interface gohv needs. The concrete error is a
// *NotHyperVError carrying the reason.
var ErrNotHyperV = errors.New("hv: not running on Hyper-V")

// ErrMissingFeature is matched by errors reporting that Hyper-V is present
// but lacks privileges gohv needs. The concrete error is a
// *MissingFeatureError naming them.
var ErrMissingFeature = errors.New("hv: Hyper-V feature missing")

// ErrIsolated is matched by the Detect error for a confidential (isolated)
// partition: VBS, SEV-SNP or TDX. The concrete error is an
// *IsolatedError.
var ErrIsolated = errors.New("hv: isolated (confidential) VM not supported")

// IsolatedError is Detect's refusal of an isolated partition (CPUID
// 0x4000000C, docs/hyperv-protocol.md §1.2). In one, guest memory is private to the
// guest unless it is explicitly made host-visible (the shared GPA boundary,
// page visibility hypercalls), and the host cannot read VMBus rings, SynIC
// pages or buffers in private memory. gohv does none of that, so instead
// of hanging in VMBus negotiation it stops here.
type IsolatedError struct {
	Isolation Isolation
}

func (e *IsolatedError) Error() string {
	s := fmt.Sprintf("hv: isolated (confidential) VM not supported: isolation type %v", e.Isolation.Type)
	if e.Isolation.Paravisor {
		s += " with a paravisor"
	}
	if e.Isolation.SharedGPABoundaryActive {
		s += fmt.Sprintf(", shared GPA boundary at bit %d", e.Isolation.SharedGPABoundaryBit)
	}
	return s + "; gohv cannot share its memory with the host"
}

// Unwrap makes errors.Is(err, ErrIsolated) true.
func (e *IsolatedError) Unwrap() error { return ErrIsolated }

// NotHyperVError says why Detect decided the machine is not Hyper-V.
type NotHyperVError struct {
	// Reason is a short human-readable explanation.
	Reason string
}

func (e *NotHyperVError) Error() string { return "hv: not running on Hyper-V: " + e.Reason }

// Unwrap makes errors.Is(err, ErrNotHyperV) true.
func (e *NotHyperVError) Unwrap() error { return ErrNotHyperV }

// MissingFeatureError names the privileges a caller needed but the
// partition does not have.
type MissingFeatureError struct {
	Missing PrivilegeMask
}

func (e *MissingFeatureError) Error() string {
	return "hv: Hyper-V feature missing: " + strings.Join(e.Missing.Names(), ", ")
}

// Unwrap makes errors.Is(err, ErrMissingFeature) true.
func (e *MissingFeatureError) Unwrap() error { return ErrMissingFeature }

// Version is CPUID(0x40000002) (docs/hyperv-protocol.md §1.2).
type Version struct {
	Build         uint32
	Major, Minor  uint16
	ServicePack   uint32
	ServiceBranch uint8
	ServiceNumber uint32 // 24 bits
}

func (v Version) String() string {
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Build)
}

// Info is what CPUID says about the hypervisor. Fields beyond Present are
// meaningful only when Detect returned nil or an ErrMissingFeature error.
type Info struct {
	// Present is CPUID(1).ECX bit 31: some hypervisor is there.
	Present bool
	// Vendor is the CPUID(0x40000000) vendor string.
	Vendor string
	// MaxLeaf is the highest hypervisor CPUID leaf.
	MaxLeaf uint32
	// Interface is CPUID(0x40000001).EAX.
	Interface uint32
	Version   Version
	// Privileges is the partition privilege mask (CPUID 0x40000003 EBX:EAX).
	Privileges PrivilegeMask
	// PowerFeatures is CPUID(0x40000003).ECX, kept raw.
	PowerFeatures uint32
	// Features is CPUID(0x40000003).EDX.
	Features        FeatureFlags
	Recommendations Recommendations
	// SpinlockRetries is CPUID(0x40000004).EBX; SpinlockNeverNotify means
	// never notify.
	SpinlockRetries uint32
	// PhysicalAddressBits is CPUID(0x40000004).ECX bits 6:0 (0 if unknown).
	PhysicalAddressBits uint8
	// Limits from CPUID(0x40000005).
	MaxVirtualProcessors, MaxLogicalProcessors, MaxInterruptVectors uint32
	// HardwareFeatures is CPUID(0x40000006).EAX, kept raw.
	HardwareFeatures uint32
	// NestedFeatures is CPUID(0x4000000A).EAX when MaxLeaf reaches it.
	NestedFeatures uint32
	// Isolation is CPUID(0x4000000C) when MaxLeaf reaches it.
	Isolation Isolation
	// VSFeatures is CPUID(0x40000082).EAX when CPUID(0x40000081) says VS#1.
	VSFeatures VSFeatures
}

// HasVMBusFeatures reports whether VMBus can run: SynIC and hypercall MSRs,
// HvPostMessage and HvSignalEvent (docs/hyperv-protocol.md §1.1 step 4).
func (i Info) HasVMBusFeatures() bool { return i.Privileges.Has(PrivVMBus) }

// ReferenceTSCAvailable reports whether the reference TSC page can be used
// (docs/hyperv-protocol.md §1.3 EAX.9).
func (i Info) ReferenceTSCAvailable() bool { return i.Privileges.Has(PrivReferenceTSC) }

// InvariantTSCControlAvailable reports whether TSC_INVARIANT_CONTROL may be
// written (docs/hyperv-protocol.md §1.3 EAX.15).
func (i Info) InvariantTSCControlAvailable() bool {
	return i.Privileges.Has(PrivTSCInvariantControl)
}

// SyntheticTimers reports whether the STIMER MSRs exist (EAX.3).
func (i Info) SyntheticTimers() bool { return i.Privileges.Has(PrivSyntheticTimers) }

// DirectSyntheticTimers reports whether synthetic timers can fire an APIC
// vector directly instead of posting a SynIC message (EDX.19).
func (i Info) DirectSyntheticTimers() bool {
	return i.SyntheticTimers() && i.Features.Has(FeatureDirectSyntheticTimer)
}

// FrequencyMSRs reports whether TSC_FREQUENCY and APIC_FREQUENCY can be
// read (EAX.11; Linux also accepts EDX.8).
func (i Info) FrequencyMSRs() bool {
	return i.Privileges.Has(PrivFrequencyMSRs) || i.Features.Has(FeatureFrequencyMSRs)
}

// AutoEOIDeprecated reports whether SINTs must not use AutoEOI (§1.4 bit 9).
func (i Info) AutoEOIDeprecated() bool {
	return i.Recommendations.Has(RecommendDeprecateAutoEOI)
}

// UseX2APIC reports whether the hypervisor recommends x2APIC MSRs (bit 8).
func (i Info) UseX2APIC() bool { return i.Recommendations.Has(RecommendX2APICMSRs) }

// RelaxedTiming reports whether watchdogs relying on timely interrupts
// should be disabled (bit 5).
func (i Info) RelaxedTiming() bool { return i.Recommendations.Has(RecommendRelaxedTiming) }

// Isolated reports whether this is a confidential (isolated) VM.
func (i Info) Isolated() bool { return i.Isolation.Type != IsolationNone }

// Require returns a *MissingFeatureError naming the privileges in want
// that the partition lacks, or nil.
func (i Info) Require(want PrivilegeMask) error {
	if missing := want &^ i.Privileges; missing != 0 {
		return &MissingFeatureError{Missing: missing}
	}
	return nil
}

// Detect identifies Hyper-V from CPUID values (docs/hyperv-protocol.md §1.1). It is pure:
// cpuid is its only input.
//
// It returns a *NotHyperVError (errors.Is ErrNotHyperV) when there is no
// hypervisor, the vendor is not "Microsoft Hv", the max leaf is below
// 0x40000005, the interface is not "Hv#1", or the hypercall MSRs are
// missing (FreeBSD's test for hypervisors such as KVM that imitate the
// vendor and signature). It returns a complete Info with an
// *IsolatedError (errors.Is ErrIsolated) for a confidential partition
// (isolation type in CPUID 0x4000000C other than none), which gohv cannot
// run VMBus in. It returns a complete Info with a *MissingFeatureError
// (errors.Is ErrMissingFeature) when Hyper-V lacks the VMBus privileges
// (PrivVMBus), and a complete Info with nil otherwise.
//
// Leaves above the reported max leaf are never read: on such leaves
// processors return unrelated data.
func Detect(cpuid CPUIDFunc) (Info, error) {
	var info Info
	if cpuid(CPUIDLeafFeatureInfo, 0).ECX&CPUID1ECXHypervisor == 0 {
		return info, &NotHyperVError{Reason: "CPUID(1).ECX hypervisor bit clear"}
	}
	info.Present = true

	v := cpuid(CPUIDLeafVendor, 0)
	info.Vendor = VendorString(v)
	info.MaxLeaf = v.EAX
	if v.EBX != VendorEBX || v.ECX != VendorECX || v.EDX != VendorEDX {
		return info, &NotHyperVError{Reason: fmt.Sprintf("hypervisor vendor %q", info.Vendor)}
	}
	if info.MaxLeaf < MinMaxLeaf {
		return info, &NotHyperVError{Reason: fmt.Sprintf("max hypervisor leaf %#x below %#x", info.MaxLeaf, MinMaxLeaf)}
	}
	info.Interface = cpuid(CPUIDLeafInterface, 0).EAX
	if info.Interface != InterfaceSignature {
		return info, &NotHyperVError{Reason: fmt.Sprintf("interface signature %#08x, want %#08x (\"Hv#1\")", info.Interface, InterfaceSignature)}
	}

	r := cpuid(CPUIDLeafVersion, 0)
	info.Version = Version{
		Build:         r.EAX,
		Major:         uint16(r.EBX >> 16),
		Minor:         uint16(r.EBX),
		ServicePack:   r.ECX,
		ServiceBranch: uint8(r.EDX >> 24),
		ServiceNumber: r.EDX & 0xFFFFFF,
	}
	r = cpuid(CPUIDLeafFeatures, 0)
	info.Privileges = PrivilegeMask(r.EAX) | PrivilegeMask(r.EBX)<<32
	info.PowerFeatures = r.ECX
	info.Features = FeatureFlags(r.EDX)
	r = cpuid(CPUIDLeafRecommendations, 0)
	info.Recommendations = Recommendations(r.EAX)
	info.SpinlockRetries = r.EBX
	info.PhysicalAddressBits = uint8(r.ECX & 0x7F)
	r = cpuid(CPUIDLeafLimits, 0)
	info.MaxVirtualProcessors, info.MaxLogicalProcessors, info.MaxInterruptVectors = r.EAX, r.EBX, r.ECX
	if info.MaxLeaf >= CPUIDLeafHardwareFeatures {
		info.HardwareFeatures = cpuid(CPUIDLeafHardwareFeatures, 0).EAX
	}
	if info.MaxLeaf >= CPUIDLeafNestedFeatures {
		info.NestedFeatures = cpuid(CPUIDLeafNestedFeatures, 0).EAX
	}
	if info.MaxLeaf >= CPUIDLeafIsolation {
		info.Isolation = DecodeIsolation(cpuid(CPUIDLeafIsolation, 0))
	}
	// The 0x4000008x range is reported by its own signature, not MaxLeaf
	// (Linux reads it the same way).
	if cpuid(CPUIDLeafVSInterface, 0).EAX == VSInterfaceSignature {
		info.VSFeatures = VSFeatures(cpuid(CPUIDLeafVSFeatures, 0).EAX)
	}

	// FreeBSD's rule (docs/hyperv-protocol.md §1.1 step 4): without the hypercall MSRs
	// this is an imitation (e.g. KVM with hv-* enlightenments), not Hyper-V.
	if !info.Privileges.Has(PrivHypercallMSRs) {
		return info, &NotHyperVError{Reason: "\"Microsoft Hv\" without hypercall MSRs (CPUID 0x40000003 EAX.5)"}
	}
	if info.Isolated() {
		return info, &IsolatedError{Isolation: info.Isolation}
	}
	if err := info.Require(PrivVMBus); err != nil {
		return info, err
	}
	return info, nil
}
