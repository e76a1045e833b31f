package acpi

import "encoding/binary"

// This file is the allocation-free path to S5 for code that runs before the
// Go runtime exists (the board's pre-runtime boot path): when the memory
// map is unusable there is no heap, yet the machine must still power off
// rather than hang. It repeats, on zero-copy views of physical memory, the
// few steps of Load, ParseFADT and FindS5 that power-off needs, and it
// reports failure as a bool: building an error would allocate.

// View returns the n bytes of physical memory at addr, without copying, or
// nil when they cannot be read.
type View func(addr uint64, n int) []byte

// S5Ports are the I/O ports and sleep types that enter S5 through PM1
// control (ACPI 4.8.3.2.1). PM1b is 0 when the platform has none.
type S5Ports struct {
	PM1a, PM1b uint16
	S5         SleepType
}

// BIOS areas searched for the RSDP (ACPI 5.2.5.1).
const (
	ebdaPointer  = 0x40E
	rsdpAreaLow  = 0xE0000
	rsdpAreaHigh = 0x100000
)

// FindS5Ports finds the PM1 control ports (I/O space only: that is where
// Hyper-V and QEMU put them) and \_S5 from the RSDP at rsdp, or from a scan
// of the BIOS areas when rsdp is 0. It allocates nothing.
func FindS5Ports(view View, rsdp uint64) (S5Ports, bool) {
	if rsdp == 0 {
		if rsdp = scanRSDP(view); rsdp == 0 {
			return S5Ports{}, false
		}
	}
	r := view(rsdp, rsdpV1Length)
	if r == nil || string(r[:8]) != rsdpSignature || checksum(r) != 0 {
		return S5Ports{}, false
	}
	root, entry := uint64(binary.LittleEndian.Uint32(r[rsdpOffRSDT:])), 4
	if r[rsdpOffRevision] >= 2 {
		if x := view(rsdp, rsdpV2Length); x != nil && checksum(x) == 0 {
			if a := binary.LittleEndian.Uint64(x[rsdpOffXSDT:]); a != 0 {
				root, entry = a, 8
			}
		}
	}
	body := viewTable(view, root)
	if body == nil {
		return S5Ports{}, false
	}
	for i := HeaderSize; i+entry <= len(body); i += entry {
		var a uint64
		if entry == 4 {
			a = uint64(binary.LittleEndian.Uint32(body[i:]))
		} else {
			a = binary.LittleEndian.Uint64(body[i:])
		}
		if f := viewTable(view, a); f != nil && string(f[:4]) == "FACP" {
			return s5FromFADT(view, f)
		}
	}
	return S5Ports{}, false
}

func s5FromFADT(view View, f []byte) (S5Ports, bool) {
	var p S5Ports
	p.PM1a = pm1Port(f, fadtOffPM1aCnt, fadtOffXPM1aCnt)
	p.PM1b = pm1Port(f, fadtOffPM1bCnt, fadtOffXPM1bCnt)
	if p.PM1a == 0 {
		return S5Ports{}, false
	}
	dsdt := uint64(0)
	if len(f) >= fadtOffXDSDT+8 {
		dsdt = binary.LittleEndian.Uint64(f[fadtOffXDSDT:])
	}
	if dsdt == 0 && len(f) >= fadtOffDSDT+4 {
		dsdt = uint64(binary.LittleEndian.Uint32(f[fadtOffDSDT:]))
	}
	d := viewTable(view, dsdt)
	if d == nil || string(d[:4]) != "DSDT" {
		return S5Ports{}, false
	}
	st, ok := ScanS5(d[HeaderSize:])
	p.S5 = st
	return p, ok
}

// pm1Port reads a PM1 control block: the extended GAS when it names an I/O
// port, else the legacy 32-bit block address.
func pm1Port(f []byte, legacy, extended int) uint16 {
	if len(f) >= extended+gasSize {
		g := parseGAS(f[extended:])
		if g.Present && g.Space == AddressSpaceIO && g.Address <= 0xFFFF {
			return uint16(g.Address)
		}
	}
	if len(f) >= legacy+4 {
		if a := binary.LittleEndian.Uint32(f[legacy:]); a != 0 && a <= 0xFFFF {
			return uint16(a)
		}
	}
	return 0
}

// viewTable returns the whole table at addr once its length and checksum
// check out.
func viewTable(view View, addr uint64) []byte {
	if addr == 0 {
		return nil
	}
	h := view(addr, HeaderSize)
	if h == nil {
		return nil
	}
	n := binary.LittleEndian.Uint32(h[hdrOffLength:])
	if n < HeaderSize || n > maxTableLength {
		return nil
	}
	t := view(addr, int(n))
	if t == nil || checksum(t) != 0 {
		return nil
	}
	return t
}

func scanRSDP(view View) uint64 {
	from, to := uint64(rsdpAreaLow), uint64(rsdpAreaHigh)
	if p := view(ebdaPointer, 2); p != nil {
		if ebda := uint64(binary.LittleEndian.Uint16(p)) << 4; ebda >= 0x80000 && ebda < 0xA0000 {
			if a := scanArea(view, ebda, ebda+1024); a != 0 {
				return a
			}
		}
	}
	return scanArea(view, from, to)
}

func scanArea(view View, from, to uint64) uint64 {
	for a := from; a+rsdpV1Length <= to; a += 16 {
		if b := view(a, rsdpV1Length); b != nil && string(b[:8]) == rsdpSignature && checksum(b) == 0 {
			return a
		}
	}
	return 0
}
