package netstack_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gohv/gohv/netstack"
	"github.com/gohv/gohv/netstack/nic"
	"golang.org/x/sys/unix"
)

// packetNIC is a nic.NIC over an AF_PACKET socket bound to one interface
// (a veth end inside a test network namespace). It claims receive checksum
// offload and reports every frame as verified: frames on a veth come from
// the kernel's own stack, which leaves checksums partial (it never computes
// what a real wire would need) and verifies what it receives itself.
type packetNIC struct {
	fd     int
	mac    [6]byte
	mu     sync.Mutex
	recv   func(int, []byte, nic.RxInfo)
	change func()
	done   chan struct{}
	logf   func(string, ...any)
	// stop ends loop at its next receive timeout; only then is fd closed,
	// so that a new socket reusing the descriptor number is never read by
	// a stale loop.
	stop atomic.Bool
	buf  []byte
}

func (p *packetNIC) MAC() [6]byte              { return p.mac }
func (p *packetNIC) MTU() int                  { return 1500 }
func (p *packetNIC) Queues() int               { return 1 }
func (p *packetNIC) LinkUp() bool              { return true }
func (p *packetNIC) Offloads() nic.Offloads    { return nic.Offloads{RxCsum: true} }
func (p *packetNIC) SetLinkHandler(func(bool)) {}
func (p *packetNIC) SetNetworkChangeHandler(fn func()) {
	p.mu.Lock()
	p.change = fn
	p.mu.Unlock()
}
func (p *packetNIC) WaitWritable(context.Context, int) error { return nil }
func (p *packetNIC) SetReceiver(fn func(int, []byte, nic.RxInfo)) {
	p.mu.Lock()
	p.recv = fn
	p.mu.Unlock()
}

func (p *packetNIC) Send(_ int, parts [][]byte, _ nic.TxInfo) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = p.buf[:0]
	for _, b := range parts {
		p.buf = append(p.buf, b...)
	}
	_, err := syscall.Write(p.fd, p.buf)
	if p.logf != nil && len(p.buf) > 42 && (p.buf[12] == 8 && p.buf[13] == 6 || p.buf[23] == 17 && p.buf[37] == 67) {
		p.logf("tx %x %v", p.buf[:min(len(p.buf), 64)], err)
	}
	return err
}

func (p *packetNIC) loop() {
	defer close(p.done)
	b := make([]byte, 65536)
	for {
		n, from, err := syscall.Recvfrom(p.fd, b, 0)
		if p.stop.Load() {
			return
		}
		if err != nil {
			if errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN) {
				continue // EAGAIN: the receive timeout, to notice stop
			}
			return
		}
		if ll, ok := from.(*syscall.SockaddrLinklayer); ok && ll.Pkttype == syscall.PACKET_OUTGOING {
			continue // our own transmissions, looped back to ETH_P_ALL sockets
		}
		p.mu.Lock()
		fn, logf := p.recv, p.logf
		p.mu.Unlock()
		if logf != nil && n > 42 && (b[12] == 8 && b[13] == 6 || b[12] == 8 && b[13] == 0 && b[23] == 17 && b[36] == 0 && b[37] == 68) {
			logf("rx %x", b[:min(n, 64)])
		}
		if fn != nil {
			fn(0, b[:n], nic.RxInfo{CsumChecked: true, IPCsumOK: true, L4CsumOK: true})
		}
	}
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

// inNetns runs fn on a thread switched into the named network namespace.
func inNetns(t *testing.T, name string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := os.Open("/var/run/netns/" + name)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: the runtime discards it.
		return err
	}
	runtime.UnlockOSThread()
	return ferr
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Contains(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Contains(s.b.Bytes(), []byte(sub))
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lab creates two network namespaces joined by a veth pair (server end
// "vs" 10.99.0.1/24 and fd00:99::1/64, client end "vc"), runs dnsmasq with
// extra arguments on the server end, and returns a packetNIC on the client
// end. Everything is removed at test end; no traffic leaves the namespaces.
func lab(t *testing.T, dnsmasqArgs ...string) (*packetNIC, *syncBuffer) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces; skipping")
	}
	for _, p := range []string{"ip", "dnsmasq"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s not installed (apt-get install iproute2 dnsmasq); skipping", p)
		}
	}
	id := fmt.Sprintf("%d%s", os.Getpid(), t.Name()[4:8])
	srv, cli := "gohvns"+id+"s", "gohvns"+id+"c"
	run(t, "ip", "netns", "add", srv)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", srv).Run() })
	run(t, "ip", "netns", "add", cli)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", cli).Run() })
	run(t, "ip", "-n", srv, "link", "add", "vs", "type", "veth", "peer", "name", "vc", "netns", cli)
	run(t, "ip", "-n", srv, "addr", "add", "10.99.0.1/24", "dev", "vs")
	run(t, "ip", "-n", srv, "addr", "add", "fd00:99::1/64", "dev", "vs", "nodad")
	run(t, "ip", "-n", srv, "link", "set", "vs", "up")
	run(t, "ip", "-n", srv, "link", "set", "lo", "up")
	run(t, "ip", "-n", cli, "link", "set", "vc", "up")

	dir := t.TempDir()
	args := append([]string{"netns", "exec", srv, "dnsmasq", "--no-daemon", "--conf-file=/dev/null",
		"--interface=vs", "--bind-interfaces", "--no-resolv", "--no-hosts",
		"--address=/web.gohv.test/10.99.0.1", "--address=/web.gohv.test/fd00:99::1",
		"--dhcp-leasefile=" + filepath.Join(dir, "leases"), "--pid-file=" + filepath.Join(dir, "pid"), "--log-dhcp"},
		dnsmasqArgs...)
	dnsmasq := exec.Command("ip", args...)
	log := &syncBuffer{}
	dnsmasq.Stdout, dnsmasq.Stderr = log, log
	if err := dnsmasq.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dnsmasq.Process.Signal(syscall.SIGTERM)
		dnsmasq.Wait()
		if t.Failed() {
			t.Logf("dnsmasq:\n%s", log.String())
		}
	})

	p := &packetNIC{done: make(chan struct{})}
	err := inNetns(t, cli, func() error {
		ifc, err := net.InterfaceByName("vc")
		if err != nil {
			return err
		}
		copy(p.mac[:], ifc.HardwareAddr)
		fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, int(htons(syscall.ETH_P_ALL)))
		if err != nil {
			return err
		}
		p.fd = fd
		if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &syscall.Timeval{Usec: 50000}); err != nil {
			return err
		}
		return syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(syscall.ETH_P_ALL), Ifindex: ifc.Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	go p.loop()
	t.Cleanup(func() {
		p.stop.Store(true)
		<-p.done
		syscall.Close(p.fd)
	})
	return p, log
}

// TestDHCPDnsmasq runs the stack's DHCPv4 client and resolver against a
// real dnsmasq in test-owned network namespaces.
func TestDHCPDnsmasq(t *testing.T) {
	p, log := lab(t, "--dhcp-range=10.99.0.50,10.99.0.60,255.255.255.0,2m",
		"--dhcp-option=option:router,10.99.0.1", "--dhcp-option=option:dns-server,10.99.0.1",
		"--dhcp-option=option:domain-name,gohv.test", "--dhcp-option=option:mtu,1400",
		"--dhcp-option=245,168.63.129.16",
		"--dhcp-option=option:classless-static-route,168.63.129.16/32,10.99.0.1,0.0.0.0/0,10.99.0.1")
	p.mu.Lock()
	p.logf = func(format string, args ...any) { t.Logf(time.Now().Format("15:04:05.000 ")+format, args...) }
	p.mu.Unlock()
	st, err := netstack.New(netstack.Config{Hostname: "gohv-test", DisableIPv6: true,
		Logf: func(format string, args ...any) { t.Logf(time.Now().Format("15:04:05.000 ")+format, args...) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := st.Watch()
	ifc, err := st.AddNIC(p, netstack.NICOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := st.WaitAddress(ctx)
	if err != nil {
		st.Close()
		t.Fatalf("no address from dnsmasq: %v", err)
	}
	if a.Origin != netstack.DHCP || a.Prefix.Bits() != 24 || !netip.MustParsePrefix("10.99.0.0/24").Contains(a.Prefix.Addr()) {
		t.Errorf("address %+v", a)
	}
	l, ok := ifc.Lease()
	if !ok || l.Server != netip.MustParseAddr("10.99.0.1") || l.Duration != 2*time.Minute ||
		l.WireServer != netip.MustParseAddr("168.63.129.16") || l.MTU != 1400 || l.Domain != "gohv.test" ||
		len(l.Routers) != 1 || l.Routers[0] != netip.MustParseAddr("10.99.0.1") {
		t.Errorf("lease %+v", l)
	}
	if ws, ok := st.WireServer(); !ok || ws != netip.MustParseAddr("168.63.129.16") {
		t.Errorf("WireServer() = %v, %v", ws, ok)
	}
	// Option 121 replaces option 3 as the source of routes (RFC 3442).
	wantRoutes := []netstack.Route{
		{NIC: 1, Dst: netip.MustParsePrefix("168.63.129.16/32"), Via: netip.MustParseAddr("10.99.0.1"), Origin: netstack.DHCP},
		{NIC: 1, Dst: netip.MustParsePrefix("10.99.0.0/24"), Origin: netstack.DHCP},
		{NIC: 1, Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.99.0.1"), Origin: netstack.DHCP},
	}
	if got := st.Routes(); !slices.Equal(got, wantRoutes) {
		t.Errorf("Routes() = %v, want %v", got, wantRoutes)
	}
	if dns := st.DNSServers(); len(dns) != 1 || dns[0] != netip.MustParseAddr("10.99.0.1") {
		t.Errorf("DNS servers %v", dns)
	}
	// Events: an AddressAdded for the lease and a LeaseBound.
	var sawAdd, sawLease bool
	for !sawAdd || !sawLease {
		ev, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("events: %v", err)
		}
		sawAdd = sawAdd || ev.Kind == netstack.AddressAdded && ev.Address.Prefix == a.Prefix
		sawLease = sawLease || ev.Kind == netstack.LeaseBound
	}
	// A network-change indication renews the lease at once (a REQUEST
	// from the leased address, answered by a new ACK).
	p.mu.Lock()
	change := p.change
	p.mu.Unlock()
	change()
	for {
		ev, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("no renewal after a network change: %v", err)
		}
		if ev.Kind == netstack.LeaseBound {
			if ev.Lease.Addr != a.Prefix {
				t.Errorf("renewed %v, had %v", ev.Lease.Addr, a.Prefix)
			}
			break
		}
	}
	// The resolver goes through the stack to dnsmasq.
	ips, err := st.Resolver().LookupNetIP(ctx, "ip4", "web.gohv.test")
	if err != nil || len(ips) != 1 || ips[0] != netip.MustParseAddr("10.99.0.1") {
		t.Errorf("lookup web.gohv.test: %v %v", ips, err)
	}

	// Close releases the lease: dnsmasq logs DHCPRELEASE.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !log.Contains("DHCPRELEASE") {
		if time.Now().After(deadline) {
			t.Fatalf("dnsmasq saw no DHCPRELEASE")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSLAACDnsmasq checks IPv6 link-local and SLAAC addresses, routes and
// RDNSS from dnsmasq's router advertisements, and DNS over IPv6.
func TestSLAACDnsmasq(t *testing.T) {
	p, _ := lab(t, "--enable-ra", "--dhcp-range=fd00:99::,ra-only,64", "--dhcp-option=option6:dns-server,[fd00:99::1]")
	st, err := netstack.New(netstack.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.AddNIC(p, netstack.NICOptions{DisableDHCP: true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := st.WaitAddress(ctx)
	if err != nil {
		t.Fatalf("no SLAAC address: %v (have %v)", err, st.Addresses())
	}
	if a.Origin != netstack.SLAAC || !netip.MustParsePrefix("fd00:99::/64").Contains(a.Prefix.Addr()) {
		t.Errorf("address %+v", a)
	}
	var ll bool
	for _, x := range st.Addresses() {
		ll = ll || x.Origin == netstack.LinkLocal && x.Prefix.Addr().IsLinkLocalUnicast()
	}
	if !ll {
		t.Errorf("no link-local address in %v", st.Addresses())
	}
	// RDNSS arrives with the RA; wait for it through events.
	w := st.Watch()
	defer w.Close()
	for len(st.DNSServers()) == 0 {
		if _, err := w.Next(ctx); err != nil {
			t.Fatalf("no RDNSS: %v", err)
		}
	}
	if dns := st.DNSServers(); dns[0] != netip.MustParseAddr("fd00:99::1") {
		t.Errorf("DNS servers %v", dns)
	}
	ips, err := st.Resolver().LookupNetIP(ctx, "ip6", "web.gohv.test")
	if err != nil || len(ips) != 1 || ips[0] != netip.MustParseAddr("fd00:99::1") {
		t.Errorf("lookup over IPv6: %v %v", ips, err)
	}
}
