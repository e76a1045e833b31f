package hvsim

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/gohv/gohv/hv"
)

// Profile is the Hyper-V release the host pretends to be: it fixes the
// VMBus versions it accepts (docs/hyperv-protocol.md §3.3).
type Profile int

// Profiles. The zero value is WS2022.
const (
	WS2022   Profile = iota // VMBus up to 5.3
	WS2019                  // up to 5.2
	WS2016                  // up to 4.0
	WS2012R2                // up to 3.0
)

// String names the profile.
func (p Profile) String() string {
	switch p {
	case WS2022:
		return "WS2022"
	case WS2019:
		return "WS2019"
	case WS2016:
		return "WS2016"
	case WS2012R2:
		return "WS2012R2"
	}
	return fmt.Sprintf("Profile(%d)", int(p))
}

// Versions returns the exact VMBus versions the profile accepts, newest
// first. A host accepts only exact versions it knows, up to its maximum
// (docs/hyperv-protocol.md §3.3).
func (p Profile) Versions() []uint32 {
	all := []uint32{Version5_3, Version5_2, Version5_1, Version5_0, Version4_1,
		Version4_0, Version3_0, Version2_4, Version1_1, Version0_13}
	var max uint32
	switch p {
	case WS2022:
		max = Version5_3
	case WS2019:
		max = Version5_2
	case WS2016:
		max = Version4_0
	case WS2012R2:
		max = Version3_0
	default:
		return nil
	}
	var out []uint32
	for _, v := range all {
		if v <= max {
			out = append(out, v)
		}
	}
	return out
}

// MaxVersion is the newest VMBus version of the profile.
func (p Profile) MaxVersion() uint32 {
	if v := p.Versions(); len(v) > 0 {
		return v[0]
	}
	return 0
}

func (p Profile) accepts(v uint32) bool {
	for _, x := range p.Versions() {
		if x == v {
			return true
		}
	}
	return false
}

// Config configures a Host. The zero value is a usable WS2022 host with one
// VP and a 64 MiB arena.
type Config struct {
	Profile Profile
	// MemoryBytes is the size of the guest-physical arena (default 64 MiB).
	MemoryBytes int
	// BasePFN is the first guest frame of the arena (default 0x100, so a
	// PFN-0 bug cannot pass).
	BasePFN uint64
	// VPs is the number of virtual processors (default 1).
	VPs int
	// MessageConnectionID is what VERSION_RESPONSE returns for ≥ 5.0
	// (default 1, like OpenVMM; docs/hyperv-protocol.md §3.5).
	MessageConnectionID uint32
	// Logf receives diagnostics (default: discarded).
	Logf func(format string, args ...any)
	// OnViolation is called for every protocol violation, from the host
	// goroutine that found it.
	OnViolation func(error)
	// FailFast makes the first protocol violation panic: the hardest
	// possible failure, for runs where any guest mistake must stop
	// everything.
	FailFast bool
	// Seed seeds the random choices of fault injection.
	Seed uint64
	// Clock is the host's wall clock and the partition's reference
	// counter (see Clock; default: the system clock, the counter starting
	// at New). Tests pass a *ManualClock to move time themselves.
	Clock Clock
}

// Host is a simulated Hyper-V host partition with one guest.
type Host struct {
	cfg    Config
	arena  *arena
	synics []*synic
	hvSyn  []hv.SynIC
	srv    *server
	faults *Faults
	stats  hostStats

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	vmu        sync.Mutex
	violations []error
	nViolation atomic.Uint64
}

const maxStoredViolations = 1000

// New creates and starts a host.
func New(cfg Config) (*Host, error) {
	if cfg.MemoryBytes == 0 {
		cfg.MemoryBytes = 64 << 20
	}
	if cfg.MemoryBytes < 16*hv.PageSize || cfg.MemoryBytes%hv.PageSize != 0 {
		return nil, fmt.Errorf("hvsim: MemoryBytes %d: want a multiple of 4096, at least 64 KiB", cfg.MemoryBytes)
	}
	if cfg.BasePFN == 0 {
		cfg.BasePFN = 0x100
	}
	if cfg.VPs == 0 {
		cfg.VPs = 1
	}
	if cfg.VPs < 0 || cfg.VPs > 64 {
		return nil, fmt.Errorf("hvsim: VPs %d out of range", cfg.VPs)
	}
	if cfg.MessageConnectionID == 0 {
		cfg.MessageConnectionID = connMessage
	}
	if cfg.Profile.Versions() == nil {
		return nil, fmt.Errorf("hvsim: unknown profile %v", cfg.Profile)
	}
	if cfg.Clock == nil {
		cfg.Clock = NewSystemClock()
	}
	h := &Host{cfg: cfg, arena: newArena(cfg.MemoryBytes, cfg.BasePFN), stop: make(chan struct{})}
	h.faults = newFaults(cfg.Seed)
	for i := 0; i < cfg.VPs; i++ {
		s, err := newSynIC(h, uint32(i))
		if err != nil {
			return nil, err
		}
		h.synics = append(h.synics, s)
		h.hvSyn = append(h.hvSyn, s)
	}
	h.srv = newServer(h)
	for _, s := range h.synics {
		h.wg.Add(1)
		go func() { defer h.wg.Done(); s.run(h.stop) }()
	}
	h.wg.Add(1)
	go func() { defer h.wg.Done(); h.srv.run(h.stop) }()
	return h, nil
}

// Close stops the host's goroutines and closes every open channel. The
// arena stays readable.
func (h *Host) Close() error {
	h.once.Do(func() {
		h.srv.shutdown()
		close(h.stop)
		h.wg.Wait()
	})
	return nil
}

// Platform returns the guest's view of the machine.
func (h *Host) Platform() hv.Platform { return (*platform)(h) }

// Profile returns the configured profile.
func (h *Host) Profile() Profile { return h.cfg.Profile }

// Faults returns the fault-injection controls.
func (h *Host) Faults() *Faults { return h.faults }

// ArenaPage returns the arena page at pfn (nil outside the arena), for tests
// that inspect guest memory the way the host sees it.
func (h *Host) ArenaPage(pfn uint64) []byte { return h.arena.page(pfn) }

// Violations returns the protocol violations recorded so far (at most the
// first 1000; ViolationCount has the total).
func (h *Host) Violations() []error {
	h.vmu.Lock()
	defer h.vmu.Unlock()
	return append([]error(nil), h.violations...)
}

// ViolationCount returns how many violations were recorded.
func (h *Host) ViolationCount() uint64 { return h.nViolation.Load() }

func (h *Host) logf(format string, args ...any) {
	if h.cfg.Logf != nil {
		h.cfg.Logf(format, args...)
	}
}

// violate records a protocol violation.
func (h *Host) violate(err error) {
	h.nViolation.Add(1)
	h.vmu.Lock()
	if len(h.violations) < maxStoredViolations {
		h.violations = append(h.violations, err)
	}
	h.vmu.Unlock()
	h.logf("hvsim: protocol violation: %v", err)
	if h.cfg.OnViolation != nil {
		h.cfg.OnViolation(err)
	}
	if h.cfg.FailFast {
		panic(err)
	}
}

// platform implements hv.Platform for the guest.
type platform Host

var (
	_ hv.Platform       = (*platform)(nil)
	_ hv.PhysTranslator = (*platform)(nil)
)

func (p *platform) AllocPages(n int) (hv.Pages, error) { return p.arena.AllocPages(n) }
func (p *platform) FreePages(pg hv.Pages)              { p.arena.FreePages(pg) }
func (p *platform) SynICs() []hv.SynIC                 { return p.hvSyn }

// PhysAddr implements hv.PhysTranslator for memory inside the arena.
func (p *platform) PhysAddr(b []byte) (uint64, bool) { return p.arena.PhysAddr(b) }

// PostMessage implements HvPostMessage (docs/hyperv-protocol.md §1.8) in front of the
// VMBus message port.
func (p *platform) PostMessage(connectionID uint32, messageType uint32, payload []byte) error {
	h := (*Host)(p)
	h.stats.posts.Add(1)
	if st := h.faults.takePostBusy(); st != hv.StatusSuccess {
		return st
	}
	if len(payload) > maxMessagePayload {
		h.violate(fmt.Errorf("%w: PostMessage payload %d bytes", ErrOversize, len(payload)))
		return hv.StatusInvalidParameter
	}
	if messageType == 0 || messageType&(1<<31) != 0 {
		return hv.StatusInvalidParameter
	}
	if !h.srv.acceptsConnection(connectionID & 0xFFFFFF) {
		return hv.StatusInvalidConnectionID
	}
	if messageType != vmbusMessageType {
		return hv.StatusInvalidParameter
	}
	var m queuedMsg
	m.n = copy(m.data[:], payload)
	if !h.srv.enqueue(connectionID&0xFFFFFF, m) {
		// The port's queue is full: the guest retries (docs/hyperv-protocol.md §1.8).
		return hv.StatusInsufficientBuffers
	}
	return nil
}

// SignalEvent implements HvSignalEvent (docs/hyperv-protocol.md §1.8).
func (p *platform) SignalEvent(connectionID uint32, flag uint16) error {
	h := (*Host)(p)
	h.stats.signals.Add(1)
	if flag >= 2048 {
		return hv.StatusInvalidParameter
	}
	if !h.srv.signal(connectionID & 0xFFFFFF) {
		return hv.StatusInvalidConnectionID
	}
	return nil
}

// Sentinel errors of protocol violations; Violations() wraps one of them.
var (
	ErrNotConnected    = errors.New("hvsim: message before INITIATE_CONTACT")
	ErrBadVersion      = errors.New("hvsim: bad INITIATE_CONTACT")
	ErrDuplicate       = errors.New("hvsim: duplicate request")
	ErrBadGPADL        = errors.New("hvsim: malformed GPADL")
	ErrUnknownGPADL    = errors.New("hvsim: unknown GPADL")
	ErrGPADLInUse      = errors.New("hvsim: GPADL in use by an open channel")
	ErrUnknownChannel  = errors.New("hvsim: unknown channel")
	ErrChannelState    = errors.New("hvsim: channel in wrong state")
	ErrBadOpen         = errors.New("hvsim: bad OPENCHANNEL")
	ErrShortMessage    = errors.New("hvsim: channel message too short")
	ErrOversize        = errors.New("hvsim: message over 240 bytes")
	ErrUnknownMessage  = errors.New("hvsim: unknown or unexpected channel message type")
	ErrWrongConnection = errors.New("hvsim: message on the wrong connection id")
	ErrRing            = errors.New("hvsim: ring buffer protocol error")
	ErrIC              = errors.New("hvsim: integration component protocol error")
)
