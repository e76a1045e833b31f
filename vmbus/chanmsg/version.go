package chanmsg

import "strconv"

// Version is a VMBus protocol version, major<<16 | minor (docs/hyperv-protocol.md §3.3).
type Version uint32

// Protocol versions of docs/hyperv-protocol.md §3.3.
const (
	Version0_13 Version = 0x0000000D // WS2008
	Version1_1  Version = 0x00010001 // Win7 / WS2008 R2
	Version2_4  Version = 0x00020004 // Win8 / WS2012
	Version3_0  Version = 0x00030000 // Win8.1 / WS2012 R2
	Version4_0  Version = 0x00040000 // Win10 / WS2016
	Version4_1  Version = 0x00040001 // Win10 RS3
	Version5_0  Version = 0x00050000 // later Win10
	Version5_1  Version = 0x00050001 // Win10 RS4
	Version5_2  Version = 0x00050002 // WS2019
	Version5_3  Version = 0x00050003 // WS2022
	Version6_0  Version = 0x00060000 // "Copper"
)

// NewVersion returns major.minor.
func NewVersion(major, minor uint16) Version { return Version(uint32(major)<<16 | uint32(minor)) }

// Major returns the major part.
func (v Version) Major() uint16 { return uint16(v >> 16) }

// Minor returns the minor part.
func (v Version) Minor() uint16 { return uint16(v) }

// String returns "major.minor", e.g. "5.3".
func (v Version) String() string {
	return strconv.Itoa(int(v.Major())) + "." + strconv.Itoa(int(v.Minor()))
}
