package simhost

import (
	"encoding/binary"
	"net/netip"
	"sync"

	"github.com/gohv/gohv/tools/hvsim/netvsp"
)

// dhcpServer is the simulated network's DHCPv4 server (RFC 2131, RFC 2132):
// it answers the guest's DISCOVER and REQUEST at the Ethernet level, in
// front of the peer stack, with one fixed lease: the address a VM on a
// Hyper-V switch with a DHCP server would get. It is written here, apart
// from the guest's DHCP client (netstack/dhcp4), so that the two sides of
// the protocol are checked against each other. Frames it does not answer
// go on to the next backend.
type dhcpServer struct {
	next      backend
	serverMAC [6]byte
	server    netip.Addr // also the router and the DNS server
	client    netip.Addr // the address handed out
	prefix    int
	leaseSecs uint32
	// wireServer, when valid, is sent as option 245, as Azure's DHCP
	// servers send the WireServer's address (docs/azure.md).
	wireServer netip.Addr

	mu      sync.Mutex
	deliver func(frame []byte)
	offers  int
	acks    int
}

type backend interface {
	Send(frame []byte)
	SetReceiver(fn func(frame []byte))
}

// TakesOffloaded implements netvsp.OffloadBackend: as the next backend.
func (s *dhcpServer) TakesOffloaded() bool {
	ob, ok := s.next.(netvsp.OffloadBackend)
	return ok && ob.TakesOffloaded()
}

// LendFrame implements netvsp.FrameLender: the next backend's memory, if
// it lends any.
func (s *dhcpServer) LendFrame(n int) ([]byte, netvsp.Lent, bool) {
	if l, ok := s.next.(netvsp.FrameLender); ok {
		return l.LendFrame(n)
	}
	return nil, netvsp.Lent{}, false
}

// SendLent implements netvsp.FrameLender: the Device lends only for large
// TCP sends, which are never DHCP requests, so they go on to the next
// backend.
func (s *dhcpServer) SendLent(l netvsp.Lent, buf, frame []byte) {
	s.next.(netvsp.FrameLender).SendLent(l, buf, frame)
}

// ReturnLent implements netvsp.FrameLender.
func (s *dhcpServer) ReturnLent(l netvsp.Lent) { s.next.(netvsp.FrameLender).ReturnLent(l) }

// SendOffloaded implements netvsp.OffloadBackend (called only when
// TakesOffloaded said so): like Send, DHCP requests are answered here and
// everything else goes on to the next backend's SendOffloaded.
func (s *dhcpServer) SendOffloaded(frame []byte) {
	if msg, ok := dhcpRequestOf(frame); ok {
		s.answer(msg)
		return
	}
	s.next.(netvsp.OffloadBackend).SendOffloaded(frame)
}

// Frame and message offsets (IPv4 without options; BOOTP, RFC 2131 §2).
const (
	ethHeader                                     = 14
	ipv4Header                                    = 20
	udpHeader                                     = 8
	bootpFixed                                    = 236
	dhcpMagic                                     = 0x63825363
	offOp                                         = 0
	offXID                                        = 4
	offFlags                                      = 10
	offCIAddr                                     = 12
	offYIAddr                                     = 16
	offSIAddr                                     = 20
	offCHAddr                                     = 28
	offOptions                                    = bootpFixed + 4 // after the magic cookie
	portServer                                    = 67
	portClient                                    = 68
	optPad                                        = 0
	optMask                                       = 1
	optRouter                                     = 3
	optDNS                                        = 6
	optReqAddr                                    = 50
	optLease                                      = 51
	optMsgType                                    = 53
	optServerID                                   = 54
	optAzureWireServer                            = 245
	optEnd                                        = 255
	dhcpDiscover, dhcpOffer, dhcpRequest, dhcpAck = 1, 2, 3, 5
)

func (s *dhcpServer) SetReceiver(fn func(frame []byte)) {
	s.mu.Lock()
	s.deliver = fn
	s.mu.Unlock()
	s.next.SetReceiver(fn)
}

// Send takes a guest frame: DHCP requests are answered here, everything
// else goes on.
func (s *dhcpServer) Send(frame []byte) {
	if msg, ok := dhcpRequestOf(frame); ok {
		s.answer(msg)
		return
	}
	s.next.Send(frame)
}

// dhcpRequestOf returns the BOOTP message of an IPv4 UDP frame to port 67.
func dhcpRequestOf(f []byte) ([]byte, bool) {
	if len(f) < ethHeader+ipv4Header+udpHeader+offOptions || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
		return nil, false
	}
	ip := f[ethHeader:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < ipv4Header || ip[9] != 17 || len(ip) < ihl+udpHeader {
		return nil, false
	}
	udp := ip[ihl:]
	if binary.BigEndian.Uint16(udp[2:]) != portServer {
		return nil, false
	}
	n := int(binary.BigEndian.Uint16(udp[4:]))
	if n < udpHeader+offOptions || n > len(udp) {
		return nil, false
	}
	msg := udp[udpHeader:n]
	if msg[offOp] != 1 || binary.BigEndian.Uint32(msg[bootpFixed:]) != dhcpMagic {
		return nil, false
	}
	return msg, true
}

// option returns option code's value in msg's options.
func option(msg []byte, code byte) ([]byte, bool) {
	for o := msg[offOptions:]; len(o) > 0; {
		switch o[0] {
		case optPad:
			o = o[1:]
			continue
		case optEnd:
			return nil, false
		}
		if len(o) < 2 || len(o) < 2+int(o[1]) {
			return nil, false
		}
		if o[0] == code {
			return o[2 : 2+o[1]], true
		}
		o = o[2+o[1]:]
	}
	return nil, false
}

func (s *dhcpServer) answer(req []byte) {
	t, ok := option(req, optMsgType)
	if !ok || len(t) != 1 {
		return
	}
	var reply byte
	switch t[0] {
	case dhcpDiscover:
		reply = dhcpOffer
	case dhcpRequest:
		// A REQUEST for another address (or from another server) gets no
		// answer here, as a server that is not chosen stays silent.
		if a, ok := option(req, optReqAddr); ok && (len(a) != 4 || netip.AddrFrom4([4]byte(a)) != s.client) {
			return
		}
		if id, ok := option(req, optServerID); ok && (len(id) != 4 || netip.AddrFrom4([4]byte(id)) != s.server) {
			return
		}
		if ci := netip.AddrFrom4([4]byte(req[offCIAddr : offCIAddr+4])); !ci.IsUnspecified() && ci != s.client {
			return
		}
		reply = dhcpAck
	default:
		return // RELEASE, DECLINE, INFORM: nothing to say
	}
	s.mu.Lock()
	deliver := s.deliver
	if reply == dhcpOffer {
		s.offers++
	} else {
		s.acks++
	}
	s.mu.Unlock()
	if deliver != nil {
		deliver(s.frame(req, reply))
	}
}

// frame builds the broadcast reply to req.
func (s *dhcpServer) frame(req []byte, typ byte) []byte {
	msg := make([]byte, offOptions, 300)
	msg[offOp] = 2 // BOOTREPLY
	msg[1], msg[2] = 1, 6
	copy(msg[offXID:], req[offXID:offXID+4])
	copy(msg[offFlags:], req[offFlags:offFlags+2])
	c4, sv4 := s.client.As4(), s.server.As4()
	copy(msg[offYIAddr:], c4[:])
	copy(msg[offSIAddr:], sv4[:])
	copy(msg[offCHAddr:], req[offCHAddr:offCHAddr+16])
	binary.BigEndian.PutUint32(msg[bootpFixed:], dhcpMagic)
	mask := binary.BigEndian.AppendUint32(nil, ^uint32(0)<<(32-s.prefix))
	lease := binary.BigEndian.AppendUint32(nil, s.leaseSecs)
	msg = append(msg, optMsgType, 1, typ)
	msg = append(msg, optServerID, 4)
	msg = append(msg, sv4[:]...)
	msg = append(msg, optLease, 4)
	msg = append(msg, lease...)
	msg = append(msg, optMask, 4)
	msg = append(msg, mask...)
	msg = append(msg, optRouter, 4)
	msg = append(msg, sv4[:]...)
	msg = append(msg, optDNS, 4)
	msg = append(msg, sv4[:]...)
	if s.wireServer.IsValid() {
		ws := s.wireServer.As4()
		msg = append(msg, optAzureWireServer, 4)
		msg = append(msg, ws[:]...)
	}
	msg = append(msg, optEnd)

	f := make([]byte, ethHeader+ipv4Header+udpHeader+len(msg))
	for i := range 6 {
		f[i] = 0xff // broadcast: the client has no address yet
	}
	copy(f[6:], s.serverMAC[:])
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[ethHeader:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	ip[8], ip[9] = 64, 17
	copy(ip[12:], sv4[:])
	copy(ip[16:], []byte{255, 255, 255, 255})
	binary.BigEndian.PutUint16(ip[10:], ^onesSum(0, ip[:ipv4Header]))
	udp := ip[ipv4Header:]
	binary.BigEndian.PutUint16(udp[0:], portServer)
	binary.BigEndian.PutUint16(udp[2:], portClient)
	binary.BigEndian.PutUint16(udp[4:], uint16(udpHeader+len(msg)))
	copy(udp[udpHeader:], msg)
	// UDP checksum over the pseudo-header (RFC 768).
	sum := onesSum(0, ip[12:20])
	sum = onesSum(sum, []byte{0, 17})
	sum = onesSum(sum, udp[4:6])
	sum = onesSum(sum, udp)
	if c := ^sum; c != 0 {
		binary.BigEndian.PutUint16(udp[6:], c)
	} else {
		binary.BigEndian.PutUint16(udp[6:], 0xffff)
	}
	return f
}

// onesSum adds b to the one's-complement sum s (RFC 1071).
func onesSum(s uint16, b []byte) uint16 {
	acc := uint32(s)
	for len(b) >= 2 {
		acc += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}
