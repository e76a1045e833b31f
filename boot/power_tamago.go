//go:build tamago

package boot

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/usbarmory/tamago/amd64"

	"github.com/gohv/gohv/boot/acpi"
	"github.com/gohv/gohv/hv"
)

// errStillRunning is returned when every method was tried and the machine
// is still there.
var errStillRunning = errors.New("boot: machine did not power off or reset")

// PowerOff enters ACPI S5 (soft off) with the FADT's PM1 control registers
// and the DSDT's \_S5 values (docs/hyperv-protocol.md §10: Hyper-V Gen1 and Gen2 and QEMU
// all honour it). It returns only on failure.
func PowerOff() error {
	if !machDone.Load() {
		return errors.New("boot: power off before the board initialised")
	}
	if mach.fadt == nil {
		return fmt.Errorf("boot: no FADT: %v", mach.acpiErr)
	}
	if mach.s5Err != nil {
		return fmt.Errorf("boot: no \\_S5: %w", mach.s5Err)
	}
	writes, err := acpi.PowerOffWrites(mach.fadt, mach.s5)
	if err != nil {
		return err
	}
	// As ACPICA's AcpiEnterSleepState: write, give the platform time (the
	// host carries the power-off out and promises no deadline), write
	// again, and report failure only then.
	for range 2 {
		for _, w := range writes {
			if err := perform(w); err != nil {
				return err
			}
		}
		spinFor(10 * time.Second)
	}
	return errStillRunning
}

// spinFor waits about d by the TSC (the scheduler may no longer run on the
// way down); without a calibrated TSC it assumes 5 GHz, erring long.
func spinFor(d time.Duration) {
	hz := mach.tscHz
	if hz == 0 {
		hz = 5_000_000_000
	}
	spin(uint64(d.Seconds() * float64(hz)))
}

// Reboot resets the machine: the Hyper-V RESET MSR when the partition may
// write it, then the ACPI reset register, the PCI reset port and the
// keyboard controller (acpi.ResetWrites), then a triple fault. It returns
// only if all of them failed.
func Reboot() error {
	if machDone.Load() {
		if mach.hyperV && mach.hvInfo.Privileges.Has(hv.PrivResetMSR) {
			wrmsr(uint32(hv.MSRReset), hv.ResetValue)
			spin(10_000_000)
		}
		if mach.fadt != nil {
			for _, w := range acpi.ResetWrites(mach.fadt) {
				if perform(w) == nil {
					spin(10_000_000)
				}
			}
		}
	}
	amd64.Fault()
	return errStillRunning
}

// atExit is the hook AtExit installs (board glue: one per kernel).
var atExit atomic.Pointer[func(code int32)]

// AtExit installs fn to run when the program exits (main returned, os.Exit,
// an unrecovered panic), before the machine powers off: the kernel's
// shutdown path for programs that do not call kernel.Run. fn must bound its
// own waits. A later call replaces the hook.
func AtExit(fn func(code int32)) { atExit.Store(&fn) }

// exit is the runtime's Exit hook: the kernel's shutdown path, then power
// off; never a reset, which would boot into the same program again.
func exit(code int32) {
	if fn := atExit.Swap(nil); fn != nil {
		(*fn)(code)
	}
	print("gohv: exit code ", code, ", powering off\n")
	if err := PowerOff(); err != nil {
		print("gohv: power off: ", err.Error(), "; halting\n")
	}
	haltForever()
}

// perform does one register write.
func perform(w acpi.Write) error {
	switch w.Space {
	case acpi.AddressSpaceIO:
		if w.Address > 0xffff {
			return fmt.Errorf("boot: I/O port %#x out of range", w.Address)
		}
		port := uint16(w.Address)
		switch w.Width {
		case 8:
			outb(port, uint8(merge(w, func() uint32 { return uint32(inb(port)) })))
		case 16:
			outw(port, uint16(merge(w, func() uint32 { return uint32(inw(port)) })))
		case 32:
			outl(port, merge(w, func() uint32 { return inl(port) }))
		default:
			return fmt.Errorf("boot: %d-bit port write", w.Width)
		}
	case acpi.AddressSpaceMemory:
		n := int(w.Width / 8)
		if !earlyWindow.Contains(w.Address, n) || w.Address%uint64(n) != 0 {
			return fmt.Errorf("boot: MMIO write at %#x not mapped or misaligned", w.Address)
		}
		p := unsafe.Pointer(uintptr(w.Address))
		switch w.Width {
		case 8:
			*(*uint8)(p) = uint8(merge(w, func() uint32 { return uint32(*(*uint8)(p)) }))
		case 16:
			*(*uint16)(p) = uint16(merge(w, func() uint32 { return uint32(*(*uint16)(p)) }))
		case 32:
			atomic.StoreUint32((*uint32)(p), merge(w, func() uint32 { return atomic.LoadUint32((*uint32)(p)) }))
		default:
			return fmt.Errorf("boot: %d-bit MMIO write", w.Width)
		}
	default:
		return fmt.Errorf("boot: address space %d", w.Space)
	}
	return nil
}

// merge returns the value to write: w.Value, or for a read-modify-write
// (w.Keep != 0) the register's kept bits with w.Value's others.
func merge(w acpi.Write, read func() uint32) uint32 {
	if w.Keep == 0 {
		return w.Value
	}
	return w.Merge(read())
}

// spin waits about n TSC cycles; time.Sleep may not work on the way down.
func spin(n uint64) {
	for t := rdtsc(); rdtsc()-t < n; {
	}
}
