//go:build !tamago

package simstart

import (
	"context"
	"fmt"
	"os"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/kernel"
	"github.com/gohv/gohv/tools/hvsim/simhost"
)

// machine is the process's simulated machine, created by init: the one
// piece of package state, as a kernel runs on one machine per process.
var machine *simhost.Machine

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
	if c.Autostart {
		go start()
	}
}

// Platform returns the simulated machine's platform: the function the
// kernel's start-up path takes as kernel.Config.Platform.
func Platform() (hv.Platform, error) { return machine.Host.Platform(), nil }

// install hands platform to the kernel's start-up path for programs that
// start the kernel themselves (kernel.Run): it becomes the default of
// kernel.Config.Platform in this process.
func install(platform func() (hv.Platform, error)) { kernel.SetDefaultPlatform(platform) }

// start is kernel/autostart's start-up path, hosted: the kernel on the
// simulated machine while main runs. A hosted process has no exit hook, so
// the shutdown path does not run when main returns; a shutdown request from
// the host exits with status 0.
func start() {
	k, err := kernel.Start(context.Background(), kernel.Config{Platform: Platform, Log: os.Stderr})
	if err != nil {
		fmt.Fprintf(os.Stderr, "gohv: %v\n", err)
		return
	}
	req, err := k.Power.Wait(context.Background())
	if err != nil {
		return
	}
	fmt.Fprintf(os.Stderr, "gohv: the host asks for %s; exiting\n", req.Kind)
	ctx, cancel := context.WithTimeout(context.Background(), kernel.DefaultShutdownTimeout)
	defer cancel()
	_ = k.Close(ctx)
	os.Exit(0)
}
