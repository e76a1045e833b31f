package netvsp

// toeplitz computes the Toeplitz hash of input with a 40-byte key, as RSS
// defines it: for every set bit of the input (most significant first), XOR
// in the 32 key bits starting at that bit position.
func toeplitz(key *[rssKeySize]byte, input []byte) uint32 {
	var h uint32
	window := uint32(key[0])<<24 | uint32(key[1])<<16 | uint32(key[2])<<8 | uint32(key[3])
	next := 4
	for _, b := range input {
		for bit := 7; bit >= 0; bit-- {
			if b&(1<<bit) != 0 {
				h ^= window
			}
			window <<= 1
			if next < len(key) && key[next]&(1<<bit) != 0 {
				window |= 1
			}
		}
		next++
	}
	return h
}

// rssHash hashes frame's TCP (or, without ports, IP) 4-tuple for RSS; ok
// is false for frames without IP headers.
func rssHash(key *[rssKeySize]byte, frame []byte) (uint32, bool) {
	h, ok := parseHeaders(frame, false)
	if !ok {
		return 0, false
	}
	var in [36]byte
	n := 0
	if h.IPv6 {
		n += copy(in[:], frame[h.L3+8:h.L3+40])
	} else {
		n += copy(in[:], frame[h.L3+12:h.L3+20])
	}
	if h.Proto == protoTCP {
		n += copy(in[n:], frame[h.L4:h.L4+4])
	}
	return toeplitz(key, in[:n]), true
}
