//go:build !tamago

package kernel

import "github.com/gohv/gohv/hv"

// defaultPlatform: a hosted program has no Hyper-V of its own; the
// simulator passes its host's platform in Config.Platform.
func defaultPlatform() (hv.Platform, error) { return nil, ErrNoPlatform }

// reboot is the board's reset; hosted, the process just exits.
func reboot() {}

// setWallClock: a hosted program's clock is the host system's.
func setWallClock(*Kernel) {}
