//go:build tamago

package autostart

import (
	"context"
	"os"
	"time"

	"github.com/gohv/gohv/boot"
	"github.com/gohv/gohv/drivers/shutdown"
	"github.com/gohv/gohv/kernel"
)

// shutdownTimeout bounds the shutdown path run from the exit hook.
const shutdownTimeout = 30 * time.Second

func init() {
	go start()
}

func start() {
	k, err := kernel.Start(context.Background(), kernel.Config{})
	if err != nil {
		print("gohv: ", err.Error(), "\n")
		return
	}
	boot.AtExit(func(int32) {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := k.Close(ctx); err != nil {
			print("gohv: shutdown: ", err.Error(), "\n")
		}
	})
	if k.Bus() == nil {
		return
	}
	req, err := k.Power.Wait(context.Background())
	if err != nil {
		return
	}
	print("gohv: the host asks for ", req.Kind.String(), "; exiting\n")
	if req.Kind == shutdown.Reboot {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		_ = k.Close(ctx)
		_ = boot.Reboot()
	}
	os.Exit(0)
}
