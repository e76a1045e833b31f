package hv

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Hypercall codes, the control and result words, and the input blocks of
// HvPostMessage and HvSignalEvent (docs/hyperv-protocol.md §1.7, §1.8).

// CallCode is a hypercall code, control word bits 15:0.
type CallCode uint16

// Hypercall codes.
const (
	// CallNotifyLongSpinWait tells the hypervisor a spin lock has spun
	// CPUID(0x40000004).EBX times [L].
	CallNotifyLongSpinWait CallCode = 0x0008
	CallPostMessage        CallCode = 0x005C // docs/hyperv-protocol.md §1.8
	CallSignalEvent        CallCode = 0x005D // docs/hyperv-protocol.md §1.8
)

// Control word fields (docs/hyperv-protocol.md §1.7).
const (
	controlFast        uint64 = 1 << 16
	controlVarHdrPos          = 17 // bits 26:17
	controlVarHdrMask  uint64 = 0x3FF
	controlNested      uint64 = 1 << 31
	controlRepCountPos        = 32 // bits 43:32
	controlRepStartPos        = 48 // bits 59:48
	controlRepMask     uint64 = 0xFFF
	resultStatusMask   uint64 = 0xFFFF
	resultRepsDonePos         = 32 // bits 43:32
	resultRepsDoneMask uint64 = 0xFFF
	maxVarHeaderQwords        = 0x3FF
	maxRepCountOrStart        = 0xFFF
)

// Control is the hypercall input control word passed in RCX.
type Control struct {
	Code CallCode
	// Fast passes input in registers instead of a memory block.
	Fast bool
	// VarHeaderSize is the variable header size in 8-byte units (10 bits).
	VarHeaderSize uint16
	// Nested targets the L0 hypervisor.
	Nested bool
	// RepCount and RepStart are 12-bit rep counters.
	RepCount, RepStart uint16
}

// Encode returns the RCX value for c.
func (c Control) Encode() (uint64, error) {
	if c.VarHeaderSize > maxVarHeaderQwords || c.RepCount > maxRepCountOrStart || c.RepStart > maxRepCountOrStart {
		return 0, fmt.Errorf("%w: control word field too wide: %+v", ErrBadRegister, c)
	}
	v := uint64(c.Code) |
		uint64(c.VarHeaderSize)<<controlVarHdrPos |
		uint64(c.RepCount)<<controlRepCountPos |
		uint64(c.RepStart)<<controlRepStartPos
	if c.Fast {
		v |= controlFast
	}
	if c.Nested {
		v |= controlNested
	}
	return v, nil
}

// DecodeControl decodes an RCX value; a simulated host uses it. Reserved
// bits (30:27, 47:44, 63:60) are reported by ok = false, for which the
// hypervisor returns StatusInvalidHypercallInput.
func DecodeControl(v uint64) (c Control, ok bool) {
	c = Control{
		Code:          CallCode(v),
		Fast:          v&controlFast != 0,
		VarHeaderSize: uint16(v >> controlVarHdrPos & controlVarHdrMask),
		Nested:        v&controlNested != 0,
		RepCount:      uint16(v >> controlRepCountPos & controlRepMask),
		RepStart:      uint16(v >> controlRepStartPos & controlRepMask),
	}
	const reserved = 0xF<<27 | 0xF<<44 | 0xF<<60
	return c, v&reserved == 0
}

// Control words of the two VMBus hypercalls, precomputed for the hot path.
const (
	// PostMessageControl: memory-based HvPostMessage.
	PostMessageControl uint64 = 0x005C
	// SignalEventControl: memory-based HvSignalEvent (FreeBSD).
	SignalEventControl uint64 = 0x005D
	// SignalEventFastControl: fast HvSignalEvent, 0x005D | 1<<16 (Linux).
	SignalEventFastControl uint64 = 0x1005D
)

// Result is the hypercall result word returned in RAX.
type Result uint64

// Status returns bits 15:0.
func (r Result) Status() Status { return Status(uint64(r) & resultStatusMask) }

// RepsCompleted returns bits 43:32.
func (r Result) RepsCompleted() uint16 {
	return uint16(uint64(r) >> resultRepsDonePos & resultRepsDoneMask)
}

// MakeResult builds a result word; a simulated host uses it.
func MakeResult(s Status, repsCompleted uint16) Result {
	return Result(uint64(s) | uint64(repsCompleted)&resultRepsDoneMask<<resultRepsDonePos)
}

// HvPostMessage input block (docs/hyperv-protocol.md §1.8).
const (
	PostMessageInputSize      = 256
	postMessageConnIDOffset   = 0
	postMessageReservedOffset = 4
	postMessageTypeOffset     = 8
	postMessageSizeOffset     = 12
	postMessagePayloadOffset  = 16
	messageTypeHypervisorBit  = 1 << 31
	ConnectionIDMask          = 0x00FFFFFF // low 24 bits significant
)

// ValidPostMessageType reports whether t may be posted by a guest: non-zero
// with bit 31 clear (bit 31 marks hypervisor message types).
func ValidPostMessageType(t uint32) bool { return t != 0 && t&messageTypeHypervisorBit == 0 }

// EncodePostMessage fills dst with the HvPostMessage input block. Bytes of
// dst past the payload are zeroed so stale data never reaches the host. It
// returns StatusInvalidParameter, as the hypervisor would, for a payload
// over MaxMessagePayload bytes or an invalid message type. It does not
// allocate.
func EncodePostMessage(dst *[PostMessageInputSize]byte, connectionID, messageType uint32, payload []byte) error {
	if len(payload) > MaxMessagePayload || !ValidPostMessageType(messageType) {
		return StatusInvalidParameter
	}
	binary.LittleEndian.PutUint32(dst[postMessageConnIDOffset:], connectionID)
	binary.LittleEndian.PutUint32(dst[postMessageReservedOffset:], 0)
	binary.LittleEndian.PutUint32(dst[postMessageTypeOffset:], messageType)
	binary.LittleEndian.PutUint32(dst[postMessageSizeOffset:], uint32(len(payload)))
	n := copy(dst[postMessagePayloadOffset:], payload)
	clear(dst[postMessagePayloadOffset+n:])
	return nil
}

// DecodePostMessage validates an HvPostMessage input block the way the
// hypervisor does and returns its fields; payload aliases src, so a host
// copies it before src is reused. The error is a Status.
func DecodePostMessage(src *[PostMessageInputSize]byte) (connectionID, messageType uint32, payload []byte, err error) {
	connectionID = binary.LittleEndian.Uint32(src[postMessageConnIDOffset:])
	messageType = binary.LittleEndian.Uint32(src[postMessageTypeOffset:])
	size := binary.LittleEndian.Uint32(src[postMessageSizeOffset:])
	if binary.LittleEndian.Uint32(src[postMessageReservedOffset:]) != 0 {
		return 0, 0, nil, StatusInvalidHypercallInput
	}
	if size > MaxMessagePayload || !ValidPostMessageType(messageType) {
		return 0, 0, nil, StatusInvalidParameter
	}
	return connectionID, messageType, src[postMessagePayloadOffset : postMessagePayloadOffset+size], nil
}

// HvSignalEvent input (docs/hyperv-protocol.md §1.8).
const (
	SignalEventInputSize    = 8
	signalEventConnIDOffset = 0
	signalEventFlagOffset   = 4
	signalEventRsvdOffset   = 6
)

// EncodeSignalEvent fills dst with the memory-form HvSignalEvent input.
func EncodeSignalEvent(dst *[SignalEventInputSize]byte, connectionID uint32, flag uint16) {
	binary.LittleEndian.PutUint32(dst[signalEventConnIDOffset:], connectionID)
	binary.LittleEndian.PutUint16(dst[signalEventFlagOffset:], flag)
	binary.LittleEndian.PutUint16(dst[signalEventRsvdOffset:], 0)
}

// SignalEventFastInput returns RDX for the fast HvSignalEvent:
// connection id in bits 31:0, flag number in bits 47:32 (docs/hyperv-protocol.md §1.8).
func SignalEventFastInput(connectionID uint32, flag uint16) uint64 {
	return uint64(connectionID) | uint64(flag)<<32
}

// DecodeSignalEvent splits an HvSignalEvent input qword (the fast form's
// RDX, or the 8-byte block read little-endian) and validates it as the
// hypervisor does: reserved bits 63:48 zero (else
// StatusInvalidHypercallInput) and flag < EventFlagsPerSINT (else
// StatusInvalidParameter).
func DecodeSignalEvent(v uint64) (connectionID uint32, flag uint16, err error) {
	if v>>48 != 0 {
		return 0, 0, StatusInvalidHypercallInput
	}
	connectionID, flag = uint32(v), uint16(v>>32)
	if flag >= EventFlagsPerSINT {
		return 0, 0, StatusInvalidParameter
	}
	return connectionID, flag, nil
}

// Retry policy for transient HvPostMessage failures (Status.Transient),
// after Linux's vmbus_post_msg (docs/hyperv-protocol.md §1.8): at most 100 calls; after
// the n-th failure (n from 0) wait 1 µs << n, the doubling stopping at
// 2^21 µs (about 2.1 s).
const (
	PostMessageMaxAttempts = 100
	postMessageFirstWait   = time.Microsecond
	postMessageMaxDoubling = 21
)

// PostMessageBackoff returns how long to wait after failed attempt n
// (counting from 0) before trying again, and false when the caller should
// give up instead (n+1 >= PostMessageMaxAttempts or n < 0).
func PostMessageBackoff(n int) (time.Duration, bool) {
	if n < 0 || n+1 >= PostMessageMaxAttempts {
		return 0, false
	}
	return postMessageFirstWait << min(n, postMessageMaxDoubling), true
}
