package hv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// SynIC message page (SIMP) and event-flags page (SIEFP) layouts and the
// atomic accessors both sides use (docs/hyperv-protocol.md §2.1–§2.3).
//
// Concurrency protocol of a message slot, as real hosts and the simulated
// one follow it:
//
//   - producer (host): only when the type word is 0, write sender and
//     payload, store the size/flags word atomically, then store the type
//     word atomically last;
//   - consumer (guest): load the type word atomically; if non-zero, load the
//     size/flags word atomically, copy the payload out, then store 0 into the
//     type word and load the flags to see whether to write EOM.
//
// The type word at @0 and the word at @4 (payload size, flags, reserved) are
// only ever accessed as aligned 32-bit atomics; sender and payload are
// ordinary memory ordered by the type word. All words are little-endian, and
// the accessors read them natively: gohv runs on amd64, and its hosted tests
// on little-endian machines.

// SINTCount is the number of synthetic interrupt sources per VP.
const SINTCount = 16

// VMBusSINT is the SINT VMBus uses (docs/hyperv-protocol.md §2.5).
const VMBusSINT uint8 = 2

// Message slot layout (docs/hyperv-protocol.md §2.1).
const (
	MessageSlotSize      = 256
	MessageHeaderSize    = 16
	msgTypeOffset        = 0
	msgSizeOffset        = 4 // u8, shares the 32-bit word at @4
	msgFlagsOffset       = 5 // u8, shares the 32-bit word at @4
	msgSenderOffset      = 8
	msgPayloadOffset     = 16
	msgWord4SizeShift    = 8 * (msgSizeOffset - 4)
	msgWord4FlagsShift   = 8 * (msgFlagsOffset - 4)
	MessageFlagPending   = 1 << 0 // in the flags byte
	messageWordPending   = MessageFlagPending << msgWord4FlagsShift
	synicPageMinimumSize = SINTCount * MessageSlotSize
)

// SynIC message types (docs/hyperv-protocol.md §2.1). Untyped so they compare with the
// uint32 the seam uses.
const (
	MessageTypeNone         = 0
	MessageTypeVMBus        = 1
	MessageTypeTimerExpired = 0x80000010
)

// Event flag area layout (docs/hyperv-protocol.md §2.2).
const (
	EventFlagAreaSize = 256
	EventFlagsPerSINT = EventFlagAreaSize * 8 // 2048
	EventFlagWords    = EventFlagAreaSize / 4 // 32-bit words per area
)

// ErrMessageSize is returned by CopyMessage when a slot claims a payload
// larger than MaxMessagePayload.
var ErrMessageSize = errors.New("hv: SynIC message payload size over 240")

// SlotOffset returns the byte offset of SINT sint's message slot (and of its
// event-flag area, which has the same size).
func SlotOffset(sint uint8) int {
	return int(sint) * MessageSlotSize
}

// word32 returns the aligned 32-bit word at page[off]. A short page, a SINT
// of 16 or more, or a misaligned page are programming errors, not host
// input: they panic.
func word32(page []byte, off int) *uint32 {
	if len(page) < synicPageMinimumSize {
		panic(fmt.Sprintf("hv: SynIC page of %d bytes, want %d", len(page), synicPageMinimumSize))
	}
	p := &page[off]
	if uintptr(unsafe.Pointer(p))%4 != 0 {
		panic("hv: SynIC page not 4-byte aligned")
	}
	return (*uint32)(unsafe.Pointer(p))
}

func checkSINT(sint uint8) {
	if sint >= SINTCount {
		panic(fmt.Sprintf("hv: SINT %d out of range", sint))
	}
}

// LoadMessageType atomically loads the message type of sint's slot; 0 means
// empty.
func LoadMessageType(page []byte, sint uint8) uint32 {
	checkSINT(sint)
	return atomic.LoadUint32(word32(page, SlotOffset(sint)+msgTypeOffset))
}

// ClearMessageType atomically marks sint's slot empty. The consumer calls
// it after copying the payload out and before MessagePending (docs/hyperv-protocol.md
// §2.3 step 2).
func ClearMessageType(page []byte, sint uint8) {
	checkSINT(sint)
	atomic.StoreUint32(word32(page, SlotOffset(sint)+msgTypeOffset), MessageTypeNone)
}

// MessagePending reports the slot's message-pending flag: another message
// is queued and the guest must write EOM (docs/hyperv-protocol.md §2.3 step 3).
func MessagePending(page []byte, sint uint8) bool {
	checkSINT(sint)
	return atomic.LoadUint32(word32(page, SlotOffset(sint)+4))&messageWordPending != 0
}

// ReleaseSlot is ClearMessageType followed by MessagePending: it empties
// the slot and reports whether the caller must write EOM.
func ReleaseSlot(page []byte, sint uint8) (eom bool) {
	ClearMessageType(page, sint)
	return MessagePending(page, sint)
}

// CopyMessage copies the message in sint's slot out of the page: the
// type, and size payload bytes into dst. An empty slot gives type 0, size
// 0 and no error. A size over MaxMessagePayload gives the type and
// ErrMessageSize; the caller must still release the slot. The slot is not
// released. Each shared field is read once.
func CopyMessage(page []byte, sint uint8, dst *[MaxMessagePayload]byte) (msgType uint32, size int, err error) {
	checkSINT(sint)
	off := SlotOffset(sint)
	msgType = atomic.LoadUint32(word32(page, off+msgTypeOffset))
	if msgType == MessageTypeNone {
		return 0, 0, nil
	}
	size = int(uint8(atomic.LoadUint32(word32(page, off+4)) >> msgWord4SizeShift))
	if size > MaxMessagePayload {
		// Unwrapped: this runs in interrupt context, which must not allocate.
		return msgType, 0, ErrMessageSize
	}
	copy(dst[:size], page[off+msgPayloadOffset:])
	return msgType, size, nil
}

// LoadMessageSender returns the sender / port id field of sint's slot. It
// is ordinary memory: read it only while the slot holds a message.
func LoadMessageSender(page []byte, sint uint8) uint64 {
	checkSINT(sint)
	off := SlotOffset(sint) + msgSenderOffset
	return binary.LittleEndian.Uint64(page[off : off+8])
}

// DeliverMessage is the producer side (a host's SynIC): it places a message
// in sint's slot if the slot is empty and returns true. If the slot is
// busy it sets the slot's message-pending flag and returns false: the
// host keeps the message queued until the guest writes EOM. pending sets
// the new message's own pending flag (more queued behind it).
func DeliverMessage(page []byte, sint uint8, msgType uint32, sender uint64, payload []byte, pending bool) (bool, error) {
	checkSINT(sint)
	if msgType == MessageTypeNone || len(payload) > MaxMessagePayload {
		return false, fmt.Errorf("hv: bad message for SynIC slot: type %#x, %d bytes", msgType, len(payload))
	}
	off := SlotOffset(sint)
	typeWord := word32(page, off+msgTypeOffset)
	flagsWord := word32(page, off+4)
	if atomic.LoadUint32(typeWord) != MessageTypeNone {
		atomic.OrUint32(flagsWord, messageWordPending)
		// The guest clears the type before it reads the flags, so if the
		// slot is still busy now it will see the flag and write EOM.
		if atomic.LoadUint32(typeWord) != MessageTypeNone {
			return false, nil
		}
	}
	binary.LittleEndian.PutUint64(page[off+msgSenderOffset:], sender)
	n := copy(page[off+msgPayloadOffset:off+MessageSlotSize], payload)
	clear(page[off+msgPayloadOffset+n : off+MessageSlotSize])
	w := uint32(len(payload)) << msgWord4SizeShift
	if pending {
		w |= messageWordPending
	}
	atomic.StoreUint32(flagsWord, w)
	atomic.StoreUint32(typeWord, msgType)
	return true, nil
}

// eventWord returns the word holding flag bit of sint's area and its mask.
func eventWord(page []byte, sint uint8, bit int) (*uint32, uint32) {
	checkSINT(sint)
	return word32(page, SlotOffset(sint)+bit/32*4), 1 << (bit % 32)
}

// TestAndClearEventFlag atomically clears event flag bit of sint's area in
// the SIEFP and reports whether it was set. A bit outside 0..2047 is never
// set.
func TestAndClearEventFlag(page []byte, sint uint8, bit int) bool {
	if bit < 0 || bit >= EventFlagsPerSINT {
		return false
	}
	w, mask := eventWord(page, sint, bit)
	if atomic.LoadUint32(w)&mask == 0 {
		return false // avoid a locked write in the common case
	}
	return atomic.AndUint32(w, ^mask)&mask != 0
}

// SetEventFlag atomically sets event flag bit of sint's area (the host
// side of HvSignalEvent) and reports whether it was clear before. A bit
// outside 0..2047 is ignored and reports false.
func SetEventFlag(page []byte, sint uint8, bit int) bool {
	if bit < 0 || bit >= EventFlagsPerSINT {
		return false
	}
	w, mask := eventWord(page, sint, bit)
	return atomic.OrUint32(w, mask)&mask == 0
}

// SwapEventFlagWord atomically takes word i (0..EventFlagWords-1) of sint's
// area, leaving it zero, and returns the bits that were set: bit k of the
// result is event flag 32*i+k. It lets a consumer scan 2048 flags in 64
// operations.
func SwapEventFlagWord(page []byte, sint uint8, i int) uint32 {
	if i < 0 || i >= EventFlagWords {
		return 0
	}
	w, _ := eventWord(page, sint, 32*i)
	if atomic.LoadUint32(w) == 0 {
		return 0
	}
	return atomic.SwapUint32(w, 0)
}

// Timer expiry message payload (docs/hyperv-protocol.md §1.5).
const (
	TimerMessageSize         = 24
	timerMsgIndexOffset      = 0
	timerMsgReservedOffset   = 4
	timerMsgExpirationOffset = 8
	timerMsgDeliveryOffset   = 16
)

// TimerMessage is the payload of a MessageTypeTimerExpired message.
type TimerMessage struct {
	TimerIndex uint32
	// ExpirationTime and DeliveryTime are reference time (100 ns).
	ExpirationTime uint64
	DeliveryTime   uint64
}

// DecodeTimerMessage decodes a timer expiry payload.
func DecodeTimerMessage(payload []byte) (TimerMessage, error) {
	if len(payload) < TimerMessageSize {
		return TimerMessage{}, fmt.Errorf("hv: timer message payload of %d bytes, want %d", len(payload), TimerMessageSize)
	}
	m := TimerMessage{
		TimerIndex:     binary.LittleEndian.Uint32(payload[timerMsgIndexOffset:]),
		ExpirationTime: binary.LittleEndian.Uint64(payload[timerMsgExpirationOffset:]),
		DeliveryTime:   binary.LittleEndian.Uint64(payload[timerMsgDeliveryOffset:]),
	}
	if m.TimerIndex >= SyntheticTimerCount {
		return TimerMessage{}, fmt.Errorf("hv: timer message for timer %d", m.TimerIndex)
	}
	return m, nil
}

// Encode writes m into dst (at least TimerMessageSize bytes); a simulated
// host uses it.
func (m TimerMessage) Encode(dst []byte) {
	_ = dst[TimerMessageSize-1]
	binary.LittleEndian.PutUint32(dst[timerMsgIndexOffset:], m.TimerIndex)
	binary.LittleEndian.PutUint32(dst[timerMsgReservedOffset:], 0)
	binary.LittleEndian.PutUint64(dst[timerMsgExpirationOffset:], m.ExpirationTime)
	binary.LittleEndian.PutUint64(dst[timerMsgDeliveryOffset:], m.DeliveryTime)
}
