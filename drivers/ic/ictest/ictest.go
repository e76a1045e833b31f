// Package ictest provides a fake IC channel for unit tests of integration
// services: it plays the host end of one channel in memory, delivering
// messages to the service's interrupt handler and recording the responses.
// It checks the packet-level response rule of docs/hyperv-protocol.md §8.1 (in-band,
// flags 0, the request's transaction id) but no protocol beyond that; end
// to end tests use the simulated host in tools/hvsim instead.
//
// ictest is for tests only; guest code never imports it.
package ictest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/gohv/gohv/drivers/ic"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/chanmsg"
	"github.com/gohv/gohv/vmbus/ring"
)

// Sent is one packet the guest sent.
type Sent struct {
	Type          ring.PacketType
	Flags         uint16
	TransactionID uint64
	Payload       []byte
}

type packet struct {
	txid    uint64
	typ     ring.PacketType
	payload []byte
}

// Channel is a fake ic.Channel. The zero value is not usable; call New.
type Channel struct {
	offer vmbus.Offer

	// dispatch serialises interrupts like the channel's dispatch goroutine.
	dispatch sync.Mutex

	mu          sync.Mutex
	onInterrupt func()
	cfg         vmbus.OpenConfig
	opened      bool
	closed      bool
	inbound     []packet
	sent        []Sent
	full        bool
	openErr     error

	rescinded chan struct{}
	rescindMu sync.Once
}

var _ ic.Channel = (*Channel)(nil)

// New returns a fake channel offered with interface type class.
func New(class chanmsg.GUID) *Channel {
	return &Channel{offer: vmbus.Offer{InterfaceType: class, RelID: 1}, rescinded: make(chan struct{})}
}

// Offer implements ic.Channel.
func (c *Channel) Offer() vmbus.Offer { return c.offer }

// FailOpen makes the next Open return err.
func (c *Channel) FailOpen(err error) {
	c.mu.Lock()
	c.openErr = err
	c.mu.Unlock()
}

// Open implements ic.Channel.
func (c *Channel) Open(_ context.Context, cfg vmbus.OpenConfig) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.openErr; err != nil {
		c.openErr = nil
		return err
	}
	if c.opened {
		return vmbus.ErrAlreadyOpen
	}
	c.opened, c.cfg, c.onInterrupt = true, cfg, cfg.OnInterrupt
	return nil
}

// OpenConfig returns the configuration the service opened with.
func (c *Channel) OpenConfig() vmbus.OpenConfig {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg
}

// SetRingFull makes TrySend fail with vmbus.ErrRingFull while full is true.
func (c *Channel) SetRingFull(full bool) {
	c.mu.Lock()
	c.full = full
	c.mu.Unlock()
}

// TrySend implements ic.Channel: it records the packet.
func (c *Channel) TrySend(typ ring.PacketType, flags uint16, txid uint64, parts ...[]byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.opened || c.closed {
		return vmbus.ErrClosed
	}
	if c.full {
		return vmbus.ErrRingFull
	}
	var p []byte
	for _, b := range parts {
		p = append(p, b...)
	}
	c.sent = append(c.sent, Sent{Type: typ, Flags: flags, TransactionID: txid, Payload: p})
	return nil
}

// ReadPacket implements ic.Channel.
func (c *Channel) ReadPacket(buf []byte) (ring.Packet, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.inbound) == 0 {
		return ring.Packet{}, vmbus.ErrEmpty
	}
	p := c.inbound[0]
	// Like the real ring, the payload length is padded to 8 bytes.
	n := (len(p.payload) + 7) &^ 7
	if len(buf) < n {
		return ring.Packet{}, &ring.BufferTooSmallError{Need: n}
	}
	c.inbound = c.inbound[1:]
	clear(buf[:n])
	copy(buf, p.payload)
	return ring.Packet{Type: p.typ, TransactionID: p.txid, Header: buf[:0], Payload: buf[:n:n]}, nil
}

// Rescinded implements ic.Channel.
func (c *Channel) Rescinded() <-chan struct{} { return c.rescinded }

// Rescind closes the Rescinded channel.
func (c *Channel) Rescind() { c.rescindMu.Do(func() { close(c.rescinded) }) }

// Close implements ic.Channel.
func (c *Channel) Close(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.opened || c.closed {
		return vmbus.ErrClosed
	}
	c.closed = true
	return nil
}

// Closed reports whether Close was called.
func (c *Channel) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Queue adds an inbound packet without raising an interrupt.
func (c *Channel) Queue(typ ring.PacketType, txid uint64, payload []byte) {
	c.mu.Lock()
	c.inbound = append(c.inbound, packet{txid: txid, typ: typ, payload: append([]byte(nil), payload...)})
	c.mu.Unlock()
}

// Interrupt runs the service's OnInterrupt as the dispatch goroutine
// would: never concurrently with itself.
func (c *Channel) Interrupt() {
	c.mu.Lock()
	fn := c.onInterrupt
	c.mu.Unlock()
	if fn == nil {
		return
	}
	c.dispatch.Lock()
	defer c.dispatch.Unlock()
	fn()
}

// ErrNoResponse is returned by Call when the guest sent nothing back.
var ErrNoResponse = errors.New("ictest: no response")

// Call delivers msg as an in-band packet with VMBus transaction id txid,
// runs the interrupt and returns the one response the guest sent. It
// checks the response rule of docs/hyperv-protocol.md §8.1: in-band, packet flags 0,
// the same transaction id.
func (c *Channel) Call(txid uint64, msg []byte) ([]byte, error) {
	before := len(c.Sent())
	c.Queue(ring.TypeDataInband, txid, msg)
	c.Interrupt()
	sent := c.Sent()[before:]
	switch {
	case len(sent) == 0:
		return nil, ErrNoResponse
	case len(sent) > 1:
		return nil, fmt.Errorf("ictest: %d responses to one request", len(sent))
	}
	s := sent[0]
	if s.Type != ring.TypeDataInband || s.Flags != 0 || s.TransactionID != txid {
		return nil, fmt.Errorf("ictest: response type %v flags %#x txid %d, want in-band, 0, %d", s.Type, s.Flags, s.TransactionID, txid)
	}
	return s.Payload, nil
}

// Sent returns the packets sent so far.
func (c *Channel) Sent() []Sent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Sent(nil), c.sent...)
}

// Message builds a host request of IC message type typ and message
// version v with body, framed as docs/hyperv-protocol.md §8.1 describes.
func Message(typ ic.MessageType, v ic.Version, body []byte) []byte {
	b := make([]byte, ic.HeaderSize+len(body))
	h := ic.Header{
		PipeFlags: ic.PipeFlagData, PipeSize: uint32(len(b) - 8), Framework: ic.Version{Major: 3}, Type: typ,
		MessageVersion: v, Size: uint16(len(body)), Flags: ic.FlagTransaction | ic.FlagRequest,
	}
	h.Encode(b)
	copy(b[ic.HeaderSize:], body)
	return b
}

// Negotiation builds a host negotiation message listing frameworks, then
// messages, in the order given (docs/hyperv-protocol.md §8.2).
func Negotiation(frameworks, messages []ic.Version) []byte {
	body := make([]byte, 8+4*(len(frameworks)+len(messages)))
	le := binary.LittleEndian
	le.PutUint16(body[0:], uint16(len(frameworks)))
	le.PutUint16(body[2:], uint16(len(messages)))
	for i, v := range append(append([]ic.Version(nil), frameworks...), messages...) {
		le.PutUint16(body[8+4*i:], v.Major)
		le.PutUint16(body[8+4*i+2:], v.Minor)
	}
	return Message(ic.TypeNegotiate, ic.Version{Major: 1}, body)
}

// WindowsFrameworks is the framework list of a Windows host, oldest first.
var WindowsFrameworks = []ic.Version{{Major: 1}, {Major: 3}}
