package acpi

import "fmt"

// Write is one register write the board performs to power off or reset.
type Write struct {
	Space   uint8 // AddressSpaceIO or AddressSpaceMemory
	Address uint64
	Width   uint8 // bits: 8, 16 or 32
	Value   uint32
	// Keep, when non-zero, makes the write read-modify-write: the bits
	// set in Keep are taken from the register's current value, the others
	// from Value. PM1 control must keep SCI_EN and the other bits it holds
	// (ACPI 4.8.3.2.1; ACPICA writes back what it read with only SLP_TYP
	// and SLP_EN changed).
	Keep uint32
	Why  string
}

// Merge returns the value to write given the register's current value.
func (w Write) Merge(current uint32) uint32 { return current&w.Keep | w.Value&^w.Keep }

func (w Write) String() string {
	space := "io"
	if w.Space == AddressSpaceMemory {
		space = "mem"
	}
	return fmt.Sprintf("%s %#x <- %#x (%d-bit, %s)", space, w.Address, w.Value, w.Width, w.Why)
}

// PM1 control and sleep control bit positions (ACPI 4.8.3.2.1, 4.8.3.7).
const (
	pm1SleepTypeShift = 10
	pm1SleepTypeMask  = 7 << pm1SleepTypeShift
	pm1SleepEnable    = 1 << 13
	// pm1Keep is every PM1 control bit but SLP_TYP and SLP_EN.
	pm1Keep            = 0xFFFF &^ (pm1SleepTypeMask | pm1SleepEnable)
	sleepCtlTypeShift  = 2
	sleepCtlEnable     = 1 << 5
	legacyResetPort    = 0xCF9 // PIIX/ICH reset control register
	legacyResetValue   = 0x06  // full reset | system reset
	kbdControllerPort  = 0x64
	kbdControllerReset = 0xFE
)

// PowerOffWrites returns the writes that enter S5 (soft off): SLP_TYP|SLP_EN
// to PM1a (and PM1b when present), or to the sleep control register on a
// hardware-reduced platform. On Hyper-V Gen1 and Gen2 and under QEMU both
// come from the FADT and the DSDT's \_S5 (docs/hyperv-protocol.md §10).
func PowerOffWrites(f *FADT, s5 SleepType) ([]Write, error) {
	if f.HWReduced && f.SleepControl.Present {
		return []Write{{Space: f.SleepControl.Space, Address: f.SleepControl.Address, Width: 8,
			Value: uint32(s5.A)<<sleepCtlTypeShift | sleepCtlEnable, Why: "sleep control S5"}}, nil
	}
	if !f.PM1aControl.Present {
		return nil, fmt.Errorf("%w: FADT has no PM1a control register", ErrNotFound)
	}
	out := []Write{{Space: f.PM1aControl.Space, Address: f.PM1aControl.Address, Width: 16,
		Value: PM1SleepValue(s5.A), Keep: pm1Keep, Why: "PM1a S5"}}
	if f.PM1bControl.Present {
		out = append(out, Write{Space: f.PM1bControl.Space, Address: f.PM1bControl.Address, Width: 16,
			Value: PM1SleepValue(s5.B), Keep: pm1Keep, Why: "PM1b S5"})
	}
	return out, nil
}

// PM1SleepValue is the SLP_TYP|SLP_EN part of a PM1 control write entering
// the sleep state whose SLP_TYP is typ (ACPI 4.8.3.2.1).
func PM1SleepValue(typ uint8) uint32 {
	return uint32(typ&7)<<pm1SleepTypeShift | pm1SleepEnable
}

// PM1Merge returns the PM1 control value to write from the current one:
// every bit kept but SLP_TYP and SLP_EN. It allocates nothing.
func PM1Merge(current uint16, typ uint8) uint16 {
	return uint16(uint32(current)&pm1Keep | PM1SleepValue(typ))
}

// ResetWrites returns the reset methods to try in order: the FADT reset
// register when supported, then the PCI reset control port (PIIX4/ICH) and
// the keyboard controller on platforms with legacy devices.
func ResetWrites(f *FADT) []Write {
	var out []Write
	if f.ResetSupported {
		out = append(out, Write{Space: f.ResetRegister.Space, Address: f.ResetRegister.Address, Width: 8,
			Value: uint32(f.ResetValue), Why: "FADT reset register"})
	}
	if !f.HWReduced {
		out = append(out, Write{Space: AddressSpaceIO, Address: legacyResetPort, Width: 8, Value: legacyResetValue, Why: "PCI reset control"})
	}
	if f.Has8042 || f.LegacyDevices {
		out = append(out, Write{Space: AddressSpaceIO, Address: kbdControllerPort, Width: 8, Value: kbdControllerReset, Why: "keyboard controller reset"})
	}
	return out
}
