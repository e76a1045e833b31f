package dhcp4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Fixed-format fields of a DHCP message, RFC 2131 §2 (Figure 1).
const (
	offOp      = 0
	offHType   = 1
	offHLen    = 2
	offHops    = 3
	offXID     = 4
	offSecs    = 8
	offFlags   = 10
	offCIAddr  = 12
	offYIAddr  = 16
	offSIAddr  = 20
	offGIAddr  = 24
	offCHAddr  = 28 // 16 bytes
	offSName   = 44 // 64 bytes
	offFile    = 108
	offCookie  = 236 // RFC 2131 §3: 99.130.83.99
	offOptions = 240

	// HeaderSize is the size of the fixed part including the magic cookie.
	HeaderSize = offOptions
	// MaxMessageSize is the largest message the client sends or accepts
	// (576-byte IP datagram minimum, RFC 2131 §2, rounded up to the Ethernet MTU).
	MaxMessageSize = 1500 - 20 - 8
)

var magicCookie = [4]byte{99, 130, 83, 99}

// Op codes, RFC 2131 §2.
const (
	opRequest = 1
	opReply   = 2
)

// flagBroadcast asks the server to broadcast its replies, RFC 2131 §2.
const flagBroadcast = 0x8000

// Option codes, RFC 2132 unless noted.
const (
	OptPad            = 0
	OptSubnetMask     = 1
	OptRouter         = 3
	OptDNS            = 6
	OptHostname       = 12
	OptDomainName     = 15
	OptInterfaceMTU   = 26
	OptRequestedIP    = 50
	OptLeaseTime      = 51
	OptOverload       = 52
	OptMessageType    = 53
	OptServerID       = 54
	OptParamList      = 55
	OptMaxMessageSize = 57
	OptRenewalTime    = 58 // T1
	OptRebindingTime  = 59 // T2
	OptClientID       = 61
	// OptClasslessRoutes is the classless static route option, RFC 3442.
	OptClasslessRoutes = 121
	// OptAzureWireServer carries the Azure WireServer (fabric endpoint)
	// address; it is a site-specific option (RFC 2132 §2: 224-254) that
	// Azure's DHCP server sends (Azure documentation, "What is IP address
	// 168.63.129.16?").
	OptAzureWireServer = 245
	OptEnd             = 255
)

// MessageType is option 53, RFC 2132 §9.6.
type MessageType uint8

// Message types.
const (
	Discover MessageType = 1
	Offer    MessageType = 2
	Request  MessageType = 3
	Decline  MessageType = 4
	Ack      MessageType = 5
	Nak      MessageType = 6
	Release  MessageType = 7
	Inform   MessageType = 8
)

func (t MessageType) String() string {
	names := [...]string{"", "DISCOVER", "OFFER", "REQUEST", "DECLINE", "ACK", "NAK", "RELEASE", "INFORM"}
	if int(t) < len(names) && t != 0 {
		return names[t]
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// Message is a decoded DHCP message: the fixed fields the client uses and
// the options it understands. Unknown options are skipped.
type Message struct {
	Op     uint8
	XID    uint32
	Secs   uint16
	Flags  uint16
	CIAddr netip.Addr
	YIAddr netip.Addr
	SIAddr netip.Addr
	GIAddr netip.Addr
	CHAddr [6]byte

	Type        MessageType
	ServerID    netip.Addr
	RequestedIP netip.Addr
	SubnetMask  netip.Addr
	Routers     []netip.Addr
	DNS         []netip.Addr
	DomainName  string
	Hostname    string
	MTU         uint16
	LeaseTime   time.Duration // 0 when absent
	T1, T2      time.Duration // 0 when absent
	WireServer  netip.Addr    // option 245
	ParamList   []byte
	ClientID    []byte
	// Routes from option 121 (RFC 3442); a 0.0.0.0 router means on link.
	Routes []Route
}

// Route is one classless static route.
type Route struct {
	Dst netip.Prefix
	Via netip.Addr
}

// Errors returned by Parse.
var (
	ErrShort     = errors.New("dhcp4: message too short")
	ErrCookie    = errors.New("dhcp4: bad magic cookie")
	ErrOption    = errors.New("dhcp4: malformed option")
	ErrNotReply  = errors.New("dhcp4: not a BOOTREPLY for Ethernet")
	ErrTooLarge  = errors.New("dhcp4: message too large")
	ErrBadLength = errors.New("dhcp4: option has wrong length")
)

func addr4(b []byte) netip.Addr { return netip.AddrFrom4([4]byte(b[:4])) }

func put4(b []byte, a netip.Addr) {
	if a.Is4() {
		v := a.As4()
		copy(b, v[:])
	}
}

// Parse decodes a DHCP message from b (a UDP payload). It validates every
// length against b and never panics on hostile input. The returned message
// shares no memory with b.
func Parse(b []byte) (Message, error) {
	var m Message
	if len(b) < HeaderSize {
		return m, ErrShort
	}
	if [4]byte(b[offCookie:offCookie+4]) != magicCookie {
		return m, ErrCookie
	}
	m.Op = b[offOp]
	m.XID = binary.BigEndian.Uint32(b[offXID:])
	m.Secs = binary.BigEndian.Uint16(b[offSecs:])
	m.Flags = binary.BigEndian.Uint16(b[offFlags:])
	m.CIAddr = addr4(b[offCIAddr:])
	m.YIAddr = addr4(b[offYIAddr:])
	m.SIAddr = addr4(b[offSIAddr:])
	m.GIAddr = addr4(b[offGIAddr:])
	if b[offHType] == 1 && b[offHLen] == 6 {
		copy(m.CHAddr[:], b[offCHAddr:offCHAddr+6])
	}
	opts := b[offOptions:]
	for len(opts) > 0 {
		code := opts[0]
		if code == OptPad {
			opts = opts[1:]
			continue
		}
		if code == OptEnd {
			break
		}
		if len(opts) < 2 || len(opts) < 2+int(opts[1]) {
			return m, fmt.Errorf("%w: option %d overruns the message", ErrOption, code)
		}
		v := opts[2 : 2+int(opts[1])]
		opts = opts[2+len(v):]
		if err := m.setOption(code, v); err != nil {
			return m, err
		}
	}
	return m, nil
}

func (m *Message) setOption(code byte, v []byte) error {
	need := func(n int) error {
		if len(v) != n {
			return fmt.Errorf("%w: option %d: %d bytes, want %d", ErrBadLength, code, len(v), n)
		}
		return nil
	}
	addrs := func() ([]netip.Addr, error) {
		if len(v) == 0 || len(v)%4 != 0 {
			return nil, fmt.Errorf("%w: option %d: %d bytes, want a multiple of 4", ErrBadLength, code, len(v))
		}
		out := make([]netip.Addr, 0, len(v)/4)
		for i := 0; i < len(v); i += 4 {
			out = append(out, addr4(v[i:]))
		}
		return out, nil
	}
	secs := func() time.Duration { return time.Duration(binary.BigEndian.Uint32(v)) * time.Second }
	var err error
	switch code {
	case OptMessageType:
		if err = need(1); err == nil {
			m.Type = MessageType(v[0])
		}
	case OptServerID:
		if err = need(4); err == nil {
			m.ServerID = addr4(v)
		}
	case OptRequestedIP:
		if err = need(4); err == nil {
			m.RequestedIP = addr4(v)
		}
	case OptSubnetMask:
		if err = need(4); err == nil {
			m.SubnetMask = addr4(v)
		}
	case OptAzureWireServer:
		if err = need(4); err == nil {
			m.WireServer = addr4(v)
		}
	case OptRouter:
		m.Routers, err = addrs()
	case OptDNS:
		m.DNS, err = addrs()
	case OptDomainName:
		m.DomainName = string(v)
	case OptHostname:
		m.Hostname = string(v)
	case OptInterfaceMTU:
		if err = need(2); err == nil {
			m.MTU = binary.BigEndian.Uint16(v)
		}
	case OptLeaseTime:
		if err = need(4); err == nil {
			m.LeaseTime = secs()
		}
	case OptRenewalTime:
		if err = need(4); err == nil {
			m.T1 = secs()
		}
	case OptRebindingTime:
		if err = need(4); err == nil {
			m.T2 = secs()
		}
	case OptParamList:
		m.ParamList = append([]byte(nil), v...)
	case OptClientID:
		m.ClientID = append([]byte(nil), v...)
	case OptClasslessRoutes:
		m.Routes, err = parseRoutes(v)
	}
	return err
}

// Append encodes m as a client BOOTREQUEST (or, for tests, a BOOTREPLY when
// m.Op is opReply) and appends it to b. Only the options set in m are
// written, followed by OptEnd.
func (m *Message) Append(b []byte) ([]byte, error) {
	start := len(b)
	b = append(b, make([]byte, HeaderSize)...)
	h := b[start:]
	h[offOp] = m.Op
	if h[offOp] == 0 {
		h[offOp] = opRequest
	}
	h[offHType], h[offHLen] = 1, 6 // Ethernet, RFC 1700
	binary.BigEndian.PutUint32(h[offXID:], m.XID)
	binary.BigEndian.PutUint16(h[offSecs:], m.Secs)
	binary.BigEndian.PutUint16(h[offFlags:], m.Flags)
	put4(h[offCIAddr:], m.CIAddr)
	put4(h[offYIAddr:], m.YIAddr)
	put4(h[offSIAddr:], m.SIAddr)
	put4(h[offGIAddr:], m.GIAddr)
	copy(h[offCHAddr:], m.CHAddr[:])
	copy(h[offCookie:], magicCookie[:])

	opt := func(code byte, v ...byte) {
		b = append(b, code, byte(len(v)))
		b = append(b, v...)
	}
	optAddr := func(code byte, a netip.Addr) {
		if a.Is4() {
			v := a.As4()
			opt(code, v[:]...)
		}
	}
	optSecs := func(code byte, d time.Duration) {
		if d > 0 {
			opt(code, binary.BigEndian.AppendUint32(nil, uint32(d/time.Second))...)
		}
	}
	if m.Type != 0 {
		opt(OptMessageType, byte(m.Type))
	}
	if len(m.ClientID) > 0 {
		if len(m.ClientID) > 255 {
			return nil, ErrTooLarge
		}
		opt(OptClientID, m.ClientID...)
	}
	optAddr(OptRequestedIP, m.RequestedIP)
	optAddr(OptServerID, m.ServerID)
	optAddr(OptSubnetMask, m.SubnetMask)
	for _, o := range [...]struct {
		code byte
		list []netip.Addr
	}{{OptRouter, m.Routers}, {OptDNS, m.DNS}} {
		code, list := o.code, o.list
		if len(list) > 0 {
			var v []byte
			for _, a := range list {
				a4 := a.As4()
				v = append(v, a4[:]...)
			}
			if len(v) > 255 {
				return nil, ErrTooLarge
			}
			opt(code, v...)
		}
	}
	if len(m.Routes) > 0 {
		v := appendRoutes(nil, m.Routes)
		if len(v) > 255 {
			return nil, ErrTooLarge
		}
		opt(OptClasslessRoutes, v...)
	}
	optSecs(OptLeaseTime, m.LeaseTime)
	optSecs(OptRenewalTime, m.T1)
	optSecs(OptRebindingTime, m.T2)
	optAddr(OptAzureWireServer, m.WireServer)
	if m.MTU != 0 {
		opt(OptInterfaceMTU, byte(m.MTU>>8), byte(m.MTU))
	}
	for _, o := range [...]struct {
		code byte
		s    string
	}{{OptHostname, m.Hostname}, {OptDomainName, m.DomainName}} {
		code, s := o.code, o.s
		if s != "" {
			if len(s) > 255 {
				return nil, ErrTooLarge
			}
			opt(code, []byte(s)...)
		}
	}
	if len(m.ParamList) > 0 {
		if len(m.ParamList) > 255 {
			return nil, ErrTooLarge
		}
		opt(OptParamList, m.ParamList...)
	}
	if m.Op != opReply {
		opt(OptMaxMessageSize, byte(MaxMessageSize>>8), byte(MaxMessageSize&0xff))
	}
	b = append(b, OptEnd)
	if len(b)-start > MaxMessageSize {
		return nil, ErrTooLarge
	}
	return b, nil
}

// parseRoutes decodes option 121 (RFC 3442 §3): per route a prefix width,
// the significant octets of the destination, and a 4-byte router.
func parseRoutes(v []byte) ([]Route, error) {
	var out []Route
	for len(v) > 0 {
		w := int(v[0])
		if w > 32 {
			return nil, fmt.Errorf("%w: option 121: prefix width %d", ErrOption, w)
		}
		n := (w + 7) / 8
		if len(v) < 1+n+4 {
			return nil, fmt.Errorf("%w: option 121 truncated", ErrBadLength)
		}
		var dst [4]byte
		copy(dst[:], v[1:1+n])
		p := netip.PrefixFrom(netip.AddrFrom4(dst), w).Masked()
		out = append(out, Route{Dst: p, Via: addr4(v[1+n:])})
		v = v[1+n+4:]
	}
	return out, nil
}

func appendRoutes(b []byte, routes []Route) []byte {
	for _, r := range routes {
		w := r.Dst.Bits()
		d := r.Dst.Addr().As4()
		via := r.Via.As4()
		b = append(b, byte(w))
		b = append(b, d[:(w+7)/8]...)
		b = append(b, via[:]...)
	}
	return b
}
