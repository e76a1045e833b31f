//go:build tamago

package kernel

import (
	"errors"
	"fmt"

	"github.com/gohv/gohv/boot"
	"github.com/gohv/gohv/hv"
)

// defaultPlatform is the board's bare-metal platform (hypercall page,
// SynIC, host-visible memory); without Hyper-V's VMBus it reports
// ErrNoPlatform with the board's reason.
func defaultPlatform() (hv.Platform, error) {
	p, err := boot.Platform()
	if err != nil {
		// The innermost cause is the one-line reason ("hypervisor vendor
		// \"TCGTCGTCGTCG\"").
		for errors.Unwrap(err) != nil {
			err = errors.Unwrap(err)
		}
		return nil, fmt.Errorf("%w (%v)", ErrNoPlatform, err)
	}
	return p, nil
}

// reboot resets the machine when the host asked for a restart.
func reboot() {
	if err := boot.Reboot(); err != nil {
		print("gohv: reboot: ", err.Error(), "\n")
	}
}
