package ic

import (
	"errors"
	"sync/atomic"
)

// Handler processes one message of a service's own type. msg is the whole
// message (header included; the body starts at HeaderSize) in the
// service's private buffer, already copied out of the ring; the handler
// reads the body and writes its reply into msg in place. msg may end with
// up to 7 bytes of ring padding after the host's message (docs/hyperv-protocol.md §4.3).
// version is the negotiated message version. The returned status goes to
// the host.
//
// Handlers run on the channel's dispatch goroutine: they must not block or
// allocate, and msg is only valid until they return.
type Handler func(msg []byte, version Version) Status

// Config describes one integration service.
type Config struct {
	// Name identifies the service in logs and errors, e.g. "heartbeat".
	Name string
	// Type is the IC message type the handler serves (docs/hyperv-protocol.md §8.1).
	Type MessageType
	// Versions are the message versions the service implements, in any
	// order (docs/hyperv-protocol.md §8.2).
	Versions []Version
	// Handle answers messages of Type once negotiation succeeded.
	Handle Handler
	// RingSize is the size in bytes of each ring (send and receive),
	// header page included: a multiple of 4096, at least 8192; 0 means
	// DefaultRingSize.
	RingSize int
}

// DefaultRingSize is the per-direction ring size of an IC channel: util ICs
// use 3–4 pages (docs/hyperv-protocol.md §4.6) and exchange one message at a time.
const DefaultRingSize = 4 * 4096

// ringHeaderSize is the header page at the start of each ring (docs/hyperv-protocol.md
// §4.2).
const ringHeaderSize = 4096

// Stats are a service's counters. Fields are cumulative since creation.
type Stats struct {
	// Messages counts well-formed messages received (negotiation included).
	Messages uint64
	// BadMessages counts packets that were malformed, of an unexpected
	// packet or message type, or arrived before negotiation.
	BadMessages uint64
	// Dropped counts responses that could not be sent (ring full or
	// channel error).
	Dropped uint64
	// Negotiations counts successful version negotiations.
	Negotiations uint64
	// Framework and Message are the negotiated versions; zero before the
	// first successful negotiation.
	Framework, Message Version
	// Negotiated reports whether a negotiation succeeded and the service
	// answers its messages.
	Negotiated bool
}

// ErrConfig reports an unusable Config.
var ErrConfig = errors.New("ic: invalid service config")

// Service runs one integration service on one channel. Create it with
// NewService, then Start it on the service's channel. Start and Close must
// not be called concurrently with each other; Stats is safe from any
// goroutine.
type Service struct {
	cfg Config

	// Touched only on the dispatch goroutine (OnInterrupt).
	buf   []byte
	parts [1][]byte // TrySend's variadic slice, preallocated

	messages, bad, dropped, negotiations atomic.Uint64
	// versions packs the negotiated framework (bits 63:32) and message
	// version (bits 31:0) as major<<16|minor, with negotiated tracking
	// whether they are valid. Readers use Stats.
	versions   atomic.Uint64
	negotiated atomic.Bool

	ch     Channel
	closed chan struct{} // closed by Close
	done   chan struct{} // closed when the service stopped
	// running holds a token while OnInterrupt runs, so that Close lets a
	// response being sent go out before it closes the channel.
	running chan struct{}
}

// NewService checks cfg and returns a stopped Service.
func NewService(cfg Config) (*Service, error) {
	if cfg.Handle == nil || len(cfg.Versions) == 0 || cfg.Type == TypeNegotiate {
		return nil, ErrConfig
	}
	if cfg.RingSize == 0 {
		cfg.RingSize = DefaultRingSize
	}
	if cfg.RingSize%ringHeaderSize != 0 || cfg.RingSize < 2*ringHeaderSize {
		return nil, ErrConfig
	}
	// The buffer holds the whole receive data area, so every packet the
	// host can write fits: a packet that did not fit would stay at the
	// head of the ring and wedge the service.
	return &Service{cfg: cfg, buf: make([]byte, cfg.RingSize-ringHeaderSize), closed: make(chan struct{}), done: make(chan struct{}), running: make(chan struct{}, 1)}, nil
}

// Name returns the configured service name.
func (s *Service) Name() string { return s.cfg.Name }

// Stats returns a snapshot of the counters; safe from any goroutine.
func (s *Service) Stats() Stats {
	v := s.versions.Load()
	return Stats{
		Messages:     s.messages.Load(),
		BadMessages:  s.bad.Load(),
		Dropped:      s.dropped.Load(),
		Negotiations: s.negotiations.Load(),
		Framework:    unpackVersion(uint32(v >> 32)),
		Message:      unpackVersion(uint32(v)),
		Negotiated:   s.negotiated.Load(),
	}
}

func packVersion(v Version) uint32   { return uint32(v.Major)<<16 | uint32(v.Minor) }
func unpackVersion(x uint32) Version { return Version{uint16(x >> 16), uint16(x)} }

// process handles one received message in place and reports whether msg
// now holds a response to send back. It runs on the dispatch goroutine.
func (s *Service) process(msg []byte) (reply bool) {
	if len(msg) < HeaderSize {
		// Checked here so that a stream of runts costs no error value.
		s.bad.Add(1)
		return false
	}
	h, _ := ParseHeader(msg)
	if h.Flags&FlagResponse != 0 {
		// Not a request: the host expects no response to it.
		s.bad.Add(1)
		return false
	}
	switch {
	case h.Type == TypeNegotiate:
		fw, mv, err := Negotiate(msg, FrameworkVersions, s.cfg.Versions)
		switch {
		case err == nil:
			s.versions.Store(uint64(packVersion(fw))<<32 | uint64(packVersion(mv)))
			s.negotiated.Store(true)
			s.negotiations.Add(1)
		case errors.Is(err, ErrNoCommonVersion):
			// The 0/0 reply tells the host this IC is unusable here.
			s.negotiated.Store(false)
		default:
			s.bad.Add(1)
			SetResponse(msg, StatusInvalidArg)
			return true
		}
		s.messages.Add(1)
		SetResponse(msg, StatusOK)
		return true
	case h.Type != s.cfg.Type || !s.negotiated.Load():
		// Answer rather than drop: the host keeps one transaction
		// outstanding and would otherwise wait for this one.
		s.bad.Add(1)
		SetResponse(msg, StatusNotSupported)
		return true
	}
	s.messages.Add(1)
	status := s.cfg.Handle(msg, unpackVersion(uint32(s.versions.Load())))
	SetResponse(msg, status)
	return true
}
