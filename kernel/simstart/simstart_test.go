package simstart

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/simhost"
	"github.com/gohv/gohv/tools/hvsim/storvsp"
	"github.com/gohv/gohv/vmbus"
)

func TestFromEnv(t *testing.T) {
	env := map[string]string{
		EnvProfile:   "WS2016",
		EnvDisks:     "/a.raw;/b.vhdx,ro",
		EnvTap:       "tap0",
		EnvAutostart: "1",
		EnvAzure:     "1",
	}
	c, err := FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Profile: hvsim.WS2016, Disks: []simhost.Disk{{Path: "/a.raw"}, {Path: "/b.vhdx", ReadOnly: true}}, Tap: "tap0", Autostart: true}
	if c.Profile != want.Profile || !slices.Equal(c.Disks, want.Disks) || c.Tap != want.Tap || !c.Autostart || !c.Azure {
		t.Errorf("FromEnv = %+v, want %+v", c, want)
	}
	// Env carries the same configuration back.
	m := map[string]string{}
	for _, kv := range c.Env() {
		k, v, _ := cut(kv)
		m[k] = v
	}
	if m[EnvProfile] != "ws2016" || m[EnvDisks] != "/a.raw;/b.vhdx,ro" || m[EnvTap] != "tap0" || m[EnvAutostart] != "1" || m[EnvAzure] != "1" {
		t.Errorf("Env = %q", c.Env())
	}

	empty, err := FromEnv(func(string) string { return "" })
	if err != nil || empty.Profile != hvsim.WS2022 || empty.Disks != nil || empty.Azure || empty.Autostart {
		t.Errorf("empty environment: %+v, %v", empty, err)
	}
	for _, bad := range []map[string]string{
		{EnvProfile: "ws2008"},
		{EnvDisks: "/a.raw,rw"},
		{EnvDisks: ";"},
	} {
		if _, err := FromEnv(func(k string) string { return bad[k] }); err == nil {
			t.Errorf("FromEnv(%v) accepted", bad)
		}
	}
}

func cut(kv string) (string, string, bool) {
	for i := range kv {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], true
		}
	}
	return kv, "", false
}

func TestTapNeedsTheDevice(t *testing.T) {
	// A TAP device that does not exist is an error naming it, before any
	// guest runs.
	_, err := New(Config{Tap: "gohv-no-such-tap"})
	if err == nil || !strings.Contains(err.Error(), "gohv-no-such-tap") {
		t.Errorf("New with a missing TAP device: %v", err)
	}
}

// TestMachine connects the real VMBus client to a machine with one disk
// and checks the offers: one SCSI controller and the integration
// services.
func TestMachine(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{Disks: []simhost.Disk{{Path: disk}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p := m.Host.Platform()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bus, err := vmbus.Connect(ctx, p, vmbus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	scsi, hb := 0, 0
	for _, ch := range bus.Channels() {
		o := ch.Offer()
		switch {
		case strings.EqualFold(o.InterfaceType.String(), storvsp.ClassSCSI.String()):
			scsi++
		case strings.EqualFold(o.InterfaceType.String(), hvsim.ClassHeartbeat.String()):
			hb++
		}
	}
	if scsi != 1 || hb != 1 {
		t.Errorf("offers: %d SCSI controllers, %d heartbeat; want 1 and 1", scsi, hb)
	}
	if err := bus.Close(ctx); err != nil {
		t.Errorf("bus Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
