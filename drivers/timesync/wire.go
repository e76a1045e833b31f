package timesync

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/gohv/gohv/drivers/ic"
)

// Body offsets from the start of the IC message (docs/hyperv-protocol.md
// §8.5). The parent time is at the same place in every version; what
// follows it differs.
const (
	offParentTime = ic.HeaderSize // u64, 100 ns since 1601-01-01 UTC

	// Message versions before 4.0.
	offChildTime = ic.HeaderSize + 8  // u64, unused
	offRoundTrip = ic.HeaderSize + 16 // u64
	offFlagsV1   = ic.HeaderSize + 24 // u8
	minV1        = offFlagsV1 + 1

	// Message version 4.0.
	offVMReferenceTime = ic.HeaderSize + 8  // u64, partition reference counter at the host's sample
	offFlagsV4         = ic.HeaderSize + 16 // u8
	offLeapIndicator   = ic.HeaderSize + 17 // u8, NTP leap indicator
	offStratum         = ic.HeaderSize + 18 // u8, NTP stratum
	minV4              = offStratum + 1
)

// Flags is the time sync flags byte (docs/hyperv-protocol.md §8.5).
type Flags uint8

// Flag bits. A message with neither is a probe.
const (
	// FlagSync marks the first message after boot or restore: the guest
	// steps its clock.
	FlagSync Flags = 1 << 0
	// FlagSample marks a periodic sample: the guest may slew.
	FlagSample Flags = 1 << 1
)

// Epoch1601 is the Unix epoch in 100 ns units since 1601-01-01 UTC, the
// epoch of the parent time (docs/hyperv-protocol.md §8.5).
const Epoch1601 = 116444736000000000

// Version4 is the first message version carrying the VM reference time.
var Version4 = ic.Version{Major: 4}

// Sample is one decoded time sync message.
type Sample struct {
	// ParentTime is the host's UTC in 100 ns units since 1601.
	ParentTime uint64
	// VMReferenceTime is the partition reference counter when the host
	// read ParentTime; valid only if HasReference (version 4.0 and later).
	VMReferenceTime uint64
	HasReference    bool
	// RoundTrip is the host's measured round trip (before 4.0 only).
	RoundTrip uint64
	Flags     Flags
	// LeapIndicator and Stratum are NTP values (4.0 and later only).
	LeapIndicator, Stratum uint8
}

// ParseSample decodes the body of a time sync message of message version v
// (docs/hyperv-protocol.md §8.5). msg is the whole IC message, already
// copied out of the ring. Times that do not fit an int64 are rejected:
// no real host sends them, and they would overflow the clock arithmetic.
func ParseSample(msg []byte, v ic.Version) (Sample, error) {
	le := binary.LittleEndian
	var s Sample
	if v.Less(Version4) {
		if len(msg) < minV1 {
			return Sample{}, fmt.Errorf("%w: time sync %v message of %d bytes, needs %d", ic.ErrShort, v, len(msg), minV1)
		}
		s = Sample{ParentTime: le.Uint64(msg[offParentTime:]), RoundTrip: le.Uint64(msg[offRoundTrip:]), Flags: Flags(msg[offFlagsV1])}
	} else {
		if len(msg) < minV4 {
			return Sample{}, fmt.Errorf("%w: time sync %v message of %d bytes, needs %d", ic.ErrShort, v, len(msg), minV4)
		}
		s = Sample{
			ParentTime:      le.Uint64(msg[offParentTime:]),
			VMReferenceTime: le.Uint64(msg[offVMReferenceTime:]),
			HasReference:    true,
			Flags:           Flags(msg[offFlagsV4]),
			LeapIndicator:   msg[offLeapIndicator],
			Stratum:         msg[offStratum],
		}
	}
	if s.ParentTime > math.MaxInt64 || s.VMReferenceTime > math.MaxInt64 {
		return Sample{}, ErrTimeRange
	}
	return s, nil
}

// Time converts t, in 100 ns units since 1601-01-01 UTC, to a time.Time.
func Time(t int64) time.Time {
	u := t - Epoch1601
	sec, rem := u/1e7, u%1e7
	if rem < 0 {
		sec, rem = sec-1, rem+1e7
	}
	return time.Unix(sec, rem*100).UTC()
}
