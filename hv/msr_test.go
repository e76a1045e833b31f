package hv

import (
	"errors"
	"testing"
)

func TestMSRNumbers(t *testing.T) {
	// Numbers and names literal from docs/hyperv-protocol.md §1.5.
	for _, c := range []struct {
		m    MSR
		want uint32
		name string
	}{
		{MSRGuestOSID, 0x40000000, "GUEST_OS_ID"},
		{MSRHypercall, 0x40000001, "HYPERCALL"},
		{MSRVPIndex, 0x40000002, "VP_INDEX"},
		{MSRReset, 0x40000003, "RESET"},
		{MSRVPRuntime, 0x40000010, "VP_RUNTIME"},
		{MSRTimeRefCount, 0x40000020, "TIME_REF_COUNT"},
		{MSRReferenceTSC, 0x40000021, "REFERENCE_TSC"},
		{MSRTSCFrequency, 0x40000022, "TSC_FREQUENCY"},
		{MSRAPICFrequency, 0x40000023, "APIC_FREQUENCY"},
		{MSREOI, 0x40000070, "EOI"},
		{MSRICR, 0x40000071, "ICR"},
		{MSRTPR, 0x40000072, "TPR"},
		{MSRVPAssistPage, 0x40000073, "VP_ASSIST_PAGE"},
		{MSRSControl, 0x40000080, "SCONTROL"},
		{MSRSVersion, 0x40000081, "SVERSION"},
		{MSRSIEFP, 0x40000082, "SIEFP"},
		{MSRSIMP, 0x40000083, "SIMP"},
		{MSREOM, 0x40000084, "EOM"},
		{MSRSINT0, 0x40000090, "SINT0"},
		{SINTMSR(2), 0x40000092, "SINT2"},
		{SINTMSR(15), 0x4000009F, "SINT15"},
		{MSRSTimer0Config, 0x400000B0, "STIMER0_CONFIG"},
		{MSRSTimer0Count, 0x400000B1, "STIMER0_COUNT"},
		{STimerConfigMSR(1), 0x400000B2, "STIMER1_CONFIG"},
		{STimerCountMSR(3), 0x400000B7, "STIMER3_COUNT"},
		{MSRGuestIdle, 0x400000F0, "GUEST_IDLE"},
		{MSRCrashP0, 0x40000100, "CRASH_P0"},
		{MSRCrashP0 + 4, 0x40000104, "CRASH_P4"},
		{MSRCrashCtl, 0x40000105, "CRASH_CTL"},
		{MSRReenlightenmentControl, 0x40000106, "REENLIGHTENMENT_CONTROL"},
		{MSRTSCEmulationControl, 0x40000107, "TSC_EMULATION_CONTROL"},
		{MSRTSCEmulationStatus, 0x40000108, "TSC_EMULATION_STATUS"},
		{MSRTSCInvariantControl, 0x40000118, "TSC_INVARIANT_CONTROL"},
		{MSR(0x40000123), 0x40000123, "MSR(0x40000123)"},
	} {
		if uint32(c.m) != c.want || c.m.String() != c.name {
			t.Errorf("%s = %#x, want %s = %#x", c.m, uint32(c.m), c.name, c.want)
		}
	}
	if SControlEnable != 1 || EOMValue != 0 || ResetValue != 1 {
		t.Errorf("SCONTROL/EOM/RESET values wrong")
	}
}

func TestSINTEncode(t *testing.T) {
	for _, c := range []struct {
		name string
		s    SINT
		old  uint64
		want uint64
	}{
		// Linux-style VMBus SINT: vector 0xF3, AutoEOI, from the reset value.
		{"vmbus", SINT{Vector: 0xF3, AutoEOI: true}, 0x0000000000010000, 0x00000000000200F3},
		{"masked reset value", SINT{Masked: true}, 0, 0x0000000000010000},
		{"polling", SINT{Vector: 0x10, Polling: true}, 0, 0x0000000000040010},
		// Bits 15:8 and 63:19 preserved; 7:0, 16, 17, 18 replaced.
		{"preserve reserved", SINT{Vector: 0x20}, 0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFF8FF20},
	} {
		got, err := c.s.Encode(c.old)
		if err != nil || got != c.want {
			t.Errorf("%s: Encode = %#x, %v, want %#x", c.name, got, err, c.want)
		}
	}
	if _, err := (SINT{Vector: 15}).Encode(0); !errors.Is(err, ErrBadRegister) {
		t.Errorf("unmasked vector 15: err = %v", err)
	}
	got := DecodeSINT(0xFFFFFFFFFFF300F3)
	if got != (SINT{Vector: 0xF3, Masked: true, AutoEOI: true}) {
		t.Errorf("DecodeSINT = %+v", got)
	}
	if got := DecodeSINT(0x40010); got != (SINT{Vector: 0x10, Polling: true}) {
		t.Errorf("DecodeSINT(polling) = %+v", got)
	}
}

func TestPageMSREncode(t *testing.T) {
	for _, c := range []struct {
		name   string
		old    uint64
		gpn    uint64
		enable bool
		want   uint64
	}{
		{"enable fresh", 0, 0x12345, true, 0x0000000012345001},
		{"preserve 11:1", 0x0000000000000FFE, 0x12345, true, 0x0000000012345FFF},
		{"disable keeps 11:1", 0x0000000000000FFF, 0x12345, false, 0x0000000012345FFE},
		{"old GPN replaced", 0xDEADB00000000001, 0x1, false, 0x0000000000001000},
		{"max GPN", 0, 0x000FFFFFFFFFFFFF, true, 0xFFFFFFFFFFFFF001},
	} {
		got, err := EncodePageMSR(c.old, c.gpn, c.enable)
		if err != nil || got != c.want {
			t.Errorf("%s: EncodePageMSR = %#x, %v, want %#x", c.name, got, err, c.want)
		}
	}
	if _, err := EncodePageMSR(0, 1<<52, true); !errors.Is(err, ErrBadRegister) {
		t.Errorf("GPN 1<<52: err = %v", err)
	}
	if gpn, en := DecodePageMSR(0x0000000012345FFF); gpn != 0x12345 || !en {
		t.Errorf("DecodePageMSR = %#x, %v", gpn, en)
	}
}

func TestHypercallMSREncode(t *testing.T) {
	for _, c := range []struct {
		old, gpn uint64
		enable   bool
		want     uint64
	}{
		{0, 0x1234, true, 0x0000000001234001},
		// Locked bit 1 preserved, reserved bits 11:2 written as zero.
		{0xFFF, 0x1234, true, 0x0000000001234003},
		{0xFFD, 0x1234, true, 0x0000000001234001},
		{0, 0x1234, false, 0x0000000001234000},
	} {
		got, err := EncodeHypercallMSR(c.old, c.gpn, c.enable)
		if err != nil || got != c.want {
			t.Errorf("EncodeHypercallMSR(%#x, %#x, %v) = %#x, %v, want %#x", c.old, c.gpn, c.enable, got, err, c.want)
		}
	}
	if _, err := EncodeHypercallMSR(0, 1<<52, true); !errors.Is(err, ErrBadRegister) {
		t.Errorf("GPN 1<<52: err = %v", err)
	}
}

func TestSTimerConfig(t *testing.T) {
	for _, c := range []struct {
		name string
		c    STimerConfig
		want uint64
	}{
		{"message mode SINT2", STimerConfig{Enable: true, AutoEnable: true, SINT: 2}, 0x0000000000020009},
		{"direct periodic 0xED", STimerConfig{Enable: true, Periodic: true, DirectMode: true, APICVector: 0xED}, 0x0000000000001ED3},
		{"lazy SINT15", STimerConfig{Lazy: true, SINT: 15}, 0x00000000000F0004},
	} {
		got, err := c.c.Encode()
		if err != nil || got != c.want {
			t.Errorf("%s: Encode = %#x, %v, want %#x", c.name, got, err, c.want)
			continue
		}
		if back := DecodeSTimerConfig(c.want); back != c.c {
			t.Errorf("%s: DecodeSTimerConfig(%#x) = %+v", c.name, c.want, back)
		}
	}
	for _, bad := range []STimerConfig{{SINT: 16}, {DirectMode: true, APICVector: 15}} {
		if _, err := bad.Encode(); !errors.Is(err, ErrBadRegister) {
			t.Errorf("Encode(%+v): err = %v", bad, err)
		}
	}
}

func TestGuestOSID(t *testing.T) {
	for _, c := range []struct {
		name string
		got  uint64
		want uint64
	}{
		// Known values from docs/hyperv-protocol.md §1.6.
		{"Linux 5.15.0", GuestOSID(GuestOSTypeLinux, 0, 0x050F00, 0), 0x810000050F000000},
		{"FreeBSD 1400000", GuestOSID(GuestOSTypeFreeBSD, 0, 1400000, 0), 0x820000155CC00000},
		{"iPXE", GuestOSID(0x18, 0xAE, 0, 0), 0x98AE000000000000},
		{"all fields", GuestOSID(0x7F, 0xAB, 0x12345678, 0x9ABC), 0xFFAB123456789ABC},
		{"OS type high bit dropped", GuestOSID(0xFF, 0, 0, 0), 0xFF00000000000000},
		{"gohv constant", GohvGuestOSID, 0xFF00000001000000},
		{"gohv via function", GuestOSID(GuestOSTypeGohv, 0, GohvVersion, 0), 0xFF00000001000000},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#016x, want %#016x", c.name, c.got, c.want)
		}
	}
}
