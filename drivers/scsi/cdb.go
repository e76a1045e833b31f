package scsi

import "encoding/binary"

// Operation codes (SPC-4, SBC-3).
const (
	OpTestUnitReady      = 0x00
	OpRequestSense       = 0x03
	OpInquiry            = 0x12
	OpModeSense6         = 0x1A
	OpReadCapacity10     = 0x25
	OpRead10             = 0x28
	OpWrite10            = 0x2A
	OpSynchronizeCache   = 0x35
	OpWriteSame10        = 0x41
	OpUnmap              = 0x42
	OpModeSense10        = 0x5A
	OpRead16             = 0x88
	OpWrite16            = 0x8A
	OpSynchronizeCache16 = 0x91
	OpWriteSame16        = 0x93
	OpServiceActionIn16  = 0x9E
	OpReportLUNs         = 0xA0
)

// SAReadCapacity16 is the SERVICE ACTION IN(16) service action of READ
// CAPACITY(16) (SBC-3).
const SAReadCapacity16 = 0x10

// VPD page codes (SPC-4 §7.8, SBC-3 §6.6).
const (
	VPDSupportedPages = 0x00
	VPDUnitSerial     = 0x80
	VPDDeviceID       = 0x83
	VPDBlockLimits    = 0xB0
	VPDProvisioning   = 0xB2
)

// Mode page codes (SPC-4, SBC-3).
const (
	ModePageCaching = 0x08
	ModePageAll     = 0x3F
)

// MaxCDBLen is the longest CDB built here (and the longest StorVSC carries).
const MaxCDBLen = 16

// CDB is a command descriptor block: up to 16 bytes and their length. It is
// a value; building one does not allocate.
type CDB struct {
	b [MaxCDBLen]byte
	n uint8
}

// Bytes returns the CDB's bytes. The slice aliases c.
func (c *CDB) Bytes() []byte { return c.b[:c.n] }

// Len is the CDB length in bytes.
func (c CDB) Len() int { return int(c.n) }

// Op is the operation code (byte 0).
func (c CDB) Op() byte { return c.b[0] }

func cdb(n int, op byte) CDB {
	var c CDB
	c.n = uint8(n)
	c.b[0] = op
	return c
}

// TestUnitReady builds TEST UNIT READY (6 bytes, SPC-4 §6.47).
func TestUnitReady() CDB { return cdb(6, OpTestUnitReady) }

// RequestSense builds REQUEST SENSE (6 bytes, SPC-4 §6.39) for alloc
// bytes of fixed-format sense.
func RequestSense(alloc uint8) CDB {
	c := cdb(6, OpRequestSense)
	c.b[4] = alloc
	return c
}

// Inquiry builds a standard INQUIRY (6 bytes, SPC-4 §6.4): EVPD 0, page 0,
// allocation length at bytes 3–4.
func Inquiry(alloc uint16) CDB {
	c := cdb(6, OpInquiry)
	binary.BigEndian.PutUint16(c.b[3:], alloc)
	return c
}

// InquiryVPD builds INQUIRY for a vital product data page: EVPD (byte 1
// bit 0) set, page code at byte 2.
func InquiryVPD(page uint8, alloc uint16) CDB {
	c := Inquiry(alloc)
	c.b[1] = 0x01
	c.b[2] = page
	return c
}

// ReportLUNs builds REPORT LUNS (12 bytes, SPC-4 §6.33), select report 0
// (all logical units), allocation length at bytes 6–9.
func ReportLUNs(alloc uint32) CDB {
	c := cdb(12, OpReportLUNs)
	binary.BigEndian.PutUint32(c.b[6:], alloc)
	return c
}

// ReadCapacity10 builds READ CAPACITY(10) (10 bytes, SBC-3 §5.15).
func ReadCapacity10() CDB { return cdb(10, OpReadCapacity10) }

// ReadCapacity16 builds READ CAPACITY(16): SERVICE ACTION IN(16) with
// service action 0x10 and allocation length at bytes 10–13 (SBC-3 §5.16).
func ReadCapacity16(alloc uint32) CDB {
	c := cdb(16, OpServiceActionIn16)
	c.b[1] = SAReadCapacity16
	binary.BigEndian.PutUint32(c.b[10:], alloc)
	return c
}

// fuaBit is the FUA bit (byte 1 bit 3) of READ/WRITE(10/16).
const fuaBit = 0x08

// Read10 builds READ(10): LBA at bytes 2–5, transfer length (blocks) at
// bytes 7–8 (SBC-3 §5.11).
func Read10(lba uint32, blocks uint16) CDB { return rw10(OpRead10, lba, blocks, false) }

// Write10 builds WRITE(10), laid out as READ(10); fua sets force unit
// access (SBC-3 §5.32).
func Write10(lba uint32, blocks uint16, fua bool) CDB { return rw10(OpWrite10, lba, blocks, fua) }

func rw10(op byte, lba uint32, blocks uint16, fua bool) CDB {
	c := cdb(10, op)
	if fua {
		c.b[1] = fuaBit
	}
	binary.BigEndian.PutUint32(c.b[2:], lba)
	binary.BigEndian.PutUint16(c.b[7:], blocks)
	return c
}

// Read16 builds READ(16): LBA at bytes 2–9, transfer length at 10–13
// (SBC-3 §5.13).
func Read16(lba uint64, blocks uint32) CDB { return rw16(OpRead16, lba, blocks, false) }

// Write16 builds WRITE(16), laid out as READ(16) (SBC-3 §5.34).
func Write16(lba uint64, blocks uint32, fua bool) CDB { return rw16(OpWrite16, lba, blocks, fua) }

func rw16(op byte, lba uint64, blocks uint32, fua bool) CDB {
	c := cdb(16, op)
	if fua {
		c.b[1] = fuaBit
	}
	binary.BigEndian.PutUint64(c.b[2:], lba)
	binary.BigEndian.PutUint32(c.b[10:], blocks)
	return c
}

// ReadWrite builds the shortest READ or WRITE that addresses lba and
// blocks: the 10-byte form when both fit, else the 16-byte form.
func ReadWrite(write bool, lba uint64, blocks uint32) CDB {
	if lba <= 0xFFFFFFFF && blocks <= 0xFFFF && lba+uint64(blocks) <= 0x100000000 {
		if write {
			return Write10(uint32(lba), uint16(blocks), false)
		}
		return Read10(uint32(lba), uint16(blocks))
	}
	if write {
		return Write16(lba, blocks, false)
	}
	return Read16(lba, blocks)
}

// SynchronizeCache10 builds SYNCHRONIZE CACHE(10) (SBC-3 §5.22) for blocks
// from lba; 0, 0 means the whole medium.
func SynchronizeCache10(lba uint32, blocks uint16) CDB {
	c := cdb(10, OpSynchronizeCache)
	binary.BigEndian.PutUint32(c.b[2:], lba)
	binary.BigEndian.PutUint16(c.b[7:], blocks)
	return c
}

// Unmap builds UNMAP (10 bytes, SBC-3 §5.28) announcing a parameter list
// of paramLen bytes (bytes 7–8). Build the list with UnmapParams.
func Unmap(paramLen uint16) CDB {
	c := cdb(10, OpUnmap)
	binary.BigEndian.PutUint16(c.b[7:], paramLen)
	return c
}

// Offsets of the UNMAP parameter list (SBC-3 §5.28.2).
const (
	offUnmapDataLen = 0 // u16: bytes following this field
	offUnmapDescLen = 2 // u16: block descriptor data length
	offUnmapDescs   = 8 // descriptors start here
	offUnmapDescLBA = 0 // u64 within a descriptor
	offUnmapDescNum = 8 // u32 number of logical blocks
	unmapDescSize   = 16
	// UnmapParamsLen is the length of a one-descriptor parameter list.
	UnmapParamsLen = offUnmapDescs + unmapDescSize
)

// UnmapParams writes a one-descriptor UNMAP parameter list for blocks from
// lba into dst and returns its length (UnmapParamsLen), or 0 when dst is
// too short.
func UnmapParams(dst []byte, lba uint64, blocks uint32) int {
	if len(dst) < UnmapParamsLen {
		return 0
	}
	clear(dst[:UnmapParamsLen])
	binary.BigEndian.PutUint16(dst[offUnmapDataLen:], UnmapParamsLen-2)
	binary.BigEndian.PutUint16(dst[offUnmapDescLen:], unmapDescSize)
	d := dst[offUnmapDescs:]
	binary.BigEndian.PutUint64(d[offUnmapDescLBA:], lba)
	binary.BigEndian.PutUint32(d[offUnmapDescNum:], blocks)
	return UnmapParamsLen
}

// WriteSame16 builds WRITE SAME(16) (SBC-3 §5.42): LBA at bytes 2–9,
// number of blocks at 10–13; unmap sets the UNMAP bit (byte 1 bit 3), which
// asks the target to deallocate the blocks instead of writing them. The
// data-out buffer is one block (zeros for an unmap).
func WriteSame16(lba uint64, blocks uint32, unmap bool) CDB {
	c := cdb(16, OpWriteSame16)
	if unmap {
		c.b[1] = 0x08
	}
	binary.BigEndian.PutUint64(c.b[2:], lba)
	binary.BigEndian.PutUint32(c.b[10:], blocks)
	return c
}

// dbdBit disables block descriptors in MODE SENSE (byte 1 bit 3).
const dbdBit = 0x08

// ModeSense6 builds MODE SENSE(6) (SPC-4 §6.11) for the current values
// (page control 0) of page/subpage; dbd asks for no block descriptors.
func ModeSense6(page, subpage uint8, dbd bool, alloc uint8) CDB {
	c := cdb(6, OpModeSense6)
	if dbd {
		c.b[1] = dbdBit
	}
	c.b[2] = page & 0x3F
	c.b[3] = subpage
	c.b[4] = alloc
	return c
}

// ModeSense10 builds MODE SENSE(10) (SPC-4 §6.12), allocation length at
// bytes 7–8.
func ModeSense10(page, subpage uint8, dbd bool, alloc uint16) CDB {
	c := cdb(10, OpModeSense10)
	if dbd {
		c.b[1] = dbdBit
	}
	c.b[2] = page & 0x3F
	c.b[3] = subpage
	binary.BigEndian.PutUint16(c.b[7:], alloc)
	return c
}
