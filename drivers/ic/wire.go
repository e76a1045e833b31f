package ic

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// Offsets of the framing every integration-service message carries inside
// the payload of an in-band ring packet (docs/hyperv-protocol.md §8.1).
const (
	offPipeFlags      = 0  // u32 pipe header: flags / packet type (1 = data)
	offPipeSize       = 4  // u32 pipe header: message size
	offFrameworkMajor = 8  // u16
	offFrameworkMinor = 10 // u16
	offType           = 12 // u16 IC message type
	offMessageMajor   = 14 // u16
	offMessageMinor   = 16 // u16
	offSize           = 18 // u16 IC message size
	offStatus         = 20 // u32 HRESULT
	offTransactionID  = 24 // u8
	offFlags          = 25 // u8
	offReserved       = 26 // u16

	// HeaderSize is the length of pipe header plus ICMSG header; the
	// message body starts at this offset (docs/hyperv-protocol.md §8.1).
	HeaderSize = 28
)

// Offsets of the negotiation body (docs/hyperv-protocol.md §8.2).
const (
	offNegFrameworkCount = 28 // u16
	offNegMessageCount   = 30 // u16
	offNegReserved       = 32 // u32
	offNegVersions       = 36 // {major u16, minor u16} × (framework + message count)

	versionSize = 4

	// NegotiateReplySize is the IC message size (@18) of a negotiation
	// reply: counts, reserved and two versions (docs/hyperv-protocol.md §8.2).
	NegotiateReplySize = 16
)

// PipeFlagData is the pipe-header packet type of a data message (docs/hyperv-protocol.md
// §8.1).
const PipeFlagData = 1

// MessageType is the IC message type at offset 12 (docs/hyperv-protocol.md §8.1).
type MessageType uint16

// IC message types (docs/hyperv-protocol.md §8.1).
const (
	TypeNegotiate MessageType = 0
	TypeHeartbeat MessageType = 1
	TypeKVP       MessageType = 2
	TypeShutdown  MessageType = 3
	TypeTimeSync  MessageType = 4
	TypeVSS       MessageType = 5
	TypeRDV       MessageType = 6
	TypeFileCopy  MessageType = 7
	TypeVMSession MessageType = 8
)

var typeNames = [...]string{"negotiate", "heartbeat", "kvp", "shutdown", "timesync", "vss", "rdv", "filecopy", "vmsession"}

// String returns the type's name, or its number if unknown.
func (t MessageType) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "type " + strconv.Itoa(int(t))
}

// Flags is the ICMSG flags byte at offset 25 (docs/hyperv-protocol.md §8.1).
type Flags uint8

// Flag bits (docs/hyperv-protocol.md §8.1).
const (
	FlagTransaction Flags = 1 << 0
	FlagRequest     Flags = 1 << 1
	FlagResponse    Flags = 1 << 2
)

// Status is an HRESULT as carried at offset 20 (docs/hyperv-protocol.md §8.1).
type Status uint32

// HRESULTs used by the integration services (docs/hyperv-protocol.md §8.1).
const (
	StatusOK                 Status = 0x00000000 // S_OK
	StatusFail               Status = 0x80004005 // E_FAIL
	StatusNoMoreItems        Status = 0x80070103 // KVP enumerate past the end
	StatusNotSupported       Status = 0x80070032
	StatusNotFound           Status = 0x80041002
	StatusInvalidArg         Status = 0x80070057
	StatusAlreadyExists      Status = 0x80070050
	StatusMachineLocked      Status = 0x800704F7
	StatusDeviceNotConnected Status = 0x8007048F
)

// String returns the status in hexadecimal, e.g. "0x80004005".
func (s Status) String() string { return fmt.Sprintf("%#08x", uint32(s)) }

// Version is an IC framework or message version (docs/hyperv-protocol.md §8.2).
type Version struct{ Major, Minor uint16 }

// String returns "major.minor".
func (v Version) String() string {
	return strconv.Itoa(int(v.Major)) + "." + strconv.Itoa(int(v.Minor))
}

// Less reports whether v is older than w.
func (v Version) Less(w Version) bool {
	return v.Major < w.Major || v.Major == w.Major && v.Minor < w.Minor
}

// FrameworkVersions are the IC framework versions gohv speaks (docs/hyperv-protocol.md
// §8.2).
var FrameworkVersions = []Version{{3, 0}, {1, 0}}

// Errors returned by the parsers; callers branch with errors.Is.
var (
	// ErrShort: the message is shorter than its header or body needs.
	ErrShort = errors.New("ic: message too short")
	// ErrVersionCount: the negotiation counts do not fit the message.
	ErrVersionCount = errors.New("ic: negotiation version counts exceed message")
	// ErrNoCommonVersion: host and guest share no framework or message
	// version.
	ErrNoCommonVersion = errors.New("ic: no common version")
)

// Header is the decoded pipe header and ICMSG header (docs/hyperv-protocol.md §8.1).
type Header struct {
	PipeFlags      uint32
	PipeSize       uint32
	Framework      Version
	Type           MessageType
	MessageVersion Version
	Size           uint16 // IC message size @18 as the sender wrote it
	Status         Status
	TransactionID  uint8
	Flags          Flags
}

// ParseHeader decodes the header of msg, a copy of the ring packet payload
// the caller owns (never the shared ring itself).
func ParseHeader(msg []byte) (Header, error) {
	if len(msg) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, header needs %d", ErrShort, len(msg), HeaderSize)
	}
	le := binary.LittleEndian
	return Header{
		PipeFlags:      le.Uint32(msg[offPipeFlags:]),
		PipeSize:       le.Uint32(msg[offPipeSize:]),
		Framework:      Version{le.Uint16(msg[offFrameworkMajor:]), le.Uint16(msg[offFrameworkMinor:])},
		Type:           MessageType(le.Uint16(msg[offType:])),
		MessageVersion: Version{le.Uint16(msg[offMessageMajor:]), le.Uint16(msg[offMessageMinor:])},
		Size:           le.Uint16(msg[offSize:]),
		Status:         Status(le.Uint32(msg[offStatus:])),
		TransactionID:  msg[offTransactionID],
		Flags:          Flags(msg[offFlags]),
	}, nil
}

// Encode writes h into msg[:HeaderSize] (reserved bytes zeroed). It panics
// if msg is shorter than HeaderSize: callers size their own buffers.
func (h *Header) Encode(msg []byte) {
	_ = msg[HeaderSize-1]
	le := binary.LittleEndian
	le.PutUint32(msg[offPipeFlags:], h.PipeFlags)
	le.PutUint32(msg[offPipeSize:], h.PipeSize)
	le.PutUint16(msg[offFrameworkMajor:], h.Framework.Major)
	le.PutUint16(msg[offFrameworkMinor:], h.Framework.Minor)
	le.PutUint16(msg[offType:], uint16(h.Type))
	le.PutUint16(msg[offMessageMajor:], h.MessageVersion.Major)
	le.PutUint16(msg[offMessageMinor:], h.MessageVersion.Minor)
	le.PutUint16(msg[offSize:], h.Size)
	le.PutUint32(msg[offStatus:], uint32(h.Status))
	msg[offTransactionID] = h.TransactionID
	msg[offFlags] = uint8(h.Flags)
	le.PutUint16(msg[offReserved:], 0)
}

// SetResponse turns the received message msg into its response in place
// (docs/hyperv-protocol.md §8.1 response rule): flags = transaction | response, status
// set, everything else as the host sent it. msg must hold a whole header.
func SetResponse(msg []byte, status Status) {
	_ = msg[HeaderSize-1]
	msg[offFlags] = uint8(FlagTransaction | FlagResponse)
	binary.LittleEndian.PutUint32(msg[offStatus:], uint32(status))
}

// SetSize writes the IC message size field (@18). msg must hold a whole
// header.
func SetSize(msg []byte, size uint16) {
	binary.LittleEndian.PutUint16(msg[offSize:], size)
}

// Negotiation is a validated view of a host's negotiation message
// (docs/hyperv-protocol.md §8.2). It aliases the message it was parsed from.
type Negotiation struct {
	msg                      []byte
	frameworkCount, msgCount int
}

// ParseNegotiation validates the negotiation body of msg. The counts come
// from the host and are checked against the bytes actually received, so a
// lying host gets an error, not an out-of-range read.
func ParseNegotiation(msg []byte) (Negotiation, error) {
	if len(msg) < offNegVersions {
		return Negotiation{}, fmt.Errorf("%w: negotiation of %d bytes, needs %d", ErrShort, len(msg), offNegVersions)
	}
	fw := int(binary.LittleEndian.Uint16(msg[offNegFrameworkCount:]))
	mv := int(binary.LittleEndian.Uint16(msg[offNegMessageCount:]))
	if need := offNegVersions + versionSize*(fw+mv); need > len(msg) {
		return Negotiation{}, fmt.Errorf("%w: %d+%d versions need %d bytes, have %d", ErrVersionCount, fw, mv, need, len(msg))
	}
	return Negotiation{msg: msg, frameworkCount: fw, msgCount: mv}, nil
}

// FrameworkCount is the number of framework versions the host offers.
func (n Negotiation) FrameworkCount() int { return n.frameworkCount }

// MessageCount is the number of message versions the host offers.
func (n Negotiation) MessageCount() int { return n.msgCount }

// Framework returns the host's i-th framework version.
func (n Negotiation) Framework(i int) Version { return n.version(i) }

// Message returns the host's i-th message version.
func (n Negotiation) Message(i int) Version { return n.version(n.frameworkCount + i) }

func (n Negotiation) version(i int) Version {
	off := offNegVersions + versionSize*i
	return Version{binary.LittleEndian.Uint16(n.msg[off:]), binary.LittleEndian.Uint16(n.msg[off+2:])}
}

// Choose picks the newest framework and message versions that the guest
// supports and the host lists anywhere (hosts may list oldest first,
// docs/hyperv-protocol.md §8.2). ok is false if either has no common version.
func (n Negotiation) Choose(frameworks, messages []Version) (fw, msg Version, ok bool) {
	fw, okF := newestCommon(frameworks, n.frameworkCount, n.Framework)
	msg, okM := newestCommon(messages, n.msgCount, n.Message)
	return fw, msg, okF && okM
}

func newestCommon(supported []Version, count int, at func(int) Version) (best Version, found bool) {
	for i := range count {
		v := at(i)
		if (!found || best.Less(v)) && contains(supported, v) {
			best, found = v, true
		}
	}
	return best, found
}

func contains(vs []Version, v Version) bool {
	for _, w := range vs {
		if w == v {
			return true
		}
	}
	return false
}

// Negotiate answers the host's negotiation message msg in place (docs/hyperv-protocol.md
// §8.2): it picks the newest framework and message versions that the guest
// supports and the host lists anywhere, and rewrites the body to counts 1/1
// with those two versions and the IC message size to 16. If either list has
// no common version, the body gets counts 0/0 (the IC stays unusable) and
// the error wraps ErrNoCommonVersion. A malformed message is left untouched
// and yields an error wrapping ErrShort or ErrVersionCount. Flags and status
// are set separately with SetResponse.
func Negotiate(msg []byte, frameworks, messages []Version) (fw, mv Version, err error) {
	n, err := ParseNegotiation(msg)
	if err != nil {
		return Version{}, Version{}, err
	}
	fw, mv, ok := n.Choose(frameworks, messages)
	le := binary.LittleEndian
	SetSize(msg, NegotiateReplySize)
	if !ok {
		le.PutUint16(msg[offNegFrameworkCount:], 0)
		le.PutUint16(msg[offNegMessageCount:], 0)
		return Version{}, Version{}, fmt.Errorf("%w: host lists %d framework and %d message versions", ErrNoCommonVersion, n.frameworkCount, n.msgCount)
	}
	// A match in both lists means the host listed at least two versions,
	// so msg holds both slots written here.
	le.PutUint16(msg[offNegFrameworkCount:], 1)
	le.PutUint16(msg[offNegMessageCount:], 1)
	le.PutUint16(msg[offNegVersions:], fw.Major)
	le.PutUint16(msg[offNegVersions+2:], fw.Minor)
	le.PutUint16(msg[offNegVersions+versionSize:], mv.Major)
	le.PutUint16(msg[offNegVersions+versionSize+2:], mv.Minor)
	return fw, mv, nil
}
