package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/gohv/gohv/kernel/simstart"
	"github.com/gohv/gohv/tools/hvsim/simhost"
)

// simStart is the package gohv sim's overlay imports blankly.
const simStart = "github.com/gohv/gohv/kernel/simstart"

type simFlags struct {
	profile string
	disks   []string
	tap     string
	azure   bool
	tags    string
}

func newSim() *cobra.Command {
	var s simFlags
	cmd := &cobra.Command{
		Use:   "sim [flags] ./pkg [-- args]",
		Short: "Run the program as a Linux process against the simulated Hyper-V host",
		Long: `sim builds the main package for this machine (not for TamaGo) with gohv's
simulated Hyper-V host (hvsim) added through an overlay, and runs it. The
simulated VM has the devices of a Hyper-V Generation 2 VM: integration
services, and a synthetic SCSI controller with one LUN per -disk (a raw file,
or VHDX by its extension; ",ro" for read-only, ",ide" for the IDE
controller). Unless the program starts the kernel itself (kernel.Run), the
kernel (VMBus and the standard drivers) starts in the background as on a
gohv kernel; its reports go to stderr. The command exits with the
program's exit status. Arguments after -- go to the program.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSim(cmd.Context(), args[0], args[1:], s)
		},
	}
	f := cmd.Flags()
	f.StringVar(&s.profile, "profile", "ws2022", "Hyper-V release to simulate: ws2022, ws2019, ws2016 or ws2012r2")
	f.StringArrayVar(&s.disks, "disk", nil, "disk image, PATH[,ro][,ide] (repeatable; SCSI LUN 0 first)")
	f.StringVar(&s.tap, "tap", "", "TAP interface for the synthetic NIC, in this network namespace (default: an in-process network with DHCP)")
	f.BoolVar(&s.azure, "azure", false, "make the in-process network look like Azure's (DHCP option 245, a simulated WireServer and IMDS), so the kernel reports Ready on its own")
	f.StringVar(&s.tags, "tags", "", "extra comma-separated build tags")
	return cmd
}

func runSim(ctx context.Context, pkg string, progArgs []string, s simFlags) error {
	var c simstart.Config
	var err error
	if c.Profile, err = simstart.ParseProfile(s.profile); err != nil {
		return fmt.Errorf("-profile: %w", err)
	}
	for _, d := range s.disks {
		disk, err := simhost.ParseDisk(d)
		if err != nil {
			return fmt.Errorf("-disk: %w", err)
		}
		if _, err := os.Stat(disk.Path); err != nil {
			return fmt.Errorf("-disk: %w", err)
		}
		c.Disks = append(c.Disks, disk)
	}
	c.Tap = s.tap
	c.Azure = s.azure
	if c.Azure && c.Tap != "" {
		return errors.New("-azure simulates Azure on the in-process network; it cannot be combined with -tap")
	}
	if err := requireGohv(ctx); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "gohv-sim-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	modArgs, err := modfileArgs(ctx, "go", os.Environ(), work)
	if err != nil {
		return err
	}
	dir, imports, err := mainPackage(ctx, "go", os.Environ(), modArgs, pkg)
	if err != nil {
		return err
	}
	// Start the kernel on the simulated machine unless the program does
	// (kernel.Run), as gohv build's kernel/autostart does on a gohv kernel.
	c.Autostart = !imports[kernelPkg]
	overlay, err := writeOverlay(work, dir, simStart)
	if err != nil {
		return err
	}
	bin := filepath.Join(work, filepath.Base(dir))
	args := append([]string{"build", "-overlay", overlay, "-o", bin}, modArgs...)
	if s.tags != "" {
		args = append(args, "-tags", s.tags)
	}
	build := exec.CommandContext(ctx, "go", append(args, pkg)...)
	if out, err := build.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: %w", ctx.Err())
		}
		return fmt.Errorf("building %s failed:\n%s%s", pkg, out, requireHint(out))
	}
	prog := exec.CommandContext(ctx, bin, progArgs...)
	prog.Stdin, prog.Stdout, prog.Stderr = os.Stdin, os.Stdout, os.Stderr
	prog.Env = append(os.Environ(), c.Env()...)
	err = prog.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() >= 0 {
		return exitStatus(ee.ExitCode())
	}
	return err
}
