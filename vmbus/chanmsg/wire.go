package chanmsg

import "strconv"

// Wire constants of the channel messages (docs/hyperv-protocol.md §3.1, §3.2). Offsets are
// from the start of the message, i.e. of the SynIC message payload.

// Type is a channel message type (docs/hyperv-protocol.md §3.2).
type Type uint32

// Channel message types (docs/hyperv-protocol.md §3.2).
const (
	TypeOfferChannel                 Type = 1
	TypeRescindChannelOffer          Type = 2
	TypeRequestOffers                Type = 3
	TypeAllOffersDelivered           Type = 4
	TypeOpenChannel                  Type = 5
	TypeOpenChannelResult            Type = 6
	TypeCloseChannel                 Type = 7
	TypeGPADLHeader                  Type = 8
	TypeGPADLBody                    Type = 9
	TypeGPADLCreated                 Type = 10
	TypeGPADLTeardown                Type = 11
	TypeGPADLTorndown                Type = 12
	TypeRelIDReleased                Type = 13
	TypeInitiateContact              Type = 14
	TypeVersionResponse              Type = 15
	TypeUnload                       Type = 16
	TypeUnloadResponse               Type = 17
	TypeOpenReservedChannel          Type = 18
	TypeCloseReservedChannel         Type = 19
	TypeCloseReservedChannelResponse Type = 20
	TypeTLConnectRequest             Type = 21
	TypeModifyChannel                Type = 22
	TypeTLConnectResult              Type = 23
	TypeModifyChannelResponse        Type = 24
)

var typeNames = [...]string{
	TypeOfferChannel:                 "OFFERCHANNEL",
	TypeRescindChannelOffer:          "RESCIND_CHANNELOFFER",
	TypeRequestOffers:                "REQUESTOFFERS",
	TypeAllOffersDelivered:           "ALLOFFERS_DELIVERED",
	TypeOpenChannel:                  "OPENCHANNEL",
	TypeOpenChannelResult:            "OPENCHANNEL_RESULT",
	TypeCloseChannel:                 "CLOSECHANNEL",
	TypeGPADLHeader:                  "GPADL_HEADER",
	TypeGPADLBody:                    "GPADL_BODY",
	TypeGPADLCreated:                 "GPADL_CREATED",
	TypeGPADLTeardown:                "GPADL_TEARDOWN",
	TypeGPADLTorndown:                "GPADL_TORNDOWN",
	TypeRelIDReleased:                "RELID_RELEASED",
	TypeInitiateContact:              "INITIATE_CONTACT",
	TypeVersionResponse:              "VERSION_RESPONSE",
	TypeUnload:                       "UNLOAD",
	TypeUnloadResponse:               "UNLOAD_RESPONSE",
	TypeOpenReservedChannel:          "OPEN_RESERVED_CHANNEL",
	TypeCloseReservedChannel:         "CLOSE_RESERVED_CHANNEL",
	TypeCloseReservedChannelResponse: "CLOSE_RESERVED_CHANNEL_RESPONSE",
	TypeTLConnectRequest:             "TL_CONNECT_REQUEST",
	TypeModifyChannel:                "MODIFYCHANNEL",
	TypeTLConnectResult:              "TL_CONNECT_RESULT",
	TypeModifyChannelResponse:        "MODIFYCHANNEL_RESPONSE",
}

func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return "TYPE_" + strconv.FormatUint(uint64(t), 10)
}

// Limits (docs/hyperv-protocol.md §2.5, §3.9).
const (
	// MaxSize is the largest channel message: the SynIC payload size.
	MaxSize = 240
	// HeaderSize is the common header: type u32 @0, padding u32 @4 (§3.1).
	HeaderSize = 8
	// MaxRelID bounds relids for protocols ≥ 2.4: one SINT flag area has
	// 2048 bits and relid 0 is never a channel (§2.5).
	MaxRelID = 2047
	// MaxHeaderPFNs PFNs fit in a GPADL_HEADER, MaxBodyPFNs in a GPADL_BODY
	// (§3.9).
	MaxHeaderPFNs = 26
	MaxBodyPFNs   = 28
	// UserDataSize is the size of the user-data areas of OFFERCHANNEL and
	// OPENCHANNEL (§3.6, §3.8).
	UserDataSize = 120
)

// Message sizes including the common header (docs/hyperv-protocol.md §3.2).
const (
	SizeOfferChannel          = 196
	SizeRescindChannelOffer   = 12
	SizeRequestOffers         = 8
	SizeAllOffersDelivered    = 8
	SizeOpenChannel           = 148
	SizeOpenChannelResult     = 20
	SizeCloseChannel          = 12
	SizeGPADLHeaderFixed      = 28 // plus 8 per PFN
	SizeGPADLBodyFixed        = 16 // plus 8 per PFN
	SizeGPADLCreated          = 20
	SizeGPADLTeardown         = 16
	SizeGPADLTorndown         = 12
	SizeRelIDReleased         = 12
	SizeInitiateContact       = 40
	SizeInitiateContactClient = 56 // 6.0 with the client-id feature
	SizeVersionResponse       = 16
	SizeVersionResponse6      = 20 // 6.0: plus supported feature flags
	SizeUnload                = 8
	SizeUnloadResponse        = 8
	SizeModifyChannel         = 16
	SizeModifyChannelResponse = 16
)

// Offsets shared by every message (§3.1).
const (
	OffType = 0
	// OffRelID is where every per-channel message except GPADL_BODY and
	// GPADL_TORNDOWN carries the child relid (§3.6 @184 for offers).
	OffRelID = 8
)

// INITIATE_CONTACT offsets (§3.4).
const (
	OffContactVersion       = 8
	OffContactTargetVP      = 12
	OffContactInterruptPage = 16 // < 5.0: u64 GPA
	OffContactSINT          = 16 // ≥ 5.0: u8
	OffContactVTL           = 17 // ≥ 5.0: u8
	OffContactFeatures      = 20 // 6.0: u32
	OffContactMonitorPage1  = 24
	OffContactMonitorPage2  = 32
	OffContactClientID      = 40
)

// VERSION_RESPONSE offsets (§3.5).
const (
	OffVersionSupported       = 8
	OffVersionConnectionState = 9
	OffVersionConnectionID    = 12
	OffVersionFeatures        = 16
)

// OFFERCHANNEL offsets (§3.6).
const (
	OffOfferInterfaceType      = 8
	OffOfferInterfaceInstance  = 24
	OffOfferLatency            = 40
	OffOfferRevision           = 48
	OffOfferContextSize        = 52
	OffOfferFlags              = 56
	OffOfferMMIOMegabytes      = 58
	OffOfferUserDefined        = 60
	OffOfferSubChannelIndex    = 180
	OffOfferMMIOMegabytesOpt   = 182
	OffOfferRelID              = 184
	OffOfferMonitorID          = 188
	OffOfferMonitorAllocated   = 189
	OffOfferDedicatedInterrupt = 190
	OffOfferConnectionID       = 192
)

// Offer flags (§3.7).
const (
	OfferFlagEnumerateDeviceInterface = 0x0001
	OfferFlagNamedPipeMode            = 0x0010
	OfferFlagTLNPIProvider            = 0x2000 // hv_sock offer, not a device
)

// OPENCHANNEL / OPENCHANNEL_RESULT offsets (§3.8).
const (
	OffOpenOpenID         = 12
	OffOpenGPADL          = 16
	OffOpenTargetVP       = 20
	OffOpenDownstreamPage = 24
	OffOpenUserData       = 28
	OffOpenResultOpenID   = 12
	OffOpenResultStatus   = 16
)

// GPADL offsets (§3.9).
const (
	OffGPADLHeaderID          = 12
	OffGPADLHeaderRangeBufLen = 16
	OffGPADLHeaderRangeCount  = 18
	OffGPADLHeaderByteCount   = 20
	OffGPADLHeaderByteOffset  = 24
	OffGPADLHeaderPFNs        = 28
	OffGPADLBodyMsgNumber     = 8
	OffGPADLBodyID            = 12
	OffGPADLBodyPFNs          = 16
	OffGPADLCreatedID         = 12
	OffGPADLCreatedStatus     = 16
	OffGPADLTeardownID        = 12
	OffGPADLTorndownID        = 8
)

// MODIFYCHANNEL (+RESPONSE) offsets (§3.10).
const (
	OffModifyTargetVP = 12
	OffModifyStatus   = 12
)

// SINT is the SynIC interrupt VMBus uses (docs/hyperv-protocol.md §2.5).
const SINT = 2
