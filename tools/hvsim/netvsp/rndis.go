package netvsp

import "fmt"

// This file holds the RNDIS wire format carried inside NVSP
// (docs/hyperv-protocol.md §7.6, §7.8): message types, status values,
// decoders for what the guest sends, encoders for what the host sends, and
// per-packet info. Offsets are from the start of the RNDIS message.

// RNDIS message types (§7.6).
const (
	rndisPacket       = 0x00000001
	rndisInit         = 0x00000002
	rndisInitCmplt    = 0x80000002
	rndisHalt         = 0x00000003
	rndisQuery        = 0x00000004
	rndisQueryCmplt   = 0x80000004
	rndisSet          = 0x00000005
	rndisSetCmplt     = 0x80000005
	rndisReset        = 0x00000006
	rndisResetCmplt   = 0x80000006
	rndisIndicate     = 0x00000007
	rndisKeepalive    = 0x00000008
	rndisKeepaliveCmp = 0x80000008
	rndisSetEx        = 0x00000009
)

// RNDIS status values (§7.6) and status indications (§7.8).
const (
	rndisStatusSuccess      = 0x00000000
	rndisStatusFailure      = 0xC0000001
	rndisStatusNotSupported = 0xC00000BB
	rndisStatusInvalidData  = 0xC0010015
	rndisStatusInvalidOID   = 0xC0010017

	StatusMediaConnect    = 0x4001000B
	StatusMediaDisconnect = 0x4001000C
	StatusLinkSpeedChange = 0x40010013
	StatusNetworkChange   = 0x40010018
)

// Offsets common to every RNDIS message (§7.6).
const (
	offRNDISType   = 0
	offRNDISLength = 4
	offRNDISReqID  = 8 // request id of INITIALIZE, QUERY, SET, KEEPALIVE, HALT
	rndisHdrSize   = 8
)

// INITIALIZE / INITIALIZE_CMPLT (§7.6).
const (
	offInitMajor       = 12
	offInitMinor       = 16
	offInitMaxXfer     = 20
	sizeInit           = 24
	offInitCStatus     = 12
	offInitCMajor      = 16
	offInitCMinor      = 20
	offInitCFlags      = 24
	offInitCMedium     = 28
	offInitCMaxPkts    = 32
	offInitCMaxXfer    = 36
	offInitCAlign      = 40
	offInitCAFOffset   = 44
	offInitCAFSize     = 48
	sizeInitCmplt      = 52
	rndisMajor         = 1
	rndisMinor         = 0
	rndisDFConnless    = 1 // device flags: connectionless (OpenVMM)
	rndisMedium8023    = 0
	rndisMaxPktsPerMsg = 8          // OpenVMM's value (§7.6)
	rndisMaxTransfer   = 0xEFFFFFFF // OpenVMM's value (§7.6)
	rndisAlignShift    = 3          // 8-byte alignment (§7.6)
)

// QUERY / SET and their completions (§7.6).
const (
	offOIDValue      = 12
	offOIDInfoLen    = 16
	offOIDInfoOff    = 20 // from @8
	sizeOIDRequest   = 28
	offQCStatus      = 12
	offQCInfoLen     = 16
	offQCInfoOff     = 20
	sizeQueryCmplt   = 24 // information buffer follows
	offSCStatus      = 12
	sizeSetCmplt     = 16
	offKCStatus      = 12
	sizeKeepalive    = 12
	sizeKeepaliveCmp = 16
	offRCStatus      = 8
	offRCAddrReset   = 12
	sizeResetCmplt   = 16
	sizeHalt         = 12
	sizeReset        = 12
)

// INDICATE_STATUS (§7.6).
const (
	offISStatus    = 8
	offISBufLen    = 12
	offISBufOff    = 16 // from @8
	sizeIndicate   = 20
	indicateBufOff = sizeIndicate - rndisHdrSize
)

// PACKET (§7.6). Offsets inside the body are relative to @8.
const (
	offPktDataOff  = 8
	offPktDataLen  = 12
	offPktOOBOff   = 16
	offPktOOBLen   = 20
	offPktOOBCount = 24
	offPktPPIOff   = 28
	offPktPPILen   = 32
	offPktVCHandle = 36
	sizePacketHdr  = 44
)

// Per-packet info (§7.8).
const (
	offPPISize    = 0
	offPPIType    = 4
	offPPIDataOff = 8
	ppiHdrSize    = 12
	ppiInternal   = 1 << 31

	ppiChecksum = 0
	ppiLSO      = 2
	ppi8021Q    = 6
	ppiHash     = 8
)

// TX checksum request bits (§7.8).
const (
	txCsumIPv4     = 1 << 0
	txCsumIPv6     = 1 << 1
	txCsumTCP      = 1 << 2
	txCsumUDP      = 1 << 3
	txCsumIPHeader = 1 << 4
	txCsumTCPOffSh = 16
	txCsumTCPOffMk = 0x3FF
)

// RX checksum result bits (§7.8).
const (
	RxCsumTCPFailed = 1 << 0
	RxCsumUDPFailed = 1 << 1
	RxCsumIPFailed  = 1 << 2
	RxCsumTCPOK     = 1 << 3
	RxCsumUDPOK     = 1 << 4
	RxCsumIPOK      = 1 << 5
)

// LSOv2 TX info bits (§7.8).
const (
	lsoMSSMask   = 0xFFFFF
	lsoTCPOffSh  = 20
	lsoTCPOffMk  = 0x3FF
	lsoTypeV2    = 1 << 30
	lsoIPv6      = 1 << 31
	lsoMaxOffld  = 0xF53C // largest LSO send advertised (OpenVMM's value)
	lsoMinSegCnt = 2
)

// rndisMsg is a decoded guest→host RNDIS control message.
type rndisMsg struct {
	Type, Length uint32
	ReqID        uint32
	// INITIALIZE: Major, Minor, MaxTransfer.
	Major, Minor, MaxTransfer uint32
	// QUERY/SET: OID and the information buffer (aliases the input).
	OID  uint32
	Info []byte
}

// parseRNDISControl decodes one control message (anything but PACKET) from
// b, a private copy of the guest's bytes; b may be longer than the message.
func parseRNDISControl(b []byte) (rndisMsg, error) {
	var m rndisMsg
	if len(b) < rndisHdrSize {
		return m, fmt.Errorf("%w: RNDIS message of %d bytes", ErrMalformed, len(b))
	}
	m.Type, m.Length = le.Uint32(b[offRNDISType:]), le.Uint32(b[offRNDISLength:])
	if m.Length < rndisHdrSize || uint64(m.Length) > uint64(len(b)) {
		return m, fmt.Errorf("%w: RNDIS type %#x length %d in %d bytes", ErrMalformed, m.Type, m.Length, len(b))
	}
	b = b[:m.Length]
	need := 0
	switch m.Type {
	case rndisInit:
		need = sizeInit
	case rndisQuery, rndisSet, rndisSetEx:
		need = sizeOIDRequest
	case rndisKeepalive:
		need = sizeKeepalive
	case rndisHalt:
		need = sizeHalt
	case rndisReset:
		need = sizeReset
	default:
		return m, fmt.Errorf("%w: RNDIS control message type %#x", ErrMalformed, m.Type)
	}
	if len(b) < need {
		return m, fmt.Errorf("%w: RNDIS type %#x of %d bytes, want %d", ErrMalformed, m.Type, len(b), need)
	}
	if m.Type != rndisReset {
		m.ReqID = le.Uint32(b[offRNDISReqID:])
	}
	switch m.Type {
	case rndisInit:
		m.Major, m.Minor = le.Uint32(b[offInitMajor:]), le.Uint32(b[offInitMinor:])
		m.MaxTransfer = le.Uint32(b[offInitMaxXfer:])
	case rndisQuery, rndisSet, rndisSetEx:
		m.OID = le.Uint32(b[offOIDValue:])
		n, off := le.Uint32(b[offOIDInfoLen:]), le.Uint32(b[offOIDInfoOff:])
		if n > 0 {
			start := uint64(off) + rndisHdrSize
			if start < sizeOIDRequest || start+uint64(n) > uint64(len(b)) {
				return m, fmt.Errorf("%w: OID %#x information buffer %d+%d outside %d-byte message",
					ErrMalformed, m.OID, off, n, len(b))
			}
			m.Info = b[start : start+uint64(n)]
		}
	}
	return m, nil
}

// rndisPkt is a decoded RNDIS PACKET (§7.6, §7.8).
type rndisPkt struct {
	Length uint32
	Data   []byte // the Ethernet frame; aliases the input
	// Per-packet info the host acts on, with Has* saying which were present.
	Csum, LSO, VLAN          uint32
	HasCsum, HasLSO, HasVLAN bool
}

// parseRNDISPacket decodes one PACKET message at the start of b (a private
// copy of guest bytes). The message's length field bounds everything.
func parseRNDISPacket(b []byte) (rndisPkt, error) {
	var p rndisPkt
	if len(b) < sizePacketHdr {
		return p, fmt.Errorf("%w: RNDIS PACKET of %d bytes", ErrMalformed, len(b))
	}
	if t := le.Uint32(b[offRNDISType:]); t != rndisPacket {
		return p, fmt.Errorf("%w: RNDIS type %#x where PACKET expected", ErrMalformed, t)
	}
	p.Length = le.Uint32(b[offRNDISLength:])
	if p.Length < sizePacketHdr || uint64(p.Length) > uint64(len(b)) {
		return p, fmt.Errorf("%w: RNDIS PACKET length %d in %d bytes", ErrMalformed, p.Length, len(b))
	}
	b = b[:p.Length]
	dOff, dLen := uint64(le.Uint32(b[offPktDataOff:]))+rndisHdrSize, uint64(le.Uint32(b[offPktDataLen:]))
	if dOff < sizePacketHdr || dOff+dLen > uint64(len(b)) {
		return p, fmt.Errorf("%w: PACKET data %d+%d outside %d-byte message", ErrMalformed, dOff, dLen, len(b))
	}
	if le.Uint32(b[offPktOOBLen:]) != 0 || le.Uint32(b[offPktOOBCount:]) != 0 {
		return p, fmt.Errorf("%w: PACKET with out-of-band data", ErrMalformed)
	}
	p.Data = b[dOff : dOff+dLen]
	pLen := uint64(le.Uint32(b[offPktPPILen:]))
	if pLen == 0 {
		return p, nil
	}
	pOff := uint64(le.Uint32(b[offPktPPIOff:])) + rndisHdrSize
	if pOff < sizePacketHdr || pOff+pLen > uint64(len(b)) {
		return p, fmt.Errorf("%w: PACKET per-packet info %d+%d outside %d-byte message", ErrMalformed, pOff, pLen, len(b))
	}
	if pOff < dOff+dLen && dOff < pOff+pLen {
		return p, fmt.Errorf("%w: PACKET per-packet info overlaps the data", ErrMalformed)
	}
	ppi := b[pOff : pOff+pLen]
	for len(ppi) > 0 {
		if len(ppi) < ppiHdrSize {
			return p, fmt.Errorf("%w: %d trailing per-packet info bytes", ErrMalformed, len(ppi))
		}
		size, typ, off := le.Uint32(ppi[offPPISize:]), le.Uint32(ppi[offPPIType:]), le.Uint32(ppi[offPPIDataOff:])
		if size < ppiHdrSize || uint64(size) > uint64(len(ppi)) || off < ppiHdrSize || off > size {
			return p, fmt.Errorf("%w: per-packet info entry size %d offset %d in %d bytes", ErrMalformed, size, off, len(ppi))
		}
		data := ppi[off:size]
		if typ&ppiInternal == 0 {
			var dst *uint32
			var has *bool
			switch typ {
			case ppiChecksum:
				dst, has = &p.Csum, &p.HasCsum
			case ppiLSO:
				dst, has = &p.LSO, &p.HasLSO
			case ppi8021Q:
				dst, has = &p.VLAN, &p.HasVLAN
			}
			if dst != nil {
				if len(data) < 4 {
					return p, fmt.Errorf("%w: per-packet info type %d with %d data bytes", ErrMalformed, typ, len(data))
				}
				*dst, *has = le.Uint32(data), true
			}
		}
		ppi = ppi[size:]
	}
	return p, nil
}

// rxPPISize is what encodeRxPacketHeader adds for the per-packet info.
func rxPPISize(csum, hash bool) int {
	n := 0
	if csum {
		n += ppiHdrSize + 4
	}
	if hash {
		n += ppiHdrSize + 4
	}
	return n
}

// encodeRxPacketHeader writes a host→guest PACKET header for a frame of
// frameLen bytes with the given per-packet info into b and returns the
// header length; the frame follows it. Like Linux's layout (§7.6), the PPI
// starts right after the 44-byte header and the data after the PPI.
func encodeRxPacketHeader(b []byte, frameLen int, csum uint32, hasCsum bool, hash uint32, hasHash bool) int {
	ppiLen := rxPPISize(hasCsum, hasHash)
	hdr := sizePacketHdr + ppiLen
	clear(b[:hdr])
	le.PutUint32(b[offRNDISType:], rndisPacket)
	le.PutUint32(b[offRNDISLength:], uint32(hdr+frameLen))
	le.PutUint32(b[offPktDataOff:], uint32(hdr-rndisHdrSize))
	le.PutUint32(b[offPktDataLen:], uint32(frameLen))
	if ppiLen > 0 {
		le.PutUint32(b[offPktPPIOff:], sizePacketHdr-rndisHdrSize)
		le.PutUint32(b[offPktPPILen:], uint32(ppiLen))
	}
	off := sizePacketHdr
	put := func(typ, v uint32) {
		le.PutUint32(b[off+offPPISize:], ppiHdrSize+4)
		le.PutUint32(b[off+offPPIType:], typ)
		le.PutUint32(b[off+offPPIDataOff:], ppiHdrSize)
		le.PutUint32(b[off+ppiHdrSize:], v)
		off += ppiHdrSize + 4
	}
	if hasCsum {
		put(ppiChecksum, csum)
	}
	if hasHash {
		put(ppiHash, hash)
	}
	return hdr
}

func putRNDISHeader(b []byte, typ uint32, length int) {
	le.PutUint32(b[offRNDISType:], typ)
	le.PutUint32(b[offRNDISLength:], uint32(length))
}

func encodeInitCmplt(b []byte, reqID, status uint32) int {
	clear(b[:sizeInitCmplt])
	putRNDISHeader(b, rndisInitCmplt, sizeInitCmplt)
	le.PutUint32(b[offRNDISReqID:], reqID)
	le.PutUint32(b[offInitCStatus:], status)
	le.PutUint32(b[offInitCMajor:], rndisMajor)
	le.PutUint32(b[offInitCMinor:], rndisMinor)
	le.PutUint32(b[offInitCFlags:], rndisDFConnless)
	le.PutUint32(b[offInitCMedium:], rndisMedium8023)
	le.PutUint32(b[offInitCMaxPkts:], rndisMaxPktsPerMsg)
	le.PutUint32(b[offInitCMaxXfer:], rndisMaxTransfer)
	le.PutUint32(b[offInitCAlign:], rndisAlignShift)
	return sizeInitCmplt
}

// encodeQueryCmplt writes QUERY_CMPLT whose information buffer (infoLen
// bytes) the caller has already placed at b[sizeQueryCmplt:].
func encodeQueryCmplt(b []byte, reqID, status uint32, infoLen int) int {
	clear(b[:sizeQueryCmplt])
	n := sizeQueryCmplt + infoLen
	putRNDISHeader(b, rndisQueryCmplt, n)
	le.PutUint32(b[offRNDISReqID:], reqID)
	le.PutUint32(b[offQCStatus:], status)
	le.PutUint32(b[offQCInfoLen:], uint32(infoLen))
	if infoLen > 0 {
		le.PutUint32(b[offQCInfoOff:], sizeQueryCmplt-rndisHdrSize)
	}
	return n
}

func encodeSetCmplt(b []byte, reqID, status uint32) int {
	putRNDISHeader(b, rndisSetCmplt, sizeSetCmplt)
	le.PutUint32(b[offRNDISReqID:], reqID)
	le.PutUint32(b[offSCStatus:], status)
	return sizeSetCmplt
}

func encodeKeepaliveCmplt(b []byte, reqID, status uint32) int {
	putRNDISHeader(b, rndisKeepaliveCmp, sizeKeepaliveCmp)
	le.PutUint32(b[offRNDISReqID:], reqID)
	le.PutUint32(b[offKCStatus:], status)
	return sizeKeepaliveCmp
}

func encodeResetCmplt(b []byte, status uint32) int {
	putRNDISHeader(b, rndisResetCmplt, sizeResetCmplt)
	le.PutUint32(b[offRCStatus:], status)
	le.PutUint32(b[offRCAddrReset:], 0)
	return sizeResetCmplt
}

// encodeIndicateStatus writes INDICATE_STATUS with an optional status
// buffer right after the 20-byte header.
func encodeIndicateStatus(b []byte, status uint32, buf []byte) int {
	n := sizeIndicate + len(buf)
	putRNDISHeader(b, rndisIndicate, n)
	le.PutUint32(b[offISStatus:], status)
	le.PutUint32(b[offISBufLen:], uint32(len(buf)))
	off := uint32(0)
	if len(buf) > 0 {
		off = indicateBufOff
	}
	le.PutUint32(b[offISBufOff:], off)
	copy(b[sizeIndicate:], buf)
	return n
}
