package acpi

import (
	"encoding/binary"
	"fmt"
)

// MADT layout (ACPI 5.2.12): local APIC address @36, flags @40, then
// interrupt controller structures {type u8, length u8, ...} from @44.
const (
	madtOffLocalAPIC = 36
	madtOffFlags     = 40
	madtOffEntries   = 44

	madtLocalAPIC         = 0 // @2 UID u8, @3 APIC id u8, @4 flags u32
	madtIOAPIC            = 1 // @2 id u8, @4 address u32, @8 GSI base u32
	madtSourceOverride    = 2 // @2 bus u8, @3 source u8, @4 GSI u32, @8 flags u16
	madtLocalAPICOverride = 5 // @4 address u64
	madtLocalX2APIC       = 9 // @4 x2APIC id u32, @8 flags u32, @12 UID u32

	lapicEnabled       = 1 << 0
	lapicOnlineCapable = 1 << 1
)

// CPU is one processor the MADT describes.
type CPU struct {
	UID    uint32
	APICID uint32
	// Enabled is true for a usable processor; OnlineCapable ones may be
	// started later (hot-add) and are listed but not Enabled.
	Enabled       bool
	OnlineCapable bool
}

// IOAPIC is one I/O APIC.
type IOAPIC struct {
	ID      uint8
	Address uint32
	GSIBase uint32
}

// Override is an interrupt source override (ISA IRQ → GSI).
type Override struct {
	Bus, Source uint8
	GSI         uint32
	Flags       uint16
}

// MADT is the decoded Multiple APIC Description Table.
type MADT struct {
	LocalAPICAddress uint64
	PCATCompat       bool // legacy 8259 PICs present (must be masked)
	CPUs             []CPU
	IOAPICs          []IOAPIC
	Overrides        []Override
}

// EnabledCPUs counts usable processors.
func (m *MADT) EnabledCPUs() int {
	n := 0
	for _, c := range m.CPUs {
		if c.Enabled {
			n++
		}
	}
	return n
}

// ParseMADT decodes an "APIC" table.
func ParseMADT(table []byte) (*MADT, error) {
	h, t, err := ParseHeader(table)
	if err != nil {
		return nil, err
	}
	if h.Signature != "APIC" {
		return nil, fmt.Errorf("%w: signature %q is not APIC", ErrMalformed, printable(h.Signature))
	}
	if len(t) < madtOffEntries {
		return nil, fmt.Errorf("%w: MADT of %d bytes", ErrMalformed, len(t))
	}
	m := &MADT{
		LocalAPICAddress: uint64(binary.LittleEndian.Uint32(t[madtOffLocalAPIC:])),
		PCATCompat:       binary.LittleEndian.Uint32(t[madtOffFlags:])&1 != 0,
	}
	for off := madtOffEntries; off < len(t); {
		if off+2 > len(t) {
			return nil, fmt.Errorf("%w: MADT entry header at %d runs past the table", ErrMalformed, off)
		}
		typ, n := t[off], int(t[off+1])
		if n < 2 || off+n > len(t) {
			return nil, fmt.Errorf("%w: MADT entry type %d at %d has length %d", ErrMalformed, typ, off, n)
		}
		e := t[off : off+n]
		need := map[byte]int{madtLocalAPIC: 8, madtIOAPIC: 12, madtSourceOverride: 10, madtLocalAPICOverride: 12, madtLocalX2APIC: 16}[typ]
		if need != 0 && n < need {
			return nil, fmt.Errorf("%w: MADT entry type %d has length %d, want %d", ErrMalformed, typ, n, need)
		}
		switch typ {
		case madtLocalAPIC:
			f := binary.LittleEndian.Uint32(e[4:])
			m.CPUs = append(m.CPUs, CPU{UID: uint32(e[2]), APICID: uint32(e[3]), Enabled: f&lapicEnabled != 0, OnlineCapable: f&lapicOnlineCapable != 0})
		case madtLocalX2APIC:
			f := binary.LittleEndian.Uint32(e[8:])
			m.CPUs = append(m.CPUs, CPU{UID: binary.LittleEndian.Uint32(e[12:]), APICID: binary.LittleEndian.Uint32(e[4:]), Enabled: f&lapicEnabled != 0, OnlineCapable: f&lapicOnlineCapable != 0})
		case madtIOAPIC:
			m.IOAPICs = append(m.IOAPICs, IOAPIC{ID: e[2], Address: binary.LittleEndian.Uint32(e[4:]), GSIBase: binary.LittleEndian.Uint32(e[8:])})
		case madtSourceOverride:
			m.Overrides = append(m.Overrides, Override{Bus: e[2], Source: e[3], GSI: binary.LittleEndian.Uint32(e[4:]), Flags: binary.LittleEndian.Uint16(e[8:])})
		case madtLocalAPICOverride:
			m.LocalAPICAddress = binary.LittleEndian.Uint64(e[4:])
		}
		off += n
	}
	return m, nil
}
