// Command gohv builds, runs and inspects gohv unikernels.
//
//	gohv build [flags] ./path/to/main     compile with TamaGo into a bootable disk image
//	gohv run [flags] [IMAGE | ./pkg]      boot an image (or build then boot) under QEMU
//	gohv sim [flags] ./pkg                run the program as a Linux process against hvsim
//	gohv inspect IMAGE                    show what an image holds
//
// Install it with
//
//	go install github.com/gohv/gohv/cmd/gohv@latest
//
// or keep it as a tool of your module (go get -tool github.com/gohv/gohv/cmd/gohv,
// then go tool gohv ...). Flags take one dash or two (-gen 1, --gen 1).
//
// The program being built may be a plain main package with no gohv import:
// gohv adds one file to it through the go command's -overlay, a blank import
// of the kernel start-up path (kernel/autostart on a gohv kernel,
// kernel/simstart under gohv sim). Its module must require
// github.com/gohv/gohv.
//
// gohv run's exit status is the guest application's: the kernel prints
// "gohv: exit code N, powering off" on COM1 before it powers off, and gohv
// reads it from the serial output.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// exitStatus is an error that carries the status the command exits with
// (the guest's exit code) and needs no message of its own.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := newRoot(ctx)
	root.SetArgs(longFlags(root, os.Args[1:]))
	err := root.Execute()
	interrupted := ctx.Err() != nil
	stop()
	var st exitStatus
	switch {
	case err != nil && interrupted:
		// Whatever was under way stopped; its temporary files are gone.
		fmt.Fprintln(os.Stderr, "gohv: interrupted")
		os.Exit(130)
	case errors.As(err, &st):
		os.Exit(int(st))
	case err != nil:
		fmt.Fprintln(os.Stderr, "gohv:", err)
		os.Exit(1)
	}
}

func newRoot(ctx context.Context) *cobra.Command {
	root := &cobra.Command{
		Use:   "gohv",
		Short: "Build, run and inspect gohv unikernels for Hyper-V and Azure",
		Long: `gohv builds an ordinary Go program with the TamaGo compiler into a disk image
that boots as a Hyper-V Generation 1 or 2 VM (or on Azure), boots it under
QEMU, runs it as a Linux process against gohv's simulated Hyper-V host, and
inspects images.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetContext(ctx)
	root.AddCommand(newBuild(), newRun(), newSim(), newInspect())
	return root
}

// longFlags lets long flags be written with one dash, as the go command
// and mkimage do: "-gen" becomes "--gen" when some command has a long
// flag named "gen". Arguments after "--" are left alone.
func longFlags(root *cobra.Command, args []string) []string {
	names := map[string]bool{"help": true}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if names[name] && len(name) > 1 {
				a = "-" + a
			}
		}
		out = append(out, a)
	}
	return out
}
