package scsi

import (
	"bytes"
	"encoding/binary"
)

// Peripheral device types (SPC-4 §6.4.2) the drivers care about.
const (
	TypeDisk    = 0x00
	TypeCDROM   = 0x05
	TypeUnknown = 0x1F
)

// Offsets of standard INQUIRY data (SPC-4 §6.4.2).
const (
	offInqPeripheral = 0 // bits 7:5 qualifier, 4:0 device type
	offInqRMB        = 1 // bit 7 removable
	offInqVersion    = 2
	offInqFormat     = 3 // bits 3:0 response data format
	offInqAddLen     = 4 // additional length (n − 4)
	offInqFlags7     = 7 // bit 1 CMDQUE
	offInqVendor     = 8 // 8 bytes ASCII
	offInqProduct    = 16
	offInqRevision   = 32
	inqMinLen        = 5
	inqFullLen       = 36
)

// InquiryData is decoded standard INQUIRY data.
type InquiryData struct {
	// Qualifier 0: a device is connected to this LUN; 1: the target can
	// support one here but none is connected; 3: no device, ever.
	Qualifier  uint8
	DeviceType uint8
	Removable  bool
	Version    uint8
	Format     uint8
	CmdQue     bool
	// Vendor, Product, Revision are trimmed ASCII identification; empty
	// when the host returned fewer than 36 bytes.
	Vendor, Product, Revision string
}

// Present reports whether a device is connected at this LUN.
func (d InquiryData) Present() bool { return d.Qualifier == 0 && d.DeviceType != TypeUnknown }

// ParseInquiry decodes standard INQUIRY data. Only the first 5 bytes are
// required; identification strings need all 36.
func ParseInquiry(b []byte) (InquiryData, error) {
	if len(b) < inqMinLen {
		return InquiryData{}, malformed("INQUIRY", b, "shorter than 5 bytes")
	}
	n := min(len(b), inqMinLen+int(b[offInqAddLen]))
	d := InquiryData{
		Qualifier:  b[offInqPeripheral] >> 5,
		DeviceType: b[offInqPeripheral] & 0x1F,
		Removable:  b[offInqRMB]&0x80 != 0,
		Version:    b[offInqVersion],
		Format:     b[offInqFormat] & 0x0F,
	}
	if n > offInqFlags7 {
		d.CmdQue = b[offInqFlags7]&0x02 != 0
	}
	if n >= inqFullLen {
		d.Vendor = asciiField(b[offInqVendor:offInqProduct])
		d.Product = asciiField(b[offInqProduct:offInqRevision])
		d.Revision = asciiField(b[offInqRevision:inqFullLen])
	}
	return d, nil
}

// asciiField copies a space-padded ASCII field, trimming padding and NULs
// and replacing non-printable bytes with '?'.
func asciiField(b []byte) string {
	b = bytes.TrimRight(b, " \x00")
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c > 0x7E {
			c = '?'
		}
		out[i] = c
	}
	return string(out)
}

// Offsets of a VPD page header (SPC-4 §7.8.1).
const (
	offVPDPage   = 1
	offVPDLen    = 2 // u16 page length (n − 3)
	vpdHeaderLen = 4
)

// vpdBody validates a VPD page header for page and returns its body,
// clipped to the bytes received.
func vpdBody(b []byte, page uint8, what string) ([]byte, error) {
	if len(b) < vpdHeaderLen {
		return nil, malformed(what, b, "shorter than the VPD header")
	}
	if b[offVPDPage] != page {
		return nil, malformed(what, b, "wrong page code")
	}
	n := min(len(b), vpdHeaderLen+int(binary.BigEndian.Uint16(b[offVPDLen:])))
	return b[vpdHeaderLen:n], nil
}

// ParseVPDSupportedPages decodes the Supported VPD Pages page (0x00).
func ParseVPDSupportedPages(b []byte) ([]uint8, error) {
	body, err := vpdBody(b, VPDSupportedPages, "VPD 0x00")
	if err != nil {
		return nil, err
	}
	return append([]uint8(nil), body...), nil
}

// ParseVPDSerial decodes the Unit Serial Number page (0x80).
func ParseVPDSerial(b []byte) (string, error) {
	body, err := vpdBody(b, VPDUnitSerial, "VPD 0x80")
	if err != nil {
		return "", err
	}
	return asciiField(bytes.TrimLeft(body, " ")), nil
}

// Designator is one identification descriptor of the Device Identification
// page (SPC-4 §7.8.6).
type Designator struct {
	CodeSet     uint8 // 1 binary, 2 ASCII, 3 UTF-8
	Type        uint8 // 1 T10 vendor id, 2 EUI-64, 3 NAA, 8 SCSI name …
	Association uint8 // 0 logical unit, 1 target port, 2 target device
	ID          []byte
}

// Offsets inside a designation descriptor (SPC-4 §7.8.6.1).
const (
	offDesigCodeSet = 0 // bits 3:0
	offDesigType    = 1 // bits 5:4 association, 3:0 type
	offDesigLen     = 3
	desigHeaderLen  = 4
)

// ParseVPDDeviceID decodes the Device Identification page (0x83). A
// descriptor running past the page ends the list with an error.
func ParseVPDDeviceID(b []byte) ([]Designator, error) {
	body, err := vpdBody(b, VPDDeviceID, "VPD 0x83")
	if err != nil {
		return nil, err
	}
	var out []Designator
	for p := 0; p < len(body); {
		if p+desigHeaderLen > len(body) {
			return out, malformed("VPD 0x83", b, "truncated designator header")
		}
		l := int(body[p+offDesigLen])
		if p+desigHeaderLen+l > len(body) {
			return out, malformed("VPD 0x83", b, "designator runs past the page")
		}
		out = append(out, Designator{
			CodeSet:     body[p+offDesigCodeSet] & 0x0F,
			Type:        body[p+offDesigType] & 0x0F,
			Association: (body[p+offDesigType] >> 4) & 0x03,
			ID:          append([]byte(nil), body[p+desigHeaderLen:p+desigHeaderLen+l]...),
		})
		p += desigHeaderLen + l
	}
	return out, nil
}

// Offsets of the Block Limits page (SBC-3 §6.6.4), from the page start.
const (
	offBLMaxCompareWrite = 5
	offBLOptGranularity  = 6  // u16
	offBLMaxTransfer     = 8  // u32 blocks
	offBLOptTransfer     = 12 // u32 blocks
	offBLMaxUnmapLBAs    = 20 // u32
	offBLMaxUnmapDescs   = 24 // u32
	offBLUnmapGran       = 28 // u32
	offBLUnmapAlign      = 32 // u32: bit 31 UGAVALID
	offBLMaxWriteSame    = 36 // u64
	blMinLen             = 16 // through the optimal transfer length
	blUnmapLen           = 36 // through the unmap alignment
	blWriteSameLen       = 44
)

// BlockLimits is the decoded Block Limits page. Zero means "not reported".
type BlockLimits struct {
	OptimalGranularity    uint16
	MaxTransferBlocks     uint32
	OptimalTransferBlocks uint32
	MaxUnmapBlocks        uint32
	MaxUnmapDescriptors   uint32
	UnmapGranularity      uint32
	UnmapAlignment        uint32
	UnmapAlignmentValid   bool
	MaxWriteSameBlocks    uint64
}

// ParseVPDBlockLimits decodes the Block Limits page (0xB0). Fields past
// the returned page length read as zero.
func ParseVPDBlockLimits(b []byte) (BlockLimits, error) {
	body, err := vpdBody(b, VPDBlockLimits, "VPD 0xB0")
	if err != nil {
		return BlockLimits{}, err
	}
	p := b[:vpdHeaderLen+len(body)]
	if len(p) < blMinLen {
		return BlockLimits{}, malformed("VPD 0xB0", b, "shorter than 16 bytes")
	}
	l := BlockLimits{
		OptimalGranularity:    binary.BigEndian.Uint16(p[offBLOptGranularity:]),
		MaxTransferBlocks:     binary.BigEndian.Uint32(p[offBLMaxTransfer:]),
		OptimalTransferBlocks: binary.BigEndian.Uint32(p[offBLOptTransfer:]),
	}
	if len(p) >= blUnmapLen {
		l.MaxUnmapBlocks = binary.BigEndian.Uint32(p[offBLMaxUnmapLBAs:])
		l.MaxUnmapDescriptors = binary.BigEndian.Uint32(p[offBLMaxUnmapDescs:])
		l.UnmapGranularity = binary.BigEndian.Uint32(p[offBLUnmapGran:])
		a := binary.BigEndian.Uint32(p[offBLUnmapAlign:])
		l.UnmapAlignmentValid = a&0x80000000 != 0
		l.UnmapAlignment = a & 0x7FFFFFFF
	}
	if len(p) >= blWriteSameLen {
		l.MaxWriteSameBlocks = binary.BigEndian.Uint64(p[offBLMaxWriteSame:])
	}
	return l, nil
}

// Offsets of the Logical Block Provisioning page (SBC-3 §6.6.7).
const (
	offLBPThreshold = 4 // threshold exponent
	offLBPFlags     = 5 // bit 7 LBPU, 6 LBPWS, 5 LBPWS10, 2 LBPRZ, 1 ANC_SUP, 0 DP
	offLBPType      = 6 // bits 2:0 provisioning type
	lbpMinLen       = 8
)

// Provisioning is the decoded Logical Block Provisioning page.
type Provisioning struct {
	ThresholdExponent uint8
	// Unmap: UNMAP is supported. WriteSame16 / WriteSame10: WRITE SAME
	// with the UNMAP bit is supported.
	Unmap, WriteSame16, WriteSame10 bool
	// ReadZeros: unmapped blocks read back as zeros.
	ReadZeros bool
	// Type: 0 full, 1 resource, 2 thin provisioning.
	Type uint8
}

// ParseVPDProvisioning decodes the Logical Block Provisioning page (0xB2).
func ParseVPDProvisioning(b []byte) (Provisioning, error) {
	body, err := vpdBody(b, VPDProvisioning, "VPD 0xB2")
	if err != nil {
		return Provisioning{}, err
	}
	p := b[:vpdHeaderLen+len(body)]
	if len(p) < lbpMinLen {
		return Provisioning{}, malformed("VPD 0xB2", b, "shorter than 8 bytes")
	}
	f := p[offLBPFlags]
	return Provisioning{
		ThresholdExponent: p[offLBPThreshold],
		Unmap:             f&0x80 != 0,
		WriteSame16:       f&0x40 != 0,
		WriteSame10:       f&0x20 != 0,
		ReadZeros:         f&0x04 != 0,
		Type:              p[offLBPType] & 0x07,
	}, nil
}

// Offsets of REPORT LUNS parameter data (SPC-4 §6.33).
const (
	offRLListLen = 0 // u32 LUN list length in bytes
	offRLFirst   = 8
	lunEntrySize = 8
)

// LUN is an 8-byte SAM LUN as REPORT LUNS returns it.
type LUN [8]byte

// Number decodes the first level of peripheral (method 0b00) and flat
// (0b01) addressing; ok is false for other methods or multi-level LUNs.
func (l LUN) Number() (n uint16, ok bool) {
	for _, b := range l[2:] {
		if b != 0 {
			return 0, false
		}
	}
	switch l[0] >> 6 {
	case 0:
		if l[0] != 0 { // bus identifier: not addressable by a one-byte LUN
			return 0, false
		}
		return uint16(l[1]), true
	case 1:
		return uint16(l[0]&0x3F)<<8 | uint16(l[1]), true
	}
	return 0, false
}

// ParseReportLUNs decodes REPORT LUNS data, appending the LUNs present in
// b to dst. total is the number of LUNs the target has; when it exceeds the
// returned count, the allocation length was too small and the caller may
// retry with a bigger one.
func ParseReportLUNs(b []byte, dst []LUN) (luns []LUN, total int, err error) {
	if len(b) < offRLFirst {
		return dst, 0, malformed("REPORT LUNS", b, "shorter than the 8-byte header")
	}
	listLen := binary.BigEndian.Uint32(b[offRLListLen:])
	if listLen%lunEntrySize != 0 {
		return dst, 0, malformed("REPORT LUNS", b, "list length not a multiple of 8")
	}
	total = int(listLen / lunEntrySize)
	have := min(total, (len(b)-offRLFirst)/lunEntrySize)
	for i := range have {
		var l LUN
		copy(l[:], b[offRLFirst+i*lunEntrySize:])
		dst = append(dst, l)
	}
	return dst, total, nil
}

// Capacity is decoded READ CAPACITY data.
type Capacity struct {
	// LastLBA is the address of the last block; Blocks() = LastLBA+1.
	LastLBA   uint64
	BlockSize uint32
	// Fields of READ CAPACITY(16) only.
	ProtectionEnabled bool
	PhysicalExponent  uint8 // logical blocks per physical block = 1 << exp
	ThinProvisioned   bool  // LBPME
	ReadZeros         bool  // LBPRZ
	LowestAlignedLBA  uint16
}

// Blocks returns the number of logical blocks.
func (c Capacity) Blocks() uint64 { return c.LastLBA + 1 }

// Offsets of READ CAPACITY data (SBC-3 §5.15, §5.16).
const (
	offRC10LBA      = 0 // u32
	offRC10BlockLen = 4 // u32
	rc10Len         = 8
	offRC16LBA      = 0 // u64
	offRC16BlockLen = 8 // u32
	offRC16Prot     = 12
	offRC16Exp      = 13 // bits 3:0
	offRC16LBP      = 14 // bit 7 LBPME, bit 6 LBPRZ, bits 5:0 lowest aligned LBA high
	offRC16Align    = 15
	rc16MinLen      = 12
	rc16FullLen     = 16
)

// checkBlockSize rejects block sizes a driver cannot use: zero, not a power
// of two, below 512 or above 64 KiB.
func checkBlockSize(what string, b []byte, n uint32) error {
	if n < 512 || n > 65536 || n&(n-1) != 0 {
		return malformed(what, b, "unusable block size")
	}
	return nil
}

// ParseReadCapacity10 decodes READ CAPACITY(10) data. LastLBA 0xFFFFFFFF
// means the medium is larger: use READ CAPACITY(16).
func ParseReadCapacity10(b []byte) (Capacity, error) {
	if len(b) < rc10Len {
		return Capacity{}, malformed("READ CAPACITY(10)", b, "shorter than 8 bytes")
	}
	c := Capacity{
		LastLBA:   uint64(binary.BigEndian.Uint32(b[offRC10LBA:])),
		BlockSize: binary.BigEndian.Uint32(b[offRC10BlockLen:]),
	}
	return c, checkBlockSize("READ CAPACITY(10)", b, c.BlockSize)
}

// ParseReadCapacity16 decodes READ CAPACITY(16) data (at least 12 bytes).
func ParseReadCapacity16(b []byte) (Capacity, error) {
	if len(b) < rc16MinLen {
		return Capacity{}, malformed("READ CAPACITY(16)", b, "shorter than 12 bytes")
	}
	c := Capacity{
		LastLBA:   binary.BigEndian.Uint64(b[offRC16LBA:]),
		BlockSize: binary.BigEndian.Uint32(b[offRC16BlockLen:]),
	}
	if err := checkBlockSize("READ CAPACITY(16)", b, c.BlockSize); err != nil {
		return Capacity{}, err
	}
	if c.LastLBA == ^uint64(0) {
		return Capacity{}, malformed("READ CAPACITY(16)", b, "last LBA overflows the block count")
	}
	if len(b) >= rc16FullLen {
		c.ProtectionEnabled = b[offRC16Prot]&0x01 != 0
		c.PhysicalExponent = b[offRC16Exp] & 0x0F
		c.ThinProvisioned = b[offRC16LBP]&0x80 != 0
		c.ReadZeros = b[offRC16LBP]&0x40 != 0
		c.LowestAlignedLBA = uint16(b[offRC16LBP]&0x3F)<<8 | uint16(b[offRC16Align])
	}
	return c, nil
}

// ModeSenseData is what the drivers need from MODE SENSE: the
// write-protect bit of the header and the caching page.
type ModeSenseData struct {
	WriteProtect bool // device-specific parameter bit 7 (SBC-3 §6.5.1)
	DPOFUA       bool // bit 4: DPO and FUA supported
	// HasCaching is true when the caching page (0x08) was found; then
	// WriteCache is its WCE bit and ReadCacheDisabled its RCD bit.
	HasCaching        bool
	WriteCache        bool
	ReadCacheDisabled bool
}

// Offsets of the mode parameter headers (SPC-4 §7.5.5).
const (
	offMS6DataLen   = 0 // u8 mode data length (n − 1)
	offMS6DevSpec   = 2
	offMS6BDLen     = 3
	ms6HeaderLen    = 4
	offMS10DataLen  = 0 // u16 (n − 2)
	offMS10DevSpec  = 3
	offMS10BDLen    = 6 // u16
	ms10HeaderLen   = 8
	devSpecWP       = 0x80
	devSpecDPOFUA   = 0x10
	offCachingFlags = 2 // within the caching page: bit 2 WCE, bit 0 RCD
	cachingMinLen   = 3
)

// ParseModeSense6 decodes MODE SENSE(6) data.
func ParseModeSense6(b []byte) (ModeSenseData, error) {
	if len(b) < ms6HeaderLen {
		return ModeSenseData{}, malformed("MODE SENSE(6)", b, "shorter than the header")
	}
	n := min(len(b), 1+int(b[offMS6DataLen]))
	return modePages(b, n, b[offMS6DevSpec], ms6HeaderLen+int(b[offMS6BDLen]))
}

// ParseModeSense10 decodes MODE SENSE(10) data.
func ParseModeSense10(b []byte) (ModeSenseData, error) {
	if len(b) < ms10HeaderLen {
		return ModeSenseData{}, malformed("MODE SENSE(10)", b, "shorter than the header")
	}
	n := min(len(b), 2+int(binary.BigEndian.Uint16(b[offMS10DataLen:])))
	return modePages(b, n, b[offMS10DevSpec], ms10HeaderLen+int(binary.BigEndian.Uint16(b[offMS10BDLen:])))
}

// modePages walks the mode pages in b[first:n] looking for the caching
// page. A page running past the data ends the walk (hosts truncate to the
// allocation length), and block descriptors reaching past the data leave
// the pages unknown.
func modePages(b []byte, n int, devSpec byte, first int) (ModeSenseData, error) {
	d := ModeSenseData{WriteProtect: devSpec&devSpecWP != 0, DPOFUA: devSpec&devSpecDPOFUA != 0}
	for p := first; p+2 <= n; {
		code := b[p] & 0x3F
		spf := b[p]&0x40 != 0
		var hl, l int
		if spf { // sub-page format: code, subpage, u16 length
			if p+4 > n {
				break
			}
			hl, l = 4, int(binary.BigEndian.Uint16(b[p+2:]))
		} else {
			hl, l = 2, int(b[p+1])
		}
		body := b[p+hl : min(n, p+hl+l)]
		if code == ModePageCaching && !spf && len(body)+2 >= cachingMinLen {
			d.HasCaching = true
			d.WriteCache = body[offCachingFlags-2]&0x04 != 0
			d.ReadCacheDisabled = body[offCachingFlags-2]&0x01 != 0
		}
		p += hl + l
	}
	return d, nil
}
