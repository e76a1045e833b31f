package storvsp

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gohv/gohv/tools/hvsim"
)

// Kind selects the controller type and so the offer's interface GUID.
type Kind int

// Controller kinds (docs/hyperv-protocol.md §5, §6).
const (
	SCSI Kind = iota // synthetic SCSI controller
	IDE              // IDE accelerator (Gen1): one disk, no sub-channels
)

// Addr is a SCSI address on a controller.
type Addr struct{ Path, Target, LUN uint8 }

// Config configures a controller.
type Config struct {
	Kind Kind
	// Instance is the offer's instance GUID (required: it names the
	// controller). Linux derives an IDE disk's target from bytes 4–5 of
	// its textual form; hvsim does not care.
	Instance hvsim.GUID
	// IDEPath and IDETarget go into the IDE offer's user data; the IDE
	// disk is attached at Addr{IDEPath, IDETarget, 0}, and every SRB on
	// an IDE controller is routed there whatever path/target it names.
	IDEPath, IDETarget uint8
	// MaxTransfer is reported by QUERY_PROPERTIES (default 0x40000, what
	// OpenVMM reports; §6.6). Larger transfers are violations.
	MaxTransfer uint32
	// MaxSubChannels is reported by QUERY_PROPERTIES from VSTOR 5.1 on for
	// SCSI (default 8).
	MaxSubChannels uint16
	// Versions are the VSTOR versions accepted, exactly. Default: those of
	// the host's profile (WS2016 and later: 6.2, 6.0, 5.1, 4.2, 2.0;
	// WS2012 R2: up to 6.0).
	Versions []uint16
}

// state of the VSTOR protocol on the primary channel (§6.4).
type state int

const (
	stBegin state = iota
	stQueryVersion
	stQueryProperties
	stEndInit
	stReady
)

// StorVSP is a storage controller: an hvsim.Device serving VSTOR on a
// primary channel and its sub-channels, with LUNs attached and detached
// at any time. Create it with New, offer it with Host.AddDevice. All
// methods are safe for concurrent use.
type StorVSP struct {
	cfg Config

	lunMu sync.RWMutex
	luns  map[Addr]*lun

	mu          sync.Mutex
	host        *hvsim.Host
	primary     *chanState
	state       state
	version     uint16
	srbLen      int
	subOffered  int
	subRelIDs   []uint32
	primaryRel  uint32
	chans       map[*hvsim.Channel]*chanState
	notifyQueue []uint32

	faults  faults
	crashed atomic.Bool
	crashCh chan struct{}

	stats devStats
}

type devStats struct {
	requests, completions, lost, violations atomic.Uint64
}

// Stats are controller counters.
type Stats struct {
	Requests    uint64 // EXECUTE_SRB packets taken
	Completions uint64 // SRB completions written to the guest
	Lost        uint64 // completions dropped by faults or the crash
	Violations  uint64 // guest packets recorded as violations
}

// New returns a controller with no LUNs.
func New(cfg Config) (*StorVSP, error) {
	if cfg.Instance == (hvsim.GUID{}) {
		return nil, errors.New("storvsp: Config.Instance is required")
	}
	if cfg.MaxTransfer == 0 {
		cfg.MaxTransfer = 0x40000
	}
	if cfg.MaxTransfer%4096 != 0 || cfg.MaxTransfer > 8<<20 {
		return nil, fmt.Errorf("storvsp: MaxTransfer %d: want a multiple of 4096 up to 8 MiB", cfg.MaxTransfer)
	}
	if cfg.MaxSubChannels == 0 {
		cfg.MaxSubChannels = 8
	}
	if cfg.Kind == IDE {
		cfg.MaxSubChannels = 0
	}
	for _, v := range cfg.Versions {
		if !slices.Contains(allVersions[:], v) {
			return nil, fmt.Errorf("storvsp: unknown VSTOR version %#x", v)
		}
	}
	return &StorVSP{cfg: cfg, luns: map[Addr]*lun{}, chans: map[*hvsim.Channel]*chanState{},
		crashCh: make(chan struct{})}, nil
}

var allVersions = [...]uint16{VersionWin10, VersionBlue, VersionWin8, VersionWin7, VersionWin6}

// Offer implements hvsim.Device.
func (d *StorVSP) Offer() hvsim.OfferSpec {
	s := hvsim.OfferSpec{Class: ClassSCSI, Instance: d.cfg.Instance}
	if d.cfg.Kind == IDE {
		s.Class = ClassIDE
		s.UserDefined = ideUserData(d.cfg.IDEPath, d.cfg.IDETarget)
	}
	return s
}

// accepts reports whether VSTOR version v is accepted.
func (d *StorVSP) accepts(v uint16) bool {
	if d.cfg.Versions != nil {
		return slices.Contains(d.cfg.Versions, v)
	}
	if v == VersionWin10 && d.host != nil && d.host.Profile() == hvsim.WS2012R2 {
		return false
	}
	return slices.Contains(allVersions[:], v)
}

// Open implements hvsim.Device. It runs with the VMBus server locked: it
// only records the channel and starts its goroutine.
func (d *StorVSP) Open(ch *hvsim.Channel) error {
	if d.crashed.Load() {
		return errors.New("storvsp: crashed")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.host = ch.Host()
	c := newChanState(d, ch)
	if ch.SubChannelIndex() == 0 {
		d.primary, d.primaryRel = c, ch.RelID()
		d.state, d.version, d.srbLen = stBegin, 0, srbLenWin8
		d.faults.dropHeld()
	}
	d.chans[ch] = c
	go c.serve()
	return nil
}

// Close implements hvsim.Device.
func (d *StorVSP) Close(ch *hvsim.Channel) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.chans[ch]
	delete(d.chans, ch)
	if c != nil && c == d.primary {
		d.primary = nil
		d.state = stBegin
	}
}

// Attach adds a disk at a. While the guest is connected it is told with
// ENUMERATE_BUS (from VSTOR 4.2 on, like OpenVMM), and rescans.
func (d *StorVSP) Attach(a Addr, cfg LUNConfig) error {
	if d.cfg.Kind == IDE && (a != Addr{d.cfg.IDEPath, d.cfg.IDETarget, 0}) {
		return fmt.Errorf("%w: IDE controller serves only %v", ErrAddress, Addr{d.cfg.IDEPath, d.cfg.IDETarget, 0})
	}
	if cfg.ID == ([16]byte{}) {
		cfg.ID = defaultID(d.cfg.Instance, a)
	}
	u, err := newLUN(cfg)
	if err != nil {
		return err
	}
	d.lunMu.Lock()
	if d.luns[a] != nil {
		d.lunMu.Unlock()
		return fmt.Errorf("%w: %v in use", ErrAddress, a)
	}
	d.luns[a] = u
	d.lunMu.Unlock()
	d.notify(opEnumerateBus)
	return nil
}

// Detach removes the disk at a (hot-remove): its I/O fails with INVALID
// LUN from now on and the guest gets REMOVE_DEVICE. What sat in its write
// cache is written back first, as a controller would on an orderly
// removal.
func (d *StorVSP) Detach(a Addr) error {
	d.lunMu.Lock()
	u := d.luns[a]
	delete(d.luns, a)
	d.lunMu.Unlock()
	if u == nil {
		return fmt.Errorf("%w: nothing at %v", ErrAddress, a)
	}
	d.notify(opRemoveDevice)
	if d.crashed.Load() {
		return nil
	}
	return u.flush()
}

// notify queues an unsolicited packet for the primary channel once the
// protocol is ready (§6.2: ENUMERATE_BUS, REMOVE_DEVICE).
func (d *StorVSP) notify(op uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.primary == nil || d.state != stReady || d.version < VersionWin7 {
		return
	}
	d.notifyQueue = append(d.notifyQueue, op)
	select {
	case d.primary.kick <- struct{}{}:
	default:
	}
}

func (d *StorVSP) lookup(a Addr) *lun {
	d.lunMu.RLock()
	defer d.lunMu.RUnlock()
	return d.luns[a]
}

// lunsOf appends the LUNs attached at path/target to dst, sorted.
func (d *StorVSP) lunsOf(path, target uint8, dst []byte) []byte {
	d.lunMu.RLock()
	for a := range d.luns {
		if a.Path == path && a.Target == target {
			dst = append(dst, a.LUN)
		}
	}
	d.lunMu.RUnlock()
	slices.Sort(dst)
	return dst
}

// Stats returns the controller counters.
func (d *StorVSP) Stats() Stats {
	return Stats{Requests: d.stats.requests.Load(), Completions: d.stats.completions.Load(),
		Lost: d.stats.lost.Load(), Violations: d.stats.violations.Load()}
}

// LUNStats are per-disk counters.
type LUNStats struct {
	Reads, Writes, Flushes, Unmaps     uint64
	BytesRead, BytesWritten, Discarded uint64
	// DirtyBlocks is how many 4 KiB cache blocks are not written back.
	DirtyBlocks int
}

// LUNStats returns the counters of the disk at a.
func (d *StorVSP) LUNStats(a Addr) (LUNStats, bool) {
	u := d.lookup(a)
	if u == nil {
		return LUNStats{}, false
	}
	u.stats.mu.Lock()
	s := LUNStats{Reads: u.stats.reads, Writes: u.stats.writes, Flushes: u.stats.flushes,
		Unmaps: u.stats.unmaps, BytesRead: u.stats.bytesRead, BytesWritten: u.stats.bytesWritten,
		Discarded: u.stats.discarded}
	u.stats.mu.Unlock()
	s.DirtyBlocks = u.dirtyBlocks()
	return s, true
}

// Version returns the negotiated VSTOR version (0 before negotiation).
func (d *StorVSP) Version() uint16 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.version
}

// Ready reports whether the guest finished initialization (§6.4).
func (d *StorVSP) Ready() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state == stReady
}

// violate records a guest protocol violation with the host.
func (d *StorVSP) violate(c *chanState, format string, args ...any) {
	d.stats.violations.Add(1)
	err := fmt.Errorf("%w: relid %d: %s", ErrProtocol, c.ch.RelID(), fmt.Sprintf(format, args...))
	c.ch.Host().RecordViolation(err)
}
