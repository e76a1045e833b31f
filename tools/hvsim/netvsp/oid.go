package netvsp

import (
	"fmt"
	"unicode/utf16"
)

// This file holds the OIDs the host answers (docs/hyperv-protocol.md §7.7)
// and the wire layouts of their information buffers: the NDIS 6 objects
// (object header, offload, RSS) and the RNDIS configuration parameter. It
// encodes query answers into a buffer and decodes set requests; the device
// state they read and change lives in device.go.

// OIDs (§7.7).
const (
	oidGenSupportedList        = 0x00010101
	oidGenMaximumFrameSize     = 0x00010106
	oidGenLinkSpeed            = 0x00010107
	oidGenCurrentPacketFilter  = 0x0001010E
	oidGenMaximumTotalSize     = 0x00010111
	oidGenMACOptions           = 0x00010113
	oidGenMediaConnectStatus   = 0x00010114
	oidGenNetworkLayerAddrs    = 0x00010118
	oidGenRSSCapabilities      = 0x00010203
	oidGenRSSParameters        = 0x00010204
	oidGenLinkState            = 0x00010207
	oidGenRNDISConfigParameter = 0x0001021B
	oidGenFriendlyName         = 0x00020216
	oid8023PermanentAddress    = 0x01010101
	oid8023CurrentAddress      = 0x01010102
	oid8023MulticastList       = 0x01010103
	oid8023MaximumListSize     = 0x01010104
	oidOffloadEncapsulation    = 0x0101010A
	oidTCPOffloadCurrentConfig = 0xFC01020B
	oidTCPOffloadParameters    = 0xFC01020C
	oidTCPOffloadHWCaps        = 0xFC01020D
)

// supportedOIDs is the answer to OID_GEN_SUPPORTED_LIST.
var supportedOIDs = [...]uint32{
	oidGenSupportedList, oidGenMaximumFrameSize, oidGenLinkSpeed,
	oidGenCurrentPacketFilter, oidGenMaximumTotalSize, oidGenMACOptions,
	oidGenMediaConnectStatus, oidGenNetworkLayerAddrs, oidGenRNDISConfigParameter,
	oidGenFriendlyName, oid8023PermanentAddress, oid8023CurrentAddress,
	oid8023MulticastList, oid8023MaximumListSize, oidGenLinkState,
	oidOffloadEncapsulation, oidTCPOffloadCurrentConfig, oidTCPOffloadParameters,
	oidTCPOffloadHWCaps, oidGenRSSCapabilities, oidGenRSSParameters,
}

// Packet filter bits (§7.9).
const (
	FilterDirected     = 0x01
	FilterMulticast    = 0x02
	FilterAllMulticast = 0x04
	FilterBroadcast    = 0x08
	FilterPromiscuous  = 0x20
	filterKnown        = FilterDirected | FilterMulticast | FilterAllMulticast | FilterBroadcast | FilterPromiscuous
)

// Media connect status values (§7.7).
const (
	mediaConnected    = 0
	mediaDisconnected = 1
)

// OID_GEN_MAC_OPTIONS value: copy lookahead, transfers not pend, no
// loopback, 802.1p, 802.1Q (OpenVMM's answer).
const macOptions = 0x1 | 0x4 | 0x8 | 0x40 | 0x200

// NDIS object header (§7.7): type u8, revision u8, size u16.
const (
	offObjType     = 0
	offObjRevision = 1
	offObjSize     = 2
	objHdrSize     = 4

	objTypeDefault  = 0x80
	objTypeRSSCaps  = 0x88
	objTypeRSSParam = 0x89
	objTypeOffload  = 0xA7
	objTypeEncap    = 0xA8
)

// NDIS_LINK_STATE (OID_GEN_LINK_STATE), revision 1.
const (
	offLSConnect   = 4
	offLSDuplex    = 8
	offLSXmitSpeed = 16
	offLSRcvSpeed  = 24
	sizeLinkState  = 40
)

// NDIS_OFFLOAD, revision 3 (OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES and
// _CURRENT_CONFIG; layout as OpenVMM's rndisprot.rs).
const (
	offOffIPv4TxEncap = 4
	offOffIPv4TxFlags = 8
	offOffIPv4RxEncap = 12
	offOffIPv4RxFlags = 16
	offOffIPv6TxEncap = 20
	offOffIPv6TxFlags = 24
	offOffIPv6RxEncap = 28
	offOffIPv6RxFlags = 32
	offOffLSOv2V4Enc  = 80
	offOffLSOv2V4Max  = 84
	offOffLSOv2V4Min  = 88
	offOffLSOv2V6Enc  = 92
	offOffLSOv2V6Max  = 96
	offOffLSOv2V6Min  = 100
	offOffLSOv2V6Flag = 104
	sizeNDISOffload   = 156
	encap8023         = 2 // NDIS_ENCAPSULATION_IEEE_802_3
	offloadSupported  = 1
	// checksum flag fields are 2 bits each: IPv4 = IP options, TCP options,
	// TCP, UDP, IP header; IPv6 = extension headers, TCP options, TCP, UDP.
	csumIPv4Opts = 1 << 0
	csumTCPOpts  = 1 << 2
	csumTCP      = 1 << 4
	csumUDP      = 1 << 6
	csumIPv4Hdr  = 1 << 8
	lsoV6Flags   = 1<<0 | 1<<2 // extension headers, TCP options
)

// NDIS_OFFLOAD_ENCAPSULATION, revision 1.
const (
	offEncV4Enabled = 4
	offEncV4Type    = 8
	offEncV4HdrSize = 12
	offEncV6Enabled = 16
	offEncV6Type    = 20
	offEncV6HdrSize = 24
	sizeEncap       = 28
	encapSetOn      = 1
)

// NDIS_OFFLOAD_PARAMETERS, revision 1 (§7.7: per-feature u8).
const (
	offOPIPv4     = 4
	offOPTCP4     = 5
	offOPUDP4     = 6
	offOPTCP6     = 7
	offOPUDP6     = 8
	offOPLSOv1    = 9
	offOPLSOv2V4  = 11
	offOPLSOv2V6  = 12
	sizeOffParams = 20

	opNoChange = 0
	opOff      = 1
	opTxOnly   = 2
	opRxOnly   = 3
	opTxRx     = 4
	opLSOOff   = 1
	opLSOOn    = 2
)

// NDIS_RECEIVE_SCALE_CAPABILITIES revision 2 and PARAMETERS (§7.7).
const (
	offRSSCFlags      = 4
	offRSSCIntMsgs    = 8
	offRSSCQueues     = 12
	offRSSCTableSize  = 16
	sizeRSSCaps       = 18
	rssCapsFlags      = 0x100 | 0x200 | 0x1 // TCP/IPv4, TCP/IPv6 hashing; Toeplitz
	offRSSPFlags      = 4
	offRSSPHashInfo   = 8
	offRSSPTableSize  = 12
	offRSSPTableOff   = 16
	offRSSPKeySize    = 20
	offRSSPKeyOff     = 24
	sizeRSSParamsMin  = 28
	rssFlagDisable    = 0x10
	rssHashFuncMask   = 0xFF
	rssKeySize        = 40
	rssMaxTableSize   = 128
	rssDefaultEntries = 128
)

// RNDIS configuration parameter (OID_GEN_RNDIS_CONFIG_PARAMETER): offsets
// from the start of the information buffer.
const (
	offCPNameOff  = 0
	offCPNameLen  = 4
	offCPType     = 8
	offCPValueOff = 12
	offCPValueLen = 16
	sizeCPHeader  = 20
	cpTypeString  = 2
)

// offloads is the offload state: which checksum and LSO offloads are on
// (for TX: the host computes; for RX: the host reports).
type offloads struct {
	TxIPv4, TxTCP4, TxUDP4, TxTCP6, TxUDP6 bool
	RxIPv4, RxTCP4, RxUDP4, RxTCP6, RxUDP6 bool
	LSO4, LSO6                             bool
}

var allOffloads = offloads{true, true, true, true, true, true, true, true, true, true, true, true}

func b2u(b bool, v uint32) uint32 {
	if b {
		return v
	}
	return 0
}

// encodeNDISOffload writes NDIS_OFFLOAD revision 3 for o into b.
func encodeNDISOffload(b []byte, o offloads) int {
	clear(b[:sizeNDISOffload])
	b[offObjType], b[offObjRevision] = objTypeOffload, 3
	le.PutUint16(b[offObjSize:], sizeNDISOffload)
	v4 := func(ip, tcp, udp bool) uint32 {
		return b2u(ip || tcp || udp, csumIPv4Opts|csumTCPOpts) | b2u(tcp, csumTCP) | b2u(udp, csumUDP) | b2u(ip, csumIPv4Hdr)
	}
	v6 := func(tcp, udp bool) uint32 {
		return b2u(tcp || udp, csumIPv4Opts|csumTCPOpts) | b2u(tcp, csumTCP) | b2u(udp, csumUDP)
	}
	for _, off := range []int{offOffIPv4TxEncap, offOffIPv4RxEncap, offOffIPv6TxEncap, offOffIPv6RxEncap} {
		le.PutUint32(b[off:], encap8023)
	}
	le.PutUint32(b[offOffIPv4TxFlags:], v4(o.TxIPv4, o.TxTCP4, o.TxUDP4))
	le.PutUint32(b[offOffIPv4RxFlags:], v4(o.RxIPv4, o.RxTCP4, o.RxUDP4))
	le.PutUint32(b[offOffIPv6TxFlags:], v6(o.TxTCP6, o.TxUDP6))
	le.PutUint32(b[offOffIPv6RxFlags:], v6(o.RxTCP6, o.RxUDP6))
	if o.LSO4 {
		le.PutUint32(b[offOffLSOv2V4Enc:], encap8023)
		le.PutUint32(b[offOffLSOv2V4Max:], lsoMaxOffld)
		le.PutUint32(b[offOffLSOv2V4Min:], lsoMinSegCnt)
	}
	if o.LSO6 {
		le.PutUint32(b[offOffLSOv2V6Enc:], encap8023)
		le.PutUint32(b[offOffLSOv2V6Max:], lsoMaxOffld)
		le.PutUint32(b[offOffLSOv2V6Min:], lsoMinSegCnt)
		le.PutUint32(b[offOffLSOv2V6Flag:], lsoV6Flags)
	}
	return sizeNDISOffload
}

func encodeEncapsulation(b []byte) int {
	clear(b[:sizeEncap])
	b[offObjType], b[offObjRevision] = objTypeEncap, 1
	le.PutUint16(b[offObjSize:], sizeEncap)
	le.PutUint32(b[offEncV4Enabled:], offloadSupported)
	le.PutUint32(b[offEncV4Type:], encap8023)
	le.PutUint32(b[offEncV4HdrSize:], ethHdrLen)
	le.PutUint32(b[offEncV6Enabled:], offloadSupported)
	le.PutUint32(b[offEncV6Type:], encap8023)
	le.PutUint32(b[offEncV6HdrSize:], ethHdrLen)
	return sizeEncap
}

func encodeLinkState(b []byte, up bool, speedBps uint64) int {
	clear(b[:sizeLinkState])
	b[offObjType], b[offObjRevision] = objTypeDefault, 1
	le.PutUint16(b[offObjSize:], sizeLinkState)
	le.PutUint32(b[offLSConnect:], b2u(up, 1)) // MediaConnectStateConnected = 1
	le.PutUint64(b[offLSXmitSpeed:], speedBps)
	le.PutUint64(b[offLSRcvSpeed:], speedBps)
	return sizeLinkState
}

func encodeRSSCaps(b []byte, queues uint32) int {
	clear(b[:sizeRSSCaps])
	b[offObjType], b[offObjRevision] = objTypeRSSCaps, 2
	le.PutUint16(b[offObjSize:], sizeRSSCaps)
	le.PutUint32(b[offRSSCFlags:], rssCapsFlags)
	le.PutUint32(b[offRSSCIntMsgs:], 1)
	le.PutUint32(b[offRSSCQueues:], queues)
	le.PutUint16(b[offRSSCTableSize:], rssDefaultEntries)
	return sizeRSSCaps
}

// checkObjHeader validates an NDIS object header at the start of b.
func checkObjHeader(b []byte, typ byte, minRev byte, minSize int) error {
	if len(b) < minSize || len(b) < objHdrSize {
		return fmt.Errorf("%w: NDIS object of %d bytes, want %d", ErrMalformed, len(b), minSize)
	}
	if b[offObjType] != typ || b[offObjRevision] < minRev || int(le.Uint16(b[offObjSize:])) < minSize {
		return fmt.Errorf("%w: NDIS object header %#x rev %d size %d, want %#x rev ≥ %d size ≥ %d",
			ErrMalformed, b[offObjType], b[offObjRevision], le.Uint16(b[offObjSize:]), typ, minRev, minSize)
	}
	return nil
}

// applyOffloadParams decodes NDIS_OFFLOAD_PARAMETERS and applies it to o.
// LSOv1 is not supported (an error, as OpenVMM's host does).
func applyOffloadParams(b []byte, o *offloads) error {
	if err := checkObjHeader(b, objTypeDefault, 1, sizeOffParams); err != nil {
		return err
	}
	n := *o
	csum := func(v byte, tx, rx *bool) error {
		switch v {
		case opNoChange:
		case opOff:
			*tx, *rx = false, false
		case opTxOnly:
			*tx, *rx = true, false
		case opRxOnly:
			*tx, *rx = false, true
		case opTxRx:
			*tx, *rx = true, true
		default:
			return fmt.Errorf("%w: offload parameter value %d", ErrMalformed, v)
		}
		return nil
	}
	lso := func(v byte, on *bool) error {
		switch v {
		case opNoChange:
		case opLSOOff:
			*on = false
		case opLSOOn:
			*on = true
		default:
			return fmt.Errorf("%w: LSO parameter value %d", ErrMalformed, v)
		}
		return nil
	}
	for _, err := range []error{
		csum(b[offOPIPv4], &n.TxIPv4, &n.RxIPv4),
		csum(b[offOPTCP4], &n.TxTCP4, &n.RxTCP4),
		csum(b[offOPUDP4], &n.TxUDP4, &n.RxUDP4),
		csum(b[offOPTCP6], &n.TxTCP6, &n.RxTCP6),
		csum(b[offOPUDP6], &n.TxUDP6, &n.RxUDP6),
		lso(b[offOPLSOv2V4], &n.LSO4),
		lso(b[offOPLSOv2V6], &n.LSO6),
	} {
		if err != nil {
			return err
		}
	}
	if b[offOPLSOv1] == opLSOOn {
		return errNotSupported
	}
	*o = n
	return nil
}

// errNotSupported answers a well-formed request the host does not do
// (RNDIS status NOT_SUPPORTED, no violation).
var errNotSupported = fmt.Errorf("netvsp: not supported")

// rssParams is a decoded NDIS_RECEIVE_SCALE_PARAMETERS.
type rssParams struct {
	Disable  bool
	HashInfo uint32
	Key      [rssKeySize]byte
	Table    [rssMaxTableSize]uint32
	Entries  int
}

// parseRSSParams decodes NDIS_RECEIVE_SCALE_PARAMETERS (§7.7); entries must
// name one of queues channels.
func parseRSSParams(b []byte, queues int) (rssParams, error) {
	var p rssParams
	if queues <= 0 {
		return p, fmt.Errorf("netvsp: RSS with %d queues", queues)
	}
	if err := checkObjHeader(b, objTypeRSSParam, 1, sizeRSSParamsMin); err != nil {
		return p, err
	}
	p.HashInfo = le.Uint32(b[offRSSPHashInfo:])
	if le.Uint16(b[offRSSPFlags:])&rssFlagDisable != 0 || p.HashInfo&rssHashFuncMask == 0 {
		p.Disable = true
		return p, nil
	}
	tsize, toff := int(le.Uint16(b[offRSSPTableSize:])), uint64(le.Uint32(b[offRSSPTableOff:]))
	ksize, koff := int(le.Uint16(b[offRSSPKeySize:])), uint64(le.Uint32(b[offRSSPKeyOff:]))
	if ksize != rssKeySize || koff+uint64(ksize) > uint64(len(b)) {
		return p, fmt.Errorf("%w: RSS key %d bytes at %d in %d", ErrMalformed, ksize, koff, len(b))
	}
	if tsize == 0 || tsize%4 != 0 || tsize/4 > rssMaxTableSize || toff+uint64(tsize) > uint64(len(b)) {
		return p, fmt.Errorf("%w: RSS table %d bytes at %d in %d", ErrMalformed, tsize, toff, len(b))
	}
	copy(p.Key[:], b[koff:])
	p.Entries = tsize / 4
	for i := 0; i < p.Entries; i++ {
		v := le.Uint32(b[toff+uint64(4*i):])
		if v >= uint32(queues) {
			return p, fmt.Errorf("%w: RSS table entry %d names queue %d of %d", ErrMalformed, i, v, queues)
		}
		p.Table[i] = v
	}
	return p, nil
}

// configParam is a decoded RNDIS configuration parameter.
type configParam struct {
	Name, Value string
	Type        uint32
}

// parseConfigParam decodes OID_GEN_RNDIS_CONFIG_PARAMETER's information
// buffer; string values are UTF-16LE like the name.
func parseConfigParam(b []byte) (configParam, error) {
	var c configParam
	if len(b) < sizeCPHeader {
		return c, fmt.Errorf("%w: config parameter of %d bytes", ErrMalformed, len(b))
	}
	nOff, nLen := uint64(le.Uint32(b[offCPNameOff:])), uint64(le.Uint32(b[offCPNameLen:]))
	vOff, vLen := uint64(le.Uint32(b[offCPValueOff:])), uint64(le.Uint32(b[offCPValueLen:]))
	c.Type = le.Uint32(b[offCPType:])
	if nLen > 255 || vLen > 255 || nLen%2 != 0 || nOff+nLen > uint64(len(b)) || vOff+vLen > uint64(len(b)) {
		return c, fmt.Errorf("%w: config parameter name %d+%d value %d+%d in %d bytes", ErrMalformed, nOff, nLen, vOff, vLen, len(b))
	}
	c.Name = utf16String(b[nOff : nOff+nLen])
	if c.Type == cpTypeString {
		if vLen%2 != 0 {
			return c, fmt.Errorf("%w: odd string value length %d", ErrMalformed, vLen)
		}
		c.Value = utf16String(b[vOff : vOff+vLen])
	}
	return c, nil
}

func utf16String(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = le.Uint16(b[2*i:])
	}
	for len(u) > 0 && u[len(u)-1] == 0 {
		u = u[:len(u)-1]
	}
	return string(utf16.Decode(u))
}
