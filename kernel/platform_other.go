//go:build !tamago

package kernel

import (
	"sync/atomic"

	"github.com/gohv/gohv/hv"
)

// simulatedBoard is the hosted stand-in for the board: the platform the
// simulated machine of `gohv sim` (kernel/simstart) installs before main
// runs. Like the board's own state on GOOS=tamago, it is the one piece of
// process-wide state, set once at start-up.
var simulatedBoard atomic.Pointer[func() (hv.Platform, error)]

// SetDefaultPlatform makes platform the default of Config.Platform for this
// process: it is how `gohv sim` (kernel/simstart) runs an unmodified
// program's kernel.Run against the simulated host. Hosted builds only; a
// gohv kernel's default is the board.
func SetDefaultPlatform(platform func() (hv.Platform, error)) {
	simulatedBoard.Store(&platform)
}

// defaultPlatform: a hosted program has no Hyper-V of its own unless
// SetDefaultPlatform installed a simulated one.
func defaultPlatform() (hv.Platform, error) {
	if p := simulatedBoard.Load(); p != nil {
		return (*p)()
	}
	return nil, ErrNoPlatform
}

// reboot is the board's reset; hosted, the process just exits.
func reboot() {}

// setWallClock: a hosted program's clock is the host system's.
func setWallClock(*Kernel) {}
