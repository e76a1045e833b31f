//go:build !tamago

package simstart

import (
	"fmt"
	"os"

	"github.com/gohv/gohv/hv"
)

// machine is the process's simulated machine, created by init: the one
// piece of package state, as the machine a kernel runs on is one per
// process.
var machine *Machine

func init() {
	c, err := FromEnv(os.Getenv)
	if err == nil {
		machine, err = New(c)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "gohv sim: %v\n", err)
		os.Exit(2)
	}
	install(Platform)
}

// Platform returns the simulated machine's platform: the function the
// kernel's start-up path takes as kernel.Config.Platform.
func Platform() (hv.Platform, error) { return machine.Platform() }

// install hands platform to the kernel's start-up path.
//
// TODO(lead): call the kernel's hook here (kernel.SetDefaultPlatform or the
// Option it becomes) once kernel.Run and autostart are on main; until then
// the platform is reachable through Platform only.
func install(platform func() (hv.Platform, error)) { _ = platform }
