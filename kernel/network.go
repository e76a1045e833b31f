package kernel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/gohv/gohv/azure"
	"github.com/gohv/gohv/drivers/kvp"
	"github.com/gohv/gohv/drivers/netvsc"
	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/netstack"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// DefaultAddressWait bounds how long Start waits for a network address
// before it runs the application anyway.
const DefaultAddressWait = 10 * time.Second

// NetworkConfig configures the network: the synthetic NICs the host offers
// and the TCP/IP stack over them.
type NetworkConfig struct {
	// Disable leaves the NICs unbound and the stack out.
	Disable bool
	// NIC configures every NIC's addresses (default: DHCPv4 and IPv6
	// autoconfiguration).
	NIC netstack.NICOptions
	// Stack configures the stack (hostname sent to DHCP, IPv6 on or off).
	Stack netstack.Config
	// AddressWait bounds Start's wait for the first address (0 means
	// DefaultAddressWait; negative: do not wait).
	AddressWait time.Duration
}

// Net returns the TCP/IP stack, nil when the network is disabled or the
// machine has no VMBus. On a gohv kernel Go's own net package (and so
// net/http) uses it; hosted, reach it through its Listen and Dial.
func (k *Kernel) Net() *netstack.Stack { return k.net }

// startNetwork creates the stack and registers the NIC driver; NICs join the
// stack as the driver opens them.
func (k *Kernel) startNetwork(reg func(class chanmsg.GUID, d Driver) error) error {
	nc := k.cfg.Network
	if nc.Disable {
		return nil
	}
	scfg := nc.Stack
	if scfg.Logf == nil {
		scfg.Logf = func(format string, args ...any) { k.logf("gohv: net: "+format, args...) }
	}
	st, err := netstack.New(scfg)
	if err != nil {
		return fmt.Errorf("kernel: network stack: %w", err)
	}
	k.net = st
	installNet(st)
	k.NICs = &netvsc.Driver{
		// Large frames are bounced, not sent from the stack's own buffers:
		// netvsc returns from Send before the host has read them, and the
		// stack reuses its buffers as soon as Send returns. 32 bounce
		// buffers (about 2 MiB) keep a bulk sender's LSO sends in flight
		// where netvsc's default 8 made one send in 14 wait for a
		// completion (kernel BenchmarkBulkTCP, busy/op).
		Config: netvsc.Config{Memory: hostVisibleOnly{k.platform}, BounceBuffers: bounceBuffers},
		OnNIC:  k.addNIC,
	}
	k.addrs.Store(new([]netip.Addr))
	k.nicMACs = map[int][6]byte{}
	k.netDone = make(chan struct{})
	go k.watchAddresses(st.Watch())
	return reg(netvsc.Class, k.NICs)
}

// addNIC joins an opened NIC to the stack. It runs on the goroutine that
// attached the NIC.
func (k *Kernel) addNIC(n *netvsc.NIC) {
	ifc, err := k.net.AddNIC(n, k.cfg.Network.NIC)
	if err != nil {
		k.logf("gohv: NIC %x: %v", n.MAC(), err)
		return
	}
	k.nicMu.Lock()
	k.nicMACs[ifc.ID()] = n.MAC()
	k.nicMu.Unlock()
	k.refreshAddresses()
	link := "down"
	if n.LinkUp() {
		link = "up"
	}
	k.logf("gohv: NIC %x up: MTU %d, %d queue(s), link %s", n.MAC(), n.MTU(), n.Queues(), link)
	k.netWG.Add(1)
	go k.watchNICRemoval(n, ifc)
}

// watchNICRemoval takes a NIC the host rescinds out of the stack, so that
// connections through it fail at once and new ones route elsewhere, and
// then closes it. It runs on its own goroutine until the NIC goes or the
// network shuts down.
func (k *Kernel) watchNICRemoval(n *netvsc.NIC, ifc *netstack.Interface) {
	defer k.netWG.Done()
	select {
	case <-n.Removed():
	case <-k.netDone:
		return
	}
	if err := k.net.RemoveInterface(ifc); err != nil {
		// The stack is closing: closeNetwork closes the NIC.
		return
	}
	k.nicMu.Lock()
	delete(k.nicMACs, ifc.ID())
	k.nicMu.Unlock()
	k.refreshAddresses()
	ctx, cancel := context.WithTimeout(context.Background(), nicCloseTimeout)
	defer cancel()
	if err := n.Close(ctx); err != nil && !errors.Is(err, netvsc.ErrRemoved) && !errors.Is(err, netvsc.ErrClosed) {
		k.logf("gohv: NIC %x removed by the host; closing it: %v", n.MAC(), err)
		return
	}
	k.logf("gohv: NIC %x removed by the host", n.MAC())
}

// nicCloseTimeout bounds the teardown of a NIC the host removed.
const nicCloseTimeout = 5 * time.Second

// waitAddress waits (bounded) for the first address, so that the
// application starts with a network when there is one.
func (k *Kernel) waitAddress(ctx context.Context) {
	if k.net == nil || k.NICs == nil || len(k.NICs.NICs()) == 0 {
		return
	}
	wait := k.cfg.Network.AddressWait
	if wait == 0 {
		wait = DefaultAddressWait
	}
	if wait < 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	a, err := k.net.WaitAddress(ctx)
	if err != nil {
		k.logf("gohv: no network address after %v; starting the application anyway", wait)
		return
	}
	// What KVP tells the host is current before the application starts
	// (the watcher would catch up a moment later).
	k.refreshAddresses()
	k.logf("gohv: address %s (%s)", a.Prefix, a.Origin)
	k.startAzure()
}

// startAzure reports the VM ready to Azure's fabric and reads the instance
// metadata when DHCP says this is Azure (option 245, the WireServer), in
// the background: the application never waits for Azure.
func (k *Kernel) startAzure() {
	ws, ok := k.net.WireServer()
	if !ok {
		return
	}
	k.logf("gohv: on Azure (WireServer %s): reporting ready in the background", ws)
	p := &azure.Provisioner{
		Client:     &http.Client{Transport: &http.Transport{DialContext: k.net.Dial, Proxy: nil}},
		WireServer: ws,
		Log:        k.log,
	}
	ctx, cancel := context.WithCancel(context.Background())
	k.azure, k.stopAzure = p, cancel
	go p.Run(ctx) //nolint:errcheck // results are read through Provisioner.Result
}

// Azure returns the provisioning agent's state on Azure (its Result holds
// the ready report's outcome and the instance metadata), nil elsewhere.
func (k *Kernel) Azure() *azure.Provisioner { return k.azure }

// watchAddresses keeps what KVP reports to the host (addresses, each
// adapter's configuration) current.
func (k *Kernel) watchAddresses(w *netstack.Watcher) {
	defer w.Close()
	for {
		if _, err := w.Next(context.Background()); err != nil {
			return
		}
		k.refreshAddresses()
	}
}

// refreshAddresses rebuilds the snapshots KVP reads without locking.
func (k *Kernel) refreshAddresses() {
	// One refresh at a time, so an older snapshot never replaces a newer.
	k.refreshMu.Lock()
	defer k.refreshMu.Unlock()
	list := make([]netip.Addr, 0, 4)
	addrs := k.net.Addresses()
	for _, a := range addrs {
		if !a.Prefix.Addr().IsLoopback() {
			list = append(list, a.Prefix.Addr())
		}
	}
	k.addrs.Store(&list)

	routes, dns := k.net.Routes(), k.net.DNSServers()
	k.nicMu.Lock()
	adapters := make([]adapterSnapshot, 0, len(k.nicMACs))
	for id, mac := range k.nicMACs {
		a := adapterSnapshot{mac: mac}
		a.info.DNS = dns
		for _, ad := range addrs {
			if ad.NIC == id {
				a.info.Addrs = append(a.info.Addrs, ad.Prefix)
				a.info.DHCP = a.info.DHCP || ad.Origin == netstack.DHCP
			}
		}
		for _, r := range routes {
			if r.NIC == id && r.Dst.Bits() == 0 && r.Via.IsValid() {
				a.info.Gateways = append(a.info.Gateways, r.Via)
			}
		}
		adapters = append(adapters, a)
	}
	k.nicMu.Unlock()
	k.adapters.Store(&adapters)
}

// adapterSnapshot is one NIC's configuration as KVP's GET_IP_INFO reports
// it.
type adapterSnapshot struct {
	mac  [6]byte
	info kvp.AdapterInfo
}

// kvpAdapters is KVP's AdapterProvider: GET_IP_INFO answers from the
// snapshots; SET_IP_INFO (Hyper-V Replica's IP injection) is refused, since
// the stack does not reconfigure a running interface.
type kvpAdapters struct {
	snap *atomic.Pointer[[]adapterSnapshot]
}

// ErrIPInjection is what the host's SET_IP_INFO gets.
var ErrIPInjection = errors.New("kernel: IP injection (KVP SET_IP_INFO) is not supported: the guest keeps its configuration")

func (a kvpAdapters) AdapterInfo(mac [6]byte, info *kvp.AdapterInfo) bool {
	p := a.snap.Load()
	if p == nil {
		return false
	}
	for _, s := range *p {
		if s.mac == mac {
			info.DHCP = s.info.DHCP
			info.Addrs = append(info.Addrs[:0], s.info.Addrs...)
			info.Gateways = append(info.Gateways[:0], s.info.Gateways...)
			info.DNS = append(info.DNS[:0], s.info.DNS...)
			return true
		}
	}
	return false
}

func (kvpAdapters) SetAdapterInfo(chanmsg.GUID, kvp.AdapterInfo) error { return ErrIPInjection }

// kvpAddresses is KVP's AddressProvider over the cached address list: it
// runs on the KVP channel's goroutine and must neither block nor allocate.
type kvpAddresses struct{ addrs *atomic.Pointer[[]netip.Addr] }

func (a kvpAddresses) AppendAddrs(dst []netip.Addr) []netip.Addr {
	if p := a.addrs.Load(); p != nil {
		dst = append(dst, (*p)...)
	}
	return dst
}

// closeNetwork releases the DHCP leases and stops the stack, then closes
// the NICs.
func (k *Kernel) closeNetwork(ctx context.Context) error {
	if k.net == nil {
		return nil
	}
	if k.stopAzure != nil {
		k.stopAzure()
	}
	close(k.netDone)
	k.netWG.Wait() // a NIC being removed finishes first
	var errs []error
	if err := withoutRemoved(k.net.Close()); err != nil {
		errs = append(errs, fmt.Errorf("kernel: network stack: %w", err))
	}
	if k.NICs != nil {
		for _, n := range k.NICs.NICs() {
			if err := n.Close(ctx); err != nil && !errors.Is(err, netvsc.ErrRemoved) && !errors.Is(err, netvsc.ErrClosed) {
				errs = append(errs, fmt.Errorf("kernel: closing NIC %x: %w", n.MAC(), err))
			}
		}
	}
	return errors.Join(errs...)
}

// withoutRemoved drops from err (one error or an errors.Join of them) those
// that say the NIC was removed by the host: the stack cannot release a DHCP
// lease through a rescinded NIC, and that is not a failure to close.
func withoutRemoved(err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var keep []error
		for _, e := range j.Unwrap() {
			if !errors.Is(e, netvsc.ErrRemoved) {
				keep = append(keep, e)
			}
		}
		return errors.Join(keep...)
	}
	if errors.Is(err, netvsc.ErrRemoved) {
		return nil
	}
	return err
}

// bounceBuffers is the kernel's netvsc.Config.BounceBuffers.
const bounceBuffers = 32

// hostVisibleOnly hides a platform's hv.PhysTranslator.
type hostVisibleOnly struct{ hv.Memory }

var _ Driver = (*netvsc.Driver)(nil)

// Listen listens on the kernel's network stack (the guest's, hosted too),
// falling back to Go's net package when the kernel has no stack.
func (k *Kernel) Listen(network, address string) (net.Listener, error) {
	if k != nil && k.net != nil {
		return k.net.Listen(network, address)
	}
	return net.Listen(network, address)
}

// Dial connects through the kernel's network stack, falling back to Go's
// net package when the kernel has no stack.
func (k *Kernel) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	if k != nil && k.net != nil {
		return k.net.Dial(ctx, network, address)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}
