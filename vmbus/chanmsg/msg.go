package chanmsg

import (
	"encoding/binary"
	"errors"
	"fmt"
)

var le = binary.LittleEndian

// Errors returned by encoders and decoders. Decoders wrap them with detail;
// branch with errors.Is.
var (
	ErrShort          = errors.New("chanmsg: message too short")
	ErrTooLong        = errors.New("chanmsg: message longer than 240 bytes")
	ErrWrongType      = errors.New("chanmsg: wrong message type")
	ErrUnknownType    = errors.New("chanmsg: unknown or unexpected message type")
	ErrBadField       = errors.New("chanmsg: invalid field")
	ErrBufferTooSmall = errors.New("chanmsg: encode buffer too small")
)

// Message is any decoded channel message.
type Message interface {
	Type() Type
}

// InitiateContact is INITIATE_CONTACT (type 14, §3.4). Its layout at @16
// depends on Version: below 5.0 it is the interrupt page GPA, from 5.0 on
// the SINT, VTL and (6.0) feature flags.
type InitiateContact struct {
	Version  Version
	TargetVP uint32
	// InterruptPage is the GPA of the interrupt page (< 5.0 only).
	InterruptPage uint64
	// SINT, VTL and Features are used from 5.0 on (Features from 6.0).
	SINT, VTL    uint8
	Features     uint32
	MonitorPage1 uint64 // parent→child
	MonitorPage2 uint64 // child→parent
	// ClientID is sent (making the message 56 bytes) only when
	// Version ≥ 6.0 and Features has bit 3 (client id) set.
	ClientID GUID
}

// FeatureClientID is the 6.0 feature bit that adds the client id (§3.4).
const FeatureClientID = 1 << 3

// VersionResponse is VERSION_RESPONSE (type 15, §3.5).
type VersionResponse struct {
	VersionSupported uint8 // 0 = rejected
	ConnectionState  uint8 // 0 ok, 1 low resources, 2 unknown failure
	// ConnectionID is the message connection id for later messages
	// (≥ 5.0); below 5.0 hosts put anything here.
	ConnectionID uint32
	// Features is the 6.0 supported feature mask (0 if absent).
	Features uint32
}

// RequestOffers is REQUESTOFFERS (type 3).
type RequestOffers struct{}

// AllOffersDelivered is ALLOFFERS_DELIVERED (type 4).
type AllOffersDelivered struct{}

// Unload is UNLOAD (type 16).
type Unload struct{}

// UnloadResponse is UNLOAD_RESPONSE (type 17).
type UnloadResponse struct{}

// OfferChannel is OFFERCHANNEL (type 1, §3.6).
type OfferChannel struct {
	InterfaceType     GUID
	InterfaceInstance GUID
	// Latency, Revision and ContextSize are reserved in Linux and
	// OpenVMM, named by FreeBSD (§3.6, §11 #5).
	Latency            uint64
	Revision           uint32
	ContextSize        uint32
	Flags              uint16
	MMIOMegabytes      uint16
	UserDefined        [UserDataSize]byte
	SubChannelIndex    uint16
	MMIOMegabytesOpt   uint16
	RelID              uint32
	MonitorID          uint8
	MonitorAllocated   uint8  // bit 0
	DedicatedInterrupt uint16 // bit 0
	ConnectionID       uint32
}

// RescindChannelOffer is RESCIND_CHANNELOFFER (type 2).
type RescindChannelOffer struct{ RelID uint32 }

// OpenChannel is OPENCHANNEL (type 5, §3.8), 148 bytes.
type OpenChannel struct {
	RelID    uint32
	OpenID   uint32
	GPADL    uint32
	TargetVP uint32
	// DownstreamPageOffset is the number of pages of the guest→host ring
	// including its header page.
	DownstreamPageOffset uint32
	UserData             [UserDataSize]byte
}

// OpenChannelResult is OPENCHANNEL_RESULT (type 6).
type OpenChannelResult struct {
	RelID, OpenID, Status uint32
}

// CloseChannel is CLOSECHANNEL (type 7).
type CloseChannel struct{ RelID uint32 }

// GPADLHeader is GPADL_HEADER (type 8, §3.9) with one range. PFNs holds the
// PFNs carried in this message (at most 26); the rest follow in bodies.
type GPADLHeader struct {
	RelID       uint32
	GPADL       uint32
	RangeBufLen uint16 // 8 + 8 × total PFNs
	RangeCount  uint16 // 1
	ByteCount   uint32
	ByteOffset  uint32
	PFNs        []uint64
}

// TotalPFNs is the number of PFNs of the whole GPADL, from RangeBufLen.
func (m *GPADLHeader) TotalPFNs() int { return (int(m.RangeBufLen) - 8) / 8 }

// NewGPADLHeader fills a header for a buffer of totalPFNs pages starting at
// byte offset 0; pfns are the first min(totalPFNs, 26) PFNs.
func NewGPADLHeader(relID, gpadl uint32, totalPFNs int, pfns []uint64) GPADLHeader {
	return GPADLHeader{
		RelID: relID, GPADL: gpadl,
		RangeBufLen: uint16(8 + 8*totalPFNs), RangeCount: 1,
		ByteCount: uint32(totalPFNs) * 4096, PFNs: pfns,
	}
}

// GPADLBody is GPADL_BODY (type 9, §3.9); PFNs holds 1 to 28 PFNs.
type GPADLBody struct {
	MsgNumber uint32 // message number [L][F], reserved [O]
	GPADL     uint32
	PFNs      []uint64
}

// GPADLCreated is GPADL_CREATED (type 10).
type GPADLCreated struct{ RelID, GPADL, Status uint32 }

// GPADLTeardown is GPADL_TEARDOWN (type 11).
type GPADLTeardown struct{ RelID, GPADL uint32 }

// GPADLTorndown is GPADL_TORNDOWN (type 12).
type GPADLTorndown struct{ GPADL uint32 }

// RelIDReleased is RELID_RELEASED (type 13).
type RelIDReleased struct{ RelID uint32 }

// ModifyChannel is MODIFYCHANNEL (type 22, §3.10).
type ModifyChannel struct{ RelID, TargetVP uint32 }

// ModifyChannelResponse is MODIFYCHANNEL_RESPONSE (type 24, §3.10).
type ModifyChannelResponse struct{ RelID, Status uint32 }

func (InitiateContact) Type() Type       { return TypeInitiateContact }
func (VersionResponse) Type() Type       { return TypeVersionResponse }
func (RequestOffers) Type() Type         { return TypeRequestOffers }
func (AllOffersDelivered) Type() Type    { return TypeAllOffersDelivered }
func (Unload) Type() Type                { return TypeUnload }
func (UnloadResponse) Type() Type        { return TypeUnloadResponse }
func (OfferChannel) Type() Type          { return TypeOfferChannel }
func (RescindChannelOffer) Type() Type   { return TypeRescindChannelOffer }
func (OpenChannel) Type() Type           { return TypeOpenChannel }
func (OpenChannelResult) Type() Type     { return TypeOpenChannelResult }
func (CloseChannel) Type() Type          { return TypeCloseChannel }
func (GPADLHeader) Type() Type           { return TypeGPADLHeader }
func (GPADLBody) Type() Type             { return TypeGPADLBody }
func (GPADLCreated) Type() Type          { return TypeGPADLCreated }
func (GPADLTeardown) Type() Type         { return TypeGPADLTeardown }
func (GPADLTorndown) Type() Type         { return TypeGPADLTorndown }
func (RelIDReleased) Type() Type         { return TypeRelIDReleased }
func (ModifyChannel) Type() Type         { return TypeModifyChannel }
func (ModifyChannelResponse) Type() Type { return TypeModifyChannelResponse }

// ---- encoding ----

// start checks room for n bytes, zeroes them and writes the header.
func start(b []byte, t Type, n int) ([]byte, error) {
	if n > MaxSize {
		return nil, ErrTooLong
	}
	if len(b) < n {
		return nil, fmt.Errorf("%w: need %d, have %d", ErrBufferTooSmall, n, len(b))
	}
	b = b[:n]
	clear(b)
	le.PutUint32(b[OffType:], uint32(t))
	return b, nil
}

// Encode writes m into b and returns its length.
func (m *InitiateContact) Encode(b []byte) (int, error) {
	n := SizeInitiateContact
	if m.Version >= Version6_0 && m.Features&FeatureClientID != 0 {
		n = SizeInitiateContactClient
	}
	b, err := start(b, TypeInitiateContact, n)
	if err != nil {
		return 0, err
	}
	le.PutUint32(b[OffContactVersion:], uint32(m.Version))
	le.PutUint32(b[OffContactTargetVP:], m.TargetVP)
	if m.Version >= Version5_0 {
		b[OffContactSINT] = m.SINT
		b[OffContactVTL] = m.VTL
		if m.Version >= Version6_0 {
			le.PutUint32(b[OffContactFeatures:], m.Features)
		}
	} else {
		le.PutUint64(b[OffContactInterruptPage:], m.InterruptPage)
	}
	le.PutUint64(b[OffContactMonitorPage1:], m.MonitorPage1)
	le.PutUint64(b[OffContactMonitorPage2:], m.MonitorPage2)
	if n == SizeInitiateContactClient {
		copy(b[OffContactClientID:], m.ClientID[:])
	}
	return n, nil
}

// Encode writes m into b and returns its length.
func (m *VersionResponse) Encode(b []byte) (int, error) {
	b, err := start(b, TypeVersionResponse, SizeVersionResponse)
	if err != nil {
		return 0, err
	}
	b[OffVersionSupported] = m.VersionSupported
	b[OffVersionConnectionState] = m.ConnectionState
	le.PutUint32(b[OffVersionConnectionID:], m.ConnectionID)
	return len(b), nil
}

func encodeEmpty(b []byte, t Type) (int, error) {
	b, err := start(b, t, HeaderSize)
	return len(b), err
}

func encodeRelID(b []byte, t Type, n int, relID uint32) ([]byte, error) {
	b, err := start(b, t, n)
	if err != nil {
		return nil, err
	}
	le.PutUint32(b[OffRelID:], relID)
	return b, nil
}

// Encode writes m into b and returns its length.
func (RequestOffers) Encode(b []byte) (int, error) { return encodeEmpty(b, TypeRequestOffers) }

// Encode writes m into b and returns its length.
func (AllOffersDelivered) Encode(b []byte) (int, error) {
	return encodeEmpty(b, TypeAllOffersDelivered)
}

// Encode writes m into b and returns its length.
func (Unload) Encode(b []byte) (int, error) { return encodeEmpty(b, TypeUnload) }

// Encode writes m into b and returns its length.
func (UnloadResponse) Encode(b []byte) (int, error) { return encodeEmpty(b, TypeUnloadResponse) }

// Encode writes m into b and returns its length.
func (m *OfferChannel) Encode(b []byte) (int, error) {
	b, err := start(b, TypeOfferChannel, SizeOfferChannel)
	if err != nil {
		return 0, err
	}
	copy(b[OffOfferInterfaceType:], m.InterfaceType[:])
	copy(b[OffOfferInterfaceInstance:], m.InterfaceInstance[:])
	le.PutUint64(b[OffOfferLatency:], m.Latency)
	le.PutUint32(b[OffOfferRevision:], m.Revision)
	le.PutUint32(b[OffOfferContextSize:], m.ContextSize)
	le.PutUint16(b[OffOfferFlags:], m.Flags)
	le.PutUint16(b[OffOfferMMIOMegabytes:], m.MMIOMegabytes)
	copy(b[OffOfferUserDefined:], m.UserDefined[:])
	le.PutUint16(b[OffOfferSubChannelIndex:], m.SubChannelIndex)
	le.PutUint16(b[OffOfferMMIOMegabytesOpt:], m.MMIOMegabytesOpt)
	le.PutUint32(b[OffOfferRelID:], m.RelID)
	b[OffOfferMonitorID] = m.MonitorID
	b[OffOfferMonitorAllocated] = m.MonitorAllocated
	le.PutUint16(b[OffOfferDedicatedInterrupt:], m.DedicatedInterrupt)
	le.PutUint32(b[OffOfferConnectionID:], m.ConnectionID)
	return len(b), nil
}

// Encode writes m into b and returns its length.
func (m *RescindChannelOffer) Encode(b []byte) (int, error) {
	b, err := encodeRelID(b, TypeRescindChannelOffer, SizeRescindChannelOffer, m.RelID)
	return len(b), err
}

// Encode writes m into b and returns its length.
func (m *OpenChannel) Encode(b []byte) (int, error) {
	b, err := encodeRelID(b, TypeOpenChannel, SizeOpenChannel, m.RelID)
	if err != nil {
		return 0, err
	}
	le.PutUint32(b[OffOpenOpenID:], m.OpenID)
	le.PutUint32(b[OffOpenGPADL:], m.GPADL)
	le.PutUint32(b[OffOpenTargetVP:], m.TargetVP)
	le.PutUint32(b[OffOpenDownstreamPage:], m.DownstreamPageOffset)
	copy(b[OffOpenUserData:], m.UserData[:])
	return len(b), nil
}

// Encode writes m into b and returns its length.
func (m *OpenChannelResult) Encode(b []byte) (int, error) {
	b, err := encodeRelID(b, TypeOpenChannelResult, SizeOpenChannelResult, m.RelID)
	if err != nil {
		return 0, err
	}
	le.PutUint32(b[OffOpenResultOpenID:], m.OpenID)
	le.PutUint32(b[OffOpenResultStatus:], m.Status)
	return len(b), nil
}

// Encode writes m into b and returns its length.
func (m *CloseChannel) Encode(b []byte) (int, error) {
	b, err := encodeRelID(b, TypeCloseChannel, SizeCloseChannel, m.RelID)
	return len(b), err
}

// Encode writes m into b and returns its length.
func (m *GPADLHeader) Encode(b []byte) (int, error) {
	if len(m.PFNs) > MaxHeaderPFNs {
		return 0, fmt.Errorf("%w: %d PFNs in GPADL_HEADER (max %d)", ErrBadField, len(m.PFNs), MaxHeaderPFNs)
	}
	b, err := encodeRelID(b, TypeGPADLHeader, SizeGPADLHeaderFixed+8*len(m.PFNs), m.RelID)
	if err != nil {
		return 0, err
	}
	le.PutUint32(b[OffGPADLHeaderID:], m.GPADL)
	le.PutUint16(b[OffGPADLHeaderRangeBufLen:], m.RangeBufLen)
	le.PutUint16(b[OffGPADLHeaderRangeCount:], m.RangeCount)
	le.PutUint32(b[OffGPADLHeaderByteCount:], m.ByteCount)
	le.PutUint32(b[OffGPADLHeaderByteOffset:], m.ByteOffset)
	for i, p := range m.PFNs {
		le.PutUint64(b[OffGPADLHeaderPFNs+8*i:], p)
	}
	return len(b), nil
}

// Encode writes m into b and returns its length.
func (m *GPADLBody) Encode(b []byte) (int, error) {
	if len(m.PFNs) == 0 || len(m.PFNs) > MaxBodyPFNs {
		return 0, fmt.Errorf("%w: %d PFNs in GPADL_BODY (1..%d)", ErrBadField, len(m.PFNs), MaxBodyPFNs)
	}
	b, err := start(b, TypeGPADLBody, SizeGPADLBodyFixed+8*len(m.PFNs))
	if err != nil {
		return 0, err
	}
	le.PutUint32(b[OffGPADLBodyMsgNumber:], m.MsgNumber)
	le.PutUint32(b[OffGPADLBodyID:], m.GPADL)
	for i, p := range m.PFNs {
		le.PutUint64(b[OffGPADLBodyPFNs+8*i:], p)
	}
	return len(b), nil
}

// Encode writes m into b and returns its length.
func (m *GPADLCreated) Encode(b []byte) (int, error) {
	b, err := encodeRelID(b, TypeGPADLCreated, SizeGPADLCreated, m.RelID)
	if err != nil {
		return 0, err
	}
	le.PutUint32(b[OffGPADLCreatedID:], m.GPADL)
	le.PutUint32(b[OffGPADLCreatedStatus:], m.Status)
	return len(b), nil
}

// Encode writes m into b and returns its length.
func (m *GPADLTeardown) Encode(b []byte) (int, error) {
	b, err := encodeRelID(b, TypeGPADLTeardown, SizeGPADLTeardown, m.RelID)
	if err != nil {
		return 0, err
	}
	le.PutUint32(b[OffGPADLTeardownID:], m.GPADL)
	return len(b), nil
}

// Encode writes m into b and returns its length.
func (m *GPADLTorndown) Encode(b []byte) (int, error) {
	b, err := start(b, TypeGPADLTorndown, SizeGPADLTorndown)
	if err != nil {
		return 0, err
	}
	le.PutUint32(b[OffGPADLTorndownID:], m.GPADL)
	return len(b), nil
}

// Encode writes m into b and returns its length.
func (m *RelIDReleased) Encode(b []byte) (int, error) {
	b, err := encodeRelID(b, TypeRelIDReleased, SizeRelIDReleased, m.RelID)
	return len(b), err
}

// Encode writes m into b and returns its length.
func (m *ModifyChannel) Encode(b []byte) (int, error) {
	b, err := encodeRelID(b, TypeModifyChannel, SizeModifyChannel, m.RelID)
	if err != nil {
		return 0, err
	}
	le.PutUint32(b[OffModifyTargetVP:], m.TargetVP)
	return len(b), nil
}

// Encode writes m into b and returns its length.
func (m *ModifyChannelResponse) Encode(b []byte) (int, error) {
	b, err := encodeRelID(b, TypeModifyChannelResponse, SizeModifyChannelResponse, m.RelID)
	if err != nil {
		return 0, err
	}
	le.PutUint32(b[OffModifyStatus:], m.Status)
	return len(b), nil
}
