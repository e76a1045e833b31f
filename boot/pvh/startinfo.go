package pvh

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// hvm_start_info layout (Xen public/arch-x86/hvm/start_info.h; docs/boot.md,
// "One hand-off protocol: PVH").
const (
	StartInfoMagic     = 0x336ec578
	StartInfoSize      = 56
	offMagic           = 0
	offVersion         = 4
	offFlags           = 8
	offNrModules       = 12
	offModlistPaddr    = 16
	offCmdlinePaddr    = 24
	offRSDPPaddr       = 32
	offMemmapPaddr     = 40
	offMemmapEntries   = 48
	MemmapEntrySize    = 24 // addr u64, size u64, type u32, reserved u32
	maxMemmapEntries   = 1024
	maxCmdlineLength   = 4096
	startInfoVersionV1 = 1 // adds the memory map fields
)

// E820 memory types.
const (
	TypeRAM         = 1
	TypeReserved    = 2
	TypeACPIReclaim = 3
	TypeACPINVS     = 4
	TypeUnusable    = 5
)

// ErrBadStartInfo wraps every validation failure.
var ErrBadStartInfo = errors.New("pvh: bad start info")

// PhysReader reads physical memory.
type PhysReader interface {
	ReadPhys(addr uint64, dst []byte) error
}

// Region is one memory-map entry.
type Region struct {
	Addr, Size uint64
	Type       uint32
}

// End is the first address past r.
func (r Region) End() uint64 { return r.Addr + r.Size }

// StartInfo is the decoded hand-off.
type StartInfo struct {
	Version uint32
	Flags   uint32
	RSDP    uint64 // 0: scan the BIOS area
	Cmdline string
	Memory  []Region // sorted by address, zero-sized entries dropped
	Modules uint32
}

// Parse reads and validates the hvm_start_info at addr.
func Parse(mem PhysReader, addr uint64) (*StartInfo, error) {
	var b [StartInfoSize]byte
	if err := mem.ReadPhys(addr, b[:]); err != nil {
		return nil, fmt.Errorf("pvh: reading start info at %#x: %w", addr, err)
	}
	le := binary.LittleEndian
	if m := le.Uint32(b[offMagic:]); m != StartInfoMagic {
		return nil, fmt.Errorf("%w: magic %#x at %#x, want %#x", ErrBadStartInfo, m, addr, StartInfoMagic)
	}
	si := &StartInfo{
		Version: le.Uint32(b[offVersion:]),
		Flags:   le.Uint32(b[offFlags:]),
		Modules: le.Uint32(b[offNrModules:]),
		RSDP:    le.Uint64(b[offRSDPPaddr:]),
	}
	if p := le.Uint64(b[offCmdlinePaddr:]); p != 0 {
		s, err := readCString(mem, p)
		if err != nil {
			return nil, err
		}
		si.Cmdline = s
	}
	if si.Version < startInfoVersionV1 {
		return si, nil // no memory map: the caller falls back (e.g. to CMOS)
	}
	n := le.Uint32(b[offMemmapEntries:])
	p := le.Uint64(b[offMemmapPaddr:])
	if n > maxMemmapEntries {
		return nil, fmt.Errorf("%w: %d memory map entries (max %d)", ErrBadStartInfo, n, maxMemmapEntries)
	}
	if n > 0 && p == 0 {
		return nil, fmt.Errorf("%w: %d memory map entries at address 0", ErrBadStartInfo, n)
	}
	raw := make([]byte, int(n)*MemmapEntrySize)
	if err := mem.ReadPhys(p, raw); err != nil {
		return nil, fmt.Errorf("pvh: reading memory map at %#x: %w", p, err)
	}
	regions, err := ParseMemmap(raw)
	if err != nil {
		return nil, err
	}
	si.Memory = regions
	return si, nil
}

// ParseMemmap decodes packed 24-byte entries, drops empty ones, rejects
// entries that wrap around the address space and returns them sorted.
func ParseMemmap(raw []byte) ([]Region, error) {
	if len(raw)%MemmapEntrySize != 0 {
		return nil, fmt.Errorf("%w: memory map of %d bytes is not a whole number of entries", ErrBadStartInfo, len(raw))
	}
	out := make([]Region, 0, len(raw)/MemmapEntrySize)
	for i := 0; i < len(raw); i += MemmapEntrySize {
		r := Region{
			Addr: binary.LittleEndian.Uint64(raw[i:]),
			Size: binary.LittleEndian.Uint64(raw[i+8:]),
			Type: binary.LittleEndian.Uint32(raw[i+16:]),
		}
		if r.Size == 0 {
			continue
		}
		if r.Addr+r.Size < r.Addr {
			return nil, fmt.Errorf("%w: entry %d [%#x +%#x] wraps", ErrBadStartInfo, i/MemmapEntrySize, r.Addr, r.Size)
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out, nil
}

func readCString(mem PhysReader, p uint64) (string, error) {
	// Byte by byte: the string may end right at the end of mapped memory.
	var c [1]byte
	var s []byte
	for len(s) < maxCmdlineLength {
		if err := mem.ReadPhys(p+uint64(len(s)), c[:]); err != nil {
			return "", fmt.Errorf("pvh: reading command line: %w", err)
		}
		if c[0] == 0 {
			return string(s), nil
		}
		s = append(s, c[0])
	}
	return "", fmt.Errorf("%w: command line longer than %d bytes", ErrBadStartInfo, maxCmdlineLength)
}
