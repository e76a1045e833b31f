package main

import (
	"github.com/spf13/cobra"

	"github.com/gohv/gohv/internal/diskinfo"
)

func newInspect() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect IMAGE",
		Short: "Show what a disk image holds",
		Long: `inspect describes a VHDX, fixed VHD or raw image: its container, partitions,
Hyper-V generation, the kernel image (entry point, segments, CRC check, the
least RAM it needs) and the files of its data partition.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := diskinfo.Inspect(args[0])
			if err != nil {
				return err
			}
			r.Print(cmd.OutOrStdout())
			return nil
		},
	}
}
