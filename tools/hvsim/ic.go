package hvsim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"
)

// Device class GUIDs (docs/hyperv-protocol.md §5).
var (
	ClassNetVSC    = MustParseGUID("f8615163-df3e-46c5-913f-f2d2f965ed0e")
	ClassStorVSC   = MustParseGUID("ba6163d9-04a1-4d29-b605-72e2ffb1dc7f")
	ClassHeartbeat = MustParseGUID("57164f39-9115-4e78-ab55-382f3bd5422d")
	ClassShutdown  = MustParseGUID("0e0b6031-5213-4934-818b-38d90ced39db")
	ClassTimeSync  = MustParseGUID("9527e630-d0ae-497b-adce-e80ab0175caf")
	ClassKVP       = MustParseGUID("a9a0f4e7-5a45-4d96-b827-8a841e8c03e6")
	ClassVSS       = MustParseGUID("35fa2e29-ea23-4236-96ae-3a6ebacba440")
	ClassBalloon   = MustParseGUID("525074dc-8985-46e2-8057-a307dc18a502")
	ClassKeyboard  = MustParseGUID("f912ad6d-2b17-48ea-bd65-f927a61c7684")
	ClassMouse     = MustParseGUID("cfa8b69e-5b4a-4cc0-b98b-8ba1a1f3f95a")
	ClassVideo     = MustParseGUID("da0a7802-e377-4aac-8e77-0558eb1073f8")
)

// ErrICUnusable is returned when the guest answered the version
// negotiation with no common version (docs/hyperv-protocol.md §8.2).
var ErrICUnusable = errors.New("hvsim: integration component negotiated no version")

type icReply struct {
	status uint32
	body   []byte // payload from @0, copied
}

// icService is the host end of one util IC: it speaks first with the
// version negotiation and then matches responses to requests by the VMBus
// transaction id (docs/hyperv-protocol.md §8.1, §8.2).
type icService struct {
	name        string
	class, inst GUID
	icType      uint16
	fwVersions  []uint32 // offered, newest first
	msgVersions []uint32
	// versions, when set, replaces fwVersions/msgVersions with the lists
	// a host of the given profile offers (newest first).
	versions func(Profile) (fw, msg []uint32)
	onReady  func(ctx context.Context, ch *Channel)

	mu      sync.Mutex
	ch      *Channel
	ready   chan struct{}
	fw, msg uint32
	usable  bool
	waiters map[uint64]chan icReply
	// abandoned holds transactions the host stopped waiting for (its
	// timeout): a late answer to one is counted, not a violation, since a
	// slow guest breaks no rule. Bounded by maxAbandoned.
	abandoned map[uint64]bool
	late      uint64
	nextTx    uint64
	cancel    context.CancelFunc
}

func (s *icService) Offer() OfferSpec { return OfferSpec{Class: s.class, Instance: s.inst} }

// Open implements Device.
func (s *icService) Open(ch *Channel) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	s.ch, s.ready, s.usable, s.waiters, s.cancel = ch, make(chan struct{}), false, map[uint64]chan icReply{}, cancel
	ready := s.ready
	fwv, msgv := s.fwVersions, s.msgVersions
	if s.versions != nil {
		fwv, msgv = s.versions(ch.h.cfg.Profile)
	}
	go s.serve(ctx, ch)
	go s.negotiate(ctx, ch, ready, fwv, msgv)
	return nil
}

// Close implements Device.
func (s *icService) Close(ch *Channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == ch {
		s.cancel()
		s.ch = nil
	}
}

func (s *icService) current() (*Channel, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch, s.ready
}

// waitReady waits until the negotiation finished on an open channel.
func (s *icService) waitReady(ctx context.Context) (*Channel, error) {
	for {
		ch, ready := s.current()
		if ch == nil {
			t := time.NewTimer(10 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
				continue
			}
		}
		select {
		case <-ready:
		case <-ch.Done():
			continue
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		s.mu.Lock()
		usable := s.usable
		s.mu.Unlock()
		if !usable {
			return nil, ErrICUnusable
		}
		return ch, nil
	}
}

func (s *icService) negotiate(ctx context.Context, ch *Channel, ready chan struct{}, fwVersions, msgVersions []uint32) {
	defer close(ready)
	n := len(fwVersions) + len(msgVersions)
	body := make([]byte, 8+4*n)
	le.PutUint16(body[0:], uint16(len(fwVersions)))
	le.PutUint16(body[2:], uint16(len(msgVersions)))
	for i, v := range slices.Concat(fwVersions, msgVersions) {
		le.PutUint16(body[8+4*i:], uint16(v>>16))
		le.PutUint16(body[8+4*i+2:], uint16(v))
	}
	// The negotiate message itself carries version 1.0 in its header,
	// the one every guest understands.
	r, err := s.transact(ctx, ch, icVersion(1, 0), icVersion(1, 0), icTypeNegotiate, body)
	if err != nil {
		return
	}
	b := r.body
	if len(b) < icOffNegVersions {
		ch.h.violate(fmt.Errorf("%w: %s negotiate reply of %d bytes", ErrIC, s.name, len(b)))
		return
	}
	fwc, msgc := le.Uint16(b[icOffNegFwCount:]), le.Uint16(b[icOffNegMsgCount:])
	if fwc == 0 && msgc == 0 {
		ch.h.logf("hvsim: %s: guest found no common version", s.name)
		return
	}
	if fwc != 1 || msgc != 1 || len(b) < icOffNegVersions+8 {
		ch.h.violate(fmt.Errorf("%w: %s negotiate reply with counts %d/%d in %d bytes", ErrIC, s.name, fwc, msgc, len(b)))
		return
	}
	fw := icVersion(le.Uint16(b[icOffNegVersions:]), le.Uint16(b[icOffNegVersions+2:]))
	msg := icVersion(le.Uint16(b[icOffNegVersions+4:]), le.Uint16(b[icOffNegVersions+6:]))
	if !slices.Contains(fwVersions, fw) || !slices.Contains(msgVersions, msg) {
		ch.h.violate(fmt.Errorf("%w: %s guest chose %s/%s, not offered", ErrIC, s.name, versionString(fw), versionString(msg)))
		return
	}
	s.mu.Lock()
	s.fw, s.msg, s.usable = fw, msg, true
	s.mu.Unlock()
	if s.onReady != nil {
		go s.onReady(ctx, ch)
	}
}

// transact sends one IC request and waits for the guest's response.
func (s *icService) transact(ctx context.Context, ch *Channel, fw, msg uint32, typ uint16, body []byte) (icReply, error) {
	s.mu.Lock()
	s.nextTx++
	txid := s.nextTx
	wait := make(chan icReply, 1)
	if s.waiters == nil || s.ch != ch {
		s.mu.Unlock()
		return icReply{}, ErrClosed
	}
	s.waiters[txid] = wait
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiters, txid)
		s.mu.Unlock()
	}()
	payload := make([]byte, icOffBody+len(body))
	putICHeader(payload, fw, msg, typ, uint8(txid), len(body))
	copy(payload[icOffBody:], body)
	if err := ch.Send(ctx, pktDataInband, 0, txid, payload); err != nil {
		return icReply{}, err
	}
	select {
	case r := <-wait:
		return r, nil
	case <-ctx.Done():
		s.mu.Lock()
		if s.abandoned == nil || len(s.abandoned) >= maxAbandoned {
			s.abandoned = map[uint64]bool{}
		}
		s.abandoned[txid] = true
		s.mu.Unlock()
		return icReply{}, ctx.Err()
	case <-ch.Done():
		return icReply{}, ErrClosed
	}
}

// maxAbandoned bounds icService.abandoned.
const maxAbandoned = 64

// serve receives the guest's responses.
func (s *icService) serve(ctx context.Context, ch *Channel) {
	buf := make([]byte, 16<<10)
	for {
		for {
			p, ok, err := ch.Recv(buf)
			if err != nil || !ok {
				break
			}
			s.response(ch, p)
		}
		select {
		case <-ch.Signaled():
		case <-ch.Done():
			return
		case <-ctx.Done():
			return
		}
	}
}

func (s *icService) response(ch *Channel, p Packet) {
	b := p.Payload
	bad := func(format string, args ...any) {
		ch.h.violate(fmt.Errorf("%w: %s: "+format, append([]any{ErrIC, s.name}, args...)...))
	}
	if p.Type != pktDataInband {
		bad("packet type %#x, want in-band", p.Type)
		return
	}
	if len(b) < icOffBody {
		bad("response of %d bytes", len(b))
		return
	}
	if le.Uint32(b[icOffPipeFlags:]) != icPipeData {
		bad("pipe flags %d", le.Uint32(b[icOffPipeFlags:]))
		return
	}
	if b[icOffFlags]&icFlagResponse == 0 || b[icOffFlags]&icFlagTransaction == 0 {
		bad("flags %#x lack transaction|response", b[icOffFlags])
		return
	}
	s.mu.Lock()
	w := s.waiters[p.TransactionID]
	late := w == nil && s.abandoned[p.TransactionID]
	if late {
		delete(s.abandoned, p.TransactionID)
		s.late++
	}
	s.mu.Unlock()
	if late {
		return
	}
	if w == nil {
		bad("response to unknown transaction %d", p.TransactionID)
		return
	}
	if uint64(b[icOffTxID]) != p.TransactionID&0xFF {
		bad("IC transaction id %d for VMBus transaction %d", b[icOffTxID], p.TransactionID)
		return
	}
	select {
	case w <- icReply{status: le.Uint32(b[icOffStatus:]), body: slices.Clone(b)}:
	default:
	}
}

// Negotiated returns the framework and message versions the guest chose.
func (s *icService) Negotiated() (fw, msg uint32, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fw, s.msg, s.usable
}

// Heartbeat is the host of the heartbeat IC (docs/hyperv-protocol.md §8.3): once the
// version is negotiated it sends a request every Interval with an
// increasing sequence number and counts the guest's answers.
type Heartbeat struct {
	icService
	interval                     time.Duration
	sent, correct, wrong, missed atomic.Uint64
}

// HeartbeatStats counts heartbeat exchanges.
type HeartbeatStats struct {
	Sent, Correct, Wrong, Missed uint64
}

// NewHeartbeat returns a heartbeat IC host sending every interval (Hyper-V
// uses a few seconds; tests use milliseconds).
func NewHeartbeat(interval time.Duration) *Heartbeat {
	hb := &Heartbeat{interval: interval}
	hb.icService = icService{name: "heartbeat", class: ClassHeartbeat,
		inst: MustParseGUID("5a3f1e2c-57c8-4a1f-9c35-0b1b7c3ad101"), icType: icTypeHeartbeat,
		fwVersions: []uint32{icVersion(3, 0), icVersion(1, 0)}, msgVersions: []uint32{icVersion(3, 0), icVersion(1, 0)}}
	hb.onReady = hb.loop
	return hb
}

// Stats returns the heartbeat counters.
func (hb *Heartbeat) Stats() HeartbeatStats {
	return HeartbeatStats{Sent: hb.sent.Load(), Correct: hb.correct.Load(), Wrong: hb.wrong.Load(), Missed: hb.missed.Load()}
}

func (hb *Heartbeat) loop(ctx context.Context, ch *Channel) {
	fw, msg, _ := hb.Negotiated()
	body := make([]byte, icHeartbeatBody)
	var seq uint64
	t := time.NewTicker(hb.interval)
	defer t.Stop()
	for {
		seq++
		le.PutUint64(body[0:], seq)
		hb.sent.Add(1)
		rctx, cancel := context.WithTimeout(ctx, max(hb.interval, 10*time.Millisecond)*4)
		r, err := hb.transact(rctx, ch, fw, msg, icTypeHeartbeat, body)
		cancel()
		switch {
		case err != nil && (ctx.Err() != nil || errors.Is(err, ErrClosed)):
			return
		case err != nil:
			hb.missed.Add(1)
		case len(r.body) < icOffHeartbeatSeq+8:
			hb.wrong.Add(1)
			ch.h.violate(fmt.Errorf("%w: heartbeat response of %d bytes", ErrIC, len(r.body)))
		case le.Uint64(r.body[icOffHeartbeatSeq:]) != seq+1:
			hb.wrong.Add(1)
			ch.h.violate(fmt.Errorf("%w: heartbeat answered %d to %d, want %d", ErrIC,
				le.Uint64(r.body[icOffHeartbeatSeq:]), seq, seq+1))
		default:
			hb.correct.Add(1)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		case <-ch.Done():
			return
		}
	}
}

// Shutdown is the host of the shutdown IC (docs/hyperv-protocol.md §8.4).
type Shutdown struct {
	icService
}

// NewShutdown returns a shutdown IC host.
func NewShutdown() *Shutdown {
	s := &Shutdown{}
	s.icService = icService{name: "shutdown", class: ClassShutdown,
		inst: MustParseGUID("b6650ff7-33bc-4840-8048-e0676786f393"), icType: icTypeShutdown,
		fwVersions:  []uint32{icVersion(3, 0), icVersion(1, 0)},
		msgVersions: []uint32{icVersion(3, 2), icVersion(3, 1), icVersion(3, 0), icVersion(1, 0)}}
	return s
}

// Shutdown flags (docs/hyperv-protocol.md §8.4).
const (
	ShutdownForce     uint32 = 1
	ShutdownRestart   uint32 = 2
	ShutdownHibernate uint32 = 4
)

// Request asks the guest to shut down (flags: ShutdownForce, ShutdownRestart,
// ShutdownHibernate; reason is the display message) and returns the
// guest's HRESULT. It waits for the version negotiation first.
func (s *Shutdown) Request(ctx context.Context, flags uint32, reason string) (hresult uint32, err error) {
	ch, err := s.waitReady(ctx)
	if err != nil {
		return 0, fmt.Errorf("hvsim: shutdown request: %w", err)
	}
	fw, msg, _ := s.Negotiated()
	body := make([]byte, icShutdownBody)
	le.PutUint32(body[icOffShutdownReason-icOffBody:], 0)
	le.PutUint32(body[icOffShutdownTimeout-icOffBody:], 0)
	le.PutUint32(body[icOffShutdownFlags-icOffBody:], flags)
	u := utf16.Encode([]rune(reason))
	for i := 0; i < len(u) && 2*i+2 < icShutdownMessageLen; i++ {
		le.PutUint16(body[icOffShutdownMessage-icOffBody+2*i:], u[i])
	}
	r, err := s.transact(ctx, ch, fw, msg, icTypeShutdown, body)
	if err != nil {
		return 0, fmt.Errorf("hvsim: shutdown request: %w", err)
	}
	return r.status, nil
}

// Inert is an offer-only device: its channel opens but carries no
// protocol; whatever the guest sends is taken off the ring and dropped.
type Inert struct {
	Spec OfferSpec
}

// Offer implements Device.
func (d *Inert) Offer() OfferSpec { return d.Spec }

// Open implements Device.
func (d *Inert) Open(ch *Channel) error {
	go func() {
		buf := make([]byte, 64<<10)
		for {
			for {
				if _, ok, err := ch.Recv(buf); err != nil || !ok {
					break
				}
			}
			select {
			case <-ch.Signaled():
			case <-ch.Done():
				return
			}
		}
	}()
	return nil
}

// Close implements Device.
func (d *Inert) Close(*Channel) {}

// StandardDevices is the device set of a WS2022 Generation 2 VM.
type StandardDevices struct {
	Heartbeat *Heartbeat
	Shutdown  *Shutdown
	TimeSync  *TimeSync
	KVP       *KVP
	VSS       *VSS
	// All lists every device in offer order (the ones above included).
	All []Device
}

// Standard returns the devices a WS2022 Gen2 VM offers: a synthetic SCSI
// controller, a synthetic NIC, the integration components, keyboard, mouse,
// video and dynamic memory. Heartbeat, shutdown, time sync (a SAMPLE
// every 5 s), KVP and VSS speak their protocols; the others are Inert.
func Standard() StandardDevices {
	inert := func(class GUID, inst string) Device {
		return &Inert{Spec: OfferSpec{Class: class, Instance: MustParseGUID(inst)}}
	}
	hb, sd := NewHeartbeat(2*time.Second), NewShutdown()
	ts, kvp, vss := NewTimeSync(5*time.Second), NewKVP(), NewVSS()
	return StandardDevices{Heartbeat: hb, Shutdown: sd, TimeSync: ts, KVP: kvp, VSS: vss, All: []Device{
		inert(ClassStorVSC, "f8b3781b-1e82-4818-a1c3-63d806ec15bb"),
		inert(ClassNetVSC, "2dd1ce17-079e-403c-b352-a1921ee207e0"),
		hb, sd, ts, kvp, vss,
		inert(ClassKeyboard, "d34b2567-b9b6-42b9-8778-0a4ec0b955bf"),
		inert(ClassMouse, "58f75a6d-d949-4320-99e1-a2a2576d581c"),
		inert(ClassVideo, "5620e0c7-8062-4dce-aeb7-520c7ef76171"),
		inert(ClassBalloon, "1eccfd72-4b41-45ef-b73a-4a6e44c12924"),
	}}
}
