package netvsc

import (
	"context"
	"fmt"
	"sync"

	"github.com/gohv/gohv/drivers/netvsc/rndis"
)

// RNDIS control requests (§7.6): a few preallocated slots, each waiting
// for the completion that carries its request id.

const (
	controlRespSize = 1024 // largest completion kept (NDIS_OFFLOAD is 156 bytes)
	controlReqSize  = rndis.RequestSize + rndis.RSSParamsSize + 4*rndis.MaxIndirectionTable + rndis.RSSKeySize
)

type ctlSlot struct {
	id   uint32 // awaited request id; 0 = free or answered
	done chan int
	resp [controlRespSize]byte
	req  [controlReqSize]byte
}

// control is the set of request slots. mu guards the slots' id and resp;
// sem counts free slots.
type control struct {
	mu     sync.Mutex
	slots  [DefaultControlSlots]ctlSlot
	used   [DefaultControlSlots]bool
	sem    chan struct{}
	nextID uint32
}

func (c *control) init() {
	c.sem = make(chan struct{}, len(c.slots))
	for i := range c.slots {
		c.slots[i].done = make(chan int, 1)
		c.sem <- struct{}{}
	}
}

// newID returns a fresh non-zero request id.
func (c *control) newID() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	return c.nextID
}

// complete hands a completion to the slot waiting for its request id.
// It runs on queue 0's interrupt path and never blocks.
func (c *control) complete(msg []byte) bool {
	id, err := rndis.RequestIDOf(msg)
	if err != nil || id == 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.slots {
		s := &c.slots[i]
		if c.used[i] && s.id == id {
			s.id = 0
			if len(msg) > len(s.resp) {
				return false
			}
			l := copy(s.resp[:], msg)
			select {
			case s.done <- l:
			default:
			}
			return true
		}
	}
	return false
}

// request sends the RNDIS request msg (its request id is filled in here)
// and copies the completion into resp, returning its length.
func (n *NIC) request(ctx context.Context, msg, resp []byte) (int, error) {
	c := &n.ctl
	select {
	case <-c.sem:
	case <-n.gone:
		return 0, n.goneErr()
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { c.sem <- struct{}{} }()
	id := c.newID()
	c.mu.Lock()
	i := 0
	for c.used[i] {
		i++
	}
	c.used[i] = true
	s := &c.slots[i]
	s.id = id
	select {
	case <-s.done:
	default:
	}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		s.id, c.used[i] = 0, false
		c.mu.Unlock()
	}()
	l := copy(s.req[:], msg)
	rndis.SetRequestID(s.req[:l], id)
	if err := n.queues[0].sendControl(ctx, s.req[:l]); err != nil {
		return 0, err
	}
	select {
	case got := <-s.done:
		c.mu.Lock()
		l := copy(resp, s.resp[:got])
		c.mu.Unlock()
		return l, nil
	case <-n.gone:
		return 0, n.goneErr()
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// queryOID sends QUERY for oid with the info buffer in (may be nil) and
// returns the result's info buffer (inside resp).
func (n *NIC) queryOID(ctx context.Context, oid uint32, in, resp []byte) ([]byte, error) {
	var msg [controlReqSize]byte
	copy(rndis.RequestInfo(msg[:], len(in)), in)
	l := rndis.PutQuery(msg[:], 0, oid, len(in))
	rl, err := n.request(ctx, msg[:l], resp)
	if err != nil {
		return nil, fmt.Errorf("netvsc: QUERY %#x: %w", oid, err)
	}
	_, status, info, err := rndis.ParseQueryComplete(resp[:rl])
	if err != nil {
		n.ctr.badPackets.Add(1)
		return nil, fmt.Errorf("%w: QUERY_CMPLT %#x: %w", ErrProtocol, oid, err)
	}
	if status != rndis.StatusSuccess {
		return nil, &HostError{Op: fmt.Sprintf("QUERY %#x", oid), Status: status}
	}
	return info, nil
}

// setOID sends SET for oid with info.
func (n *NIC) setOID(ctx context.Context, oid uint32, info []byte) error {
	var msg [controlReqSize]byte
	copy(rndis.RequestInfo(msg[:], len(info)), info)
	l := rndis.PutSet(msg[:], 0, oid, len(info))
	var resp [64]byte
	rl, err := n.request(ctx, msg[:l], resp[:])
	if err != nil {
		return fmt.Errorf("netvsc: SET %#x: %w", oid, err)
	}
	_, status, err := rndis.ParseSetComplete(resp[:rl])
	if err != nil {
		n.ctr.badPackets.Add(1)
		return fmt.Errorf("%w: SET_CMPLT %#x: %w", ErrProtocol, oid, err)
	}
	if status != rndis.StatusSuccess {
		return &HostError{Op: fmt.Sprintf("SET %#x", oid), Status: status}
	}
	return nil
}

// Keepalive sends an RNDIS KEEPALIVE and waits for the host's answer.
func (n *NIC) Keepalive(ctx context.Context) error {
	var msg [rndis.KeepaliveSize]byte
	rndis.PutKeepalive(msg[:], 0)
	var resp [64]byte
	l, err := n.request(ctx, msg[:], resp[:])
	if err != nil {
		return fmt.Errorf("netvsc: KEEPALIVE: %w", err)
	}
	_, status, err := rndis.ParseKeepaliveComplete(resp[:l])
	if err != nil {
		return fmt.Errorf("%w: KEEPALIVE_CMPLT: %w", ErrProtocol, err)
	}
	if status != rndis.StatusSuccess {
		return &HostError{Op: "KEEPALIVE", Status: status}
	}
	return nil
}

// CurrentMAC queries OID_802_3_CURRENT_ADDRESS, the address the host
// currently filters on (MAC returns the permanent one).
func (n *NIC) CurrentMAC(ctx context.Context) ([6]byte, error) {
	var resp [controlRespSize]byte
	info, err := n.queryOID(ctx, rndis.OID8023CurrentAddress, nil, resp[:])
	if err != nil {
		return [6]byte{}, err
	}
	mac, err := rndis.ParseMAC(info)
	if err != nil {
		return mac, fmt.Errorf("%w: current MAC: %w", ErrProtocol, err)
	}
	return mac, nil
}

// SetPacketFilter sets OID_GEN_CURRENT_PACKET_FILTER (rndis.Filter*
// bits, §7.9). Open sets rndis.FilterDefault.
func (n *NIC) SetPacketFilter(ctx context.Context, filter uint32) error {
	var info [4]byte
	info[0], info[1], info[2], info[3] = byte(filter), byte(filter>>8), byte(filter>>16), byte(filter>>24)
	return n.setOID(ctx, rndis.OIDGenCurrentPacketFilter, info[:])
}

// Link and network-change events, delivered in order on the event
// goroutine. The queue is a small ring; when it overflows the oldest
// event is dropped (the newest state always arrives).

type eventKind uint8

const (
	eventLinkDown eventKind = iota
	eventLinkUp
	eventNetworkChange
)

type eventQueue struct {
	mu    sync.Mutex
	buf   [16]eventKind
	head  int
	count int
	wake  chan struct{}
}

func (e *eventQueue) init() { e.wake = make(chan struct{}, 1) }

// push runs on the interrupt path; it never blocks.
func (e *eventQueue) push(k eventKind) {
	e.mu.Lock()
	if e.count == len(e.buf) {
		e.head = (e.head + 1) % len(e.buf)
		e.count--
	}
	e.buf[(e.head+e.count)%len(e.buf)] = k
	e.count++
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *eventQueue) pop() (eventKind, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.count == 0 {
		return 0, false
	}
	k := e.buf[e.head]
	e.head = (e.head + 1) % len(e.buf)
	e.count--
	return k, true
}

func (n *NIC) runEvents() {
	defer n.wg.Done()
	for {
		select {
		case <-n.events.wake:
		case <-n.stop:
			return
		}
		for {
			k, ok := n.events.pop()
			if !ok {
				break
			}
			switch k {
			case eventLinkDown, eventLinkUp:
				if fn := n.linkFn.Load(); fn != nil {
					(*fn)(k == eventLinkUp)
				}
			case eventNetworkChange:
				if fn := n.netFn.Load(); fn != nil {
					(*fn)()
				}
			}
		}
	}
}
