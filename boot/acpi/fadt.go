package acpi

import (
	"encoding/binary"
	"fmt"
)

// FADT ("FACP") offsets (ACPI 5.2.9). Older, shorter FADTs are accepted:
// fields past the table's length read as absent.
const (
	fadtOffDSDT        = 40
	fadtOffSCI         = 46
	fadtOffPM1aCnt     = 64
	fadtOffPM1bCnt     = 68
	fadtOffPMTimer     = 76
	fadtOffPM1CntLen   = 89
	fadtOffPMTimerLen  = 91
	fadtOffCentury     = 108 // CMOS RAM index of the RTC's century register, 0: none
	fadtOffBootArch    = 109
	fadtOffFlags       = 112
	fadtOffResetReg    = 116 // GAS, 12 bytes
	fadtOffResetValue  = 128
	fadtOffXDSDT       = 140
	fadtOffXPM1aCnt    = 172 // GAS
	fadtOffXPM1bCnt    = 184 // GAS
	fadtOffXPMTimer    = 208 // GAS
	fadtOffSleepCtl    = 244 // GAS (hardware-reduced ACPI)
	fadtOffHypervisor  = 268
	fadtFlagTimerExt   = 1 << 8  // TMR_VAL_EXT: 32-bit PM timer
	fadtFlagResetReg   = 1 << 10 // RESET_REG_SUP
	fadtFlagHWReduced  = 1 << 20 // HW_REDUCED_ACPI
	bootArchLegacy     = 1 << 0  // LEGACY_DEVICES
	bootArch8042       = 1 << 1
	bootArchNoCMOSRTC  = 1 << 5 // CMOS RTC Not Present (ACPI 5.0)
	gasSize            = 12
	AddressSpaceMemory = 0
	AddressSpaceIO     = 1
)

// GAS is a Generic Address Structure (ACPI 5.2.3.2).
type GAS struct {
	Space      uint8 // AddressSpaceMemory or AddressSpaceIO
	BitWidth   uint8
	BitOffset  uint8
	AccessSize uint8
	Address    uint64
	Present    bool
}

func parseGAS(b []byte) GAS {
	g := GAS{Space: b[0], BitWidth: b[1], BitOffset: b[2], AccessSize: b[3], Address: binary.LittleEndian.Uint64(b[4:])}
	g.Present = g.Address != 0
	return g
}

// FADT is the part of the Fixed ACPI Description Table a kernel uses.
type FADT struct {
	Revision     uint8
	DSDT         uint64
	SCIInterrupt uint16
	// PM1aControl and PM1bControl are the PM1 control registers (power
	// off writes SLP_TYP|SLP_EN there). PM1b is optional.
	PM1aControl, PM1bControl GAS
	// PMTimer is the ACPI power-management timer (3.579545 MHz), 24 or 32
	// bits wide (PMTimer32).
	PMTimer   GAS
	PMTimer32 bool
	// ResetRegister and ResetValue reset the machine when ResetSupported.
	ResetRegister  GAS
	ResetValue     uint8
	ResetSupported bool
	HWReduced      bool
	// SleepControl is the hardware-reduced sleep control register.
	SleepControl GAS
	// LegacyDevices and Has8042 come from IAPC_BOOT_ARCH, and so does
	// NoCMOSRTC: the platform has no MC146818 real-time clock.
	LegacyDevices, Has8042 bool
	NoCMOSRTC              bool
	// Century is the CMOS RAM index of the RTC's century register (0:
	// none).
	Century      uint8
	HypervisorID uint64
}

// ParseFADT decodes a "FACP" table. Extended (X_) addresses win over the
// 32-bit ones when both are set, as the specification requires.
func ParseFADT(table []byte) (*FADT, error) {
	h, t, err := ParseHeader(table)
	if err != nil {
		return nil, err
	}
	if h.Signature != "FACP" {
		return nil, fmt.Errorf("%w: signature %q is not FACP", ErrMalformed, printable(h.Signature))
	}
	if len(t) < fadtOffPMTimerLen+1 {
		return nil, fmt.Errorf("%w: FADT of %d bytes is too short", ErrMalformed, len(t))
	}
	has := func(off, n int) bool { return len(t) >= off+n }
	u32 := func(off int) uint32 { return binary.LittleEndian.Uint32(t[off:]) }
	f := &FADT{
		Revision:     h.Revision,
		DSDT:         uint64(u32(fadtOffDSDT)),
		SCIInterrupt: binary.LittleEndian.Uint16(t[fadtOffSCI:]),
	}
	ioGAS := func(port uint32, width uint8) GAS {
		return GAS{Space: AddressSpaceIO, BitWidth: width, Address: uint64(port), Present: port != 0}
	}
	f.PM1aControl = ioGAS(u32(fadtOffPM1aCnt), t[fadtOffPM1CntLen]*8)
	f.PM1bControl = ioGAS(u32(fadtOffPM1bCnt), t[fadtOffPM1CntLen]*8)
	var flags uint32
	if has(fadtOffFlags, 4) {
		flags = u32(fadtOffFlags)
	}
	f.PMTimer32 = flags&fadtFlagTimerExt != 0
	timerWidth := uint8(24)
	if f.PMTimer32 {
		timerWidth = 32
	}
	if t[fadtOffPMTimerLen] == 4 {
		f.PMTimer = ioGAS(u32(fadtOffPMTimer), timerWidth)
	}
	f.HWReduced = flags&fadtFlagHWReduced != 0
	if has(fadtOffBootArch, 2) {
		f.Century = t[fadtOffCentury]
		ba := binary.LittleEndian.Uint16(t[fadtOffBootArch:])
		f.LegacyDevices = ba&bootArchLegacy != 0
		f.Has8042 = ba&bootArch8042 != 0
		f.NoCMOSRTC = ba&bootArchNoCMOSRTC != 0
	}
	if has(fadtOffResetValue, 1) {
		f.ResetRegister = parseGAS(t[fadtOffResetReg:])
		f.ResetValue = t[fadtOffResetValue]
		f.ResetSupported = flags&fadtFlagResetReg != 0 && f.ResetRegister.Present
	}
	if has(fadtOffXDSDT, 8) {
		if x := binary.LittleEndian.Uint64(t[fadtOffXDSDT:]); x != 0 {
			f.DSDT = x
		}
	}
	for _, x := range []struct {
		off int
		dst *GAS
	}{{fadtOffXPM1aCnt, &f.PM1aControl}, {fadtOffXPM1bCnt, &f.PM1bControl}, {fadtOffXPMTimer, &f.PMTimer}, {fadtOffSleepCtl, &f.SleepControl}} {
		if has(x.off, gasSize) {
			if g := parseGAS(t[x.off:]); g.Present {
				*x.dst = g
			}
		}
	}
	if has(fadtOffHypervisor, 8) {
		f.HypervisorID = binary.LittleEndian.Uint64(t[fadtOffHypervisor:])
	}
	return f, nil
}
