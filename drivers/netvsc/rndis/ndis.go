package rndis

import "fmt"

// NDIS object header (§7.7): type u8 @0, revision u8 @1, size u16 @2.
const (
	offObjType     = 0
	offObjRevision = 1
	offObjSize     = 2
	objHeaderSize  = 4

	ObjectTypeDefault         = 0x80 // NDIS_OFFLOAD_PARAMETERS
	ObjectTypeRSSCapabilities = 0x88
	ObjectTypeRSSParameters   = 0x89
	ObjectTypeOffload         = 0xA7
)

func putObjHeader(b []byte, typ, rev uint8, size int) {
	b[offObjType] = typ
	b[offObjRevision] = rev
	le.PutUint16(b[offObjSize:], uint16(size))
}

// NDIS_OFFLOAD (OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES result) layout, from
// Linux drivers/net/hyperv/hyperv_net.h struct ndis_offload: the header,
// four checksum {encapsulation, flags} pairs, LSOv1 (16 bytes), IPsecV1
// (28 bytes), LSOv2 (28 bytes), flags; then IPsecV2 (rev 2, NDIS 6.1) and
// RSC + GRE encapsulation (rev 3, NDIS 6.30).
const (
	offOffIPv4TxCsum = 8
	offOffIPv4RxCsum = 16
	offOffIPv6TxCsum = 24
	offOffIPv6RxCsum = 32
	offOffLSOv2V4Enc = 80
	offOffLSOv2V4Max = 84
	offOffLSOv2V4Min = 88
	offOffLSOv2V6Enc = 92
	offOffLSOv2V6Max = 96
	offOffLSOv2V6Min = 100
	offOffLSOv2V6Opt = 104
	offOffRSCIPv4    = 144
	offOffRSCIPv6    = 145

	// OffloadSize60, 61 and 630 are the NDIS_OFFLOAD sizes of revisions
	// 1, 2 and 3.
	OffloadSize60  = 112
	OffloadSize61  = 144
	OffloadSize630 = 156
)

// Checksum capability bits of NDIS_OFFLOAD's checksum flag words.
const (
	CsumCapIPv4Options = 0x001 // IPv4: IP options; IPv6: extension headers
	CsumCapTCPOptions  = 0x004
	CsumCapTCP         = 0x010
	CsumCapUDP         = 0x040
	CsumCapIPv4        = 0x100
	// EncapIEEE8023 is NDIS_ENCAPSULATION_IEEE_802_3 in encapsulation words.
	EncapIEEE8023 = 0x2
	// LSOv2CapIPv6 is the IPv6 extension header + TCP options support
	// LSOv2 IPv6 needs (bits of the LSOv2 IPv6 options word).
	LSOv2CapIPv6 = 0x001 | 0x004
)

// OffloadRequest writes into info the NDIS_OFFLOAD header a QUERY for
// OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES carries (type 0xA7, revision rev,
// size) with zeros after it, and returns size bytes.
func OffloadRequest(info []byte, rev uint8, size int) int {
	clear(info[:size])
	putObjHeader(info, ObjectTypeOffload, rev, size)
	return size
}

// OffloadCaps is the part of NDIS_OFFLOAD the NIC uses.
type OffloadCaps struct {
	Revision                                           uint8
	IPv4TxCsum, IPv4RxCsum, IPv6TxCsum, IPv6RxCsum     uint32
	LSOv2IPv4Encap, LSOv2IPv4MaxSize, LSOv2IPv4MinSegs uint32
	LSOv2IPv6Encap, LSOv2IPv6MaxSize, LSOv2IPv6MinSegs uint32
	LSOv2IPv6Options                                   uint32
	RSCIPv4, RSCIPv6                                   bool
}

// ParseOffloadCaps decodes an NDIS_OFFLOAD: type 0xA7, revision ≥ 1, a
// declared size of at least the revision-1 size that fits in b.
func ParseOffloadCaps(b []byte) (OffloadCaps, error) {
	if len(b) < OffloadSize60 {
		return OffloadCaps{}, fmt.Errorf("%w: NDIS_OFFLOAD of %d bytes", ErrShort, len(b))
	}
	size := int(le.Uint16(b[offObjSize:]))
	c := OffloadCaps{Revision: b[offObjRevision]}
	switch {
	case b[offObjType] != ObjectTypeOffload:
		return c, fmt.Errorf("%w: NDIS_OFFLOAD object type %#x", ErrInvalid, b[offObjType])
	case c.Revision < 1:
		return c, fmt.Errorf("%w: NDIS_OFFLOAD revision %d", ErrInvalid, c.Revision)
	case size < OffloadSize60 || size > len(b):
		return c, fmt.Errorf("%w: NDIS_OFFLOAD size %d in %d bytes", ErrInvalid, size, len(b))
	}
	u := func(off int) uint32 { return le.Uint32(b[off:]) }
	c.IPv4TxCsum, c.IPv4RxCsum = u(offOffIPv4TxCsum), u(offOffIPv4RxCsum)
	c.IPv6TxCsum, c.IPv6RxCsum = u(offOffIPv6TxCsum), u(offOffIPv6RxCsum)
	c.LSOv2IPv4Encap, c.LSOv2IPv4MaxSize, c.LSOv2IPv4MinSegs = u(offOffLSOv2V4Enc), u(offOffLSOv2V4Max), u(offOffLSOv2V4Min)
	c.LSOv2IPv6Encap, c.LSOv2IPv6MaxSize, c.LSOv2IPv6MinSegs = u(offOffLSOv2V6Enc), u(offOffLSOv2V6Max), u(offOffLSOv2V6Min)
	c.LSOv2IPv6Options = u(offOffLSOv2V6Opt)
	if c.Revision >= 3 && size >= offOffRSCIPv6+1 {
		c.RSCIPv4, c.RSCIPv6 = b[offOffRSCIPv4] != 0, b[offOffRSCIPv6] != 0
	}
	return c, nil
}

// NDIS_OFFLOAD_PARAMETERS layout (Linux hyperv_net.h struct
// ndis_offload_params): header, then one u8 per feature.
const (
	offParIPv4Csum    = 4
	offParTCPIPv4Csum = 5
	offParUDPIPv4Csum = 6
	offParTCPIPv6Csum = 7
	offParUDPIPv6Csum = 8
	offParLSOv1       = 9
	offParLSOv2IPv4   = 11
	offParLSOv2IPv6   = 12
	offParRSCIPv4     = 22
	offParRSCIPv6     = 23

	// OffloadParamsSize is the revision-3 size; OffloadParamsSizeV4 the
	// size Linux sends to hosts with NVSP ≤ 4.
	OffloadParamsSize   = 28
	OffloadParamsSizeV4 = 22
	offloadParamsRev    = 3
)

// Offload parameter values (§7.7 OID_TCP_OFFLOAD_PARAMETERS).
const (
	OffloadNoChange = 0
	OffloadDisabled = 1 // TX and RX off; LSOv2 and RSC off
	OffloadTxOnly   = 2 // LSOv2 and RSC: on
	OffloadRxOnly   = 3
	OffloadTxRx     = 4
	OffloadLSOv2On  = 2
	OffloadLSOv2Off = 1
)

// OffloadParams are the per-feature settings of NDIS_OFFLOAD_PARAMETERS.
type OffloadParams struct {
	IPv4Csum, TCPIPv4Csum, UDPIPv4Csum, TCPIPv6Csum, UDPIPv6Csum uint8
	LSOv2IPv4, LSOv2IPv6, RSCIPv4, RSCIPv6                       uint8
}

// PutOffloadParams writes NDIS_OFFLOAD_PARAMETERS of size bytes
// (OffloadParamsSize or OffloadParamsSizeV4) into info; fields past size
// are not written. It returns size.
func PutOffloadParams(info []byte, p OffloadParams, size int) int {
	clear(info[:size])
	putObjHeader(info, ObjectTypeDefault, offloadParamsRev, size)
	info[offParIPv4Csum] = p.IPv4Csum
	info[offParTCPIPv4Csum] = p.TCPIPv4Csum
	info[offParUDPIPv4Csum] = p.UDPIPv4Csum
	info[offParTCPIPv6Csum] = p.TCPIPv6Csum
	info[offParUDPIPv6Csum] = p.UDPIPv6Csum
	info[offParLSOv2IPv4] = p.LSOv2IPv4
	info[offParLSOv2IPv6] = p.LSOv2IPv6
	if size > offParRSCIPv6 {
		info[offParRSCIPv4] = p.RSCIPv4
		info[offParRSCIPv6] = p.RSCIPv6
	}
	return size
}

// NDIS_RECEIVE_SCALE_CAPABILITIES (Linux hyperv_net.h struct
// ndis_recv_scale_cap, packed): header, flags @4, interrupt messages @8,
// receive queues @12, indirection table entries u16 @16 (revision 2).
const (
	offRSSCapFlags   = 4
	offRSSCapIntMsgs = 8
	offRSSCapQueues  = 12
	offRSSCapEntries = 16
	rssCapSizeRev1   = 16
	// RSSCapsSize is the size of the revision-2 object the guest sends.
	RSSCapsSize = 18
	rssCapsRev  = 2
)

// RSSCapsRequest writes the NDIS_RECEIVE_SCALE_CAPABILITIES header a QUERY
// for OID_GEN_RECEIVE_SCALE_CAPABILITIES carries and returns RSSCapsSize.
func RSSCapsRequest(info []byte) int {
	clear(info[:RSSCapsSize])
	putObjHeader(info, ObjectTypeRSSCapabilities, rssCapsRev, RSSCapsSize)
	return RSSCapsSize
}

// RSSCaps is NDIS_RECEIVE_SCALE_CAPABILITIES.
type RSSCaps struct {
	Flags, InterruptMessages, ReceiveQueues uint32
	IndirectionEntries                      uint16 // 0 before revision 2
}

// ParseRSSCaps decodes NDIS_RECEIVE_SCALE_CAPABILITIES.
func ParseRSSCaps(b []byte) (RSSCaps, error) {
	if len(b) < rssCapSizeRev1 {
		return RSSCaps{}, fmt.Errorf("%w: RSS capabilities of %d bytes", ErrShort, len(b))
	}
	if b[offObjType] != ObjectTypeRSSCapabilities {
		return RSSCaps{}, fmt.Errorf("%w: RSS capabilities object type %#x", ErrInvalid, b[offObjType])
	}
	size := int(le.Uint16(b[offObjSize:]))
	if size < rssCapSizeRev1 || size > len(b) {
		return RSSCaps{}, fmt.Errorf("%w: RSS capabilities size %d in %d bytes", ErrInvalid, size, len(b))
	}
	c := RSSCaps{Flags: le.Uint32(b[offRSSCapFlags:]), InterruptMessages: le.Uint32(b[offRSSCapIntMsgs:]), ReceiveQueues: le.Uint32(b[offRSSCapQueues:])}
	if b[offObjRevision] >= 2 && size >= offRSSCapEntries+2 {
		c.IndirectionEntries = le.Uint16(b[offRSSCapEntries:])
	}
	return c, nil
}

// NDIS_RECEIVE_SCALE_PARAMETERS (Linux hyperv_net.h struct
// ndis_recv_scale_param, natural alignment): header, flags u16 @4, base CPU
// u16 @6, hash info @8, table size u16 @12 (bytes), table offset @16, key
// size u16 @20, key offset @24, processor masks @28/@32/@36.
const (
	offRSSParFlags     = 4
	offRSSParHashInfo  = 8
	offRSSParTabSize   = 12
	offRSSParTabOffset = 16
	offRSSParKeySize   = 20
	offRSSParKeyOffset = 24
	RSSParamsSize      = 40
	rssParamsRev       = 2
)

// RSS parameter flags and hash info bits (Linux hyperv_net.h).
const (
	RSSFlagDisable      = 0x0010
	HashFuncToeplitz    = 0x00000001
	HashIPv4            = 0x00000100
	HashTCPIPv4         = 0x00000200
	HashIPv6            = 0x00000400
	HashTCPIPv6         = 0x00001000
	HashDefault         = HashFuncToeplitz | HashIPv4 | HashTCPIPv4 | HashIPv6 | HashTCPIPv6
	RSSKeySize          = 40
	MaxIndirectionTable = 128
)

// RSSParamsLen returns the info length of NDIS_RECEIVE_SCALE_PARAMETERS
// with a table of n entries and a 40-byte key.
func RSSParamsLen(n int) int { return RSSParamsSize + 4*n + RSSKeySize }

// PutRSSParams writes NDIS_RECEIVE_SCALE_PARAMETERS with the indirection
// table (queue index per entry) and Toeplitz key after it, and returns
// RSSParamsLen(len(table)).
func PutRSSParams(info []byte, flags uint16, hashInfo uint32, table []uint32, key *[RSSKeySize]byte) int {
	n := RSSParamsLen(len(table))
	clear(info[:n])
	putObjHeader(info, ObjectTypeRSSParameters, rssParamsRev, RSSParamsSize)
	le.PutUint16(info[offRSSParFlags:], flags)
	le.PutUint32(info[offRSSParHashInfo:], hashInfo)
	le.PutUint16(info[offRSSParTabSize:], uint16(4*len(table)))
	le.PutUint32(info[offRSSParTabOffset:], RSSParamsSize)
	le.PutUint16(info[offRSSParKeySize:], RSSKeySize)
	le.PutUint32(info[offRSSParKeyOffset:], uint32(RSSParamsSize+4*len(table)))
	for i, q := range table {
		le.PutUint32(info[RSSParamsSize+4*i:], q)
	}
	copy(info[RSSParamsSize+4*len(table):], key[:])
	return n
}

// ParseUint32 decodes a u32 OID result (at least 4 bytes; the first 4
// count).
func ParseUint32(info []byte) (uint32, error) {
	if len(info) < 4 {
		return 0, fmt.Errorf("%w: u32 result of %d bytes", ErrShort, len(info))
	}
	return le.Uint32(info), nil
}

// ParseMAC decodes an OID_802_3_*_ADDRESS result: exactly 6 bytes, not a
// multicast address.
func ParseMAC(info []byte) ([6]byte, error) {
	var mac [6]byte
	if len(info) != 6 {
		return mac, fmt.Errorf("%w: MAC address of %d bytes", ErrInvalid, len(info))
	}
	copy(mac[:], info)
	if mac[0]&1 != 0 {
		return mac, fmt.Errorf("%w: multicast MAC address % x", ErrInvalid, mac)
	}
	return mac, nil
}
