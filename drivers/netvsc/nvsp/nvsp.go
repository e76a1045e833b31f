package nvsp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is an NVSP protocol version as sent in INIT (§7.1).
type Version uint32

// NVSP versions (docs/hyperv-protocol.md §7.1).
const (
	Version1  Version = 0x00000002
	Version2  Version = 0x00030002
	Version4  Version = 0x00040000
	Version5  Version = 0x00050000
	Version6  Version = 0x00060000
	Version61 Version = 0x00060001
)

// Versions is the negotiation order, newest first (§7.1).
var Versions = [...]Version{Version61, Version6, Version5, Version4, Version2, Version1}

func (v Version) String() string {
	switch v {
	case Version1:
		return "1"
	case Version2:
		return "2"
	case Version4:
		return "4"
	case Version5:
		return "5"
	case Version6:
		return "6"
	case Version61:
		return "61"
	}
	return fmt.Sprintf("%#x", uint32(v))
}

// NDISVersion returns the NDIS version (major, minor) the guest announces
// with SEND_NDIS_VERSION under v: 6.1 up to NVSP 4, 6.30 from NVSP 5 (§7.1,
// §7.4 step 3).
func (v Version) NDISVersion() (major, minor uint32) {
	if v <= Version4 {
		return 6, 1
	}
	return 6, 30
}

// MaxReceiveBuffer is the largest receive buffer a host accepts under v:
// 15 MiB for NVSP 1 and 2, 31 MiB from NVSP 4 (§7.4 step 4).
func (v Version) MaxReceiveBuffer() int {
	if v <= Version2 {
		return 15 << 20
	}
	return 31 << 20
}

// MaxSendBuffer is the largest send buffer a host accepts (§7.4 step 5).
const MaxSendBuffer = 15 << 20

// MessageType is the u32 at offset 0 of every NVSP message (§7.2).
type MessageType uint32

// NVSP message types (§7.2).
const (
	TypeInit                      MessageType = 1
	TypeInitComplete              MessageType = 2
	TypeSendNDISVersion           MessageType = 100
	TypeSendReceiveBuffer         MessageType = 101
	TypeSendReceiveBufferComplete MessageType = 102
	TypeRevokeReceiveBuffer       MessageType = 103
	TypeSendSendBuffer            MessageType = 104
	TypeSendSendBufferComplete    MessageType = 105
	TypeRevokeSendBuffer          MessageType = 106
	TypeSendRNDISPacket           MessageType = 107
	TypeSendRNDISPacketComplete   MessageType = 108
	TypeSendNDISConfig            MessageType = 125
	TypeSendVFAssociation         MessageType = 128
	TypeSwitchDataPath            MessageType = 129
	TypeSubChannel                MessageType = 133
	TypeSendIndirectionTable      MessageType = 134
)

// Status values (§7.2).
const (
	StatusNone               uint32 = 0
	StatusSuccess            uint32 = 1
	StatusFailure            uint32 = 2
	StatusProtocolTooNew     uint32 = 3
	StatusProtocolTooOld     uint32 = 4
	StatusInvalidRNDISPacket uint32 = 5
	StatusBusy               uint32 = 6
	StatusUnsupported        uint32 = 7
)

// MessageSize is the size of every NVSP message the guest sends: the v6.1
// union size, as Linux sends (§7.2). Bytes past a message's fields are 0.
const MessageSize = 40

// ChannelType of SEND_RNDIS_PACKET (§7.3).
const (
	ChannelData    uint32 = 0
	ChannelControl uint32 = 1
)

// NoSection is the send-buffer section index of a packet not in the send
// buffer (§7.3).
const NoSection uint32 = 0xFFFFFFFF

// Capability bits of SEND_NDIS_CONFIG @12 (§7.3).
const (
	CapVMQ           uint64 = 1 << 0
	CapChimney       uint64 = 1 << 1
	CapSRIOV         uint64 = 1 << 2
	CapIEEE8021Q     uint64 = 1 << 3
	CapCorrelationID uint64 = 1 << 4
	CapTeaming       uint64 = 1 << 5
	CapVirtualSubnet uint64 = 1 << 6
	CapRSC           uint64 = 1 << 7
)

// SubChannelAllocate is SUBCHANNEL's op 1 (§7.3).
const SubChannelAllocate uint32 = 1

// IndirectionTableSize is the number of entries of the send indirection
// table (§7.3, §7.4 step 7).
const IndirectionTableSize = 16

// Field offsets from the start of a message (§7.3).
const (
	offType = 0
	offArg1 = 4 // first field after the type
	offArg2 = 8

	// INIT_COMPLETE.
	offInitCompleteVersion = 4
	offInitCompleteMaxMDL  = 8
	offInitCompleteStatus  = 12
	initCompleteSize       = 16

	// SEND_RECEIVE_BUFFER_COMPLETE.
	offRecvBufStatus   = 4
	offRecvBufSections = 8
	offRecvBufSection0 = 12
	recvBufSectionSize = 16 // offset, sub-allocation size, count, end offset

	// SEND_SEND_BUFFER_COMPLETE.
	offSendBufStatus      = 4
	offSendBufSectionSize = 8
	sendBufCompleteSize   = 12

	// SEND_NDIS_CONFIG.
	offConfigMTU  = 4
	offConfigCaps = 12

	// SEND_RNDIS_PACKET.
	offRNDISChannelType = 4
	offRNDISSection     = 8
	offRNDISSectionSize = 12
	rndisPacketSize     = 16

	// SEND_RNDIS_PACKET_COMPLETE.
	offRNDISCompleteStatus = 4
	rndisCompleteSize      = 8

	// SUBCHANNEL request and completion.
	offSubOp            = 4
	offSubCount         = 8
	offSubCompleteState = 4
	offSubCompleteCount = 8
	subCompleteSize     = 12

	// SEND_INDIRECTION_TABLE.
	offTableCount  = 4
	offTableOffset = 8
	tableHeadSize  = 12
	// tableOffsetV6 is where hosts with NVSP ≤ 6 really put the table
	// when their offset field is wrong: after the 4-byte type and the
	// 36-byte v6 union (§7.3; Linux drivers/net/hyperv/netvsc.c).
	tableOffsetV6 = 40

	// SEND_VF_ASSOCIATION.
	vfAssociationSize = 12
)

// Errors returned by the decoders; branch on them with errors.Is.
var (
	// ErrShort: the message is shorter than its fixed fields.
	ErrShort = errors.New("nvsp: message too short")
	// ErrType: the message is not of the type the decoder reads.
	ErrType = errors.New("nvsp: unexpected message type")
	// ErrInvalid: a field is out of range.
	ErrInvalid = errors.New("nvsp: invalid field")
)

var le = binary.LittleEndian

func put(b []byte, t MessageType, fields ...uint32) []byte {
	b = b[:MessageSize]
	clear(b)
	le.PutUint32(b[offType:], uint32(t))
	for i, f := range fields {
		le.PutUint32(b[offArg1+4*i:], f)
	}
	return b
}

// Each Put function below writes one complete message into b (len(b) ≥
// MessageSize) and returns b[:MessageSize].

// PutInit is INIT with min = max = v (§7.4 step 1).
func PutInit(b []byte, v Version) []byte { return put(b, TypeInit, uint32(v), uint32(v)) }

// PutNDISConfig is SEND_NDIS_CONFIG: mtu includes the 14-byte Ethernet
// header (§7.3).
func PutNDISConfig(b []byte, mtu uint32, caps uint64) []byte {
	b = put(b, TypeSendNDISConfig, mtu)
	le.PutUint64(b[offConfigCaps:], caps)
	return b
}

// PutNDISVersion is SEND_NDIS_VERSION.
func PutNDISVersion(b []byte, major, minor uint32) []byte {
	return put(b, TypeSendNDISVersion, major, minor)
}

// PutSendReceiveBuffer is SEND_RECEIVE_BUFFER.
func PutSendReceiveBuffer(b []byte, gpadl uint32, id uint16) []byte {
	return put(b, TypeSendReceiveBuffer, gpadl, uint32(id))
}

// PutSendSendBuffer is SEND_SEND_BUFFER.
func PutSendSendBuffer(b []byte, gpadl uint32, id uint16) []byte {
	return put(b, TypeSendSendBuffer, gpadl, uint32(id))
}

// PutRevokeReceiveBuffer is REVOKE_RECEIVE_BUFFER.
func PutRevokeReceiveBuffer(b []byte, id uint16) []byte {
	return put(b, TypeRevokeReceiveBuffer, uint32(id))
}

// PutRevokeSendBuffer is REVOKE_SEND_BUFFER.
func PutRevokeSendBuffer(b []byte, id uint16) []byte {
	return put(b, TypeRevokeSendBuffer, uint32(id))
}

// PutRNDISPacket is SEND_RNDIS_PACKET: section is a send-buffer section
// index or NoSection, size the bytes used in it (0 with NoSection).
func PutRNDISPacket(b []byte, channelType, section, size uint32) []byte {
	return put(b, TypeSendRNDISPacket, channelType, section, size)
}

// PutRNDISPacketComplete is SEND_RNDIS_PACKET_COMPLETE, the guest's
// completion of a receive (§7.5).
func PutRNDISPacketComplete(b []byte, status uint32) []byte {
	return put(b, TypeSendRNDISPacketComplete, status)
}

// PutSubChannelRequest is SUBCHANNEL with op allocate and count n.
func PutSubChannelRequest(b []byte, n uint32) []byte {
	return put(b, TypeSubChannel, SubChannelAllocate, n)
}

// Type returns the message type of b.
func Type(b []byte) (MessageType, error) {
	if len(b) < 4 {
		return 0, fmt.Errorf("%w: %d bytes", ErrShort, len(b))
	}
	return MessageType(le.Uint32(b[offType:])), nil
}

func check(b []byte, t MessageType, size int) error {
	got, err := Type(b)
	if err != nil {
		return err
	}
	if got != t {
		return fmt.Errorf("%w: %d, want %d", ErrType, got, t)
	}
	if len(b) < size {
		return fmt.Errorf("%w: type %d has %d bytes, need %d", ErrShort, t, len(b), size)
	}
	return nil
}

// InitComplete is INIT_COMPLETE (§7.3).
type InitComplete struct {
	Version     Version // deprecated field; not to be trusted
	MaxMDLChain uint32
	Status      uint32
}

// ParseInitComplete decodes INIT_COMPLETE.
func ParseInitComplete(b []byte) (InitComplete, error) {
	if err := check(b, TypeInitComplete, initCompleteSize); err != nil {
		return InitComplete{}, err
	}
	return InitComplete{
		Version:     Version(le.Uint32(b[offInitCompleteVersion:])),
		MaxMDLChain: le.Uint32(b[offInitCompleteMaxMDL:]),
		Status:      le.Uint32(b[offInitCompleteStatus:]),
	}, nil
}

// ReceiveSection is the one section of the receive buffer the host
// describes in SEND_RECEIVE_BUFFER_COMPLETE (§7.3).
type ReceiveSection struct {
	Offset, SubAllocSize, SubAllocCount, EndOffset uint32
}

// ParseReceiveBufferComplete decodes SEND_RECEIVE_BUFFER_COMPLETE and, on
// success status, validates its section against a buffer of bufSize
// bytes: exactly one section, offset 0, sub-allocations that fit.
func ParseReceiveBufferComplete(b []byte, bufSize int) (status uint32, s ReceiveSection, err error) {
	if err := check(b, TypeSendReceiveBufferComplete, offRecvBufSections+4); err != nil {
		return 0, s, err
	}
	status = le.Uint32(b[offRecvBufStatus:])
	if status != StatusSuccess {
		return status, s, nil
	}
	if n := le.Uint32(b[offRecvBufSections:]); n != 1 {
		return status, s, fmt.Errorf("%w: %d receive sections, want 1", ErrInvalid, n)
	}
	if len(b) < offRecvBufSection0+recvBufSectionSize {
		return status, s, fmt.Errorf("%w: receive section cut off", ErrShort)
	}
	p := b[offRecvBufSection0:]
	s = ReceiveSection{le.Uint32(p[0:]), le.Uint32(p[4:]), le.Uint32(p[8:]), le.Uint32(p[12:])}
	total := uint64(s.SubAllocSize) * uint64(s.SubAllocCount)
	switch {
	case s.Offset != 0:
		err = fmt.Errorf("%w: receive section offset %d, want 0", ErrInvalid, s.Offset)
	case s.SubAllocSize == 0 || s.SubAllocCount == 0:
		err = fmt.Errorf("%w: empty receive section", ErrInvalid)
	case total > uint64(bufSize) || uint64(s.EndOffset) > uint64(bufSize) || s.EndOffset < s.Offset:
		err = fmt.Errorf("%w: receive section %d×%d end %d exceeds the %d-byte buffer", ErrInvalid, s.SubAllocCount, s.SubAllocSize, s.EndOffset, bufSize)
	}
	return status, s, err
}

// ParseSendBufferComplete decodes SEND_SEND_BUFFER_COMPLETE; on success it
// checks the section size against a buffer of bufSize bytes.
func ParseSendBufferComplete(b []byte, bufSize int) (status, sectionSize uint32, err error) {
	if err := check(b, TypeSendSendBufferComplete, sendBufCompleteSize); err != nil {
		return 0, 0, err
	}
	status = le.Uint32(b[offSendBufStatus:])
	sectionSize = le.Uint32(b[offSendBufSectionSize:])
	if status == StatusSuccess && (sectionSize == 0 || uint64(sectionSize) > uint64(bufSize)) {
		return status, sectionSize, fmt.Errorf("%w: send section size %d for a %d-byte buffer", ErrInvalid, sectionSize, bufSize)
	}
	return status, sectionSize, nil
}

// RNDISPacket is SEND_RNDIS_PACKET as the host sends it with a receive.
type RNDISPacket struct {
	ChannelType, Section, SectionSize uint32
}

// ParseRNDISPacket decodes SEND_RNDIS_PACKET.
func ParseRNDISPacket(b []byte) (RNDISPacket, error) {
	if err := check(b, TypeSendRNDISPacket, rndisPacketSize); err != nil {
		return RNDISPacket{}, err
	}
	return RNDISPacket{le.Uint32(b[offRNDISChannelType:]), le.Uint32(b[offRNDISSection:]), le.Uint32(b[offRNDISSectionSize:])}, nil
}

// ParseRNDISPacketComplete decodes SEND_RNDIS_PACKET_COMPLETE, the host's
// completion of a send, and returns its status.
func ParseRNDISPacketComplete(b []byte) (uint32, error) {
	if err := check(b, TypeSendRNDISPacketComplete, rndisCompleteSize); err != nil {
		return 0, err
	}
	return le.Uint32(b[offRNDISCompleteStatus:]), nil
}

// ParseSubChannelComplete decodes the completion of SUBCHANNEL; on
// success the count must not exceed the requested one.
func ParseSubChannelComplete(b []byte, requested uint32) (status, count uint32, err error) {
	if err := check(b, TypeSubChannel, subCompleteSize); err != nil {
		return 0, 0, err
	}
	status, count = le.Uint32(b[offSubCompleteState:]), le.Uint32(b[offSubCompleteCount:])
	if status == StatusSuccess && count > requested {
		return status, count, fmt.Errorf("%w: host allocated %d sub-channels, %d requested", ErrInvalid, count, requested)
	}
	return status, count, nil
}

// ParseIndirectionTable decodes SEND_INDIRECTION_TABLE into tab. Hosts
// with NVSP ≤ 6 may report a wrong offset; when the message is long
// enough the table is then read at offset 40 (§7.3). Each entry must be a
// queue index below queues.
func ParseIndirectionTable(b []byte, v Version, queues int, tab *[IndirectionTableSize]uint32) error {
	if err := check(b, TypeSendIndirectionTable, tableHeadSize); err != nil {
		return err
	}
	count := le.Uint32(b[offTableCount:])
	if count != IndirectionTableSize {
		return fmt.Errorf("%w: indirection table of %d entries, want %d", ErrInvalid, count, IndirectionTableSize)
	}
	const tabBytes = IndirectionTableSize * 4
	off := uint64(le.Uint32(b[offTableOffset:]))
	if v <= Version6 && len(b) >= tableOffsetV6+tabBytes {
		off = tableOffsetV6
	}
	if off < tableHeadSize || off+tabBytes > uint64(len(b)) {
		return fmt.Errorf("%w: indirection table offset %d in a %d-byte message", ErrInvalid, off, len(b))
	}
	var t [IndirectionTableSize]uint32
	for i := range t {
		t[i] = le.Uint32(b[off+uint64(4*i):])
		if uint64(t[i]) >= uint64(queues) {
			return fmt.Errorf("%w: indirection entry %d = %d with %d queues", ErrInvalid, i, t[i], queues)
		}
	}
	*tab = t
	return nil
}

// ParseVFAssociation decodes SEND_VF_ASSOCIATION.
func ParseVFAssociation(b []byte) (allocated bool, serial uint32, err error) {
	if err := check(b, TypeSendVFAssociation, vfAssociationSize); err != nil {
		return false, 0, err
	}
	return le.Uint32(b[offArg1:]) != 0, le.Uint32(b[offArg2:]), nil
}
