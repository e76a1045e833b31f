package kvp

import (
	"errors"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/gohv/gohv/drivers/ic"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// Class is the KVP IC's device class GUID (docs/hyperv-protocol.md §5).
var Class = chanmsg.ClassKVP

// Versions are the KVP message versions gohv implements
// (docs/hyperv-protocol.md §8.2). 5.0 (OpenVMM) adds a binary IP record
// gohv does not speak; hosts offering it also offer 4.0.
var Versions = []ic.Version{{Major: 4}, {Major: 3}, {Major: 1}}

// Errors. Callers branch with errors.Is.
var (
	ErrOperation = errors.New("kvp: unknown operation")
	ErrKey       = errors.New("kvp: invalid key")
	ErrValue     = errors.New("kvp: invalid value")
	ErrPoolFull  = errors.New("kvp: pool full")
	ErrNotFound  = errors.New("kvp: no such key")
	ErrPool      = errors.New("kvp: pool not available for this operation")
)

// AutoKeys are the auto pool's keys in enumeration-index order
// (docs/hyperv-protocol.md §8.6; Linux tools/hv/hv_kvp_daemon.c).
var AutoKeys = [...]string{
	"FullyQualifiedDomainName",
	"IntegrationServicesVersion",
	"NetworkAddressIPv4",
	"NetworkAddressIPv6",
	"OSBuildNumber",
	"OSName",
	"OSMajorVersion",
	"OSMinorVersion",
	"OSVersion",
	"ProcessorArchitecture",
}

// Indexes into AutoKeys of the values that come from the AddressProvider.
const (
	autoIPv4 = 2
	autoIPv6 = 3
)

// SystemInfo are the auto pool's fixed values. Empty fields are answered
// empty, except OSName, IntegrationServicesVersion and
// ProcessorArchitecture, which New fills with gohv's defaults.
type SystemInfo struct {
	FullyQualifiedDomainName   string
	IntegrationServicesVersion string
	OSBuildNumber              string
	OSName                     string
	OSMajorVersion             string
	OSMinorVersion             string
	OSVersion                  string
	ProcessorArchitecture      string
}

// AddressProvider supplies the guest's addresses for the auto pool's
// NetworkAddressIPv4 and NetworkAddressIPv6. The network stack implements
// it.
type AddressProvider interface {
	// AppendAddrs appends the guest's current unicast addresses of both
	// families (loopback excluded) to dst and returns the result. It runs
	// on the bus dispatch goroutine and must not block; appending within
	// dst's capacity keeps the KVP handler allocation-free.
	AppendAddrs(dst []netip.Addr) []netip.Addr
}

// AdapterInfo is one network adapter's IP configuration, as GET_IP_INFO
// reports it and SET_IP_INFO asks for it.
type AdapterInfo struct {
	// DHCP reports (or asks) whether addresses come from DHCP.
	DHCP bool
	// Addrs are the adapter's addresses with their prefix lengths.
	Addrs []netip.Prefix
	// Gateways and DNS are the default gateways and DNS servers.
	Gateways []netip.Addr
	DNS      []netip.Addr
}

// AdapterProvider reads and applies adapters' IP configuration for
// GET_IP_INFO and SET_IP_INFO. The host names the adapter by MAC address
// when it reads and by the network device's VMBus instance GUID
// (vmbus.Offer.InterfaceInstance of its netvsc channel) when it writes.
// Both methods run on the bus dispatch goroutine and must not block:
// apply a configuration by queueing it.
type AdapterProvider interface {
	// AdapterInfo fills info (reusing its slices' capacity) for the
	// adapter with hardware address mac, or reports false if there is
	// none.
	AdapterInfo(mac [6]byte, info *AdapterInfo) bool
	// SetAdapterInfo applies a host's IP injection to the adapter whose
	// device instance is adapter, or returns an error (ErrNotFound for an
	// unknown adapter) that the host sees as a failure status.
	SetAdapterInfo(adapter chanmsg.GUID, info AdapterInfo) error
}

// Defaults of Config.
const (
	DefaultMaxEntries                 = 512
	DefaultIntegrationServicesVersion = "3.1"
	DefaultOSName                     = "gohv"
)

// Config configures a Driver.
type Config struct {
	// System are the auto pool's fixed values.
	System SystemInfo
	// Addresses supplies NetworkAddressIPv4/IPv6; nil answers them empty.
	Addresses AddressProvider
	// Adapters serves GET_IP_INFO and SET_IP_INFO; nil refuses both.
	Adapters AdapterProvider
	// MaxEntries bounds each pool; 0 means DefaultMaxEntries.
	MaxEntries int
}

// Stats are the KVP counters.
type Stats struct {
	// Operations counts well-formed operations by Operation.
	Operations [6]uint64
	// Failed counts operations answered with a failure status (missing
	// keys and enumeration ends included); Malformed counts those refused
	// as malformed.
	Failed, Malformed uint64
	// IC are the framework counters of the current channel.
	IC ic.Stats
}

// Driver answers the host's KVP messages. Create it with New.
type Driver struct {
	cfg  Config
	att  ic.Attachment
	auto [len(AutoKeys)]string

	// mu guards pools and free. The handler holds it only to copy data
	// in or out; nothing waits while holding it. watchMu is never held
	// with mu.
	mu    sync.Mutex
	pools [numPools]store
	free  []*entry

	watchMu  sync.Mutex
	watchers map[chan struct{}]struct{}

	// Scratch touched only on the dispatch goroutine.
	addrs   []netip.Addr
	text    []byte
	adapter AdapterInfo

	ops               [6]atomic.Uint64
	failed, malformed atomic.Uint64
}

// New returns a KVP driver, not yet attached to a channel.
func New(cfg Config) *Driver {
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	s := &cfg.System
	if s.IntegrationServicesVersion == "" {
		s.IntegrationServicesVersion = DefaultIntegrationServicesVersion
	}
	if s.OSName == "" {
		s.OSName = DefaultOSName
	}
	if s.ProcessorArchitecture == "" {
		s.ProcessorArchitecture = runtime.GOARCH
		if s.ProcessorArchitecture == "amd64" {
			s.ProcessorArchitecture = "x86_64"
		}
	}
	d := &Driver{cfg: cfg, watchers: make(map[chan struct{}]struct{}),
		addrs: make([]netip.Addr, 0, 64), text: make([]byte, 0, 64),
		adapter: AdapterInfo{Addrs: make([]netip.Prefix, 0, 32), Gateways: make([]netip.Addr, 0, 8), DNS: make([]netip.Addr, 0, 8)}}
	d.auto = [...]string{s.FullyQualifiedDomainName, s.IntegrationServicesVersion, "", "",
		s.OSBuildNumber, s.OSName, s.OSMajorVersion, s.OSMinorVersion, s.OSVersion, s.ProcessorArchitecture}
	return d
}

// Name returns "kvp".
func (d *Driver) Name() string { return "kvp" }

// Stats returns the counters; safe from any goroutine.
func (d *Driver) Stats() Stats {
	var st Stats
	for i := range d.ops {
		st.Operations[i] = d.ops[i].Load()
	}
	st.Failed, st.Malformed = d.failed.Load(), d.malformed.Load()
	st.IC = d.att.Stats()
	return st
}

func (d *Driver) config() ic.Config {
	return ic.Config{Name: d.Name(), Type: ic.TypeKVP, Versions: Versions, Handle: d.handle}
}

// Publish sets key to the string value in the guest pool, where the host
// reads it. Keys hold at most 255 UTF-16 code units, values 1023; neither
// may contain NUL. Safe from any goroutine.
func (d *Driver) Publish(key, value string) error {
	k, ok := encodeUTF16(key, KeyMax-2)
	if !ok {
		return ErrKey
	}
	var v []byte
	if value != "" {
		if v, ok = encodeUTF16(value, ValueMax-2); !ok {
			return ErrValue
		}
	}
	v = append(v, 0, 0) // REG_SZ carries its NUL
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.pools[PoolGuest].put(&d.free, d.cfg.MaxEntries, k, TypeString, v); !ok {
		return ErrPoolFull
	}
	return nil
}

// Unpublish removes key from the guest pool, or returns ErrNotFound.
func (d *Driver) Unpublish(key string) error {
	k, ok := encodeUTF16(key, KeyMax-2)
	if !ok {
		return ErrKey
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.pools[PoolGuest].remove(&d.free, k) {
		return ErrNotFound
	}
	return nil
}

// Get returns key's value in pool (any stored pool; the auto pool is
// answered by the host-facing side only), and whether it exists.
func (d *Driver) Get(pool Pool, key string) (Value, bool) {
	k, ok := encodeUTF16(key, KeyMax-2)
	if !ok || int(pool) >= numPools {
		return Value{}, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s := &d.pools[pool]
	i := s.find(k)
	if i < 0 {
		return Value{}, false
	}
	return s.entries[i].value(), true
}

// Entries returns a copy of pool's pairs in enumeration order.
func (d *Driver) Entries(pool Pool) []Entry {
	if int(pool) >= numPools {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s := &d.pools[pool]
	out := make([]Entry, len(s.entries))
	for i, e := range s.entries {
		out[i] = Entry{Key: decodeUTF16(e.keyBytes()), Value: e.value()}
	}
	return out
}

// Watch returns a channel that receives a value after the host changed
// the external or auto-external pool (coalesced: one pending signal at
// most), and a function that stops the watch. Read the new data with Get
// or Entries.
func (d *Driver) Watch() (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	d.watchMu.Lock()
	d.watchers[c] = struct{}{}
	d.watchMu.Unlock()
	return c, func() {
		d.watchMu.Lock()
		delete(d.watchers, c)
		d.watchMu.Unlock()
	}
}

// notify signals every watcher without blocking or allocating.
func (d *Driver) notify() {
	d.watchMu.Lock()
	for c := range d.watchers {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	d.watchMu.Unlock()
}
