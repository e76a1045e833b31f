package acpi

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Layout facts from the ACPI specification (6.x), section 5.2.

// RSDP ("Root System Description Pointer", ACPI 5.2.5.3).
const (
	rsdpSignature   = "RSD PTR "
	rsdpV1Length    = 20 // checksum covers bytes 0..19
	rsdpV2Length    = 36 // extended checksum covers all 36 bytes
	rsdpOffRevision = 15
	rsdpOffRSDT     = 16
	rsdpOffLength   = 20
	rsdpOffXSDT     = 24
)

// System description table header (ACPI 5.2.6), 36 bytes.
const (
	HeaderSize      = 36
	hdrOffLength    = 4
	hdrOffRevision  = 8
	hdrOffOEMID     = 10
	hdrOffOEMTable  = 16
	maxTableLength  = 4 << 20 // a DSDT of several MiB would be absurd
	maxRootEntries  = 256
	biosAreaStart   = 0xE0000
	biosAreaEnd     = 0x100000
	ebdaPointerAddr = 0x40E
)

// Errors callers branch on.
var (
	ErrNoRSDP    = errors.New("acpi: no RSDP found")
	ErrChecksum  = errors.New("acpi: checksum mismatch")
	ErrMalformed = errors.New("acpi: malformed table")
	ErrNotFound  = errors.New("acpi: table not found")
)

// PhysReader reads physical memory. On bare metal it copies from the
// identity map; in tests it serves captured tables.
type PhysReader interface {
	ReadPhys(addr uint64, dst []byte) error
}

// Header is a system description table header.
type Header struct {
	Signature string
	Length    uint32
	Revision  uint8
	OEMID     string
	OEMTable  string
}

// RSDP is the root pointer.
type RSDP struct {
	Revision uint8
	OEMID    string
	RSDT     uint32
	XSDT     uint64 // 0 for ACPI 1.0
}

func checksum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return s
}

// ParseRSDP validates and decodes an RSDP (20 bytes for revision 0, 36 for
// revision 2 and later).
func ParseRSDP(b []byte) (RSDP, error) {
	if len(b) < rsdpV1Length || string(b[:8]) != rsdpSignature {
		return RSDP{}, fmt.Errorf("%w: RSDP signature", ErrMalformed)
	}
	if checksum(b[:rsdpV1Length]) != 0 {
		return RSDP{}, fmt.Errorf("%w: RSDP", ErrChecksum)
	}
	r := RSDP{
		Revision: b[rsdpOffRevision],
		OEMID:    trimID(b[9:15]),
		RSDT:     binary.LittleEndian.Uint32(b[rsdpOffRSDT:]),
	}
	if r.Revision >= 2 {
		if len(b) < rsdpV2Length {
			return RSDP{}, fmt.Errorf("%w: RSDP revision %d is %d bytes, want %d", ErrMalformed, r.Revision, len(b), rsdpV2Length)
		}
		if n := binary.LittleEndian.Uint32(b[rsdpOffLength:]); n < rsdpV2Length {
			return RSDP{}, fmt.Errorf("%w: RSDP length %d", ErrMalformed, n)
		}
		if checksum(b[:rsdpV2Length]) != 0 {
			return RSDP{}, fmt.Errorf("%w: RSDP extended", ErrChecksum)
		}
		r.XSDT = binary.LittleEndian.Uint64(b[rsdpOffXSDT:])
	}
	return r, nil
}

// FindRSDP scans the legacy BIOS areas (the first KiB of the EBDA, then
// 0xE0000–0xFFFFF) on 16-byte boundaries, as ACPI 5.2.5.1 prescribes for
// BIOS systems. UEFI systems pass the RSDP address from the configuration
// table instead (hvm_start_info.rsdp_paddr).
func FindRSDP(mem PhysReader) (uint64, error) {
	var ptr [2]byte
	var areas [][2]uint64
	if mem.ReadPhys(ebdaPointerAddr, ptr[:]) == nil {
		if ebda := uint64(binary.LittleEndian.Uint16(ptr[:])) << 4; ebda >= 0x80000 && ebda < 0xA0000 {
			areas = append(areas, [2]uint64{ebda, ebda + 1024})
		}
	}
	areas = append(areas, [2]uint64{biosAreaStart, biosAreaEnd})
	var buf [rsdpV2Length]byte
	for _, a := range areas {
		for p := a[0]; p+rsdpV1Length <= a[1]; p += 16 {
			if err := mem.ReadPhys(p, buf[:8]); err != nil {
				break
			}
			if string(buf[:8]) != rsdpSignature {
				continue
			}
			// Read the ACPI 1.0 part first: a revision-0 RSDP is only 20
			// bytes long and may sit at the very end of an area.
			n := uint64(rsdpV1Length)
			if err := mem.ReadPhys(p, buf[:n]); err != nil {
				continue
			}
			if buf[rsdpOffRevision] >= 2 && p+rsdpV2Length <= a[1] {
				n = rsdpV2Length
				if err := mem.ReadPhys(p, buf[:n]); err != nil {
					continue
				}
			}
			if _, err := ParseRSDP(buf[:n]); err == nil {
				return p, nil
			}
		}
	}
	return 0, ErrNoRSDP
}

// ParseHeader decodes a table header and checks that b holds the whole
// table and that its checksum is right. The returned table is b[:Length].
func ParseHeader(b []byte) (Header, []byte, error) {
	if len(b) < HeaderSize {
		return Header{}, nil, fmt.Errorf("%w: %d bytes is shorter than a table header", ErrMalformed, len(b))
	}
	h := Header{
		Signature: string(b[:4]),
		Length:    binary.LittleEndian.Uint32(b[hdrOffLength:]),
		Revision:  b[hdrOffRevision],
		OEMID:     trimID(b[hdrOffOEMID : hdrOffOEMID+6]),
		OEMTable:  trimID(b[hdrOffOEMTable : hdrOffOEMTable+8]),
	}
	if h.Length < HeaderSize || uint64(h.Length) > uint64(len(b)) {
		return Header{}, nil, fmt.Errorf("%w: %s length %d with %d bytes available", ErrMalformed, printable(h.Signature), h.Length, len(b))
	}
	t := b[:h.Length]
	if checksum(t) != 0 {
		return Header{}, nil, fmt.Errorf("%w: %s", ErrChecksum, printable(h.Signature))
	}
	return h, t, nil
}

// ReadTable reads and validates the table at addr.
func ReadTable(mem PhysReader, addr uint64) (Header, []byte, error) {
	var hb [HeaderSize]byte
	if err := mem.ReadPhys(addr, hb[:]); err != nil {
		return Header{}, nil, fmt.Errorf("acpi: reading table header at %#x: %w", addr, err)
	}
	n := binary.LittleEndian.Uint32(hb[hdrOffLength:])
	if n < HeaderSize || n > maxTableLength {
		return Header{}, nil, fmt.Errorf("%w: table %s at %#x claims length %d", ErrMalformed, printable(string(hb[:4])), addr, n)
	}
	b := make([]byte, n)
	if err := mem.ReadPhys(addr, b); err != nil {
		return Header{}, nil, fmt.Errorf("acpi: reading table at %#x: %w", addr, err)
	}
	return ParseHeader(b)
}

// ParseRoot decodes the entries of an RSDT (4-byte pointers) or XSDT
// (8-byte pointers).
func ParseRoot(table []byte) ([]uint64, error) {
	h, t, err := ParseHeader(table)
	if err != nil {
		return nil, err
	}
	size := 0
	switch h.Signature {
	case "RSDT":
		size = 4
	case "XSDT":
		size = 8
	default:
		return nil, fmt.Errorf("%w: root table signature %q", ErrMalformed, printable(h.Signature))
	}
	body := t[HeaderSize:]
	if len(body)%size != 0 || len(body)/size > maxRootEntries {
		return nil, fmt.Errorf("%w: %s body of %d bytes", ErrMalformed, h.Signature, len(body))
	}
	out := make([]uint64, 0, len(body)/size)
	for i := 0; i < len(body); i += size {
		if size == 4 {
			out = append(out, uint64(binary.LittleEndian.Uint32(body[i:])))
		} else {
			out = append(out, binary.LittleEndian.Uint64(body[i:]))
		}
	}
	return out, nil
}

// Tables is the set of tables found from an RSDP, keyed by signature (the
// first of each signature wins, as operating systems do).
type Tables struct {
	RSDP   RSDP
	tables map[string][]byte
}

// Load walks the XSDT (or the RSDT for ACPI 1.0) from the RSDP at
// rsdpAddr, validating each table, and also loads the DSDT named by the
// FADT. Tables that fail validation are skipped and reported in the
// returned error list; only a bad RSDP or root table is fatal.
func Load(mem PhysReader, rsdpAddr uint64) (*Tables, []error, error) {
	var rb [rsdpV2Length]byte
	if err := mem.ReadPhys(rsdpAddr, rb[:rsdpV1Length]); err != nil {
		return nil, nil, fmt.Errorf("acpi: reading RSDP at %#x: %w", rsdpAddr, err)
	}
	n := rsdpV1Length
	if rb[rsdpOffRevision] >= 2 {
		n = rsdpV2Length
		if err := mem.ReadPhys(rsdpAddr, rb[:n]); err != nil {
			return nil, nil, fmt.Errorf("acpi: reading RSDP at %#x: %w", rsdpAddr, err)
		}
	}
	rsdp, err := ParseRSDP(rb[:n])
	if err != nil {
		return nil, nil, err
	}
	rootAddr := uint64(rsdp.RSDT)
	if rsdp.XSDT != 0 {
		rootAddr = rsdp.XSDT
	}
	_, root, err := ReadTable(mem, rootAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("acpi: root table: %w", err)
	}
	entries, err := ParseRoot(root)
	if err != nil {
		return nil, nil, err
	}
	t := &Tables{RSDP: rsdp, tables: map[string][]byte{}}
	var skipped []error
	for _, a := range entries {
		h, b, err := ReadTable(mem, a)
		if err != nil {
			skipped = append(skipped, err)
			continue
		}
		if _, dup := t.tables[h.Signature]; !dup {
			t.tables[h.Signature] = b
		}
	}
	if facp, ok := t.tables["FACP"]; ok {
		if f, err := ParseFADT(facp); err != nil {
			skipped = append(skipped, err)
		} else if f.DSDT != 0 {
			if _, b, err := ReadTable(mem, f.DSDT); err != nil {
				skipped = append(skipped, fmt.Errorf("acpi: DSDT: %w", err))
			} else {
				t.tables["DSDT"] = b
			}
		}
	}
	return t, skipped, nil
}

// Table returns the validated bytes of the table with signature sig.
func (t *Tables) Table(sig string) ([]byte, bool) {
	b, ok := t.tables[sig]
	return b, ok
}

// Signatures lists the loaded tables.
func (t *Tables) Signatures() []string {
	out := make([]string, 0, len(t.tables))
	for s := range t.tables {
		out = append(out, s)
	}
	return out
}

func trimID(b []byte) string {
	end := len(b)
	for end > 0 && (b[end-1] == ' ' || b[end-1] == 0) {
		end--
	}
	return printable(string(b[:end]))
}

func printable(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return fmt.Sprintf("%x", s)
		}
	}
	return s
}
