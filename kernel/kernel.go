package kernel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gohv/gohv/azure"
	"github.com/gohv/gohv/drivers/block"
	"github.com/gohv/gohv/drivers/heartbeat"
	"github.com/gohv/gohv/drivers/kvp"
	"github.com/gohv/gohv/drivers/netvsc"
	"github.com/gohv/gohv/drivers/shutdown"
	"github.com/gohv/gohv/drivers/storvsc"
	"github.com/gohv/gohv/drivers/timesync"
	"github.com/gohv/gohv/drivers/vss"
	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/netstack"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// Defaults of Config.
const (
	DefaultGracePeriod     = 10 * time.Second
	DefaultStartTimeout    = 30 * time.Second
	DefaultShutdownTimeout = 30 * time.Second
)

// ErrNoPlatform is returned by a Config.Platform function when the machine
// has no Hyper-V VMBus (QEMU TCG, KVM, bare hardware). Start then runs
// without VMBus and says so once; any other Platform error is fatal.
var ErrNoPlatform = errors.New("no Hyper-V VMBus on this machine")

// Config configures Start. The zero value starts the standard drivers on
// the default platform (the board's on a gohv kernel; none hosted).
type Config struct {
	// Platform returns the machine the kernel drives. nil means the
	// default: the board's bare-metal platform in a kernel built with
	// GOOS=tamago, ErrNoPlatform elsewhere. The simulator passes its
	// host's platform here.
	Platform func() (hv.Platform, error)
	// VMBus configures the connection (versions, poll interval).
	VMBus vmbus.Config
	// Drivers are bound in addition to the standard ones, by class GUID;
	// a driver given for a standard class replaces the standard driver.
	Drivers map[chanmsg.GUID]Driver
	// NoStandardDrivers leaves out heartbeat, shutdown, time sync, KVP,
	// VSS and storage: only Drivers are bound.
	NoStandardDrivers bool
	// Storage configures the storvsc driver (Memory is filled in).
	Storage storvsc.Config
	// System is what KVP tells the host about the guest (its auto pool);
	// empty fields get gohv's defaults.
	System kvp.SystemInfo
	// Network configures the NICs and the TCP/IP stack.
	Network NetworkConfig
	// StartTimeout bounds connecting and the first binding of drivers.
	StartTimeout time.Duration
	// Log receives the kernel's one-line reports (COM1 on a gohv
	// kernel); nil means os.Stdout. The kernel writes one line per Write,
	// one at a time, so Log need not be safe for concurrent use by the
	// kernel (an application writing to it too must share a lock).
	Log io.Writer
}

// Kernel is a started gohv kernel: the VMBus connection, the drivers bound
// to its offers, and what they found. Create it with Start; Run does that
// for an application.
type Kernel struct {
	cfg      Config
	logMu    sync.Mutex // serialises writes to log: drivers report from their own goroutines
	log      io.Writer
	platform hv.Platform
	bus      *vmbus.Bus // nil without VMBus
	noBus    error      // why there is no bus

	// Registry binds drivers to offers (hot-added ones included).
	Registry Registry
	// Power carries the host's shutdown and restart requests.
	Power PowerRequests
	// Disks holds the block devices the storage driver found; watch it
	// for disks that come and go.
	Disks block.Registry

	Heartbeat *heartbeat.Driver
	Shutdown  *shutdown.Driver
	TimeSync  *timesync.Driver
	KVP       *kvp.Driver
	VSS       *vss.Driver
	Storage   *storvsc.Driver
	NICs      *netvsc.Driver // nil when the network is disabled

	net       *netstack.Stack
	addrs     atomic.Pointer[[]netip.Addr]      // for KVP
	azure     *azure.Provisioner                // nil off Azure
	adapters  atomic.Pointer[[]adapterSnapshot] // for KVP's GET_IP_INFO
	nicMu     sync.Mutex
	nicMACs   map[int][6]byte // stack interface id -> MAC; under nicMu
	refreshMu sync.Mutex      // serialises refreshAddresses
	netDone   chan struct{}   // closed when the network shuts down
	netWG     sync.WaitGroup  // NIC removal watchers
	stopAzure context.CancelFunc

	clock   *guestClock
	gate    vss.WriteGate
	gatedMu sync.Mutex
	gated   map[*storvsc.Disk]*gatedDisk                // under gatedMu
	closers []interface{ Close(context.Context) error } // IC drivers, closed in reverse

	closeOnce sync.Once
	closeErr  error
}

// Start finds the platform, connects VMBus at the best version the host
// offers, and binds the drivers to the offered devices (hot-add and
// rescind included). Without Hyper-V it logs one line and returns a Kernel
// with no bus, so that the application still runs.
func Start(ctx context.Context, cfg Config) (*Kernel, error) {
	k := &Kernel{cfg: cfg, log: cfg.Log}
	if k.log == nil {
		k.log = os.Stdout
	}
	timeout := cfg.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	platform := cfg.Platform
	if platform == nil {
		platform = defaultPlatform
	}
	p, err := platform()
	if err != nil {
		if errors.Is(err, ErrNoPlatform) {
			k.noBus = err
			k.logf("gohv: %v; running the application without VMBus", err)
			setWallClock(k)
			return k, nil
		}
		return nil, fmt.Errorf("kernel: platform: %w", err)
	}
	k.platform = p
	if err := k.registerDrivers(); err != nil {
		return nil, err
	}
	bus, err := vmbus.Connect(ctx, p, cfg.VMBus)
	if err != nil {
		return nil, fmt.Errorf("kernel: connecting to VMBus: %w", err)
	}
	k.bus = bus
	k.Registry.OnBind = func(b Binding) { k.logf("gohv: hot-added %s", b) }
	bindings, err := k.Registry.Bind(ctx, bus)
	for _, b := range bindings {
		if b.Err != nil {
			k.logf("gohv: %s", b)
		}
	}
	if err != nil {
		// A device whose driver failed stays unbound; the others work.
		k.logf("gohv: some drivers failed to attach: %v", err)
	}
	setWallClock(k)
	k.waitAddress(ctx)
	return k, nil
}

// registerDrivers registers the standard drivers and cfg.Drivers.
func (k *Kernel) registerDrivers() error {
	extra := k.cfg.Drivers
	reg := func(class chanmsg.GUID, d Driver) error {
		if x, ok := extra[class]; ok {
			d = x
		}
		return k.Registry.Register(class, d)
	}
	if !k.cfg.NoStandardDrivers {
		k.clock = newGuestClock(k.platform)
		k.Heartbeat = heartbeat.New()
		k.Shutdown = shutdown.New(k.Power.Deliver)
		k.TimeSync = timesync.New(k.clock, timesync.Config{})
		k.KVP = kvp.New(kvp.Config{System: k.systemInfo(), Addresses: kvpAddresses{&k.addrs}, Adapters: kvpAdapters{&k.adapters}})
		k.VSS = vss.New(vss.Config{Freezer: (*diskFreezer)(k)})
		scfg := k.cfg.Storage
		scfg.Memory = k.platform
		if scfg.QueueDepth == 0 {
			scfg.QueueDepth = 64
		}
		if scfg.BounceSize == 0 {
			scfg.BounceSize = 32 << 10
		}
		scfg.OnEvent = k.diskEvent
		k.Storage = &storvsc.Driver{Config: scfg}
		k.closers = append(k.closers, k.Shutdown, k.Heartbeat, k.TimeSync, k.KVP, k.VSS)
		for _, r := range []struct {
			class chanmsg.GUID
			d     Driver
		}{
			{heartbeat.Class, k.Heartbeat},
			{shutdown.Class, k.Shutdown},
			{timesync.Class, k.TimeSync},
			{kvp.Class, k.KVP},
			{vss.Class, k.VSS},
			{storvsc.SCSIClass, k.Storage},
			{storvsc.IDEClass, k.Storage},
		} {
			if err := reg(r.class, r.d); err != nil {
				return err
			}
		}
		if err := k.startNetwork(reg); err != nil {
			return err
		}
	}
	classes := make([]chanmsg.GUID, 0, len(extra))
	for c := range extra {
		classes = append(classes, c)
	}
	sort.Slice(classes, func(i, j int) bool { return classes[i].String() < classes[j].String() })
	for _, c := range classes {
		if k.Registry.has(c) {
			continue // replaced a standard driver above
		}
		if err := k.Registry.Register(c, extra[c]); err != nil {
			return err
		}
	}
	return nil
}

func (k *Kernel) systemInfo() kvp.SystemInfo {
	s := k.cfg.System
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&s.FullyQualifiedDomainName, "gohv")
	def(&s.IntegrationServicesVersion, "gohv")
	def(&s.OSName, "gohv")
	def(&s.OSMajorVersion, "0")
	def(&s.OSMinorVersion, "1")
	def(&s.OSVersion, "0.1")
	def(&s.OSBuildNumber, "0")
	def(&s.ProcessorArchitecture, "x86_64")
	return s
}

// diskEvent keeps Disks in step with the storage driver. It runs on the
// controller's scanning goroutine.
func (k *Kernel) diskEvent(e storvsc.Event) {
	switch e.Kind {
	case storvsc.DiskAdded:
		g := &gatedDisk{Device: e.Disk, gate: &k.gate}
		k.gatedMu.Lock()
		if k.gated == nil {
			k.gated = map[*storvsc.Disk]*gatedDisk{}
		}
		k.gated[e.Disk] = g
		k.gatedMu.Unlock()
		if err := k.Disks.Add(g); err == nil {
			info := e.Disk.Info()
			ro := ""
			if info.ReadOnly {
				ro = ", read-only"
			}
			k.logf("gohv: disk %s: %d MiB, %d-byte sectors%s", info.Name,
				info.Sectors*uint64(info.SectorSize)>>20, info.SectorSize, ro)
		}
	case storvsc.DiskRemoved:
		k.gatedMu.Lock()
		g := k.gated[e.Disk]
		delete(k.gated, e.Disk)
		k.gatedMu.Unlock()
		if g != nil && k.Disks.Remove(g) {
			k.logf("gohv: disk %s removed", e.Disk.Info().Name)
		}
	}
}

// diskFreezer is the VSS Freezer: FREEZE flushes every disk and holds new
// writes at the write gate until THAW.
type diskFreezer Kernel

func (f *diskFreezer) Freeze(ctx context.Context) error {
	k := (*Kernel)(f)
	if err := k.gate.Hold(ctx); err != nil {
		return err
	}
	if err := k.FlushDisks(ctx); err != nil {
		k.gate.Release()
		return err
	}
	return nil
}

func (f *diskFreezer) Thaw() { (*Kernel)(f).gate.Release() }

// WriteGate is held while the host takes a backup (VSS FREEZE to THAW).
// Every write to a disk of Disks passes it already; code that keeps data of
// its own and writes it elsewhere may enter it too, but never around a
// write to one of those disks (the gate is not re-entrant: such a write
// would wait for the freeze it holds up).
func (k *Kernel) WriteGate() *vss.WriteGate { return &k.gate }

// FlushDisks flushes every disk (SYNCHRONIZE CACHE): what was written
// before survives a host crash once it returns.
func (k *Kernel) FlushDisks(ctx context.Context) error {
	var errs []error
	for _, d := range k.Disks.Devices() {
		if d.Info().ReadOnly {
			continue
		}
		if err := d.Flush(ctx); err != nil && !errors.Is(err, block.ErrRemoved) {
			errs = append(errs, fmt.Errorf("kernel: flushing %s: %w", d.Info().Name, err))
		}
	}
	return errors.Join(errs...)
}

// Bus returns the VMBus connection, nil when the machine has none.
func (k *Kernel) Bus() *vmbus.Bus { return k.bus }

// Platform returns the platform the kernel drives, nil without VMBus.
func (k *Kernel) Platform() hv.Platform { return k.platform }

// VMBusVersion returns the negotiated VMBus version (0 without VMBus).
func (k *Kernel) VMBusVersion() chanmsg.Version {
	if k.bus == nil {
		return 0
	}
	return k.bus.Version()
}

// NoVMBus returns why the kernel runs without VMBus, nil when it has it.
func (k *Kernel) NoVMBus() error { return k.noBus }

// Devices returns the outcome of every primary offer bound so far.
func (k *Kernel) Devices() []Binding { return k.Registry.Bindings() }

// Now is the wall-clock time the host's time sync keeps (the system clock
// until the host has sent one).
func (k *Kernel) Now() time.Time {
	if k.clock == nil || k.TimeSync == nil || !k.TimeSync.HostProvidesTime() {
		return time.Now()
	}
	return timesync.Now(k.clock)
}

// Close runs the kernel's shutdown path: flush every disk, close the
// drivers (storage last, after its flush), and unload VMBus. It is safe to
// call more than once; later calls return the first result.
func (k *Kernel) Close(ctx context.Context) error {
	k.closeOnce.Do(func() {
		k.closeErr = k.close(ctx)
	})
	return k.closeErr
}

func (k *Kernel) close(ctx context.Context) error {
	if k.bus == nil {
		return nil
	}
	var errs []error
	if err := k.closeNetwork(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := k.FlushDisks(ctx); err != nil {
		errs = append(errs, err)
	}
	for i := len(k.closers) - 1; i >= 0; i-- {
		if err := k.closers[i].Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if k.Storage != nil {
		for _, c := range k.Storage.Controllers() {
			if err := c.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("kernel: closing storage: %w", err))
			}
		}
	}
	if err := k.bus.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("kernel: unloading VMBus: %w", err))
	}
	return errors.Join(errs...)
}

func (k *Kernel) logf(format string, args ...any) {
	line := fmt.Sprintf(format+"\n", args...)
	k.logMu.Lock()
	defer k.logMu.Unlock()
	io.WriteString(k.log, line)
}
