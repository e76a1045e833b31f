package storvsp

import (
	"encoding/binary"

	"github.com/gohv/gohv/tools/hvsim"
)

// This file is the SCSI target: a direct-access block device answering the
// CDBs a storvsc guest sends (SPC-4 / SBC-3 facts; Hyper-V specifics from
// docs/hyperv-protocol.md §6.5, §6.6). Data moves through an xfer, the
// guest buffer of the request's GPA-direct range.

var be = binary.BigEndian

// SCSI operation codes.
const (
	scsiTestUnitReady  = 0x00
	scsiRequestSense   = 0x03
	scsiInquiry        = 0x12
	scsiModeSense6     = 0x1A
	scsiStartStop      = 0x1B
	scsiReadCapacity10 = 0x25
	scsiRead10         = 0x28
	scsiWrite10        = 0x2A
	scsiSyncCache10    = 0x35
	scsiUnmap          = 0x42
	scsiModeSense10    = 0x5A
	scsiRead16         = 0x88
	scsiWrite16        = 0x8A
	scsiSyncCache16    = 0x91
	scsiWriteSame16    = 0x93
	scsiServiceIn16    = 0x9E
	scsiReportLUNs     = 0xA0

	serviceReadCap16 = 0x10
)

// Sense keys and additional sense codes.
const (
	senseNoSense        = 0x00
	senseMediumError    = 0x03
	senseIllegalRequest = 0x05
	senseUnitAttention  = 0x06
	senseDataProtect    = 0x07

	ascInvalidOpcode     = 0x20
	ascLBAOutOfRange     = 0x21
	ascInvalidFieldCDB   = 0x24
	ascInvalidFieldParam = 0x26
	ascWriteProtected    = 0x27
	ascSavingNotSupp     = 0x39
	ascParamListLength   = 0x1A
	ascWriteError        = 0x0C
	ascUnrecoveredRead   = 0x11
)

// result is the outcome of one SRB.
type result struct {
	srb, scsi   byte
	sense       [18]byte
	senseLen    int
	transferred uint32
}

func good(n int) result { return result{srb: SRBSuccess, scsi: SCSIGood, transferred: uint32(n)} }

// fixedSense is fixed-format sense data (response code 0x70, 18 bytes).
func fixedSense(key, asc, ascq byte) (s [18]byte) {
	s[0] = 0x70
	s[2] = key
	s[7] = 10 // additional sense length
	s[12], s[13] = asc, ascq
	return s
}

// checkCondition is CHECK CONDITION with autosense; srb is ERROR or
// INVALID_REQUEST (OpenVMM's choice for illegal requests).
func checkCondition(srb, key, asc, ascq byte) result {
	return result{srb: srb, scsi: SCSICheckCondition, sense: fixedSense(key, asc, ascq), senseLen: 18}
}

func illegal(asc byte) result { return checkCondition(SRBInvalidRequest, senseIllegalRequest, asc, 0) }

// xfer is the guest buffer of one request: n bytes of a GPA-direct range.
type xfer struct {
	h   *hvsim.Host
	r   hvsim.PageRange
	n   int
	dir byte // data_in of the request
}

// toGuest copies b to the start of the guest buffer, truncated to the
// buffer; it returns the bytes moved.
func (x *xfer) toGuest(b []byte) (int, error) {
	n := min(len(b), x.n)
	if n == 0 {
		return 0, nil
	}
	return n, x.h.WritePageRange(x.r, 0, b[:n])
}

// fromGuest copies the guest buffer at off into b.
func (x *xfer) fromGuest(b []byte, off int) error {
	return x.h.ReadPageRange(x.r, off, b)
}

// target is what a command runs against: the controller-level data and
// the addressed LUN (nil when none is attached there).
type target struct {
	d       *StorVSP
	u       *lun
	addr    Addr
	scratch []byte // per channel, MaxTransfer bytes
}

// exec runs one CDB.
func (t *target) exec(r *srbRequest, x *xfer) result {
	op := r.cdb[0]
	if op == scsiReportLUNs {
		return t.reportLUNs(r, x)
	}
	if t.u == nil {
		switch op {
		case scsiInquiry:
			return t.inquiryAbsent(r, x)
		case scsiRequestSense:
			return t.requestSense(r, x)
		}
		return result{srb: SRBInvalidLUN, scsi: SCSICheckCondition}
	}
	// Direction check: a command that moves data needs the matching
	// data_in (docs/hyperv-protocol.md §6.3).
	switch op {
	case scsiInquiry, scsiModeSense6, scsiModeSense10, scsiReadCapacity10, scsiServiceIn16,
		scsiRead10, scsiRead16, scsiRequestSense:
		if x.n > 0 && x.dir != dataIn {
			return illegal(ascInvalidFieldCDB)
		}
	case scsiWrite10, scsiWrite16, scsiUnmap, scsiWriteSame16:
		if x.n > 0 && x.dir != dataOut {
			return illegal(ascInvalidFieldCDB)
		}
	}
	switch op {
	case scsiTestUnitReady, scsiStartStop:
		return good(0)
	case scsiRequestSense:
		return t.requestSense(r, x)
	case scsiInquiry:
		return t.inquiry(r, x)
	case scsiReadCapacity10:
		return t.readCapacity10(x)
	case scsiServiceIn16:
		if r.cdb[1]&0x1F != serviceReadCap16 {
			return illegal(ascInvalidFieldCDB)
		}
		return t.readCapacity16(r, x)
	case scsiModeSense6, scsiModeSense10:
		return t.modeSense(r, x)
	case scsiRead10, scsiWrite10:
		return t.readWrite(op == scsiWrite10, uint64(be.Uint32(r.cdb[2:])), uint64(be.Uint16(r.cdb[7:])), r.cdb[1]&0x08 != 0, x)
	case scsiRead16, scsiWrite16:
		return t.readWrite(op == scsiWrite16, be.Uint64(r.cdb[2:]), uint64(be.Uint32(r.cdb[10:])), r.cdb[1]&0x08 != 0, x)
	case scsiSyncCache10, scsiSyncCache16:
		if err := t.u.flush(); err != nil {
			return checkCondition(SRBError, senseMediumError, ascWriteError, 0)
		}
		t.u.count(func(s *lunStats) { s.flushes++ })
		return good(0)
	case scsiUnmap:
		return t.unmap(r, x)
	case scsiWriteSame16:
		return t.writeSame16(r, x)
	}
	return illegal(ascInvalidOpcode)
}

func (u *lun) count(f func(*lunStats)) {
	u.stats.mu.Lock()
	f(&u.stats)
	u.stats.mu.Unlock()
}

// reportLUNs answers REPORT LUNS with the LUNs of the addressed target.
func (t *target) reportLUNs(r *srbRequest, x *xfer) result {
	alloc := int(be.Uint32(r.cdb[6:]))
	buf := t.scratch[:0]
	luns := t.d.lunsOf(t.addr.Path, t.addr.Target, buf[:0:256])
	out := t.scratch[256:]
	clear(out[:8+8*len(luns)])
	be.PutUint32(out[0:], uint32(8*len(luns)))
	for i, l := range luns {
		out[8+8*i+1] = l // single-level peripheral addressing, LUN < 256
	}
	n, err := x.toGuest(out[:min(alloc, 8+8*len(luns))])
	if err != nil {
		return illegal(ascInvalidFieldCDB)
	}
	return good(n)
}

func (t *target) requestSense(r *srbRequest, x *xfer) result {
	s := fixedSense(senseNoSense, 0, 0)
	n, err := x.toGuest(s[:min(int(r.cdb[4]), len(s))])
	if err != nil {
		return illegal(ascInvalidFieldCDB)
	}
	return good(n)
}

// Standard INQUIRY data (SPC-4 §6.6.2), 36 bytes.
const inquiryLen = 36

func (t *target) standardInquiry(b []byte, present bool) {
	clear(b[:inquiryLen])
	if !present {
		b[0] = 0x7F // peripheral qualifier 011b: no LUN here; type 1Fh
	}
	b[2] = 0x06 // SPC-4
	b[3] = 0x12 // HiSup, response data format 2
	b[4] = inquiryLen - 5
	b[7] = 0x02 // CmdQue
	copy(b[8:16], "Msft    ")
	copy(b[16:32], "Virtual Disk    ")
	copy(b[32:36], "1.0 ")
}

func (t *target) inquiryAbsent(r *srbRequest, x *xfer) result {
	if r.cdb[1]&1 != 0 || r.cdb[2] != 0 {
		return illegal(ascInvalidFieldCDB)
	}
	b := t.scratch[:inquiryLen]
	t.standardInquiry(b, false)
	n, err := x.toGuest(b[:min(int(be.Uint16(r.cdb[3:])), inquiryLen)])
	if err != nil {
		return illegal(ascInvalidFieldCDB)
	}
	return good(n)
}

// VPD pages served (sorted, as page 0x00 lists them).
var vpdPages = [...]byte{0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2}

func (t *target) inquiry(r *srbRequest, x *xfer) result {
	alloc := int(be.Uint16(r.cdb[3:]))
	evpd, page := r.cdb[1]&1 != 0, r.cdb[2]
	b := t.scratch[:256]
	clear(b)
	var n int
	switch {
	case !evpd && page != 0:
		return illegal(ascInvalidFieldCDB)
	case !evpd:
		t.standardInquiry(b, true)
		n = inquiryLen
	default:
		b[1] = page
		switch page {
		case 0x00:
			copy(b[4:], vpdPages[:])
			n = 4 + len(vpdPages)
		case 0x80:
			n = 4 + copy(b[4:], t.serial())
		case 0x83:
			// One designator: NAA (type 3), binary (code set 1), LUN
			// association, 16 bytes (NAA 6, IEEE registered extended).
			b[4], b[5], b[7] = 0x01, 0x03, 16
			id := t.u.cfg.ID
			copy(b[8:24], id[:])
			b[8] = 0x60 | b[8]&0x0F
			n = 24
		case 0xB0:
			t.blockLimits(b)
			n = 64
		case 0xB1:
			be.PutUint16(b[4:], 1) // medium rotation rate: non-rotating
			n = 64
		case 0xB2:
			if !t.u.cfg.NoDiscard && !t.u.cfg.ReadOnly {
				b[5] = 0x80 | 0x40 | 0x04 // LBPU, LBPWS, LBPRZ
				b[6] = 0x02               // thin provisioned
			}
			n = 8
		default:
			return illegal(ascInvalidFieldCDB)
		}
		be.PutUint16(b[2:], uint16(n-4))
	}
	m, err := x.toGuest(b[:min(alloc, n)])
	if err != nil {
		return illegal(ascInvalidFieldCDB)
	}
	return good(m)
}

func (t *target) serial() string {
	if t.u.cfg.Serial != "" {
		return t.u.cfg.Serial
	}
	return defaultSerial(t.d.cfg.Instance, t.addr)
}

// blockLimits fills VPD 0xB0 (SBC-3 §6.5.3), 64 bytes.
func (t *target) blockLimits(b []byte) {
	ss := uint32(t.u.cfg.SectorSize)
	b[4] = 0x01 // WSNZ: WRITE SAME with 0 blocks is an error
	be.PutUint16(b[6:], uint16(uint32(t.u.cfg.PhysicalSectorSize)/ss))
	maxBlocks := t.d.cfg.MaxTransfer / ss
	be.PutUint32(b[8:], maxBlocks)
	be.PutUint32(b[12:], maxBlocks)
	if !t.u.cfg.NoDiscard && !t.u.cfg.ReadOnly {
		be.PutUint32(b[20:], maxUnmapBlocks)
		be.PutUint32(b[24:], maxUnmapDescriptors)
		be.PutUint32(b[28:], uint32(t.u.cfg.PhysicalSectorSize)/ss)
	}
	be.PutUint64(b[36:], maxWriteSameBlocks)
}

// Limits on UNMAP and WRITE SAME, in logical blocks.
const (
	maxUnmapBlocks      = 1 << 22
	maxUnmapDescriptors = 64
	maxWriteSameBlocks  = 1 << 22
)

func (t *target) readCapacity10(x *xfer) result {
	b := t.scratch[:8]
	last := t.u.sectors - 1
	if last > 0xFFFFFFFF {
		last = 0xFFFFFFFF // tells the guest to use READ CAPACITY(16)
	}
	be.PutUint32(b[0:], uint32(last))
	be.PutUint32(b[4:], uint32(t.u.cfg.SectorSize))
	n, err := x.toGuest(b)
	if err != nil {
		return illegal(ascInvalidFieldCDB)
	}
	return good(n)
}

func (t *target) readCapacity16(r *srbRequest, x *xfer) result {
	b := t.scratch[:32]
	clear(b)
	be.PutUint64(b[0:], t.u.sectors-1)
	be.PutUint32(b[8:], uint32(t.u.cfg.SectorSize))
	exp := byte(0)
	for p := t.u.cfg.PhysicalSectorSize / t.u.cfg.SectorSize; p > 1; p >>= 1 {
		exp++
	}
	b[13] = exp
	if !t.u.cfg.NoDiscard && !t.u.cfg.ReadOnly {
		b[14] = 0x80 | 0x40 // LBPME, LBPRZ
	}
	n, err := x.toGuest(b[:min(int(be.Uint32(r.cdb[10:])), 32)])
	if err != nil {
		return illegal(ascInvalidFieldCDB)
	}
	return good(n)
}

// modeSense answers MODE SENSE(6)/(10) for the caching page (0x08) and
// "all pages" (0x3F).
func (t *target) modeSense(r *srbRequest, x *xfer) result {
	six := r.cdb[0] == scsiModeSense6
	dbd := r.cdb[1]&0x08 != 0
	pc, page := r.cdb[2]>>6, r.cdb[2]&0x3F
	if page != 0x08 && page != 0x3F || r.cdb[3] != 0 {
		return illegal(ascInvalidFieldCDB)
	}
	if pc == 3 {
		return checkCondition(SRBInvalidRequest, senseIllegalRequest, ascSavingNotSupp, 0)
	}
	var alloc, hdr int
	if six {
		alloc, hdr = int(r.cdb[4]), 4
	} else {
		alloc, hdr = int(be.Uint16(r.cdb[7:])), 8
	}
	b := t.scratch[:64]
	clear(b)
	p := hdr
	if !dbd {
		// Short LBA block descriptor: number of blocks, block length.
		blocks := min(t.u.sectors, 0xFFFFFFFF)
		be.PutUint32(b[p:], uint32(blocks))
		be.PutUint32(b[p+4:], uint32(t.u.cfg.SectorSize)&0xFFFFFF)
		p += 8
	}
	// Caching mode page (SBC-3 §6.4.5): 20 bytes.
	b[p], b[p+1] = 0x08, 0x12
	if pc != 1 && t.u.cfg.WriteCache { // pc 1: changeable mask, nothing is
		b[p+2] = 0x04 // WCE
	}
	p += 20
	dev := byte(0x10) // DPOFUA
	if t.u.cfg.ReadOnly {
		dev |= 0x80 // WP
	}
	if six {
		b[0] = byte(p - 1)
		b[2] = dev
		if !dbd {
			b[3] = 8
		}
	} else {
		be.PutUint16(b[0:], uint16(p-2))
		b[3] = dev
		if !dbd {
			b[7] = 8
		}
	}
	n, err := x.toGuest(b[:min(alloc, p)])
	if err != nil {
		return illegal(ascInvalidFieldCDB)
	}
	return good(n)
}

// lbaRange checks [lba, lba+count) against the disk.
func (t *target) lbaRange(lba, count uint64) bool {
	return lba <= t.u.sectors && count <= t.u.sectors-lba
}

func (t *target) readWrite(write bool, lba, count uint64, fua bool, x *xfer) result {
	u := t.u
	ss := uint64(u.cfg.SectorSize)
	if !t.lbaRange(lba, count) {
		return checkCondition(SRBError, senseIllegalRequest, ascLBAOutOfRange, 0)
	}
	if write && u.cfg.ReadOnly {
		return checkCondition(SRBError, senseDataProtect, ascWriteProtected, 0)
	}
	bytes := count * ss
	if bytes > uint64(x.n) {
		// The buffer is smaller than the CDB asks for.
		r := illegal(ascInvalidFieldCDB)
		r.srb = SRBDataOverrun
		return r
	}
	off := int64(lba * ss)
	done := 0
	for uint64(done) < bytes {
		m := int(min(bytes-uint64(done), uint64(len(t.scratch))))
		// Straight between the store and guest memory when the span is
		// contiguous there (a real host's DMA); else through scratch.
		if g, ok, err := x.h.PageRangeBytes(x.r, done, m); err != nil {
			return illegal(ascInvalidFieldCDB)
		} else if ok {
			if write {
				if err := u.writeAt(g, off+int64(done), fua); err != nil {
					return checkCondition(SRBError, senseMediumError, ascWriteError, 0)
				}
			} else if err := u.readAt(g, off+int64(done)); err != nil {
				return checkCondition(SRBError, senseMediumError, ascUnrecoveredRead, 0)
			}
			done += m
			continue
		}
		chunk := t.scratch[:m]
		if write {
			if err := x.fromGuest(chunk, done); err != nil {
				return illegal(ascInvalidFieldCDB)
			}
			if err := u.writeAt(chunk, off+int64(done), fua); err != nil {
				return checkCondition(SRBError, senseMediumError, ascWriteError, 0)
			}
		} else {
			if err := u.readAt(chunk, off+int64(done)); err != nil {
				return checkCondition(SRBError, senseMediumError, ascUnrecoveredRead, 0)
			}
			if err := x.h.WritePageRange(x.r, done, chunk); err != nil {
				return illegal(ascInvalidFieldCDB)
			}
		}
		done += m
	}
	u.stats.mu.Lock()
	if write {
		u.stats.writes++
		u.stats.bytesWritten += bytes
	} else {
		u.stats.reads++
		u.stats.bytesRead += bytes
	}
	u.stats.mu.Unlock()
	return good(int(bytes))
}

func (t *target) discardOK() bool { return !t.u.cfg.NoDiscard && !t.u.cfg.ReadOnly }

// unmap handles UNMAP (SBC-3 §5.28): the parameter list comes from the
// guest; unmapped blocks read as zero (LBPRZ).
func (t *target) unmap(r *srbRequest, x *xfer) result {
	if t.u.cfg.ReadOnly {
		return checkCondition(SRBError, senseDataProtect, ascWriteProtected, 0)
	}
	if !t.discardOK() {
		return illegal(ascInvalidOpcode)
	}
	plen := int(be.Uint16(r.cdb[7:]))
	if plen == 0 {
		return good(0)
	}
	if plen < 8 || plen > x.n || plen > 8+16*maxUnmapDescriptors {
		return checkCondition(SRBInvalidRequest, senseIllegalRequest, ascParamListLength, 0)
	}
	p := t.scratch[:plen]
	if err := x.fromGuest(p, 0); err != nil {
		return illegal(ascInvalidFieldCDB)
	}
	dataLen, descLen := int(be.Uint16(p[0:])), int(be.Uint16(p[2:]))
	if dataLen+2 > plen || descLen%16 != 0 || descLen+8 > plen {
		return checkCondition(SRBInvalidRequest, senseIllegalRequest, ascInvalidFieldParam, 0)
	}
	// Validate every descriptor before changing anything.
	for i := 8; i < 8+descLen; i += 16 {
		lba, n := be.Uint64(p[i:]), uint64(be.Uint32(p[i+8:]))
		if !t.lbaRange(lba, n) {
			return checkCondition(SRBError, senseIllegalRequest, ascLBAOutOfRange, 0)
		}
		if n > maxUnmapBlocks {
			return checkCondition(SRBInvalidRequest, senseIllegalRequest, ascInvalidFieldParam, 0)
		}
	}
	ss := int64(t.u.cfg.SectorSize)
	// The descriptors live in scratch; zero through the tail of it.
	zbuf := t.scratch[8+16*maxUnmapDescriptors:]
	var total uint64
	for i := 8; i < 8+descLen; i += 16 {
		lba, n := be.Uint64(p[i:]), int64(be.Uint32(p[i+8:]))
		if err := t.u.zero(int64(lba)*ss, n*ss, zbuf); err != nil {
			return checkCondition(SRBError, senseMediumError, ascWriteError, 0)
		}
		total += uint64(n * ss)
	}
	t.u.count(func(s *lunStats) { s.unmaps++; s.discarded += total })
	return good(plen)
}

// writeSame16 handles WRITE SAME(16): one block from the guest (or none
// with NDOB) written count times; with UNMAP and a zero block the range
// is unmapped, which reads as zero either way.
func (t *target) writeSame16(r *srbRequest, x *xfer) result {
	u := t.u
	if u.cfg.ReadOnly {
		return checkCondition(SRBError, senseDataProtect, ascWriteProtected, 0)
	}
	unmapBit, ndob := r.cdb[1]&0x08 != 0, r.cdb[1]&0x01 != 0
	lba, count := be.Uint64(r.cdb[2:]), uint64(be.Uint32(r.cdb[10:]))
	if count == 0 || count > maxWriteSameBlocks {
		return illegal(ascInvalidFieldCDB)
	}
	if unmapBit && !t.discardOK() {
		return illegal(ascInvalidFieldCDB)
	}
	if !t.lbaRange(lba, count) {
		return checkCondition(SRBError, senseIllegalRequest, ascLBAOutOfRange, 0)
	}
	ss := int(u.cfg.SectorSize)
	blk := t.scratch[:ss]
	moved := 0
	if ndob {
		clear(blk)
	} else {
		if x.n < ss {
			r := illegal(ascInvalidFieldCDB)
			r.srb = SRBDataOverrun
			return r
		}
		if err := x.fromGuest(blk, 0); err != nil {
			return illegal(ascInvalidFieldCDB)
		}
		moved = ss
	}
	off, n := int64(lba)*int64(ss), int64(count)*int64(ss)
	zeros := true
	for _, c := range blk {
		if c != 0 {
			zeros = false
			break
		}
	}
	var err error
	if zeros {
		err = u.zero(off, n, t.scratch[ss:])
	} else {
		for i := int64(0); i < int64(count) && err == nil; i++ {
			err = u.writeAt(blk, off+i*int64(ss), false)
		}
	}
	if err != nil {
		return checkCondition(SRBError, senseMediumError, ascWriteError, 0)
	}
	if unmapBit && zeros {
		u.count(func(s *lunStats) { s.unmaps++; s.discarded += uint64(n) })
	} else {
		u.count(func(s *lunStats) { s.writes++; s.bytesWritten += uint64(n) })
	}
	return good(moved)
}
