package netvsc

import "encoding/binary"

// DefaultRSSKey is the 40-byte Toeplitz key of Microsoft's RSS
// verification suite ("Verifying the RSS Hash Calculation", Windows
// driver documentation), used when Config.RSSKey is nil.
var DefaultRSSKey = [40]byte{
	0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2,
	0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
	0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4,
	0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
	0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
}

// Toeplitz returns the Toeplitz hash of input under key: for every set
// bit i of input (most significant bit first), the 32 key bits starting
// at bit i are XORed into the result. key must be at least len(input)+4
// bytes long; bits past the key's end count as zero.
func Toeplitz(key []byte, input []byte) uint32 {
	var h uint32
	// window holds key bits [8i, 8i+64) for input byte i.
	var window uint64
	for i := 0; i < 8 && i < len(key); i++ {
		window |= uint64(key[i]) << (56 - 8*i)
	}
	for i, b := range input {
		for bit := 7; bit >= 0; bit-- {
			if b&(1<<bit) != 0 {
				h ^= uint32(window >> (32 - (7 - bit)))
			}
		}
		window <<= 8
		if j := i + 8; j < len(key) {
			window |= uint64(key[j])
		}
	}
	return h
}

// Ethernet and IP facts needed to find a frame's flow.
const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86DD
	etherTypeVLAN = 0x8100
	protoTCP      = 6
	protoUDP      = 17
)

// flowHash returns the Toeplitz hash of an Ethernet frame's flow as RSS
// defines it (source address, destination address, then source and
// destination ports for TCP and UDP), and false for frames that are not
// IPv4 or IPv6. It does not allocate.
func flowHash(key []byte, frame []byte) (uint32, bool) {
	var in [36]byte
	if len(frame) < ethHeaderLen {
		return 0, false
	}
	et := binary.BigEndian.Uint16(frame[12:])
	l3 := ethHeaderLen
	if et == etherTypeVLAN && len(frame) >= ethHeaderLen+vlanTagLen {
		et = binary.BigEndian.Uint16(frame[16:])
		l3 += vlanTagLen
	}
	p := frame[l3:]
	var n int
	var proto byte
	var l4 []byte
	switch et {
	case etherTypeIPv4:
		if len(p) < 20 || p[0]>>4 != 4 {
			return 0, false
		}
		ihl := int(p[0]&0xF) * 4
		copy(in[:8], p[12:20])
		n, proto = 8, p[9]
		fragment := binary.BigEndian.Uint16(p[6:])&0x3FFF != 0
		if !fragment && ihl >= 20 && len(p) >= ihl+4 {
			l4 = p[ihl:]
		}
	case etherTypeIPv6:
		if len(p) < 40 || p[0]>>4 != 6 {
			return 0, false
		}
		copy(in[:32], p[8:40])
		n, proto = 32, p[6]
		if len(p) >= 44 {
			l4 = p[40:]
		}
	default:
		return 0, false
	}
	if l4 != nil && (proto == protoTCP || proto == protoUDP) {
		copy(in[n:n+4], l4[:4])
		n += 4
	}
	return Toeplitz(key, in[:n]), true
}
