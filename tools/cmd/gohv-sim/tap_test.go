package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gohv/gohv/internal/hosttool"
)

// TestTAPWithDnsmasqAndCurl runs gohv-sim as a user would with -tap: in a
// network namespace the test creates, a TAP device with Linux's own stack
// on one side, dnsmasq serving DHCP on it, the whole guest stack in the
// gohv-sim process on the other side. The guest must get its address from
// dnsmasq and answer curl. Traffic stays inside the namespace.
func TestTAPWithDnsmasqAndCurl(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gohv-sim and starts dnsmasq")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root for a network namespace and a TAP device")
	}
	hosttool.Need(t, "ip", "dnsmasq", "curl")
	dir := t.TempDir()
	bin := filepath.Join(dir, "gohv-sim")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ns := fmt.Sprintf("gohvsim%d", os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	in := func(args ...string) []string { return append([]string{"ip", "netns", "exec", ns}, args...) }
	run(in("ip", "link", "set", "lo", "up")...)
	run(in("ip", "tuntap", "add", "dev", "gtap0", "mode", "tap")...)
	run(in("ip", "addr", "add", "10.199.0.1/24", "dev", "gtap0")...)
	run(in("ip", "link", "set", "gtap0", "up")...)

	const guest = "10.199.0.50"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dnsmasq := exec.CommandContext(ctx, "ip", in("dnsmasq", "--no-daemon", "--interface=gtap0", "--bind-interfaces",
		"--port=0", "--no-resolv", "--no-hosts", "--dhcp-range="+guest+","+guest+",255.255.255.0,1h",
		"--dhcp-leasefile="+filepath.Join(dir, "leases"), "--pid-file="+filepath.Join(dir, "dnsmasq.pid"))[1:]...)
	if err := dnsmasq.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dnsmasq.Process.Kill(); dnsmasq.Wait() })

	sim := exec.CommandContext(ctx, "ip", in(bin, "-tap", "gtap0", "-hold", "20s", "-heartbeats", "1", "-timeout", "90s")[1:]...)
	out, err := sim.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	sim.Stderr = sim.Stdout
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Process.Kill(); sim.Wait() })
	var log strings.Builder
	serving := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "guest: serving HTTP on "+guest+":80") {
				serving <- true
			}
		}
		close(serving)
	}()
	if !<-serving {
		t.Fatalf("the guest never served HTTP on %s (dnsmasq's address):\n%s", guest, log.String())
	}
	body, err := exec.CommandContext(ctx, "ip", in("curl", "-s", "--max-time", "10", "http://"+guest+"/")[1:]...).Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	if want := "hello from the gohv guest at " + guest; strings.TrimSpace(string(body)) != want {
		t.Errorf("curl got %q, want %q", body, want)
	}
}
