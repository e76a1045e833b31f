//go:build !tamago

// Package simstart makes a Go program run as a Linux process against hvsim,
// gohv's simulated Hyper-V host: `gohv sim ./pkg` builds the program with a
// blank import of this package added through an overlay, and passes the
// simulated machine's configuration in environment variables:
//
//	GOHV_SIM_PROFILE    the Hyper-V release to simulate: ws2022 (default),
//	                    ws2019, ws2016 or ws2012r2
//	GOHV_SIM_DISKS      disk images, PATH[,ro][,ide] separated by ";": SCSI
//	                    LUNs 0, 1, ... (raw, or VHDX by the .vhdx extension)
//	GOHV_SIM_TAP        a TAP interface for the synthetic NIC (else the
//	                    in-process peer network with its DHCP server)
//	GOHV_SIM_AZURE      "1": the in-process network looks like Azure's
//	                    (DHCP option 245, a simulated WireServer and
//	                    IMDS), so the kernel provisions itself
//	GOHV_SIM_AUTOSTART  "1": also start the kernel (VMBus and the standard
//	                    drivers) on the simulated machine, as
//	                    kernel/autostart does on a gohv kernel; gohv sim
//	                    sets it for programs that do not import package
//	                    kernel themselves
//
// At init it assembles the machine with tools/hvsim/simhost (the standard
// devices of a Generation 2 VM plus the disks) and keeps its platform for
// the kernel's start-up path (Platform, the kernel.Config.Platform
// function). A bad configuration prints one line and exits with status 2
// before main runs. The kernel's reports go to stderr, so that the
// program's stdout is its own.
//
// It owns the mapping from that configuration to a simulated machine; it
// must not implement any host or guest protocol (hvsim, simhost and the
// drivers do), and it is never part of a gohv kernel (hosted builds only).
package simstart

import (
	"fmt"
	"strings"

	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/simhost"
)

// Environment variables gohv sim sets.
const (
	EnvProfile   = "GOHV_SIM_PROFILE"
	EnvDisks     = "GOHV_SIM_DISKS"
	EnvTap       = "GOHV_SIM_TAP"
	EnvAutostart = "GOHV_SIM_AUTOSTART"
	EnvAzure     = "GOHV_SIM_AZURE"
)

var profiles = map[string]hvsim.Profile{
	"ws2022": hvsim.WS2022, "ws2019": hvsim.WS2019, "ws2016": hvsim.WS2016, "ws2012r2": hvsim.WS2012R2,
}

// Config is the simulated machine and what runs on it.
type Config struct {
	Profile hvsim.Profile
	Disks   []simhost.Disk
	Tap     string
	// Azure makes the in-process network look like Azure's.
	Azure bool
	// Autostart starts the kernel on the machine at init.
	Autostart bool
}

// ParseProfile maps a profile name (case-insensitive; empty is ws2022) to
// its hvsim.Profile.
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

// FromEnv reads the configuration from the environment through getenv.
func FromEnv(getenv func(string) string) (Config, error) {
	var c Config
	var err error
	if c.Profile, err = ParseProfile(getenv(EnvProfile)); err != nil {
		return c, fmt.Errorf("%s: %w", EnvProfile, err)
	}
	if v := getenv(EnvDisks); v != "" {
		for _, s := range strings.Split(v, ";") {
			d, err := simhost.ParseDisk(s)
			if err != nil {
				return c, fmt.Errorf("%s: %w", EnvDisks, err)
			}
			c.Disks = append(c.Disks, d)
		}
	}
	c.Tap = getenv(EnvTap)
	c.Autostart = getenv(EnvAutostart) == "1"
	c.Azure = getenv(EnvAzure) == "1"
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
	var disks []string
	for _, d := range c.Disks {
		s := d.Path
		if d.ReadOnly {
			s += ",ro"
		}
		if d.IDE {
			s += ",ide"
		}
		disks = append(disks, s)
	}
	flag := func(b bool) string {
		if b {
			return "1"
		}
		return ""
	}
	return []string{EnvProfile + "=" + name, EnvDisks + "=" + strings.Join(disks, ";"),
		EnvTap + "=" + c.Tap, EnvAutostart + "=" + flag(c.Autostart), EnvAzure + "=" + flag(c.Azure)}
}

// New assembles and starts the simulated machine of c. With Tap, the
// synthetic NIC is plugged into that TAP device (which must exist in the
// process's network namespace); without, into the in-process peer network.
func New(c Config) (*simhost.Machine, error) {
	return simhost.New(simhost.Config{Profile: c.Profile, Disks: c.Disks, TAP: c.Tap, Azure: c.Azure})
}
