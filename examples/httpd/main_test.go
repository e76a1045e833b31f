package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/kernel"
	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/simhost"
)

// syncBuffer is a log the kernel writes from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeOnSimulatedHost runs httpd's server on the whole guest stack
// (kernel, netvsc, gVisor) against the simulated host: the host's peer
// fetches pages over the simulated network, then the host asks for a
// shutdown and the server must stop gracefully with status 0.
func TestServeOnSimulatedHost(t *testing.T) {
	m, err := simhost.New(simhost.Config{Profile: hvsim.WS2022})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var log syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	type result struct{ code int }
	done := make(chan result, 1)
	go func() {
		code, _ := kernel.Execute(ctx, func(ctx context.Context) error { return serve(ctx, ":80") },
			kernel.WithConfig(kernel.Config{Platform: func() (hv.Platform, error) { return m.Host.Platform(), nil }, Log: &log}))
		done <- result{code}
	}()

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return m.Peer.DialTCP(ctx, netip.MustParseAddrPort(addr))
		}}}
	base := "http://" + simhost.GuestAddr.String()
	var body string
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := client.Get(base + "/healthz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the guest's server never answered: %v\n%s", err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz = %q", body)
	}
	resp, err := client.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "<h1>gohv httpd</h1>") {
		t.Errorf("GET / = %s %q", resp.Status, b)
	}

	hr, err := m.Standard.Shutdown.Request(ctx, 0, "test")
	if err != nil || hr != 0 {
		t.Fatalf("shutdown request: %#x, %v", hr, err)
	}
	r := <-done
	if r.code != 0 {
		t.Errorf("exit status %d, want 0\n%s", r.code, log.String())
	}
	if !strings.Contains(log.String(), "lease 192.168.200.10/24 lost: released") {
		t.Errorf("the DHCP lease was not released at shutdown:\n%s", log.String())
	}
	if v := m.Host.Violations(); len(v) > 0 {
		t.Errorf("host recorded %d protocol violations, first: %v", len(v), v[0])
	}
}
