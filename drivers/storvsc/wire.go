package storvsc

import (
	"encoding/binary"
	"fmt"

	"github.com/gohv/gohv/drivers/scsi"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// This file is the VSTOR wire format (docs/hyperv-protocol.md §6): named
// offsets, constants and encode/decode functions. The state machines that
// use them live in controller.go and queue.go.

// Device classes the driver binds (docs/hyperv-protocol.md §5).
var (
	// SCSIClass is the synthetic SCSI controller.
	SCSIClass = chanmsg.ClassSCSI
	// IDEClass is the IDE accelerator (Generation 1 VMs).
	IDEClass = chanmsg.ClassIDE
)

// Version is a VSTOR protocol version, major << 8 | minor (§6.1).
type Version uint16

// Protocol versions (§6.1).
const (
	VersionWin6  Version = 0x0200
	VersionWin7  Version = 0x0402
	VersionWin8  Version = 0x0501
	VersionWin81 Version = 0x0600
	VersionWin10 Version = 0x0602
)

// DefaultVersions is the order in which Attach offers versions: newest
// first, down to the WS2008 protocol (FreeBSD's list, §6.1).
var DefaultVersions = []Version{VersionWin10, VersionWin81, VersionWin8, VersionWin7, VersionWin6}

func (v Version) String() string { return fmt.Sprintf("%d.%d", v>>8, v&0xFF) }

// win8 reports whether v uses the Win8 vmscsi_request extension.
func (v Version) win8() bool { return v >= VersionWin8 }

// packetSize is the vstor_packet length sent with version v (§6.3).
func (v Version) packetSize() int {
	if v.win8() {
		return packetSizeWin8
	}
	return packetSizePreWin8
}

// senseSize is the sense buffer length announced with version v (§6.3).
func (v Version) senseSize() int {
	if v.win8() {
		return senseSizeWin8
	}
	return senseSizePreWin8
}

// Operation is vstor_packet.operation (§6.2).
type Operation uint32

// Operations (§6.2).
const (
	OpCompleteIO        Operation = 1
	OpRemoveDevice      Operation = 2
	OpExecuteSRB        Operation = 3
	OpResetLUN          Operation = 4
	OpResetAdapter      Operation = 5
	OpResetBus          Operation = 6
	OpBeginInit         Operation = 7
	OpEndInit           Operation = 8
	OpQueryVersion      Operation = 9
	OpQueryProperties   Operation = 10
	OpEnumerateBus      Operation = 11
	OpFCHBAData         Operation = 12
	OpCreateSubChannels Operation = 13
	OpEventNotification Operation = 14
)

var opNames = [...]string{"", "COMPLETE_IO", "REMOVE_DEVICE", "EXECUTE_SRB", "RESET_LUN",
	"RESET_ADAPTER", "RESET_BUS", "BEGIN_INITIALIZATION", "END_INITIALIZATION",
	"QUERY_PROTOCOL_VERSION", "QUERY_PROPERTIES", "ENUMERATE_BUS", "FC_HBA_DATA",
	"CREATE_SUB_CHANNELS", "EVENT_NOTIFICATION"}

func (o Operation) String() string {
	if o > 0 && int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("operation(%d)", uint32(o))
}

// vstor_packet offsets (§6.3).
const (
	offOperation = 0  // u32
	offFlags     = 4  // u32, bit 0 REQUEST_COMPLETION
	offStatus    = 8  // u32 NTSTATUS
	offUnion     = 12 // start of the union

	packetSizeWin8    = 0x40
	packetSizePreWin8 = 48
	// minCompletionSize is the shortest completion accepted: the pre-Win8
	// packet, which holds every field a completion carries.
	minCompletionSize = packetSizePreWin8

	flagRequestCompletion = 1
)

// vmscsi_request offsets, absolute within the packet (§6.3: union offset
// 12 plus the table's relative offset).
const (
	offSRBLength    = offUnion + 0  // u16: 0x34 Win8+, 0x24 before
	offSRBStatus    = offUnion + 2  // u8
	offSCSIStatus   = offUnion + 3  // u8
	offPort         = offUnion + 4  // u8
	offPathID       = offUnion + 5  // u8
	offTargetID     = offUnion + 6  // u8
	offLUN          = offUnion + 7  // u8
	offCDBLength    = offUnion + 8  // u8
	offSenseLength  = offUnion + 9  // u8
	offDataIn       = offUnion + 10 // u8: 0 write, 1 read, 2 none
	offDataLength   = offUnion + 12 // u32
	offCDB          = offUnion + 16 // 16 bytes in
	offSense        = offUnion + 16 // 20 bytes out (same union)
	offQueueTag     = offUnion + 38 // u8 (Win8 extension from +36)
	offQueueAction  = offUnion + 39 // u8
	offSRBFlags     = offUnion + 40 // u32
	offTimeoutValue = offUnion + 44 // u32 seconds
	offQueueSortKey = offUnion + 48 // u32

	srbLengthWin8    = 0x34
	srbLengthPreWin8 = 0x24
	senseSizeWin8    = 0x14
	senseSizePreWin8 = 0x12
	cdbSpace         = 16
)

// Other union members, absolute offsets (§6.3).
const (
	offVersionMajorMinor = offUnion + 0  // u16
	offVersionRevision   = offUnion + 2  // u16
	offPropMaxSubChans   = offUnion + 4  // u16
	offPropFlags         = offUnion + 8  // u32
	offPropMaxTransfer   = offUnion + 12 // u32
	offSubChannelCount   = offUnion + 0  // u16

	propFlagMultiChannel = 0x1
)

// data_in values (§6.3).
const (
	dataOut  = 0
	dataIn   = 1
	dataNone = 2
)

// SRB flags (§6.5).
const (
	srbFlagQueueActionEnable = 0x02
	srbFlagDisableSynchXfer  = 0x08
	srbFlagDataIn            = 0x40
	srbFlagDataOut           = 0x80
	srbFlagNoQueueFreeze     = 0x100
	queueTagUntagged         = 0xFF
	queueActionSimple        = 0x20
)

// SRB status byte (§6.5): bits 5:0 code, bit 6 queue frozen, bit 7
// autosense valid.
const (
	srbStatusMask           = 0x3F
	srbStatusQueueFrozen    = 0x40
	srbStatusAutosenseValid = 0x80

	SRBPending       = 0x00
	SRBSuccess       = 0x01
	SRBAborted       = 0x02
	SRBError         = 0x04
	SRBBusy          = 0x05
	SRBInvalidReq    = 0x06
	SRBInvalidPath   = 0x07
	SRBNoDevice      = 0x08
	SRBTimeout       = 0x09
	SRBSelTimeout    = 0x0A
	SRBCmdTimeout    = 0x0B
	SRBBusReset      = 0x0E
	SRBDataOverrun   = 0x12
	SRBFlushed       = 0x16
	SRBInvalidLUN    = 0x20
	SRBInvalidTarget = 0x21
	SRBBadFunction   = 0x22
)

// NTSTATUS values in vstor_packet.status (§6.5).
const (
	statusSuccess          = 0
	statusRevisionMismatch = 0xC0000059
)

// IDE-accelerator offer user data (§6.3, last paragraph).
const (
	offIDEPathID   = 2 // u8
	offIDETargetID = 3 // u8
	offIDEFlags    = 8 // u32
	ideFlagIDE     = 0x2
)

// addr is a SCSI address on the controller.
type addr struct{ path, target, lun uint8 }

func (a addr) String() string { return fmt.Sprintf("%d:%d:%d", a.path, a.target, a.lun) }

// ideAddress reads the path and target of an IDE-accelerator offer's user
// data (§6.3).
func ideAddress(user []byte) (path, target uint8, isIDE bool) {
	if len(user) < offIDEFlags+4 {
		return 0, 0, false
	}
	return user[offIDEPathID], user[offIDETargetID], binary.LittleEndian.Uint32(user[offIDEFlags:])&ideFlagIDE != 0
}

// encodeOp writes a non-SRB vstor_packet (init, reset, sub-channels) of
// size bytes into dst and returns dst[:size].
func encodeOp(dst []byte, size int, op Operation) []byte {
	p := dst[:size]
	clear(p)
	binary.LittleEndian.PutUint32(p[offOperation:], uint32(op))
	binary.LittleEndian.PutUint32(p[offFlags:], flagRequestCompletion)
	return p
}

// encodeQueryVersion writes QUERY_PROTOCOL_VERSION for v.
func encodeQueryVersion(dst []byte, size int, v Version) []byte {
	p := encodeOp(dst, size, OpQueryVersion)
	binary.LittleEndian.PutUint16(p[offVersionMajorMinor:], uint16(v))
	binary.LittleEndian.PutUint16(p[offVersionRevision:], 0)
	return p
}

// encodeSubChannels writes CREATE_SUB_CHANNELS for n channels.
func encodeSubChannels(dst []byte, size int, n uint16) []byte {
	p := encodeOp(dst, size, OpCreateSubChannels)
	binary.LittleEndian.PutUint16(p[offSubChannelCount:], n)
	return p
}

// srbRequest is what an EXECUTE_SRB carries.
type srbRequest struct {
	addr
	port    uint8
	cdb     []byte // ≤ 16 bytes
	dataIn  uint8  // dataOut, dataIn, dataNone
	dataLen uint32
	timeout uint32 // seconds
}

// encodeSRB writes an EXECUTE_SRB vstor_packet for version v into dst
// (len ≥ v.packetSize()) and returns the packet. It does not allocate.
func encodeSRB(dst []byte, v Version, r *srbRequest) []byte {
	p := encodeOp(dst, v.packetSize(), OpExecuteSRB)
	if v.win8() {
		binary.LittleEndian.PutUint16(p[offSRBLength:], srbLengthWin8)
	} else {
		binary.LittleEndian.PutUint16(p[offSRBLength:], srbLengthPreWin8)
	}
	p[offPort] = r.port
	p[offPathID] = r.path
	p[offTargetID] = r.target
	p[offLUN] = r.lun
	p[offCDBLength] = uint8(copy(p[offCDB:offCDB+cdbSpace], r.cdb))
	p[offSenseLength] = uint8(v.senseSize())
	p[offDataIn] = r.dataIn
	binary.LittleEndian.PutUint32(p[offDataLength:], r.dataLen)
	if v.win8() {
		flags := uint32(srbFlagDisableSynchXfer)
		switch r.dataIn {
		case dataIn:
			flags |= srbFlagDataIn
		case dataOut:
			flags |= srbFlagDataOut
		}
		p[offQueueTag] = queueTagUntagged
		p[offQueueAction] = queueActionSimple
		binary.LittleEndian.PutUint32(p[offSRBFlags:], flags)
		binary.LittleEndian.PutUint32(p[offTimeoutValue:], r.timeout)
	}
	return p
}

// encodeReset writes RESET_LUN or RESET_BUS addressed to a.
func encodeReset(dst []byte, v Version, op Operation, a addr) []byte {
	p := encodeOp(dst, v.packetSize(), op)
	p[offPathID] = a.path
	p[offTargetID] = a.target
	p[offLUN] = a.lun
	return p
}

// completion is a decoded host packet (completion or unsolicited).
type completion struct {
	op         Operation
	status     uint32
	srbStatus  uint8 // the whole byte, flags included
	scsiStatus scsi.Status
	senseLen   int
	sense      [senseSizeWin8]byte
	dataLen    uint32
	// QUERY_PROPERTIES fields.
	maxSubChannels uint16
	propFlags      uint32
	maxTransfer    uint32
	// QUERY_PROTOCOL_VERSION echo.
	version uint16
}

// srbCode is the SRB status code without its flag bits.
func (c *completion) srbCode() uint8 { return c.srbStatus & srbStatusMask }

// autosense reports whether sense data is valid.
func (c *completion) autosense() bool {
	return c.srbStatus&srbStatusAutosenseValid != 0 && c.senseLen > 0
}

// parseCompletion decodes a vstor_packet from host bytes (already copied
// out of the ring by the channel). It validates every length it uses.
func parseCompletion(b []byte, out *completion) error {
	if len(b) < minCompletionSize {
		return &ProtocolError{Reason: "vstor packet shorter than 48 bytes", Len: len(b)}
	}
	*out = completion{
		op:             Operation(binary.LittleEndian.Uint32(b[offOperation:])),
		status:         binary.LittleEndian.Uint32(b[offStatus:]),
		srbStatus:      b[offSRBStatus],
		scsiStatus:     scsi.Status(b[offSCSIStatus]),
		senseLen:       int(b[offSenseLength]),
		dataLen:        binary.LittleEndian.Uint32(b[offDataLength:]),
		maxSubChannels: binary.LittleEndian.Uint16(b[offPropMaxSubChans:]),
		propFlags:      binary.LittleEndian.Uint32(b[offPropFlags:]),
		maxTransfer:    binary.LittleEndian.Uint32(b[offPropMaxTransfer:]),
		version:        binary.LittleEndian.Uint16(b[offVersionMajorMinor:]),
	}
	if out.op == OpCompleteIO && out.srbStatus&srbStatusAutosenseValid != 0 {
		if out.senseLen > senseSizeWin8 {
			return &ProtocolError{Reason: "sense length exceeds the sense buffer", Len: len(b)}
		}
		copy(out.sense[:], b[offSense:offSense+out.senseLen])
	} else {
		out.senseLen = 0
	}
	return nil
}

// GPA-direct header for one range (docs/hyperv-protocol.md §4.5), as
// offsets within the type-specific header (packet offset − 16).
const (
	offGPAReserved   = 0  // u32
	offGPARangeCount = 4  // u32
	offGPAByteCount  = 8  // u32
	offGPAByteOffset = 12 // u32
	offGPAPFNs       = 16 // u64 × n
	pfnSize          = 8
)

// gpaHeaderSize is the header length for n PFNs.
func gpaHeaderSize(n int) int { return offGPAPFNs + n*pfnSize }

// encodeGPAHeader writes a one-range GPA-direct header for byteCount bytes
// starting byteOffset into the first of npfn consecutive pages from pfn,
// and returns dst[:gpaHeaderSize(npfn)].
func encodeGPAHeader(dst []byte, byteCount, byteOffset uint32, pfn uint64, npfn int) []byte {
	h := dst[:gpaHeaderSize(npfn)]
	binary.LittleEndian.PutUint32(h[offGPAReserved:], 0)
	binary.LittleEndian.PutUint32(h[offGPARangeCount:], 1)
	binary.LittleEndian.PutUint32(h[offGPAByteCount:], byteCount)
	binary.LittleEndian.PutUint32(h[offGPAByteOffset:], byteOffset)
	for i := range npfn {
		binary.LittleEndian.PutUint64(h[offGPAPFNs+i*pfnSize:], pfn+uint64(i))
	}
	return h
}
