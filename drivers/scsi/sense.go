package scsi

import "encoding/binary"

// Sense response codes (SPC-4 §4.5).
const (
	SenseFixedCurrent       = 0x70
	SenseFixedDeferred      = 0x71
	SenseDescriptorCurrent  = 0x72
	SenseDescriptorDeferred = 0x73
)

// Offsets of fixed-format sense data (SPC-4 §4.5.3).
const (
	offFixedResponse = 0 // bit 7 VALID, bits 6:0 response code
	offFixedKey      = 2 // bits 3:0 sense key
	offFixedInfo     = 3 // u32 information
	offFixedAddLen   = 7 // additional sense length
	offFixedASC      = 12
	offFixedASCQ     = 13
	fixedMinLen      = 8
)

// Offsets of descriptor-format sense data (SPC-4 §4.5.2).
const (
	offDescKey    = 1
	offDescASC    = 2
	offDescASCQ   = 3
	offDescAddLen = 7
	offDescFirst  = 8
	descMinLen    = 8
	descTypeInfo  = 0x00 // information descriptor: @2 bit7 VALID, @4 u64
	descInfoLen   = 0x0A // its additional length
)

// Sense is decoded sense data.
type Sense struct {
	// ResponseCode is 0x70/0x71 (fixed) or 0x72/0x73 (descriptor).
	ResponseCode uint8
	Key          SenseKey
	ASC, ASCQ    uint8
	// Info is the INFORMATION field when InfoValid.
	Info      uint64
	InfoValid bool
}

// Deferred reports a deferred error (0x71/0x73).
func (s Sense) Deferred() bool {
	return s.ResponseCode == SenseFixedDeferred || s.ResponseCode == SenseDescriptorDeferred
}

// CapacityChanged reports UNIT ATTENTION, CAPACITY DATA HAS CHANGED.
func (s Sense) CapacityChanged() bool {
	return s.Key == KeyUnitAttention && s.ASC == ASCParametersChanged && s.ASCQ == ASCQCapacityChanged
}

// LUNsChanged reports UNIT ATTENTION with ASC 0x3F (operating conditions
// changed, e.g. 0x0E REPORTED LUNS DATA HAS CHANGED): the target's set of
// logical units or their parameters changed and should be rescanned.
func (s Sense) LUNsChanged() bool {
	return s.Key == KeyUnitAttention && s.ASC == ASCOperatingCondsChanged
}

// ParseSense decodes fixed (0x70/0x71) or descriptor (0x72/0x73) sense
// data. Fields beyond the bytes given (or beyond the additional sense
// length) read as zero; a buffer too short for the key is an error.
func ParseSense(b []byte) (Sense, error) {
	if len(b) < 1 {
		return Sense{}, malformed("sense", b, "empty")
	}
	code := b[0] & 0x7F
	switch code {
	case SenseFixedCurrent, SenseFixedDeferred:
		if len(b) < offFixedKey+1 {
			return Sense{}, malformed("sense", b, "fixed format shorter than the sense key")
		}
		s := Sense{ResponseCode: code, Key: SenseKey(b[offFixedKey] & 0x0F)}
		n := len(b)
		if len(b) >= fixedMinLen {
			n = min(n, fixedMinLen+int(b[offFixedAddLen]))
			s.Info = uint64(binary.BigEndian.Uint32(b[offFixedInfo:]))
			s.InfoValid = b[offFixedResponse]&0x80 != 0
		}
		if n > offFixedASC {
			s.ASC = b[offFixedASC]
		}
		if n > offFixedASCQ {
			s.ASCQ = b[offFixedASCQ]
		}
		return s, nil
	case SenseDescriptorCurrent, SenseDescriptorDeferred:
		if len(b) < offDescASCQ+1 {
			return Sense{}, malformed("sense", b, "descriptor format shorter than 4 bytes")
		}
		s := Sense{ResponseCode: code, Key: SenseKey(b[offDescKey] & 0x0F),
			ASC: b[offDescASC], ASCQ: b[offDescASCQ]}
		if len(b) < descMinLen {
			return s, nil
		}
		end := min(len(b), descMinLen+int(b[offDescAddLen]))
		for p := offDescFirst; p+2 <= end; {
			typ, l := b[p], int(b[p+1])
			if p+2+l > end {
				break // truncated descriptor: ignore the rest
			}
			if typ == descTypeInfo && l == descInfoLen {
				s.InfoValid = b[p+2]&0x80 != 0
				s.Info = binary.BigEndian.Uint64(b[p+4:])
			}
			p += 2 + l
		}
		return s, nil
	}
	return Sense{}, malformed("sense", b, "unknown response code")
}
