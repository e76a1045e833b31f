package netvsp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// This file holds the NVSP wire format (docs/hyperv-protocol.md §7.1–§7.3):
// constants, the messages the guest sends (decoded) and the messages the
// host sends (encoded). Offsets are byte offsets from the start of the NVSP
// message, which is the VMBus packet payload (§4.3). No state lives here.

// NVSP protocol versions (§7.1).
const (
	NVSPVersion1  uint32 = 0x00000002
	NVSPVersion2  uint32 = 0x00030002
	NVSPVersion4  uint32 = 0x00040000
	NVSPVersion5  uint32 = 0x00050000
	NVSPVersion6  uint32 = 0x00060000
	NVSPVersion61 uint32 = 0x00060001
)

// nvspVersions is every version the host accepts, newest first (§7.1).
var nvspVersions = [...]uint32{NVSPVersion61, NVSPVersion6, NVSPVersion5,
	NVSPVersion4, NVSPVersion2, NVSPVersion1}

// nvspRank orders versions (the u32 values are not monotonic: version 2 is
// 0x00030002); it returns -1 for an unknown value.
func nvspRank(v uint32) int {
	for i, x := range nvspVersions {
		if x == v {
			return len(nvspVersions) - i
		}
	}
	return -1
}

// NVSP message types (§7.2).
const (
	nvspInit                = 1
	nvspInitComplete        = 2
	nvspSendNDISVersion     = 100
	nvspSendRecvBuf         = 101
	nvspSendRecvBufComplete = 102
	nvspRevokeRecvBuf       = 103
	nvspSendSendBuf         = 104
	nvspSendSendBufComplete = 105
	nvspRevokeSendBuf       = 106
	nvspSendRNDISPacket     = 107
	nvspSendRNDISComplete   = 108
	nvspSendNDISConfig      = 125
	nvspSwitchDataPath      = 129
	nvspOIDQueryEx          = 131
	nvspSubchannel          = 133
	nvspSendIndirectionTbl  = 134
)

// NVSP status values (§7.2).
const (
	nvspStatusNone        = 0
	nvspStatusSuccess     = 1
	nvspStatusFailure     = 2
	nvspStatusInvalidRNDS = 5
)

// NVSP message sizes (§7.2): the host pads what it sends to the size of the
// negotiated version's union.
const (
	nvspSizeV1  = 0x1C
	nvspSizeV61 = 0x28
)

// Field offsets (§7.3).
const (
	offNVSPType = 0

	offInitMin = 4
	offInitMax = 8

	offInitCmplVersion = 4
	offInitCmplMaxMDL  = 8
	offInitCmplStatus  = 12

	offNDISVerMajor = 4
	offNDISVerMinor = 8

	offBufGPADL = 4 // SEND_RECEIVE_BUFFER and SEND_SEND_BUFFER
	offBufID    = 8

	offRecvCmplStatus     = 4
	offRecvCmplSections   = 8
	offRecvCmplOffset     = 12
	offRecvCmplSubSize    = 16
	offRecvCmplSubCount   = 20
	offRecvCmplEndOffset  = 24
	sizeRecvBufComplete   = 28
	offSendCmplStatus     = 4
	offSendCmplSectionSz  = 8
	offRevokeID           = 4
	offRNDISChannelType   = 4
	offRNDISSectionIndex  = 8
	offRNDISSectionSize   = 12
	sizeSendRNDISPacket   = 16
	offRNDISCmplStatus    = 4
	offNDISConfigMTU      = 4
	offNDISConfigCaps     = 12
	sizeNDISConfig        = 20
	offSubchanOp          = 4
	offSubchanCount       = 8
	offSubchanCmplStatus  = 4
	offSubchanCmplCount   = 8
	offIndirCount         = 4
	offIndirOffset        = 8
	offIndirTable         = 12 // where this host puts the table (OpenVMM does the same)
	indirectionEntries    = 16
	sizeIndirectionTable  = offIndirTable + 4*indirectionEntries
	subchanOpAllocate     = 1
	sectionIndexNone      = 0xFFFFFFFF
	channelTypeData       = 0
	channelTypeControl    = 1
	initMaxMDLChainLength = 34 // what OpenVMM reports
	// initCmplVersionUnused is INIT_COMPLETE's deprecated version field for
	// every version but 1 (OpenVMM's value).
	initCmplVersionUnused = 0xFFFFFFFF
)

// ErrMalformed is wrapped by every error about a malformed guest message.
var ErrMalformed = errors.New("netvsp: malformed guest message")

// nvspMsg is a decoded guest→host NVSP message: Type plus the fields that
// message carries (unused fields are zero).
type nvspMsg struct {
	Type uint32
	// INIT: A = min version, B = max version.
	// SEND_NDIS_VERSION: A = major, B = minor.
	// SEND_RECEIVE_BUFFER / SEND_SEND_BUFFER: A = GPADL id, ID = buffer id.
	// REVOKE_*: ID = buffer id.
	// SEND_RNDIS_PACKET: A = channel type, B = section index, C = bytes used.
	// SEND_RNDIS_PACKET_COMPLETE: A = status.
	// SEND_NDIS_CONFIG: A = MTU, Caps = capabilities.
	// SUBCHANNEL: A = operation, B = count.
	// SWITCH_DATA_PATH: A = data path.
	A, B, C uint32
	ID      uint16
	Caps    uint64
}

// nvspMinSize is the smallest payload for each guest message type: the end
// of its last field.
func nvspMinSize(typ uint32) (int, bool) {
	switch typ {
	case nvspInit:
		return offInitMax + 4, true
	case nvspSendNDISVersion:
		return offNDISVerMinor + 4, true
	case nvspSendRecvBuf, nvspSendSendBuf:
		return offBufID + 2, true
	case nvspRevokeRecvBuf, nvspRevokeSendBuf:
		return offRevokeID + 2, true
	case nvspSendRNDISPacket:
		return sizeSendRNDISPacket, true
	case nvspSendRNDISComplete:
		return offRNDISCmplStatus + 4, true
	case nvspSendNDISConfig:
		return sizeNDISConfig, true
	case nvspSubchannel:
		return offSubchanCount + 4, true
	case nvspSwitchDataPath:
		return 8, true
	}
	return 0, false
}

// parseNVSP decodes one guest→host NVSP message (§7.3). p is a private copy
// of the packet payload.
func parseNVSP(p []byte) (nvspMsg, error) {
	var m nvspMsg
	if len(p) < 4 {
		return m, fmt.Errorf("%w: NVSP message of %d bytes", ErrMalformed, len(p))
	}
	m.Type = le.Uint32(p[offNVSPType:])
	need, ok := nvspMinSize(m.Type)
	if !ok {
		return m, fmt.Errorf("%w: NVSP message type %d", ErrMalformed, m.Type)
	}
	if len(p) < need {
		return m, fmt.Errorf("%w: NVSP message type %d of %d bytes, want %d", ErrMalformed, m.Type, len(p), need)
	}
	switch m.Type {
	case nvspInit:
		m.A, m.B = le.Uint32(p[offInitMin:]), le.Uint32(p[offInitMax:])
	case nvspSendNDISVersion:
		m.A, m.B = le.Uint32(p[offNDISVerMajor:]), le.Uint32(p[offNDISVerMinor:])
	case nvspSendRecvBuf, nvspSendSendBuf:
		m.A, m.ID = le.Uint32(p[offBufGPADL:]), le.Uint16(p[offBufID:])
	case nvspRevokeRecvBuf, nvspRevokeSendBuf:
		m.ID = le.Uint16(p[offRevokeID:])
	case nvspSendRNDISPacket:
		m.A = le.Uint32(p[offRNDISChannelType:])
		m.B = le.Uint32(p[offRNDISSectionIndex:])
		m.C = le.Uint32(p[offRNDISSectionSize:])
	case nvspSendRNDISComplete:
		m.A = le.Uint32(p[offRNDISCmplStatus:])
	case nvspSendNDISConfig:
		m.A, m.Caps = le.Uint32(p[offNDISConfigMTU:]), le.Uint64(p[offNDISConfigCaps:])
	case nvspSubchannel:
		m.A, m.B = le.Uint32(p[offSubchanOp:]), le.Uint32(p[offSubchanCount:])
	case nvspSwitchDataPath:
		m.A = le.Uint32(p[4:])
	}
	return m, nil
}

var le = binary.LittleEndian

// The encoders below write host→guest NVSP messages into b, which must be
// at least the negotiated message size and is zeroed first; they return the
// message length.

func nvspPad(n, size int) int { return max(n, size) }

func encodeInitComplete(b []byte, size int, version, status uint32) int {
	n := nvspPad(offInitCmplStatus+4, size)
	clear(b[:n])
	le.PutUint32(b[offNVSPType:], nvspInitComplete)
	le.PutUint32(b[offInitCmplVersion:], version)
	le.PutUint32(b[offInitCmplMaxMDL:], initMaxMDLChainLength)
	le.PutUint32(b[offInitCmplStatus:], status)
	return n
}

func encodeRecvBufComplete(b []byte, size int, status, subSize, subCount uint32) int {
	n := nvspPad(sizeRecvBufComplete, size)
	clear(b[:n])
	le.PutUint32(b[offNVSPType:], nvspSendRecvBufComplete)
	le.PutUint32(b[offRecvCmplStatus:], status)
	if status == nvspStatusSuccess {
		le.PutUint32(b[offRecvCmplSections:], 1)
		le.PutUint32(b[offRecvCmplOffset:], 0)
		le.PutUint32(b[offRecvCmplSubSize:], subSize)
		le.PutUint32(b[offRecvCmplSubCount:], subCount)
		le.PutUint32(b[offRecvCmplEndOffset:], subSize*subCount)
	}
	return n
}

func encodeSendBufComplete(b []byte, size int, status, sectionSize uint32) int {
	n := nvspPad(offSendCmplSectionSz+4, size)
	clear(b[:n])
	le.PutUint32(b[offNVSPType:], nvspSendSendBufComplete)
	le.PutUint32(b[offSendCmplStatus:], status)
	le.PutUint32(b[offSendCmplSectionSz:], sectionSize)
	return n
}

func encodeRNDISPacketComplete(b []byte, size int, status uint32) int {
	n := nvspPad(offRNDISCmplStatus+4, size)
	clear(b[:n])
	le.PutUint32(b[offNVSPType:], nvspSendRNDISComplete)
	le.PutUint32(b[offRNDISCmplStatus:], status)
	return n
}

// encodeSendRNDISPacket is the NVSP 107 payload of a host→guest
// transfer-page packet (§7.5): not in a send-buffer section.
func encodeSendRNDISPacket(b []byte, size int, channelType uint32) int {
	n := nvspPad(sizeSendRNDISPacket, size)
	clear(b[:n])
	le.PutUint32(b[offNVSPType:], nvspSendRNDISPacket)
	le.PutUint32(b[offRNDISChannelType:], channelType)
	le.PutUint32(b[offRNDISSectionIndex:], sectionIndexNone)
	le.PutUint32(b[offRNDISSectionSize:], 0)
	return n
}

func encodeSubchannelComplete(b []byte, size int, status, count uint32) int {
	n := nvspPad(offSubchanCmplCount+4, size)
	clear(b[:n])
	le.PutUint32(b[offNVSPType:], nvspSubchannel)
	le.PutUint32(b[offSubchanCmplStatus:], status)
	le.PutUint32(b[offSubchanCmplCount:], count)
	return n
}

// encodeIndirectionTable writes SEND_INDIRECTION_TABLE (§7.3): 16 entries,
// entry i = i mod channels, the table right after the fixed fields.
func encodeIndirectionTable(b []byte, channels uint32) int {
	clear(b[:sizeIndirectionTable])
	le.PutUint32(b[offNVSPType:], nvspSendIndirectionTbl)
	le.PutUint32(b[offIndirCount:], indirectionEntries)
	le.PutUint32(b[offIndirOffset:], offIndirTable)
	for i := uint32(0); i < indirectionEntries; i++ {
		le.PutUint32(b[offIndirTable+4*int(i):], i%channels)
	}
	return sizeIndirectionTable
}
