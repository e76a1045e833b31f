package chanmsg

import "fmt"

// Decoders take a copy of the message bytes (never shared memory the host
// can still change) and validate it. Sizes are minimums: a newer host may
// append fields (VERSION_RESPONSE grows in 6.0), except for the GPADL
// messages, whose length determines their PFN count.

// PeekType returns the message type of b.
func PeekType(b []byte) (Type, error) {
	if len(b) < HeaderSize {
		return 0, fmt.Errorf("%w: %d bytes, header needs %d", ErrShort, len(b), HeaderSize)
	}
	return Type(le.Uint32(b[OffType:])), nil
}

func check(b []byte, t Type, min int) error {
	got, err := PeekType(b)
	if err != nil {
		return err
	}
	if got != t {
		return fmt.Errorf("%w: %v, want %v", ErrWrongType, got, t)
	}
	if len(b) > MaxSize {
		return fmt.Errorf("%w: %v of %d bytes", ErrTooLong, t, len(b))
	}
	if len(b) < min {
		return fmt.Errorf("%w: %v of %d bytes, need %d", ErrShort, t, len(b), min)
	}
	return nil
}

// ValidRelID reports whether id can name a channel (§2.5): relid 0 is never
// used and a SINT flag area has 2048 bits.
func ValidRelID(id uint32) bool { return id != 0 && id <= MaxRelID }

func relID(b []byte, t Type, min int) (uint32, error) {
	if err := check(b, t, min); err != nil {
		return 0, err
	}
	id := le.Uint32(b[OffRelID:])
	if !ValidRelID(id) {
		return 0, fmt.Errorf("%w: %v relid %d", ErrBadField, t, id)
	}
	return id, nil
}

// DecodeInitiateContact decodes INITIATE_CONTACT; the layout at @16
// follows the requested version.
func DecodeInitiateContact(b []byte) (InitiateContact, error) {
	var m InitiateContact
	if err := check(b, TypeInitiateContact, SizeInitiateContact); err != nil {
		return m, err
	}
	m.Version = Version(le.Uint32(b[OffContactVersion:]))
	m.TargetVP = le.Uint32(b[OffContactTargetVP:])
	if m.Version >= Version5_0 {
		m.SINT = b[OffContactSINT]
		m.VTL = b[OffContactVTL]
		if m.Version >= Version6_0 {
			m.Features = le.Uint32(b[OffContactFeatures:])
		}
	} else {
		m.InterruptPage = le.Uint64(b[OffContactInterruptPage:])
	}
	m.MonitorPage1 = le.Uint64(b[OffContactMonitorPage1:])
	m.MonitorPage2 = le.Uint64(b[OffContactMonitorPage2:])
	if m.Version >= Version6_0 && m.Features&FeatureClientID != 0 {
		if len(b) < SizeInitiateContactClient {
			return m, fmt.Errorf("%w: INITIATE_CONTACT with client id of %d bytes", ErrShort, len(b))
		}
		copy(m.ClientID[:], b[OffContactClientID:])
	}
	return m, nil
}

// DecodeVersionResponse decodes VERSION_RESPONSE.
func DecodeVersionResponse(b []byte) (VersionResponse, error) {
	var m VersionResponse
	if err := check(b, TypeVersionResponse, SizeVersionResponse); err != nil {
		return m, err
	}
	m.VersionSupported = b[OffVersionSupported]
	m.ConnectionState = b[OffVersionConnectionState]
	m.ConnectionID = le.Uint32(b[OffVersionConnectionID:])
	if len(b) >= SizeVersionResponse6 {
		m.Features = le.Uint32(b[OffVersionFeatures:])
	}
	return m, nil
}

// DecodeOfferChannel decodes OFFERCHANNEL.
func DecodeOfferChannel(b []byte) (OfferChannel, error) {
	var m OfferChannel
	if err := check(b, TypeOfferChannel, SizeOfferChannel); err != nil {
		return m, err
	}
	copy(m.InterfaceType[:], b[OffOfferInterfaceType:])
	copy(m.InterfaceInstance[:], b[OffOfferInterfaceInstance:])
	m.Latency = le.Uint64(b[OffOfferLatency:])
	m.Revision = le.Uint32(b[OffOfferRevision:])
	m.ContextSize = le.Uint32(b[OffOfferContextSize:])
	m.Flags = le.Uint16(b[OffOfferFlags:])
	m.MMIOMegabytes = le.Uint16(b[OffOfferMMIOMegabytes:])
	copy(m.UserDefined[:], b[OffOfferUserDefined:])
	m.SubChannelIndex = le.Uint16(b[OffOfferSubChannelIndex:])
	m.MMIOMegabytesOpt = le.Uint16(b[OffOfferMMIOMegabytesOpt:])
	m.RelID = le.Uint32(b[OffOfferRelID:])
	m.MonitorID = b[OffOfferMonitorID]
	m.MonitorAllocated = b[OffOfferMonitorAllocated]
	m.DedicatedInterrupt = le.Uint16(b[OffOfferDedicatedInterrupt:])
	m.ConnectionID = le.Uint32(b[OffOfferConnectionID:])
	if !ValidRelID(m.RelID) {
		return m, fmt.Errorf("%w: OFFERCHANNEL relid %d", ErrBadField, m.RelID)
	}
	return m, nil
}

// DecodeRescindChannelOffer decodes RESCIND_CHANNELOFFER.
func DecodeRescindChannelOffer(b []byte) (RescindChannelOffer, error) {
	id, err := relID(b, TypeRescindChannelOffer, SizeRescindChannelOffer)
	return RescindChannelOffer{RelID: id}, err
}

// DecodeOpenChannel decodes OPENCHANNEL.
func DecodeOpenChannel(b []byte) (OpenChannel, error) {
	var m OpenChannel
	id, err := relID(b, TypeOpenChannel, SizeOpenChannel)
	if err != nil {
		return m, err
	}
	m.RelID = id
	m.OpenID = le.Uint32(b[OffOpenOpenID:])
	m.GPADL = le.Uint32(b[OffOpenGPADL:])
	m.TargetVP = le.Uint32(b[OffOpenTargetVP:])
	m.DownstreamPageOffset = le.Uint32(b[OffOpenDownstreamPage:])
	copy(m.UserData[:], b[OffOpenUserData:])
	return m, nil
}

// DecodeOpenChannelResult decodes OPENCHANNEL_RESULT.
func DecodeOpenChannelResult(b []byte) (OpenChannelResult, error) {
	var m OpenChannelResult
	id, err := relID(b, TypeOpenChannelResult, SizeOpenChannelResult)
	if err != nil {
		return m, err
	}
	m.RelID = id
	m.OpenID = le.Uint32(b[OffOpenResultOpenID:])
	m.Status = le.Uint32(b[OffOpenResultStatus:])
	return m, nil
}

// DecodeCloseChannel decodes CLOSECHANNEL.
func DecodeCloseChannel(b []byte) (CloseChannel, error) {
	id, err := relID(b, TypeCloseChannel, SizeCloseChannel)
	return CloseChannel{RelID: id}, err
}

// DecodeGPADLHeader decodes GPADL_HEADER with its range arithmetic checked
// (§3.9): exactly one range, range buffer length 8 + 8 × total PFNs, a byte
// offset inside the first page, a byte count spanning exactly the total
// PFNs, and min(total, 26) PFNs in this message.
func DecodeGPADLHeader(b []byte) (GPADLHeader, error) {
	var m GPADLHeader
	id, err := relID(b, TypeGPADLHeader, SizeGPADLHeaderFixed)
	if err != nil {
		return m, err
	}
	m.RelID = id
	m.GPADL = le.Uint32(b[OffGPADLHeaderID:])
	m.RangeBufLen = le.Uint16(b[OffGPADLHeaderRangeBufLen:])
	m.RangeCount = le.Uint16(b[OffGPADLHeaderRangeCount:])
	m.ByteCount = le.Uint32(b[OffGPADLHeaderByteCount:])
	m.ByteOffset = le.Uint32(b[OffGPADLHeaderByteOffset:])
	if m.RangeCount != 1 {
		return m, fmt.Errorf("%w: GPADL_HEADER range count %d, want 1", ErrBadField, m.RangeCount)
	}
	if m.RangeBufLen < 16 || m.RangeBufLen%8 != 0 {
		return m, fmt.Errorf("%w: GPADL_HEADER range buffer length %d", ErrBadField, m.RangeBufLen)
	}
	total := m.TotalPFNs()
	if m.ByteOffset >= 4096 || m.ByteCount == 0 {
		return m, fmt.Errorf("%w: GPADL_HEADER byte offset %d, count %d", ErrBadField, m.ByteOffset, m.ByteCount)
	}
	if span := (uint64(m.ByteOffset) + uint64(m.ByteCount) + 4095) / 4096; span != uint64(total) {
		return m, fmt.Errorf("%w: GPADL_HEADER spans %d pages but lists %d PFNs", ErrBadField, span, total)
	}
	n := len(b) - SizeGPADLHeaderFixed
	if n%8 != 0 || n/8 != min(total, MaxHeaderPFNs) {
		return m, fmt.Errorf("%w: GPADL_HEADER carries %d bytes of PFNs for %d total", ErrBadField, n, total)
	}
	m.PFNs = make([]uint64, n/8)
	for i := range m.PFNs {
		m.PFNs[i] = le.Uint64(b[OffGPADLHeaderPFNs+8*i:])
	}
	return m, nil
}

// DecodeGPADLBody decodes GPADL_BODY (1 to 28 PFNs).
func DecodeGPADLBody(b []byte) (GPADLBody, error) {
	var m GPADLBody
	if err := check(b, TypeGPADLBody, SizeGPADLBodyFixed+8); err != nil {
		return m, err
	}
	n := len(b) - SizeGPADLBodyFixed
	if n%8 != 0 {
		return m, fmt.Errorf("%w: GPADL_BODY PFN area of %d bytes", ErrBadField, n)
	}
	m.MsgNumber = le.Uint32(b[OffGPADLBodyMsgNumber:])
	m.GPADL = le.Uint32(b[OffGPADLBodyID:])
	m.PFNs = make([]uint64, n/8)
	for i := range m.PFNs {
		m.PFNs[i] = le.Uint64(b[OffGPADLBodyPFNs+8*i:])
	}
	return m, nil
}

// DecodeGPADLCreated decodes GPADL_CREATED.
func DecodeGPADLCreated(b []byte) (GPADLCreated, error) {
	var m GPADLCreated
	id, err := relID(b, TypeGPADLCreated, SizeGPADLCreated)
	if err != nil {
		return m, err
	}
	m.RelID = id
	m.GPADL = le.Uint32(b[OffGPADLCreatedID:])
	m.Status = le.Uint32(b[OffGPADLCreatedStatus:])
	return m, nil
}

// DecodeGPADLTeardown decodes GPADL_TEARDOWN.
func DecodeGPADLTeardown(b []byte) (GPADLTeardown, error) {
	var m GPADLTeardown
	id, err := relID(b, TypeGPADLTeardown, SizeGPADLTeardown)
	if err != nil {
		return m, err
	}
	m.RelID = id
	m.GPADL = le.Uint32(b[OffGPADLTeardownID:])
	return m, nil
}

// DecodeGPADLTorndown decodes GPADL_TORNDOWN.
func DecodeGPADLTorndown(b []byte) (GPADLTorndown, error) {
	if err := check(b, TypeGPADLTorndown, SizeGPADLTorndown); err != nil {
		return GPADLTorndown{}, err
	}
	return GPADLTorndown{GPADL: le.Uint32(b[OffGPADLTorndownID:])}, nil
}

// DecodeRelIDReleased decodes RELID_RELEASED.
func DecodeRelIDReleased(b []byte) (RelIDReleased, error) {
	id, err := relID(b, TypeRelIDReleased, SizeRelIDReleased)
	return RelIDReleased{RelID: id}, err
}

// DecodeModifyChannel decodes MODIFYCHANNEL.
func DecodeModifyChannel(b []byte) (ModifyChannel, error) {
	id, err := relID(b, TypeModifyChannel, SizeModifyChannel)
	if err != nil {
		return ModifyChannel{}, err
	}
	return ModifyChannel{RelID: id, TargetVP: le.Uint32(b[OffModifyTargetVP:])}, nil
}

// DecodeModifyChannelResponse decodes MODIFYCHANNEL_RESPONSE.
func DecodeModifyChannelResponse(b []byte) (ModifyChannelResponse, error) {
	id, err := relID(b, TypeModifyChannelResponse, SizeModifyChannelResponse)
	if err != nil {
		return ModifyChannelResponse{}, err
	}
	return ModifyChannelResponse{RelID: id, Status: le.Uint32(b[OffModifyStatus:])}, nil
}

func decodeEmpty(b []byte, t Type, m Message) (Message, error) {
	if err := check(b, t, HeaderSize); err != nil {
		return nil, err
	}
	return m, nil
}

// Decode decodes a host→guest message: OFFERCHANNEL, RESCIND_CHANNELOFFER,
// ALLOFFERS_DELIVERED, OPENCHANNEL_RESULT, GPADL_CREATED, GPADL_TORNDOWN,
// VERSION_RESPONSE, UNLOAD_RESPONSE or MODIFYCHANNEL_RESPONSE. Any other
// type gives ErrUnknownType.
func Decode(b []byte) (Message, error) {
	t, err := PeekType(b)
	if err != nil {
		return nil, err
	}
	switch t {
	case TypeOfferChannel:
		return wrap(DecodeOfferChannel(b))
	case TypeRescindChannelOffer:
		return wrap(DecodeRescindChannelOffer(b))
	case TypeAllOffersDelivered:
		return decodeEmpty(b, t, AllOffersDelivered{})
	case TypeOpenChannelResult:
		return wrap(DecodeOpenChannelResult(b))
	case TypeGPADLCreated:
		return wrap(DecodeGPADLCreated(b))
	case TypeGPADLTorndown:
		return wrap(DecodeGPADLTorndown(b))
	case TypeVersionResponse:
		return wrap(DecodeVersionResponse(b))
	case TypeUnloadResponse:
		return decodeEmpty(b, t, UnloadResponse{})
	case TypeModifyChannelResponse:
		return wrap(DecodeModifyChannelResponse(b))
	}
	return nil, fmt.Errorf("%w: %v from host", ErrUnknownType, t)
}

// DecodeGuest decodes a guest→host message (for host implementations and
// tests): INITIATE_CONTACT, REQUESTOFFERS, OPENCHANNEL, CLOSECHANNEL,
// GPADL_HEADER, GPADL_BODY, GPADL_TEARDOWN, RELID_RELEASED, UNLOAD or
// MODIFYCHANNEL.
func DecodeGuest(b []byte) (Message, error) {
	t, err := PeekType(b)
	if err != nil {
		return nil, err
	}
	switch t {
	case TypeInitiateContact:
		return wrap(DecodeInitiateContact(b))
	case TypeRequestOffers:
		return decodeEmpty(b, t, RequestOffers{})
	case TypeOpenChannel:
		return wrap(DecodeOpenChannel(b))
	case TypeCloseChannel:
		return wrap(DecodeCloseChannel(b))
	case TypeGPADLHeader:
		return wrap(DecodeGPADLHeader(b))
	case TypeGPADLBody:
		return wrap(DecodeGPADLBody(b))
	case TypeGPADLTeardown:
		return wrap(DecodeGPADLTeardown(b))
	case TypeRelIDReleased:
		return wrap(DecodeRelIDReleased(b))
	case TypeUnload:
		return decodeEmpty(b, t, Unload{})
	case TypeModifyChannel:
		return wrap(DecodeModifyChannel(b))
	}
	return nil, fmt.Errorf("%w: %v from guest", ErrUnknownType, t)
}

func wrap[M Message](m M, err error) (Message, error) {
	if err != nil {
		return nil, err
	}
	return m, nil
}
