package netvsp

import (
	"encoding/binary"
	"fmt"
)

// This file is what a NIC does to frames: parse the Ethernet, IPv4/IPv6 and
// TCP/UDP headers, compute and verify checksums (RFC 791, 793, 768, 8200),
// and cut a large TCP send into MSS-sized segments (LSOv2, §7.8). Nothing
// here allocates.

const (
	ethHdrLen     = 14
	vlanTagLen    = 4
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86DD
	etherTypeVLAN = 0x8100
	ipv6HdrLen    = 40
	protoTCP      = 6
	protoUDP      = 17
	tcpMinHdr     = 20
	udpHdrLen     = 8

	// TCP flags (RFC 793, 3168).
	tcpFIN = 0x01
	tcpPSH = 0x08
	tcpCWR = 0x80
)

var be = binary.BigEndian

// headers locates the layers of one Ethernet frame.
type headers struct {
	L3, L4 int  // offsets of the IP and transport headers
	IPv6   bool // else IPv4
	Proto  uint8
	L4Len  int // transport header + payload bytes, by the IP header's length
	TCPLen int // TCP header length (Proto == TCP)
}

// parseHeaders finds the IP and TCP/UDP headers of frame. ok is false for
// anything else (ARP, fragments, IPv6 extension headers): such frames pass
// through untouched. lso says the IP length fields are zero, as a guest
// sets them for LSO (Linux netvsc), so the frame length counts.
func parseHeaders(frame []byte, lso bool) (h headers, ok bool) {
	if h, ok = parseL3(frame, lso); !ok {
		return h, false
	}
	return h, parseL4(frame, &h)
}

// parseL3 finds the IP header of frame (any transport protocol).
func parseL3(frame []byte, lso bool) (h headers, ok bool) {
	if len(frame) < ethHdrLen {
		return h, false
	}
	et := be.Uint16(frame[12:])
	h.L3 = ethHdrLen
	if et == etherTypeVLAN {
		if len(frame) < ethHdrLen+vlanTagLen {
			return h, false
		}
		et = be.Uint16(frame[16:])
		h.L3 += vlanTagLen
	}
	ip := frame[h.L3:]
	switch et {
	case etherTypeIPv4:
		if len(ip) < 20 || ip[0]>>4 != 4 {
			return h, false
		}
		ihl := int(ip[0]&0xF) * 4
		total := int(be.Uint16(ip[2:]))
		if lso {
			total = len(ip)
		}
		if ihl < 20 || total < ihl || total > len(ip) {
			return h, false
		}
		if be.Uint16(ip[6:])&0x3FFF != 0 { // MF or fragment offset
			return h, false
		}
		h.Proto, h.L4, h.L4Len = ip[9], h.L3+ihl, total-ihl
	case etherTypeIPv6:
		if len(ip) < ipv6HdrLen || ip[0]>>4 != 6 {
			return h, false
		}
		plen := int(be.Uint16(ip[4:]))
		if lso {
			plen = len(ip) - ipv6HdrLen
		}
		if ipv6HdrLen+plen > len(ip) {
			return h, false
		}
		h.IPv6, h.Proto, h.L4, h.L4Len = true, ip[6], h.L3+ipv6HdrLen, plen
	default:
		return h, false
	}
	return h, true
}

// parseL4 checks the TCP or UDP header after a parsed IP header.
func parseL4(frame []byte, h *headers) bool {
	switch h.Proto {
	case protoTCP:
		if h.L4Len < tcpMinHdr {
			return false
		}
		h.TCPLen = int(frame[h.L4+12]>>4) * 4
		return h.TCPLen >= tcpMinHdr && h.TCPLen <= h.L4Len
	case protoUDP:
		return h.L4Len >= udpHdrLen
	}
	return false
}

// sum16 adds b as big-endian 16-bit words to s (RFC 1071), eight bytes
// at a time: 32-bit words added into 64 bits fold to the same 16-bit
// ones'-complement sum, since 2^16 ≡ 1 modulo 2^16-1.
func sum16(s uint32, b []byte) uint32 {
	acc := uint64(s)
	for len(b) >= 8 {
		acc += uint64(be.Uint32(b)) + uint64(be.Uint32(b[4:]))
		b = b[8:]
	}
	for len(b) >= 2 {
		acc += uint64(b[0])<<8 | uint64(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	for acc > 0xFFFFFFFF {
		acc = acc>>32 + acc&0xFFFFFFFF
	}
	return uint32(fold(uint32(acc)))
}

func fold(s uint32) uint16 {
	for s > 0xFFFF {
		s = s>>16 + s&0xFFFF
	}
	return uint16(s)
}

// pseudoSum is the TCP/UDP pseudo-header sum for an l4Len-byte segment.
func pseudoSum(frame []byte, h headers, l4Len int) uint32 {
	var s uint32
	if h.IPv6 {
		s = sum16(0, frame[h.L3+8:h.L3+40])
	} else {
		s = sum16(0, frame[h.L3+12:h.L3+20])
	}
	return s + uint32(h.Proto) + uint32(l4Len)
}

func l4CsumOff(h headers) int {
	if h.Proto == protoTCP {
		return h.L4 + 16
	}
	return h.L4 + 6
}

// setIPv4Csum computes the IPv4 header checksum in place.
func setIPv4Csum(frame []byte, h headers) {
	ihl := int(frame[h.L3]&0xF) * 4
	be.PutUint16(frame[h.L3+10:], 0)
	be.PutUint16(frame[h.L3+10:], ^fold(sum16(0, frame[h.L3:h.L3+ihl])))
}

// setL4Csum computes the TCP or UDP checksum in place.
func setL4Csum(frame []byte, h headers) {
	off := l4CsumOff(h)
	be.PutUint16(frame[off:], 0)
	seg := frame[h.L4 : h.L4+h.L4Len]
	c := ^fold(sum16(pseudoSum(frame, h, h.L4Len), seg))
	if c == 0 && h.Proto == protoUDP {
		c = 0xFFFF // RFC 768: zero means "no checksum"
	}
	be.PutUint16(frame[off:], c)
}

// txChecksum does what a guest's checksum request (§7.8 TX bits) asks,
// in place. A request that does not match the frame is an error.
func txChecksum(frame []byte, info uint32) error {
	if info&(txCsumIPHeader|txCsumTCP|txCsumUDP) == 0 {
		return nil
	}
	h, ok := parseL3(frame, false)
	if !ok {
		return fmt.Errorf("%w: checksum request %#x for a frame without an IP header", ErrMalformed, info)
	}
	if info&(txCsumTCP|txCsumUDP) != 0 && !parseL4(frame, &h) {
		return fmt.Errorf("%w: checksum request %#x for a frame without TCP/UDP headers", ErrMalformed, info)
	}
	if (info&txCsumIPv4 != 0 && h.IPv6) || (info&txCsumIPv6 != 0 && !h.IPv6) {
		return fmt.Errorf("%w: checksum request %#x names the wrong IP version", ErrMalformed, info)
	}
	if info&txCsumIPHeader != 0 && !h.IPv6 {
		setIPv4Csum(frame, h)
	}
	switch {
	case info&txCsumTCP != 0:
		if h.Proto != protoTCP {
			return fmt.Errorf("%w: TCP checksum request for IP protocol %d", ErrMalformed, h.Proto)
		}
		if off := int(info>>txCsumTCPOffSh) & txCsumTCPOffMk; off != 0 && off != h.L4 {
			return fmt.Errorf("%w: TCP header offset %d, frame has it at %d", ErrMalformed, off, h.L4)
		}
		setL4Csum(frame, h)
	case info&txCsumUDP != 0:
		if h.Proto != protoUDP {
			return fmt.Errorf("%w: UDP checksum request for IP protocol %d", ErrMalformed, h.Proto)
		}
		setL4Csum(frame, h)
	}
	return nil
}

// rxChecksum verifies frame's checksums like a NIC with receive checksum
// offload and returns the RX bits of §7.8 (0: nothing to report).
func rxChecksum(frame []byte, o *offloads) uint32 {
	h, ok := parseL3(frame, false)
	if !ok {
		return 0
	}
	var r uint32
	if !h.IPv6 && o.RxIPv4 {
		ihl := int(frame[h.L3]&0xF) * 4
		if fold(sum16(0, frame[h.L3:h.L3+ihl])) == 0xFFFF {
			r |= RxCsumIPOK
		} else {
			r |= RxCsumIPFailed
		}
	}
	if !parseL4(frame, &h) {
		return r
	}
	var want bool
	switch {
	case h.Proto == protoTCP && !h.IPv6:
		want = o.RxTCP4
	case h.Proto == protoTCP:
		want = o.RxTCP6
	case !h.IPv6:
		want = o.RxUDP4
	default:
		want = o.RxUDP6
	}
	if !want {
		return r
	}
	if h.Proto == protoUDP && !h.IPv6 && be.Uint16(frame[h.L4+6:]) == 0 {
		return r // no UDP checksum to verify
	}
	good := fold(sum16(pseudoSum(frame, h, h.L4Len), frame[h.L4:h.L4+h.L4Len])) == 0xFFFF
	switch {
	case h.Proto == protoTCP && good:
		r |= RxCsumTCPOK
	case h.Proto == protoTCP:
		r |= RxCsumTCPFailed
	case good:
		r |= RxCsumUDPOK
	default:
		r |= RxCsumUDPFailed
	}
	return r
}

// segmentLSO cuts frame (one large TCP send whose IP length fields may be
// zero) into segments of at most mss payload bytes, built one at a time in
// scratch, each with correct lengths, IPv4 id, sequence number, flags and
// checksums, and passes each to emit (valid only during the call).
// maxFrame bounds each segment.
func segmentLSO(frame []byte, info uint32, maxFrame int, scratch []byte, emit func([]byte)) (int, error) {
	h, mss, err := lsoHeaders(frame, info, maxFrame)
	if err != nil {
		return 0, err
	}
	hdrLen := h.L4 + h.TCPLen
	payload := frame[hdrLen:]
	if hdrLen+mss > len(scratch) {
		return 0, fmt.Errorf("%w: LSO MSS %d with %d header bytes (scratch %d)", ErrMalformed, mss, hdrLen, len(scratch))
	}
	seq := be.Uint32(frame[h.L4+4:])
	flags := frame[h.L4+13]
	var id uint16
	if !h.IPv6 {
		id = be.Uint16(frame[h.L3+4:])
	}
	n := 0
	for first := true; first || len(payload) > 0; first = false {
		k := min(mss, len(payload))
		seg := scratch[:hdrLen+k]
		copy(seg, frame[:hdrLen])
		copy(seg[hdrLen:], payload[:k])
		payload = payload[k:]
		sh := h
		sh.L4Len = h.TCPLen + k
		if h.IPv6 {
			be.PutUint16(seg[h.L3+4:], uint16(sh.L4Len))
		} else {
			be.PutUint16(seg[h.L3+2:], uint16(h.L4-h.L3+sh.L4Len))
			be.PutUint16(seg[h.L3+4:], id+uint16(n))
			setIPv4Csum(seg, sh)
		}
		be.PutUint32(seg[h.L4+4:], seq)
		seq += uint32(k)
		f := flags
		if len(payload) > 0 {
			f &^= tcpFIN | tcpPSH
		}
		if !first {
			f &^= tcpCWR
		}
		seg[h.L4+13] = f
		setL4Csum(seg, sh)
		emit(seg)
		n++
	}
	return n, nil
}

// lsoHeaders checks an LSOv2 request (§7.8 PPI 2) against frame: TCP
// headers where the request says, an MSS that fits maxFrame, no more
// payload than advertised. It returns the frame's headers and the MSS.
func lsoHeaders(frame []byte, info uint32, maxFrame int) (headers, int, error) {
	mss := int(info & lsoMSSMask)
	h, ok := parseHeaders(frame, true)
	if !ok || h.Proto != protoTCP {
		return h, 0, fmt.Errorf("%w: LSO request %#x for a frame without TCP headers", ErrMalformed, info)
	}
	if (info&lsoIPv6 != 0) != h.IPv6 {
		return h, 0, fmt.Errorf("%w: LSO request %#x names the wrong IP version", ErrMalformed, info)
	}
	if off := int(info>>lsoTCPOffSh) & lsoTCPOffMk; off != h.L4 {
		return h, 0, fmt.Errorf("%w: LSO TCP header offset %d, frame has it at %d", ErrMalformed, off, h.L4)
	}
	hdrLen := h.L4 + h.TCPLen
	if mss == 0 || hdrLen+mss > maxFrame {
		return h, 0, fmt.Errorf("%w: LSO MSS %d with %d header bytes (max frame %d)", ErrMalformed, mss, hdrLen, maxFrame)
	}
	if n := len(frame) - hdrLen; n > lsoMaxOffld {
		return h, 0, fmt.Errorf("%w: LSO send of %d bytes, more than the advertised %d", ErrMalformed, n, lsoMaxOffld)
	}
	return h, mss, nil
}

// wholeLSO prepares an LSOv2 send to go on whole, as one large TCP
// segment, to a backend that takes offloaded frames: it sets the IP length
// from the frame's length (an LSO sender may leave it zero) and, for IPv4,
// the header checksum. The payload is not touched or summed. partialOK
// says the TCP checksum field holds what an LSOv2 sender puts there: the
// pseudo-header sum with a zero length (RFC 793 pseudo-header; Linux
// netvsc_drv.c and gVisor's GSO path both do so), so the host can vouch
// for the frame; otherwise the receiver must verify it (and will drop
// it, as it would drop the segments a NIC built from that field).
func wholeLSO(frame []byte, info uint32, maxFrame int) (partialOK bool, err error) {
	h, _, err := lsoHeaders(frame, info, maxFrame)
	if err != nil {
		return false, err
	}
	l4Len := len(frame) - h.L4
	if h.IPv6 {
		be.PutUint16(frame[h.L3+4:], uint16(l4Len))
	} else {
		be.PutUint16(frame[h.L3+2:], uint16(len(frame)-h.L3))
		setIPv4Csum(frame, h)
	}
	return be.Uint16(frame[h.L4+16:]) == fold(pseudoSum(frame, h, 0)), nil
}

// ipHeaderOK reports whether frame's IPv4 header checksum is right (true
// for IPv6, which has none, and for frames without an IP header).
func ipHeaderOK(frame []byte) bool {
	h, ok := parseL3(frame, false)
	if !ok || h.IPv6 {
		return true
	}
	ihl := int(frame[h.L3]&0xF) * 4
	return fold(sum16(0, frame[h.L3:h.L3+ihl])) == 0xFFFF
}
