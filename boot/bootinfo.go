package boot

import (
	"encoding/binary"
	"unsafe"

	"github.com/gohv/gohv/boot/pvh"
)

// This file is the allocation-free reader of the PVH hand-off. It runs
// before the Go runtime exists (from cpuinit, on a borrowed stack): no heap,
// no panics, no package-level values that need dynamic initialisation. Its
// results are checked against pvh.Parse in the tests, which is the full,
// allocating decoder used once the runtime is up.

// bootError is a failure of the pre-runtime boot path. It is a small value
// rather than a wrapped error because nothing can be allocated when it is
// produced; Hwinit1 reports it.
type bootError uint8

// Pre-runtime failures.
const (
	bootOK bootError = iota
	errStartInfoAddr
	errStartInfoMagic
	errStartInfoVersion
	errMemmapAddr
	errMemmapTooBig
	errMemmapShort
	errMemmapWraps
	errMemmapTruncated
	errKernelNotInRAM
	errRAMTooSmall
	errX2APICLocked
	errX2APICID
	errNoRDRAND
	bootErrorCount
)

var bootErrorText = [bootErrorCount]string{
	bootOK:              "gohv boot: ok",
	errStartInfoAddr:    "gohv boot: start_info address unusable",
	errStartInfoMagic:   "gohv boot: start_info magic wrong",
	errStartInfoVersion: "gohv boot: start_info version 0 has no memory map",
	errMemmapAddr:       "gohv boot: memory map address unusable",
	errMemmapTooBig:     "gohv boot: memory map has too many entries",
	errMemmapShort:      "gohv boot: memory map shorter than its entry count",
	errMemmapWraps:      "gohv boot: memory map entry wraps the address space",
	errMemmapTruncated:  "gohv boot: memory map truncated to maxMemEntries",
	errKernelNotInRAM:   "gohv boot: kernel image is not inside usable RAM",
	errRAMTooSmall:      "gohv boot: too little RAM for the kernel, its heap and DMA",
	errX2APICLocked:     "gohv boot: firmware locked the local APIC in x2APIC mode; gohv drives it in xAPIC mode",
	errX2APICID:         "gohv boot: boot CPU's x2APIC ID is above 254, which xAPIC mode cannot address",
	errNoRDRAND:         "gohv boot: this CPU has no RDRAND, which tamago/amd64 requires (QEMU: -cpu max)",
}

// Error implements error without allocating.
func (e bootError) Error() string {
	if e < bootErrorCount {
		return bootErrorText[e]
	}
	return "gohv boot: unknown error"
}

// maxMemEntries is how many memory-map entries the board keeps. Real maps
// have a few dozen (UEFI maps merged by type); entries past this are
// dropped and reported (errMemmapTruncated), never written out of bounds.
const maxMemEntries = 128

// maxRawEntries bounds the entry count a start_info may claim, as pvh does.
const maxRawEntries = 1024

// memMap is a fixed-capacity copy of the memory map, sorted by address,
// zero-sized entries dropped. It lives in the board's static data.
type memMap struct {
	N int
	E [maxMemEntries]pvh.Region
	// Dropped counts non-empty entries that did not fit.
	Dropped int
}

// Entries returns the valid entries.
func (m *memMap) Entries() []pvh.Region { return m.E[:m.N] }

// Decode fills m from packed 24-byte entries (the layout ParseMemmap
// reads). Entries beyond maxMemEntries are counted in Dropped and reported
// as errMemmapTruncated after the rest was kept; a wrapping entry rejects
// the whole map, as pvh.ParseMemmap does.
func (m *memMap) Decode(raw []byte) bootError {
	m.N, m.Dropped = 0, 0
	if len(raw)%pvh.MemmapEntrySize != 0 {
		return errMemmapShort
	}
	le := binary.LittleEndian
	for off := 0; off+pvh.MemmapEntrySize <= len(raw); off += pvh.MemmapEntrySize {
		r := pvh.Region{
			Addr: le.Uint64(raw[off:]),
			Size: le.Uint64(raw[off+8:]),
			Type: le.Uint32(raw[off+16:]),
		}
		if r.Size == 0 {
			continue
		}
		if r.Addr+r.Size < r.Addr {
			m.N = 0
			return errMemmapWraps
		}
		if m.N == maxMemEntries {
			m.Dropped++
			continue
		}
		// Insertion sort: stable, in place, no allocation.
		i := m.N
		for i > 0 && m.E[i-1].Addr > r.Addr {
			m.E[i] = m.E[i-1]
			i--
		}
		m.E[i] = r
		m.N++
	}
	if m.Dropped > 0 {
		return errMemmapTruncated
	}
	return bootOK
}

// startInfoHeader is the fixed part of hvm_start_info the board keeps.
type startInfoHeader struct {
	Version       uint32
	Flags         uint32
	Modules       uint32
	CmdlinePaddr  uint64
	RSDP          uint64
	MemmapPaddr   uint64
	MemmapEntries uint32
}

// hvm_start_info field offsets (docs/boot.md, "One hand-off protocol: PVH"; Xen start_info.h).
const (
	siMagic         = 0
	siVersion       = 4
	siFlags         = 8
	siNrModules     = 12
	siCmdlinePaddr  = 24
	siRSDPPaddr     = 32
	siMemmapPaddr   = 40
	siMemmapEntries = 48
)

// decodeStartInfo validates and decodes the 56-byte hvm_start_info.
func decodeStartInfo(b []byte) (startInfoHeader, bootError) {
	if len(b) < pvh.StartInfoSize {
		return startInfoHeader{}, errStartInfoAddr
	}
	le := binary.LittleEndian
	if le.Uint32(b[siMagic:]) != pvh.StartInfoMagic {
		return startInfoHeader{}, errStartInfoMagic
	}
	h := startInfoHeader{
		Version:      le.Uint32(b[siVersion:]),
		Flags:        le.Uint32(b[siFlags:]),
		Modules:      le.Uint32(b[siNrModules:]),
		CmdlinePaddr: le.Uint64(b[siCmdlinePaddr:]),
		RSDP:         le.Uint64(b[siRSDPPaddr:]),
	}
	if h.Version < 1 {
		return h, errStartInfoVersion
	}
	h.MemmapPaddr = le.Uint64(b[siMemmapPaddr:])
	h.MemmapEntries = le.Uint32(b[siMemmapEntries:])
	if h.MemmapEntries > maxRawEntries {
		return h, errMemmapTooBig
	}
	if h.MemmapEntries > 0 && h.MemmapPaddr == 0 {
		return h, errMemmapAddr
	}
	return h, bootOK
}

// MemmapBytes is the size of the raw map h describes.
func (h startInfoHeader) MemmapBytes() int {
	return int(h.MemmapEntries) * pvh.MemmapEntrySize
}

// earlyWindow is what cpuinit mapped: [4 KiB, 4 GiB).
var earlyWindow = physWindow{Low: 4096, High: lowMapEnd}

// bootReadWindow is what early may read while it keeps page 0 mapped:
// loaders and firmware put boot data there (QEMU's PVH option ROM puts
// the E820 table at 0x5a8; the BIOS data area holds the EBDA pointer).
var bootReadWindow = physWindow{Low: 0, High: lowMapEnd}

// physWindow says which physical addresses the pre-runtime reader may
// touch: [Low, High), identity-mapped by cpuinit's first tables, excluding
// the unmapped zero page.
type physWindow struct{ Low, High uint64 }

// Contains reports whether [addr, addr+n) lies inside w.
func (w physWindow) Contains(addr uint64, n int) bool {
	end := addr + uint64(n)
	return n >= 0 && end >= addr && addr >= w.Low && end <= w.High
}

// formatUint writes v in decimal at the end of buf (20 bytes hold any
// uint64) and returns that part: strconv without allocating, for the
// pre-runtime console.
func formatUint(buf []byte, v uint64) string {
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return unsafe.String(&buf[i], len(buf)-i)
}
