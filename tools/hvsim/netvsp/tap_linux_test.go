//go:build linux

package netvsp

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// netns is a network namespace this test created with `ip netns`.
type netns struct {
	t    testing.TB
	name string
}

func newNetns(t *testing.T) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("TAP test needs root; skipping")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("TAP test needs ip (iproute2) for ip netns; skipping")
	}
	ns := &netns{t: t, name: fmt.Sprintf("gohv-netvsp-%d", os.Getpid())}
	if out, err := exec.Command("ip", "netns", "add", ns.name).CombinedOutput(); err != nil {
		t.Skipf("ip netns add failed (%v: %s); skipping", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns.name).Run() })
	return ns
}

func (ns *netns) run(args ...string) {
	ns.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.name}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		ns.t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
}

// openTAP opens a TAP inside the namespace: from a thread that joined it
// with setns(2) and then exits with it, so no other goroutine runs there.
func (ns *netns) openTAP(name string) *TAP {
	ns.t.Helper()
	type result struct {
		tap *TAP
		err error
	}
	ch := make(chan result)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		f, err := os.Open("/var/run/netns/" + ns.name)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		const sysSetns = 308 // amd64
		if _, _, e := syscall.Syscall(sysSetns, f.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
			ch <- result{err: fmt.Errorf("setns: %w", e)}
			return
		}
		tap, err := OpenTAP(name)
		ch <- result{tap, err}
	}()
	r := <-ch
	if r.err != nil {
		ns.t.Fatal(r.err)
	}
	ns.t.Cleanup(func() { r.tap.Close() })
	return r.tap
}

// TestTAPLinuxAnswers bridges the scripted guest to Linux's own stack in a
// fresh network namespace: Linux answers its ARP request and an ICMP echo
// request whose IPv4 checksum the host computed on the guest's request.
func TestTAPLinuxAnswers(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("setns number is amd64's; skipping")
	}
	ns := newNetns(t)
	tap := ns.openTAP("gohvtap0")
	ns.run("ip", "link", "set", "gohvtap0", "address", "02:00:00:00:00:02")
	ns.run("ip", "addr", "add", "10.0.0.1/24", "dev", "gohvtap0")
	ns.run("ip", "link", "set", "gohvtap0", "up")

	n := newNIC(t, Config{Backend: tap})
	n.ready()
	n.transmit(n.c, guestPacket(arpRequest()))
	var reply []byte
	for reply == nil {
		frames, _ := n.frames(n.c)
		for _, f := range frames {
			if len(f) >= 42 && f[12] == 0x08 && f[13] == 0x06 && header.ARP(f[14:]).Op() == header.ARPReply {
				reply = f
			}
		}
	}
	if !bytes.Equal(header.ARP(reply[14:]).ProtocolAddressSender(), peerIP.AsSlice()) {
		t.Fatalf("ARP reply % x", reply)
	}

	icmp := header.ICMPv4(make([]byte, header.ICMPv4MinimumSize+8))
	icmp.SetType(header.ICMPv4Echo)
	icmp.SetIdent(0x1234)
	icmp.SetSequence(1)
	copy(icmp.Payload(), "gohv-nic")
	icmp.SetChecksum(^checksum.Checksum(icmp, 0))
	n.transmit(n.c, guestPacket(ipv4Frame(1, icmp, false), ppi{0, 1 | 1<<4})) // IPv4 header checksum only
	for {
		frames, _ := n.frames(n.c)
		for _, f := range frames {
			ip := header.IPv4(f[14:])
			if f[12] == 0x08 && f[13] == 0x00 && ip.Protocol() == 1 {
				r := header.ICMPv4(ip.Payload())
				if r.Type() != header.ICMPv4EchoReply || r.Ident() != 0x1234 || string(r.Payload()) != "gohv-nic" {
					t.Fatalf("ICMP % x", f)
				}
				noViolations(t, n.g.h)
				return
			}
		}
	}
}
