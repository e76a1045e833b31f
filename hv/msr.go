package hv

import (
	"errors"
	"fmt"
)

// Synthetic MSRs and their register layouts (docs/hyperv-protocol.md §1.5, §1.6).

// MSR is a model-specific register number.
type MSR uint32

// Synthetic MSRs (docs/hyperv-protocol.md §1.5).
const (
	MSRGuestOSID              MSR = 0x40000000
	MSRHypercall              MSR = 0x40000001
	MSRVPIndex                MSR = 0x40000002
	MSRReset                  MSR = 0x40000003
	MSRVPRuntime              MSR = 0x40000010
	MSRTimeRefCount           MSR = 0x40000020
	MSRReferenceTSC           MSR = 0x40000021
	MSRTSCFrequency           MSR = 0x40000022
	MSRAPICFrequency          MSR = 0x40000023
	MSREOI                    MSR = 0x40000070
	MSRICR                    MSR = 0x40000071
	MSRTPR                    MSR = 0x40000072
	MSRVPAssistPage           MSR = 0x40000073
	MSRSControl               MSR = 0x40000080
	MSRSVersion               MSR = 0x40000081
	MSRSIEFP                  MSR = 0x40000082
	MSRSIMP                   MSR = 0x40000083
	MSREOM                    MSR = 0x40000084
	MSRSINT0                  MSR = 0x40000090 // SINTn = MSRSINT0 + n, n < 16
	MSRSTimer0Config          MSR = 0x400000B0 // STIMERn_CONFIG = + 2n, n < 4
	MSRSTimer0Count           MSR = 0x400000B1 // STIMERn_COUNT = + 2n, n < 4
	MSRGuestIdle              MSR = 0x400000F0
	MSRCrashP0                MSR = 0x40000100 // P0..P4 = 0x40000100..104
	MSRCrashCtl               MSR = 0x40000105
	MSRReenlightenmentControl MSR = 0x40000106
	MSRTSCEmulationControl    MSR = 0x40000107
	MSRTSCEmulationStatus     MSR = 0x40000108
	MSRTSCInvariantControl    MSR = 0x40000118
)

// SyntheticTimerCount is the number of synthetic timers per VP.
const SyntheticTimerCount = 4

// SINTMSR returns the MSR of SINTn; n must be below SINTCount.
func SINTMSR(n uint8) MSR { return MSRSINT0 + MSR(n&(SINTCount-1)) }

// STimerConfigMSR returns STIMERn_CONFIG; n must be below 4.
func STimerConfigMSR(n uint8) MSR { return MSRSTimer0Config + 2*MSR(n&3) }

// STimerCountMSR returns STIMERn_COUNT; n must be below 4.
func STimerCountMSR(n uint8) MSR { return MSRSTimer0Count + 2*MSR(n&3) }

var msrNames = map[MSR]string{
	MSRGuestOSID: "GUEST_OS_ID", MSRHypercall: "HYPERCALL", MSRVPIndex: "VP_INDEX",
	MSRReset: "RESET", MSRVPRuntime: "VP_RUNTIME", MSRTimeRefCount: "TIME_REF_COUNT",
	MSRReferenceTSC: "REFERENCE_TSC", MSRTSCFrequency: "TSC_FREQUENCY",
	MSRAPICFrequency: "APIC_FREQUENCY", MSREOI: "EOI", MSRICR: "ICR", MSRTPR: "TPR",
	MSRVPAssistPage: "VP_ASSIST_PAGE", MSRSControl: "SCONTROL", MSRSVersion: "SVERSION",
	MSRSIEFP: "SIEFP", MSRSIMP: "SIMP", MSREOM: "EOM", MSRGuestIdle: "GUEST_IDLE",
	MSRCrashCtl: "CRASH_CTL", MSRReenlightenmentControl: "REENLIGHTENMENT_CONTROL",
	MSRTSCEmulationControl: "TSC_EMULATION_CONTROL",
	MSRTSCEmulationStatus:  "TSC_EMULATION_STATUS",
	MSRTSCInvariantControl: "TSC_INVARIANT_CONTROL",
}

// String returns the TLFS name of m, or its number.
func (m MSR) String() string {
	if n, ok := msrNames[m]; ok {
		return n
	}
	switch {
	case m >= MSRSINT0 && m < MSRSINT0+SINTCount:
		return fmt.Sprintf("SINT%d", m-MSRSINT0)
	case m >= MSRSTimer0Config && m < MSRSTimer0Config+2*SyntheticTimerCount:
		if (m-MSRSTimer0Config)%2 == 0 {
			return fmt.Sprintf("STIMER%d_CONFIG", (m-MSRSTimer0Config)/2)
		}
		return fmt.Sprintf("STIMER%d_COUNT", (m-MSRSTimer0Config)/2)
	case m >= MSRCrashP0 && m < MSRCrashCtl:
		return fmt.Sprintf("CRASH_P%d", m-MSRCrashP0)
	}
	return fmt.Sprintf("MSR(%#x)", uint32(m))
}

// ErrBadRegister is matched by errors from register encoders given values
// the hypervisor would reject.
var ErrBadRegister = errors.New("hv: invalid register value")

// SINT register bits (docs/hyperv-protocol.md §1.5).
const (
	sintVectorMask uint64 = 0xFF
	sintMasked     uint64 = 1 << 16
	sintAutoEOI    uint64 = 1 << 17
	sintPolling    uint64 = 1 << 18
	// sintOwned are the bits SINT.Encode writes; all others are preserved.
	sintOwned = sintVectorMask | sintMasked | sintAutoEOI | sintPolling
)

// MinVector is the lowest valid SINT / STIMER interrupt vector.
const MinVector = 16

// SINT is the content of a SINTn MSR.
type SINT struct {
	Vector  uint8
	Masked  bool
	AutoEOI bool
	Polling bool
}

// Encode returns the MSR value for s, keeping the bits of old that s does
// not own (bits 15:8 and 63:19 are reserved and preserved, as FreeBSD
// does). An unmasked SINT needs a vector of at least 16; a masked one may
// keep the reset value 0.
func (s SINT) Encode(old uint64) (uint64, error) {
	if !s.Masked && s.Vector < MinVector {
		return 0, fmt.Errorf("%w: SINT vector %d below %d", ErrBadRegister, s.Vector, MinVector)
	}
	v := old&^sintOwned | uint64(s.Vector)
	if s.Masked {
		v |= sintMasked
	}
	if s.AutoEOI {
		v |= sintAutoEOI
	}
	if s.Polling {
		v |= sintPolling
	}
	return v, nil
}

// DecodeSINT decodes a SINTn MSR value.
func DecodeSINT(v uint64) SINT {
	return SINT{
		Vector:  uint8(v & sintVectorMask),
		Masked:  v&sintMasked != 0,
		AutoEOI: v&sintAutoEOI != 0,
		Polling: v&sintPolling != 0,
	}
}

// Page-address MSRs (SIMP, SIEFP, REFERENCE_TSC, VP_ASSIST_PAGE, HYPERCALL):
// bit 0 enable, bits 63:12 GPN (docs/hyperv-protocol.md §1.5).
const (
	pageMSREnable   uint64 = 1 << 0
	pageMSRLow      uint64 = PageSize - 1 // bits 11:0
	hypercallLocked uint64 = 1 << 1
	// MaxGPN is the largest page number a page-address MSR can hold.
	MaxGPN uint64 = 1<<(64-PageShift) - 1
)

// EncodePageMSR returns the value for SIMP, SIEFP, REFERENCE_TSC or
// VP_ASSIST_PAGE: gpn in bits 63:12, enable in bit 0, and bits 11:1 of
// old preserved (docs/hyperv-protocol.md §1.5, §2.4).
func EncodePageMSR(old, gpn uint64, enable bool) (uint64, error) {
	if gpn > MaxGPN {
		return 0, fmt.Errorf("%w: GPN %#x too large", ErrBadRegister, gpn)
	}
	v := gpn<<PageShift | old&pageMSRLow&^pageMSREnable
	if enable {
		v |= pageMSREnable
	}
	return v, nil
}

// EncodeHypercallMSR returns the value for the HYPERCALL MSR: gpn in bits
// 63:12, enable in bit 0, the locked bit 1 of old preserved, and bits 11:2
// zero (OpenVMM faults on them; docs/hyperv-protocol.md §1.5, §1.7).
func EncodeHypercallMSR(old, gpn uint64, enable bool) (uint64, error) {
	if gpn > MaxGPN {
		return 0, fmt.Errorf("%w: GPN %#x too large", ErrBadRegister, gpn)
	}
	v := gpn<<PageShift | old&hypercallLocked
	if enable {
		v |= pageMSREnable
	}
	return v, nil
}

// DecodePageMSR splits a page-address MSR value.
func DecodePageMSR(v uint64) (gpn uint64, enabled bool) {
	return v >> PageShift, v&pageMSREnable != 0
}

// SCONTROL and EOM values (docs/hyperv-protocol.md §1.5, §2.3).
const (
	SControlEnable uint64 = 1 << 0
	EOMValue       uint64 = 0
	ResetValue     uint64 = 1
)

// STIMER config bits (docs/hyperv-protocol.md §1.5).
const (
	stimerEnable     uint64 = 1 << 0
	stimerPeriodic   uint64 = 1 << 1
	stimerLazy       uint64 = 1 << 2
	stimerAutoEnable uint64 = 1 << 3
	stimerVectorPos         = 4 // bits 11:4
	stimerDirect     uint64 = 1 << 12
	stimerSINTPos           = 16 // bits 19:16
)

// STimerConfig is the content of an STIMERn_CONFIG MSR.
type STimerConfig struct {
	Enable     bool
	Periodic   bool
	Lazy       bool
	AutoEnable bool
	// DirectMode fires APICVector instead of posting a timer message to
	// SINT (needs FeatureDirectSyntheticTimer).
	DirectMode bool
	APICVector uint8
	// SINT receives the expiry message in message mode (0–15).
	SINT uint8
}

// Encode returns the MSR value for c.
func (c STimerConfig) Encode() (uint64, error) {
	if c.SINT >= SINTCount {
		return 0, fmt.Errorf("%w: STIMER SINT %d out of range", ErrBadRegister, c.SINT)
	}
	if c.DirectMode && c.APICVector < MinVector {
		return 0, fmt.Errorf("%w: STIMER vector %d below %d", ErrBadRegister, c.APICVector, MinVector)
	}
	v := uint64(c.APICVector)<<stimerVectorPos | uint64(c.SINT)<<stimerSINTPos
	for _, b := range [...]struct {
		on  bool
		bit uint64
	}{{c.Enable, stimerEnable}, {c.Periodic, stimerPeriodic}, {c.Lazy, stimerLazy},
		{c.AutoEnable, stimerAutoEnable}, {c.DirectMode, stimerDirect}} {
		if b.on {
			v |= b.bit
		}
	}
	return v, nil
}

// DecodeSTimerConfig decodes an STIMERn_CONFIG value.
func DecodeSTimerConfig(v uint64) STimerConfig {
	return STimerConfig{
		Enable:     v&stimerEnable != 0,
		Periodic:   v&stimerPeriodic != 0,
		Lazy:       v&stimerLazy != 0,
		AutoEnable: v&stimerAutoEnable != 0,
		DirectMode: v&stimerDirect != 0,
		APICVector: uint8(v >> stimerVectorPos),
		SINT:       uint8(v>>stimerSINTPos) & 0xF,
	}
}

// Guest OS identity (docs/hyperv-protocol.md §1.6).
const (
	guestOSOpenSource uint64 = 1 << 63
	guestOSTypePos           = 56 // bits 62:56
	guestOSIDPos             = 48 // bits 55:48
	guestOSVersionPos        = 16 // bits 47:16
)

// GuestOSID returns the open-source encoding of GUEST_OS_ID (docs/hyperv-protocol.md
// §1.6): bit 63 set, osType in bits 62:56 (only its low 7 bits fit), osID
// in 55:48, version in 47:16, build in 15:0.
func GuestOSID(osType uint8, osID uint8, version uint32, build uint16) uint64 {
	return guestOSOpenSource |
		uint64(osType&0x7F)<<guestOSTypePos |
		uint64(osID)<<guestOSIDPos |
		uint64(version)<<guestOSVersionPos |
		uint64(build)
}

// Known open-source OS types (docs/hyperv-protocol.md §1.6); there is no public registry.
const (
	GuestOSTypeLinux   uint8 = 1
	GuestOSTypeFreeBSD uint8 = 2
	GuestOSTypeXen     uint8 = 3
	GuestOSTypeIllumos uint8 = 4
	// GuestOSTypeGohv is gohv's OS type: the highest 7-bit value, far from
	// the small numbers the known systems use and from iPXE's 0x18
	// (0x98AE<<48), so a host log can tell gohv apart.
	GuestOSTypeGohv uint8 = 0x7F
)

// GohvVersion is the version gohv reports in GUEST_OS_ID bits 47:16,
// major<<16 | minor<<8 | patch.
const GohvVersion uint32 = 0x000100 // 0.1.0

// GohvGuestOSID is the GUEST_OS_ID gohv writes:
// GuestOSID(GuestOSTypeGohv, 0, GohvVersion, 0).
const GohvGuestOSID uint64 = 1<<63 | uint64(GuestOSTypeGohv)<<56 | uint64(GohvVersion)<<16
