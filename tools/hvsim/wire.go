package hvsim

import (
	"encoding/binary"
	"fmt"
)

// This file holds the wire definitions of the VMBus channel messages the
// host handles (docs/hyperv-protocol.md §3). Offsets are byte offsets from the start of the
// channel message (the SynIC payload).

// Channel message types (docs/hyperv-protocol.md §3.2).
const (
	msgOfferChannel          = 1
	msgRescindChannelOffer   = 2
	msgRequestOffers         = 3
	msgAllOffersDelivered    = 4
	msgOpenChannel           = 5
	msgOpenChannelResult     = 6
	msgCloseChannel          = 7
	msgGPADLHeader           = 8
	msgGPADLBody             = 9
	msgGPADLCreated          = 10
	msgGPADLTeardown         = 11
	msgGPADLTorndown         = 12
	msgRelIDReleased         = 13
	msgInitiateContact       = 14
	msgVersionResponse       = 15
	msgUnload                = 16
	msgUnloadResponse        = 17
	msgModifyChannel         = 22
	msgModifyChannelResponse = 24
)

// Message sizes including the 8-byte header (docs/hyperv-protocol.md §3.2).
const (
	sizeHeader               = 8
	sizeOfferChannel         = 196
	sizeRescind              = 12
	sizeRequestOffers        = 8
	sizeAllOffers            = 8
	sizeOpenChannel          = 148
	sizeOpenResult           = 20
	sizeCloseChannel         = 12
	sizeGPADLCreated         = 20
	sizeGPADLTeardown        = 16
	sizeGPADLTorndown        = 12
	sizeRelIDReleased        = 12
	sizeInitiateContact      = 40
	sizeVersionResponse      = 16
	sizeUnload               = 8
	sizeUnloadResponse       = 8
	sizeModifyChannel        = 16
	sizeModifyChannelResp    = 16
	gpadlHeaderFixed         = 28 // PFNs start here (docs/hyperv-protocol.md §3.9)
	gpadlBodyFixed           = 16 // PFNs start here (docs/hyperv-protocol.md §3.9)
	maxGPADLHeaderPFNs       = 26
	maxGPADLBodyPFNs         = 28
	maxMessagePayload        = 240  // docs/hyperv-protocol.md §1.8, §2.1
	maxRelID                 = 2047 // docs/hyperv-protocol.md §2.5
	vmbusMessageType         = 1    // SynIC message type for VMBus (docs/hyperv-protocol.md §2.5)
	vmbusSINT                = 2    // docs/hyperv-protocol.md §2.5
	connMessage              = 1    // message connection id (docs/hyperv-protocol.md §2.5)
	connEvent013             = 2    // event connection id, protocol 0.13 only
	connInitiate50           = 4    // INITIATE_CONTACT connection for ≥ 5.0
	defaultChannelConnBase   = 0x10000
	offerFlagNamedPipe       = 0x0010 // docs/hyperv-protocol.md §3.7
	offerFlagEnumerateDevice = 0x0001
)

// OFFERCHANNEL offsets (docs/hyperv-protocol.md §3.6).
const (
	offOfferType         = 8
	offOfferInstance     = 24
	offOfferFlags        = 56
	offOfferMMIO         = 58
	offOfferUserDefined  = 60
	offOfferSubIndex     = 180
	offOfferRelID        = 184
	offOfferMonitorID    = 188
	offOfferMonitorAlloc = 189
	offOfferDedicated    = 190
	offOfferConnID       = 192
	offerUserDefinedLen  = 120
)

// Protocol versions, major<<16 | minor (docs/hyperv-protocol.md §3.3).
const (
	Version0_13 uint32 = 0x0000000D
	Version1_1  uint32 = 0x00010001
	Version2_4  uint32 = 0x00020004
	Version3_0  uint32 = 0x00030000
	Version4_0  uint32 = 0x00040000
	Version4_1  uint32 = 0x00040001
	Version5_0  uint32 = 0x00050000
	Version5_1  uint32 = 0x00050001
	Version5_2  uint32 = 0x00050002
	Version5_3  uint32 = 0x00050003
	Version6_0  uint32 = 0x00060000
)

// knownVersions is every version value some Hyper-V host understands
// (docs/hyperv-protocol.md §3.3); a request outside it is a guest bug, not a step-down.
var knownVersions = [...]uint32{Version0_13, Version1_1, Version2_4, Version3_0,
	Version4_0, Version4_1, Version5_0, Version5_1, Version5_2, Version5_3, Version6_0}

func isKnownVersion(v uint32) bool {
	for _, k := range knownVersions {
		if k == v {
			return true
		}
	}
	return false
}

func versionString(v uint32) string { return fmt.Sprintf("%d.%d", v>>16, v&0xFFFF) }

// GUID is a GUID in its textual order; Wire gives the Windows wire layout
// (docs/hyperv-protocol.md, Conventions: first three fields little-endian).
type GUID [16]byte

// MustParseGUID parses "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" and panics on
// malformed input; it is meant for constants.
func MustParseGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// ParseGUID parses the canonical textual form of a GUID.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("hvsim: malformed GUID %q", s)
	}
	j := 0
	for i := 0; i < 36; {
		if s[i] == '-' {
			i++
			continue
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return g, fmt.Errorf("hvsim: malformed GUID %q", s)
		}
		g[j] = hi<<4 | lo
		j++
		i += 2
	}
	return g, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// String returns the canonical textual form.
func (g GUID) String() string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", g[0:4], g[4:6], g[6:8], g[8:10], g[10:16])
}

// Wire returns the Windows wire layout of g.
func (g GUID) Wire() [16]byte {
	var w [16]byte
	w[0], w[1], w[2], w[3] = g[3], g[2], g[1], g[0]
	w[4], w[5] = g[5], g[4]
	w[6], w[7] = g[7], g[6]
	copy(w[8:], g[8:])
	return w
}

// SynIC page layout (docs/hyperv-protocol.md §2.1, §2.2).
const (
	slotSize        = 256
	slotOffType     = 0
	slotOffSizeFlag = 4 // u8 size, u8 flags, u16 reserved: one atomic word
	slotOffSender   = 8
	slotOffPayload  = 16
	slotFlagPending = 1 << 8 // bit 0 of the flags byte, seen in the word @4
	flagAreaSize    = 256
	msgQueueDepth   = 64 // per-VP host→guest message queue (bounded)
)

// Ring header page offsets and packet layout (docs/hyperv-protocol.md §4.2, §4.3).
const (
	ringOffWrite    = 0
	ringOffRead     = 4
	ringOffIntMask  = 8
	ringOffPending  = 12
	ringOffFeatures = 64
	ringFeaturePSS  = 1 // pending send size supported

	descSize    = 16
	trailerSize = 8

	pktSynch       = 0x1
	pktDataInband  = 0x6
	pktTransferPgs = 0x7
	pktGPADirect   = 0x9
	pktCompletion  = 0xB

	pktFlagCompletionRequested = 1
)

var le = binary.LittleEndian

// msgBuf is a host→guest channel message under construction.
type msgBuf struct {
	b [maxMessagePayload]byte
	n int
}

func newMsg(typ uint32, size int) msgBuf {
	var m msgBuf
	le.PutUint32(m.b[0:], typ)
	m.n = size
	return m
}

func (m *msgBuf) put32(off int, v uint32) { le.PutUint32(m.b[off:], v) }
func (m *msgBuf) put16(off int, v uint16) { le.PutUint16(m.b[off:], v) }
func (m *msgBuf) bytes() []byte           { return m.b[:m.n] }

// offerMsg encodes OFFERCHANNEL (docs/hyperv-protocol.md §3.6).
func offerMsg(o *offer, version uint32) msgBuf {
	m := newMsg(msgOfferChannel, sizeOfferChannel)
	t := o.spec.Class.Wire()
	copy(m.b[offOfferType:], t[:])
	i := o.spec.Instance.Wire()
	copy(m.b[offOfferInstance:], i[:])
	m.put16(offOfferFlags, o.spec.Flags)
	m.put16(offOfferMMIO, o.spec.MMIOMiB)
	copy(m.b[offOfferUserDefined:offOfferUserDefined+offerUserDefinedLen], o.spec.UserDefined[:])
	if version >= Version2_4 {
		m.put16(offOfferSubIndex, o.subIndex)
	}
	m.put32(offOfferRelID, o.relid)
	if version >= Version1_1 {
		m.put32(offOfferConnID, o.connID)
	}
	return m
}
