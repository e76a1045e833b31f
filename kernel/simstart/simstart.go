//go:build !tamago

// Package simstart makes a Go program run as a Linux process against hvsim,
// gohv's simulated Hyper-V host: `gohv sim ./pkg` builds the program with a
// blank import of this package added through an overlay, and passes the
// simulated machine's configuration in environment variables:
//
//	GOHV_SIM_PROFILE  the Hyper-V release to simulate: ws2022 (default),
//	                  ws2019, ws2016 or ws2012r2
//	GOHV_SIM_DISKS    disks for the synthetic SCSI controller, LUN 0 first:
//	                  path[,ro];path[,ro]...  (raw files, or VHDX by the
//	                  .vhdx extension)
//	GOHV_SIM_TAP      a TAP interface for the synthetic NIC (not yet
//	                  supported: refused)
//
// At init it creates the host (hvsim.New) with the standard devices of a
// WS2022 Generation 2 VM (hvsim.Standard), whose inert storage controller is
// replaced by a StorVSP with the disks attached, and makes its platform the
// one the kernel's start-up path uses (Platform, to be given as
// kernel.Config.Platform). A bad configuration prints one line and exits
// with status 2 before main runs.
//
// It owns the mapping from that configuration to a simulated machine; it
// must not implement any host or guest protocol (hvsim and the drivers do),
// and it is never part of a gohv kernel (hosted builds only).
package simstart

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/storvsp"
)

// Environment variables gohv sim sets.
const (
	EnvProfile = "GOHV_SIM_PROFILE"
	EnvDisks   = "GOHV_SIM_DISKS"
	EnvTap     = "GOHV_SIM_TAP"
)

// ErrTapNotYet is returned for a TAP interface: the network stack that
// would use it is not there yet.
var ErrTapNotYet = errors.New("simstart: -tap is not supported yet (the network stack has not landed)")

// storageInstance names the simulated SCSI controller (the instance of the
// inert controller hvsim.Standard offers, which it replaces).
var storageInstance = hvsim.MustParseGUID("f8b3781b-1e82-4818-a1c3-63d806ec15bb")

var profiles = map[string]hvsim.Profile{
	"ws2022": hvsim.WS2022, "ws2019": hvsim.WS2019, "ws2016": hvsim.WS2016, "ws2012r2": hvsim.WS2012R2,
}

// Config is the simulated machine.
type Config struct {
	Profile hvsim.Profile
	Disks   []Disk
	Tap     string
}

// Disk is one disk on the SCSI controller.
type Disk struct {
	Path     string
	ReadOnly bool
}

// ParseProfile maps a profile name (case-insensitive) to its hvsim.Profile.
func ParseProfile(s string) (hvsim.Profile, error) {
	if s == "" {
		return hvsim.WS2022, nil
	}
	p, ok := profiles[strings.ToLower(s)]
	if !ok {
		return 0, fmt.Errorf("unknown profile %q: use ws2022, ws2019, ws2016 or ws2012r2", s)
	}
	return p, nil
}

// ParseDisk parses "path[,ro]".
func ParseDisk(s string) (Disk, error) {
	path, opt, hasOpt := strings.Cut(s, ",")
	if path == "" {
		return Disk{}, fmt.Errorf("disk %q: no path", s)
	}
	d := Disk{Path: path}
	if hasOpt {
		if opt != "ro" {
			return Disk{}, fmt.Errorf("disk %q: unknown option %q (only ro)", s, opt)
		}
		d.ReadOnly = true
	}
	return d, nil
}

// FromEnv reads the configuration from the environment through getenv.
func FromEnv(getenv func(string) string) (Config, error) {
	var c Config
	var err error
	if c.Profile, err = ParseProfile(getenv(EnvProfile)); err != nil {
		return c, fmt.Errorf("%s: %w", EnvProfile, err)
	}
	if v := getenv(EnvDisks); v != "" {
		for _, s := range strings.Split(v, ";") {
			d, err := ParseDisk(s)
			if err != nil {
				return c, fmt.Errorf("%s: %w", EnvDisks, err)
			}
			c.Disks = append(c.Disks, d)
		}
	}
	c.Tap = getenv(EnvTap)
	return c, nil
}

// Env returns the environment entries that carry c (for gohv sim).
func (c Config) Env() []string {
	var name string
	for n, p := range profiles {
		if p == c.Profile {
			name = n
		}
	}
	env := []string{EnvProfile + "=" + name}
	var disks []string
	for _, d := range c.Disks {
		s := d.Path
		if d.ReadOnly {
			s += ",ro"
		}
		disks = append(disks, s)
	}
	env = append(env, EnvDisks+"="+strings.Join(disks, ";"), EnvTap+"="+c.Tap)
	return env
}

// Machine is a simulated Hyper-V machine.
type Machine struct {
	Host    *hvsim.Host
	Devices hvsim.StandardDevices
	Storage *storvsp.StorVSP
	closers []func() error
}

// New creates and starts the simulated machine of c.
func New(c Config) (m *Machine, err error) {
	if c.Tap != "" {
		return nil, ErrTapNotYet
	}
	m = &Machine{Devices: hvsim.Standard()}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if m.Storage, err = storvsp.New(storvsp.Config{Kind: storvsp.SCSI, Instance: storageInstance}); err != nil {
		return nil, err
	}
	for i, d := range c.Disks {
		var store storvsp.Store
		if strings.EqualFold(filepath.Ext(d.Path), ".vhdx") {
			s, err := storvsp.OpenVHDX(d.Path, d.ReadOnly)
			if err != nil {
				return nil, fmt.Errorf("disk %s: %w", d.Path, err)
			}
			store = s
		} else {
			s, err := storvsp.OpenRaw(d.Path, d.ReadOnly)
			if err != nil {
				return nil, fmt.Errorf("disk %s: %w", d.Path, err)
			}
			store = s
		}
		if c, ok := store.(interface{ Close() error }); ok {
			m.closers = append(m.closers, c.Close)
		}
		if err := m.Storage.Attach(storvsp.Addr{LUN: uint8(i)}, storvsp.LUNConfig{Store: store, ReadOnly: d.ReadOnly}); err != nil {
			return nil, fmt.Errorf("disk %s: %w", d.Path, err)
		}
	}
	if m.Host, err = hvsim.New(hvsim.Config{Profile: c.Profile}); err != nil {
		return nil, err
	}
	m.closers = append(m.closers, m.Host.Close)
	for _, dev := range m.Devices.All {
		if dev.Offer().Class == hvsim.ClassStorVSC {
			dev = m.Storage
		}
		if _, err := m.Host.AddDevice(dev); err != nil {
			return nil, fmt.Errorf("offering %T: %w", dev, err)
		}
	}
	return m, nil
}

// Platform returns the machine's hv.Platform; its signature is that of
// kernel.Config.Platform.
func (m *Machine) Platform() (hv.Platform, error) { return m.Host.Platform(), nil }

// Close stops the host and closes the disks.
func (m *Machine) Close() error {
	var errs []error
	for i := len(m.closers) - 1; i >= 0; i-- {
		errs = append(errs, m.closers[i]())
	}
	m.closers = nil
	return errors.Join(errs...)
}
