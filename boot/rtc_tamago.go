//go:build tamago

package boot

import (
	"errors"
	"time"

	"github.com/gohv/gohv/boot/rtc"
)

// rtcPorts is the board's port I/O for package rtc.
type rtcPorts struct{}

func (rtcPorts) In8(port uint16) uint8     { return inb(port) }
func (rtcPorts) Out8(port uint16, v uint8) { outb(port, v) }

var errNoRTC = errors.New("boot: the ACPI tables say there is no CMOS real-time clock")

// readRTC reads the real-time clock once, at boot, and remembers the
// reading with the runtime clock at that moment, so RTC can say what the
// RTC says now without reading it again.
func readRTC(m *machine) {
	century := uint8(0)
	if m.fadt != nil {
		if m.fadt.NoCMOSRTC {
			m.rtcErr = errNoRTC
			return
		}
		century = m.fadt.Century
	}
	m.rtcTime, m.rtcErr = rtc.Read(rtcPorts{}, century)
	m.rtcAt = nanotime()
}

// RTC returns the time the CMOS real-time clock gives (read once at boot,
// advanced by the board's clock since), taken as UTC. It is the wall
// clock of last resort: on Hyper-V the time sync service is the source
// (a host may keep a VM's RTC in local time); the kernel uses the RTC
// only when that service gives no time.
func RTC() (time.Time, error) {
	if !machDone.Load() {
		return time.Time{}, errors.New("boot: the board has not started")
	}
	if mach.rtcErr != nil {
		return time.Time{}, mach.rtcErr
	}
	return mach.rtcTime.Add(time.Duration(nanotime() - mach.rtcAt)), nil
}
