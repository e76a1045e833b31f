//go:build tamago

package kernel

import (
	"errors"
	"fmt"
	"time"

	"github.com/gohv/gohv/boot"
	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/netstack"
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

// firstSyncWait bounds how long Start waits for the host's first time
// sample (Hyper-V sends it as soon as the service is negotiated).
const firstSyncWait = 2 * time.Second

// setWallClock steps the board's clock to the host's time once the time
// sync service has it: tamago's wall clock counts from boot until then.
// Without that service (QEMU, or the service turned off on Hyper-V) the
// CMOS real-time clock is used instead, taken as UTC. Start calls it
// before the application runs, when nothing but the kernel's own tickers
// is waiting on a timer.
func setWallClock(k *Kernel) {
	if k.TimeSync != nil {
		for end := time.Now().Add(firstSyncWait); !k.TimeSync.HostProvidesTime(); {
			if time.Now().After(end) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if k.TimeSync.HostProvidesTime() {
			if boot.SetTime(k.Now().UnixNano()) {
				k.logf("gohv: clock set from the host: %s", time.Now().UTC().Format(time.RFC3339Nano))
			}
			return
		}
	}
	t, err := boot.RTC()
	if err != nil {
		k.logf("gohv: no time from the host or the RTC (%v); the clock counts from boot", err)
		return
	}
	if boot.SetTime(t.UnixNano()) {
		k.logf("gohv: clock set from the RTC (as UTC): %s", time.Now().UTC().Format(time.RFC3339))
	}
}

// reboot resets the machine when the host asked for a restart.
func reboot() {
	if err := boot.Reboot(); err != nil {
		print("gohv: reboot: ", err.Error(), "\n")
	}
}

// installNet makes Go's net package (net.Listen, net.Dial, net/http) use
// the gohv stack.
func installNet(st *netstack.Stack) { st.InstallNet() }
