package rndis

import "fmt"

// Per-packet info types (§7.8).
const (
	PPIChecksum uint32 = 0
	PPIIPsec    uint32 = 1
	PPILSO      uint32 = 2
	PPIVLAN     uint32 = 6
	PPIHash     uint32 = 8
	PPIPadding  uint32 = 11
	// PPIInternal is bit 31 of the type: an RNDIS-internal info, e.g.
	// PPIPacketID (RSC fragments).
	PPIInternal uint32 = 1 << 31
	PPIPacketID        = PPIInternal | 1
)

// Per-packet info entry layout (§7.8): size @0 (12 + data), type @4, data
// offset from the entry start @8.
const (
	offPPISize    = 0
	offPPIType    = 4
	offPPIOffset  = 8
	PPIHeaderSize = 12
	// PPIValueSize is the size of an entry carrying one u32.
	PPIValueSize = PPIHeaderSize + 4
)

// TX checksum info bits (§7.8, PPI type 0, transmit).
const (
	CsumTxIPv4        uint32 = 1 << 0
	CsumTxIPv6        uint32 = 1 << 1
	CsumTxTCP         uint32 = 1 << 2
	CsumTxUDP         uint32 = 1 << 3
	CsumTxIPHeader    uint32 = 1 << 4
	csumTxTCPOffShift        = 16
	csumTxTCPOffMax          = 1<<10 - 1
)

// RX checksum info bits (§7.8, PPI type 0, receive).
const (
	CsumRxTCPFailed    uint32 = 1 << 0
	CsumRxUDPFailed    uint32 = 1 << 1
	CsumRxIPFailed     uint32 = 1 << 2
	CsumRxTCPSucceeded uint32 = 1 << 3
	CsumRxUDPSucceeded uint32 = 1 << 4
	CsumRxIPSucceeded  uint32 = 1 << 5
	CsumRxLoopback     uint32 = 1 << 6
	CsumRxTCPValueBad  uint32 = 1 << 7
	CsumRxIPValueBad   uint32 = 1 << 8
)

// LSOv2 transmit info fields (§7.8, PPI type 2).
const (
	lsoMSSMax             = 1<<20 - 1
	lsoTCPOffShift        = 20
	lsoTCPOffMax          = 1<<10 - 1
	LSOv2Type      uint32 = 1 << 30
	LSOv2IPv6      uint32 = 1 << 31
)

// PacketID flag bits of the internal packet-id info (§7.8).
const (
	PacketIDSubAlloc  = 1 << 0
	PacketIDFirstFrag = 1 << 1
	PacketIDLastFrag  = 1 << 2
)

// CsumTxInfo builds the TX TCP/IP checksum info value. tcpOffset is the
// offset of the L4 header from the frame start (bits 25:16).
func CsumTxInfo(flags uint32, tcpOffset int) (uint32, error) {
	if tcpOffset < 0 || tcpOffset > csumTxTCPOffMax {
		return 0, fmt.Errorf("%w: transport header offset %d", ErrInvalid, tcpOffset)
	}
	return flags | uint32(tcpOffset)<<csumTxTCPOffShift, nil
}

// LSOv2Info builds the LSOv2 transmit info value (§7.8).
func LSOv2Info(mss, tcpOffset int, ipv6 bool) (uint32, error) {
	if mss <= 0 || mss > lsoMSSMax || tcpOffset < 0 || tcpOffset > lsoTCPOffMax {
		return 0, fmt.Errorf("%w: LSO MSS %d transport offset %d", ErrInvalid, mss, tcpOffset)
	}
	v := uint32(mss) | uint32(tcpOffset)<<lsoTCPOffShift | LSOv2Type
	if ipv6 {
		v |= LSOv2IPv6
	}
	return v, nil
}

// PutPPI writes one per-packet info entry carrying a u32 value and
// returns PPIValueSize.
func PutPPI(b []byte, typ, value uint32) int {
	le.PutUint32(b[offPPISize:], PPIValueSize)
	le.PutUint32(b[offPPIType:], typ)
	le.PutUint32(b[offPPIOffset:], PPIHeaderSize)
	le.PutUint32(b[PPIHeaderSize:], value)
	return PPIValueSize
}

// PutPacket writes the PACKET header into b for ppiLen bytes of
// per-packet info (written after the header by PutPPI) followed by
// dataLen bytes of frame, and returns PacketHeaderSize. The PPI offset is
// 36 and the data follows the PPIs, as Linux sends (§7.6).
func PutPacket(b []byte, ppiLen, dataLen int) int {
	clear(b[:PacketHeaderSize])
	putHeader(b, TypePacket, PacketHeaderSize+ppiLen+dataLen)
	le.PutUint32(b[offPktDataOffset:], uint32(pktPPIOffset+ppiLen))
	le.PutUint32(b[offPktDataLen:], uint32(dataLen))
	le.PutUint32(b[offPktPPIOffset:], pktPPIOffset)
	le.PutUint32(b[offPktPPILen:], uint32(ppiLen))
	return PacketHeaderSize
}

// ParsePacket decodes PACKET: the frame and the per-packet info area,
// both aliasing b and both inside the declared message length.
func ParsePacket(b []byte) (data, ppi []byte, err error) {
	b, err = message(b, TypePacket, PacketHeaderSize)
	if err != nil {
		return nil, nil, err
	}
	data, err = sub(b, le.Uint32(b[offPktDataOffset:]), le.Uint32(b[offPktDataLen:]), PacketHeaderSize)
	if err != nil {
		return nil, nil, fmt.Errorf("packet data: %w", err)
	}
	ppi, err = sub(b, le.Uint32(b[offPktPPIOffset:]), le.Uint32(b[offPktPPILen:]), PacketHeaderSize)
	if err != nil {
		return nil, nil, fmt.Errorf("packet info: %w", err)
	}
	return data, ppi, nil
}

// PacketInfo is what a receive's per-packet info says (§7.8).
type PacketInfo struct {
	Csum                                   uint32 // RX checksum bits, valid if HasCsum
	VLAN                                   uint32 // 802.1Q info, valid if HasVLAN
	Hash                                   uint32 // RSS hash value, valid if HasHash
	PacketID                               uint32 // internal packet id (flags in bits 15:8), valid if HasPacketID
	HasCsum, HasVLAN, HasHash, HasPacketID bool
}

// ParsePacketInfo walks the per-packet info entries of ppi. Every entry
// must have a size of at least 12 that fits in what is left, and a data
// offset inside the entry; the known types need 4 data bytes. Unknown
// types are skipped.
func ParsePacketInfo(ppi []byte) (PacketInfo, error) {
	var pi PacketInfo
	for len(ppi) > 0 {
		if len(ppi) < PPIHeaderSize {
			return pi, fmt.Errorf("%w: %d trailing per-packet info bytes", ErrInvalid, len(ppi))
		}
		size := le.Uint32(ppi[offPPISize:])
		typ := le.Uint32(ppi[offPPIType:])
		off := le.Uint32(ppi[offPPIOffset:])
		if size < PPIHeaderSize || uint64(size) > uint64(len(ppi)) || off < PPIHeaderSize || off > size {
			return pi, fmt.Errorf("%w: per-packet info entry size %d offset %d in %d bytes", ErrInvalid, size, off, len(ppi))
		}
		data := ppi[off:size]
		ppi = ppi[size:]
		var dst *uint32
		var has *bool
		switch typ {
		case PPIChecksum:
			dst, has = &pi.Csum, &pi.HasCsum
		case PPIVLAN:
			dst, has = &pi.VLAN, &pi.HasVLAN
		case PPIHash:
			dst, has = &pi.Hash, &pi.HasHash
		case PPIPacketID:
			dst, has = &pi.PacketID, &pi.HasPacketID
		default:
			continue
		}
		if len(data) < 4 {
			return pi, fmt.Errorf("%w: per-packet info type %#x with %d data bytes", ErrInvalid, typ, len(data))
		}
		*dst, *has = le.Uint32(data), true
	}
	return pi, nil
}
