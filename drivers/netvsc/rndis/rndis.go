package rndis

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Message types (docs/hyperv-protocol.md §7.6).
const (
	TypePacket             uint32 = 0x00000001
	TypeInitialize         uint32 = 0x00000002
	TypeInitializeComplete uint32 = 0x80000002
	TypeHalt               uint32 = 0x00000003
	TypeQuery              uint32 = 0x00000004
	TypeQueryComplete      uint32 = 0x80000004
	TypeSet                uint32 = 0x00000005
	TypeSetComplete        uint32 = 0x80000005
	TypeReset              uint32 = 0x00000006
	TypeResetComplete      uint32 = 0x80000006
	TypeIndicateStatus     uint32 = 0x00000007
	TypeKeepalive          uint32 = 0x00000008
	TypeKeepaliveComplete  uint32 = 0x80000008
)

// Status values (§7.6).
const (
	StatusSuccess      uint32 = 0
	StatusPending      uint32 = 0x00000103
	StatusFailure      uint32 = 0xC0000001
	StatusNotSupported uint32 = 0xC00000BB
	StatusInvalidData  uint32 = 0xC0010015
	StatusInvalidOID   uint32 = 0xC0010017
)

// INDICATE_STATUS codes (§7.8).
const (
	IndicateMediaConnect       uint32 = 0x4001000B
	IndicateMediaDisconnect    uint32 = 0x4001000C
	IndicateLinkSpeedChange    uint32 = 0x40010013
	IndicateNetworkChange      uint32 = 0x40010018
	IndicateTaskOffloadCurrent uint32 = 0x40020006
)

// OIDs (§7.7).
const (
	OIDGenSupportedList          uint32 = 0x00010101
	OIDGenMaximumFrameSize       uint32 = 0x00010106
	OIDGenLinkSpeed              uint32 = 0x00010107
	OIDGenCurrentPacketFilter    uint32 = 0x0001010E
	OIDGenMaximumTotalSize       uint32 = 0x00010111
	OIDGenMediaConnectStatus     uint32 = 0x00010114
	OIDGenReceiveScaleCaps       uint32 = 0x00010203
	OIDGenReceiveScaleParameters uint32 = 0x00010204
	OIDGenLinkState              uint32 = 0x00010207
	OID8023PermanentAddress      uint32 = 0x01010101
	OID8023CurrentAddress        uint32 = 0x01010102
	OIDTCPOffloadCurrentConfig   uint32 = 0xFC01020B
	OIDTCPOffloadParameters      uint32 = 0xFC01020C
	OIDTCPOffloadHardwareCaps    uint32 = 0xFC01020D
)

// MediaConnected and MediaDisconnected are OID_GEN_MEDIA_CONNECT_STATUS
// values (§7.7).
const (
	MediaConnected    uint32 = 0
	MediaDisconnected uint32 = 1
)

// Packet filter bits (§7.9).
const (
	FilterDirected     uint32 = 0x01
	FilterMulticast    uint32 = 0x02
	FilterAllMulticast uint32 = 0x04
	FilterBroadcast    uint32 = 0x08
	FilterPromiscuous  uint32 = 0x20
	// FilterDefault is directed + all-multicast + broadcast (§7.9).
	FilterDefault = FilterDirected | FilterAllMulticast | FilterBroadcast
)

// RNDIS version the guest requests in INITIALIZE (§7.6).
const (
	MajorVersion = 1
	MinorVersion = 0
)

// Layout (§7.6): every message starts with type @0 and total length @4;
// "info offset" fields count from @8 (bodyOffset).
const (
	offType    = 0
	offLength  = 4
	HeaderSize = 8
	bodyOffset = 8

	// INITIALIZE.
	offInitRequestID   = 8
	offInitMajor       = 12
	offInitMinor       = 16
	offInitMaxTransfer = 20
	InitializeSize     = 24

	// INITIALIZE_CMPLT.
	offInitCRequestID   = 8
	offInitCStatus      = 12
	offInitCMajor       = 16
	offInitCMinor       = 20
	offInitCDeviceFlags = 24
	offInitCMedium      = 28
	offInitCMaxPackets  = 32
	offInitCMaxTransfer = 36
	offInitCAlignment   = 40
	initCMinSize        = 44 // through the alignment factor

	// HALT, KEEPALIVE: request id @8.
	offRequestID  = 8
	HaltSize      = 12
	KeepaliveSize = 12

	// KEEPALIVE_CMPLT, SET_CMPLT: request id @8, status @12.
	offCmpltStatus        = 12
	KeepaliveCompleteSize = 16
	setCompleteSize       = 16

	// QUERY and SET: request id @8, OID @12, info length @16, info offset
	// @20 (from @8), VC handle @24, info buffer @28.
	offReqOID        = 12
	offReqInfoLen    = 16
	offReqInfoOffset = 20
	offReqVCHandle   = 24
	RequestSize      = 28 // without the info buffer
	reqInfoOffset    = RequestSize - bodyOffset

	// QUERY_CMPLT: request id @8, status @12, info length @16, info offset
	// @20 (from @8).
	offQCInfoLen    = 16
	offQCInfoOffset = 20
	queryCMinSize   = 24

	// INDICATE_STATUS: status @8, buffer length @12, buffer offset @16
	// (from @8).
	offIndStatus    = 8
	offIndBufLen    = 12
	offIndBufOffset = 16
	indicateMinSize = 20

	// PACKET: data offset @8, data length @12, OOB offset @16, OOB length
	// @20, OOB count @24, PPI offset @28, PPI length @32, VC handle @36,
	// reserved @40; offsets from @8.
	offPktDataOffset = 8
	offPktDataLen    = 12
	offPktPPIOffset  = 28
	offPktPPILen     = 32
	PacketHeaderSize = 44
	pktPPIOffset     = PacketHeaderSize - bodyOffset // 36, as Linux sends
)

// Errors returned by the decoders; branch on them with errors.Is.
var (
	// ErrShort: the message is shorter than its fixed fields or its
	// declared length.
	ErrShort = errors.New("rndis: message too short")
	// ErrType: the message is not of the type the decoder reads.
	ErrType = errors.New("rndis: unexpected message type")
	// ErrInvalid: an offset, length or field is out of range.
	ErrInvalid = errors.New("rndis: invalid field")
)

var le = binary.LittleEndian

// ParseHeader returns the type and total length of the RNDIS message at
// the start of b; the length is at least HeaderSize and fits in b.
func ParseHeader(b []byte) (typ, length uint32, err error) {
	if len(b) < HeaderSize {
		return 0, 0, fmt.Errorf("%w: %d bytes", ErrShort, len(b))
	}
	typ, length = le.Uint32(b[offType:]), le.Uint32(b[offLength:])
	if length < HeaderSize || uint64(length) > uint64(len(b)) {
		return typ, length, fmt.Errorf("%w: length %d in %d bytes", ErrShort, length, len(b))
	}
	return typ, length, nil
}

// message validates b's header for type want and a minimum size, and
// returns b cut to the declared length.
func message(b []byte, want uint32, min int) ([]byte, error) {
	typ, n, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	if typ != want {
		return nil, fmt.Errorf("%w: %#x, want %#x", ErrType, typ, want)
	}
	if int(n) < min {
		return nil, fmt.Errorf("%w: type %#x length %d, need %d", ErrShort, typ, n, min)
	}
	return b[:n], nil
}

func putHeader(b []byte, typ uint32, n int) {
	le.PutUint32(b[offType:], typ)
	le.PutUint32(b[offLength:], uint32(n))
}

// PutInitialize writes INITIALIZE into b and returns its length.
func PutInitialize(b []byte, requestID, maxTransfer uint32) int {
	putHeader(b, TypeInitialize, InitializeSize)
	le.PutUint32(b[offInitRequestID:], requestID)
	le.PutUint32(b[offInitMajor:], MajorVersion)
	le.PutUint32(b[offInitMinor:], MinorVersion)
	le.PutUint32(b[offInitMaxTransfer:], maxTransfer)
	return InitializeSize
}

// PutHalt writes HALT into b and returns its length.
func PutHalt(b []byte, requestID uint32) int {
	putHeader(b, TypeHalt, HaltSize)
	le.PutUint32(b[offRequestID:], requestID)
	return HaltSize
}

// PutKeepalive writes KEEPALIVE into b and returns its length.
func PutKeepalive(b []byte, requestID uint32) int {
	putHeader(b, TypeKeepalive, KeepaliveSize)
	le.PutUint32(b[offRequestID:], requestID)
	return KeepaliveSize
}

// PutKeepaliveComplete writes KEEPALIVE_CMPLT into b and returns its
// length.
func PutKeepaliveComplete(b []byte, requestID, status uint32) int {
	putHeader(b, TypeKeepaliveComplete, KeepaliveCompleteSize)
	le.PutUint32(b[offRequestID:], requestID)
	le.PutUint32(b[offCmpltStatus:], status)
	return KeepaliveCompleteSize
}

func putRequest(b []byte, typ, requestID, oid uint32, infoLen int) int {
	n := RequestSize + infoLen
	putHeader(b, typ, n)
	le.PutUint32(b[offRequestID:], requestID)
	le.PutUint32(b[offReqOID:], oid)
	le.PutUint32(b[offReqInfoLen:], uint32(infoLen))
	le.PutUint32(b[offReqInfoOffset:], reqInfoOffset)
	le.PutUint32(b[offReqVCHandle:], 0)
	return n
}

// RequestInfo returns the info buffer of a QUERY or SET being built in b:
// the infoLen bytes after the fixed fields, to be filled before or after
// PutQuery/PutSet.
func RequestInfo(b []byte, infoLen int) []byte { return b[RequestSize : RequestSize+infoLen] }

// PutQuery writes QUERY for oid with an info buffer of infoLen bytes
// (already in RequestInfo(b, infoLen)) and returns the message length.
func PutQuery(b []byte, requestID, oid uint32, infoLen int) int {
	return putRequest(b, TypeQuery, requestID, oid, infoLen)
}

// PutSet writes SET for oid with an info buffer of infoLen bytes (already
// in RequestInfo(b, infoLen)) and returns the message length.
func PutSet(b []byte, requestID, oid uint32, infoLen int) int {
	return putRequest(b, TypeSet, requestID, oid, infoLen)
}

// InitializeComplete is INITIALIZE_CMPLT (§7.6).
type InitializeComplete struct {
	RequestID, Status                 uint32
	Major, Minor, DeviceFlags, Medium uint32
	MaxPacketsPerMessage              uint32
	MaxTransferSize                   uint32
	PacketAlignmentFactor             uint32
}

// ParseInitializeComplete decodes INITIALIZE_CMPLT.
func ParseInitializeComplete(b []byte) (InitializeComplete, error) {
	b, err := message(b, TypeInitializeComplete, initCMinSize)
	if err != nil {
		return InitializeComplete{}, err
	}
	c := InitializeComplete{
		RequestID: le.Uint32(b[offInitCRequestID:]), Status: le.Uint32(b[offInitCStatus:]),
		Major: le.Uint32(b[offInitCMajor:]), Minor: le.Uint32(b[offInitCMinor:]),
		DeviceFlags: le.Uint32(b[offInitCDeviceFlags:]), Medium: le.Uint32(b[offInitCMedium:]),
		MaxPacketsPerMessage:  le.Uint32(b[offInitCMaxPackets:]),
		MaxTransferSize:       le.Uint32(b[offInitCMaxTransfer:]),
		PacketAlignmentFactor: le.Uint32(b[offInitCAlignment:]),
	}
	if c.Status == StatusSuccess && c.PacketAlignmentFactor > 12 {
		return c, fmt.Errorf("%w: packet alignment factor %d", ErrInvalid, c.PacketAlignmentFactor)
	}
	return c, nil
}

// RequestIDOf returns the request id of a completion (INITIALIZE_CMPLT,
// QUERY_CMPLT, SET_CMPLT, KEEPALIVE_CMPLT: all @8) so that it can be
// matched before it is decoded.
func RequestIDOf(b []byte) (uint32, error) {
	if _, _, err := ParseHeader(b); err != nil {
		return 0, err
	}
	if len(b) < offRequestID+4 {
		return 0, fmt.Errorf("%w: no request id", ErrShort)
	}
	return le.Uint32(b[offRequestID:]), nil
}

// ParseQueryComplete decodes QUERY_CMPLT; info aliases b.
func ParseQueryComplete(b []byte) (requestID, status uint32, info []byte, err error) {
	b, err = message(b, TypeQueryComplete, queryCMinSize)
	if err != nil {
		return 0, 0, nil, err
	}
	requestID, status = le.Uint32(b[offRequestID:]), le.Uint32(b[offCmpltStatus:])
	if status != StatusSuccess {
		return requestID, status, nil, nil
	}
	info, err = sub(b, le.Uint32(b[offQCInfoOffset:]), le.Uint32(b[offQCInfoLen:]), queryCMinSize)
	return requestID, status, info, err
}

// sub returns the length bytes at offset (counted from @8) of message b,
// which must start at or after min.
func sub(b []byte, offset, length uint32, min int) ([]byte, error) {
	if length == 0 {
		return b[len(b):], nil
	}
	start := uint64(bodyOffset) + uint64(offset)
	end := start + uint64(length)
	if start < uint64(min) || end > uint64(len(b)) {
		return nil, fmt.Errorf("%w: %d bytes at offset %d in a %d-byte message", ErrInvalid, length, offset, len(b))
	}
	return b[start:end], nil
}

// ParseSetComplete decodes SET_CMPLT.
func ParseSetComplete(b []byte) (requestID, status uint32, err error) {
	b, err = message(b, TypeSetComplete, setCompleteSize)
	if err != nil {
		return 0, 0, err
	}
	return le.Uint32(b[offRequestID:]), le.Uint32(b[offCmpltStatus:]), nil
}

// ParseKeepalive decodes a host's KEEPALIVE request.
func ParseKeepalive(b []byte) (requestID uint32, err error) {
	b, err = message(b, TypeKeepalive, KeepaliveSize)
	if err != nil {
		return 0, err
	}
	return le.Uint32(b[offRequestID:]), nil
}

// ParseKeepaliveComplete decodes KEEPALIVE_CMPLT.
func ParseKeepaliveComplete(b []byte) (requestID, status uint32, err error) {
	b, err = message(b, TypeKeepaliveComplete, KeepaliveCompleteSize)
	if err != nil {
		return 0, 0, err
	}
	return le.Uint32(b[offRequestID:]), le.Uint32(b[offCmpltStatus:]), nil
}

// ParseIndicateStatus decodes INDICATE_STATUS; buf aliases b.
func ParseIndicateStatus(b []byte) (status uint32, buf []byte, err error) {
	b, err = message(b, TypeIndicateStatus, indicateMinSize)
	if err != nil {
		return 0, nil, err
	}
	status = le.Uint32(b[offIndStatus:])
	buf, err = sub(b, le.Uint32(b[offIndBufOffset:]), le.Uint32(b[offIndBufLen:]), indicateMinSize)
	return status, buf, err
}

// SetRequestID stores requestID in a request built in b (INITIALIZE,
// QUERY, SET, KEEPALIVE, HALT: all carry it @8).
func SetRequestID(b []byte, requestID uint32) { le.PutUint32(b[offRequestID:], requestID) }
