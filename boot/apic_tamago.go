//go:build tamago

package boot

// x2APIC facts Linux's __x2apic_disable also checks before leaving x2APIC
// mode (Intel SDM Vol. 3A §11.12.5; Intel's "x2APIC lock" note for
// IA32_XAPIC_DISABLE_STATUS).
const (
	// msrAPICBase is IA32_APIC_BASE.
	msrAPICBase = 0x1B
	// msrX2APICID is the x2APIC ID register (x2APIC mode only).
	msrX2APICID = 0x802
	// msrArchCapabilities is IA32_ARCH_CAPABILITIES, present when
	// CPUID.(EAX=7,ECX=0):EDX[29] is set; bit 21 says
	// IA32_XAPIC_DISABLE_STATUS exists.
	msrArchCapabilities   = 0x10A
	archCapXAPICDisStatus = 1 << 21
	// msrXAPICDisableStatus bit 0 set: firmware locked the APIC in
	// x2APIC mode.
	msrXAPICDisableStatus = 0xBD
	xapicLegacyDisabled   = 1 << 0
)
