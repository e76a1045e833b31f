// Package rtc reads the date and time from the PC's CMOS real-time clock
// (the Motorola MC146818 register set every PC chipset and QEMU's i440fx
// and q35 machines emulate), through an I/O-port interface the board
// supplies. It decodes and validates what the clock says; it never sets
// the clock, and it owns nothing else of the CMOS.
//
// The RTC is the wall clock of last resort: on Hyper-V the time sync
// integration service gives UTC and is preferred, because a host may keep
// a VM's RTC in local time. Without that service (QEMU, or the service
// turned off) the kernel starts the wall clock from the RTC, assuming UTC,
// as QEMU keeps it unless told otherwise (-rtc base=utc is its default).
package rtc

import (
	"errors"
	"fmt"
	"time"
)

// The RTC's index and data ports and registers (MC146818 data sheet;
// docs/boot.md, "Wall clock").
const (
	IndexPort = 0x70
	DataPort  = 0x71

	regSeconds = 0x00
	regMinutes = 0x02
	regHours   = 0x04
	regDay     = 0x07
	regMonth   = 0x08
	regYear    = 0x09
	regStatusA = 0x0a
	regStatusB = 0x0b

	firstCMOSRAM    = 0x0e   // registers past the clock's own (century lives there)
	statusAUpdating = 1 << 7 // UIP: an update cycle is (about to be) in progress
	statusB24Hour   = 1 << 1 // 24-hour mode
	statusBBinary   = 1 << 2 // DM: binary, not BCD
	hourPM          = 1 << 7 // in 12-hour mode, the hour's top bit

	// nmiDisable is bit 7 of the index port on PCs; the index is written
	// with it clear, leaving NMIs enabled.
	indexMask = 0x7f
)

// ErrInvalid: the clock's registers do not hold a valid date and time
// (a dead battery, an uninitialised CMOS, or no RTC at the ports).
var ErrInvalid = errors.New("rtc: no valid date and time")

// ErrBusy: the clock kept updating across every attempt to read it.
var ErrBusy = errors.New("rtc: clock kept changing while read")

// Ports is the board's port I/O.
type Ports interface {
	In8(port uint16) uint8
	Out8(port uint16, v uint8)
}

// Registers are the raw RTC registers a reading is made of.
type Registers struct {
	Seconds, Minutes, Hours, Day, Month, Year uint8
	// Century is the century register's value when the platform has one
	// (FADT's CENTURY field names it); HasCentury says whether it does.
	Century    uint8
	HasCentury bool
	StatusB    uint8
}

// Decode turns r into a UTC time, validating every field: BCD digits, the
// ranges of each field and the day of the month. Without a century
// register, two-digit years are taken as 2000–2099.
func Decode(r Registers) (time.Time, error) {
	binary := r.StatusB&statusBBinary != 0
	num := func(name string, v uint8, lo, hi int) (int, error) {
		n := int(v)
		if !binary {
			if v&0x0f > 9 || v>>4 > 9 {
				return 0, fmt.Errorf("%w: %s %#02x is not BCD", ErrInvalid, name, v)
			}
			n = int(v>>4)*10 + int(v&0x0f)
		}
		if n < lo || n > hi {
			return 0, fmt.Errorf("%w: %s %d outside [%d, %d]", ErrInvalid, name, n, lo, hi)
		}
		return n, nil
	}
	sec, err := num("seconds", r.Seconds, 0, 59)
	if err != nil {
		return time.Time{}, err
	}
	min, err := num("minutes", r.Minutes, 0, 59)
	if err != nil {
		return time.Time{}, err
	}
	var hour int
	if r.StatusB&statusB24Hour != 0 {
		if hour, err = num("hours", r.Hours, 0, 23); err != nil {
			return time.Time{}, err
		}
	} else {
		// 12-hour mode: 12 AM is midnight, 12 PM is noon.
		if hour, err = num("hours", r.Hours&^hourPM, 1, 12); err != nil {
			return time.Time{}, err
		}
		hour %= 12
		if r.Hours&hourPM != 0 {
			hour += 12
		}
	}
	day, err := num("day", r.Day, 1, 31)
	if err != nil {
		return time.Time{}, err
	}
	month, err := num("month", r.Month, 1, 12)
	if err != nil {
		return time.Time{}, err
	}
	year, err := num("year", r.Year, 0, 99)
	if err != nil {
		return time.Time{}, err
	}
	century := 20
	if r.HasCentury {
		if century, err = num("century", r.Century, 19, 99); err != nil {
			return time.Time{}, err
		}
	}
	t := time.Date(century*100+year, time.Month(month), day, hour, min, sec, 0, time.UTC)
	if t.Day() != day {
		return time.Time{}, fmt.Errorf("%w: day %d of month %d", ErrInvalid, day, month)
	}
	return t, nil
}

// maxAttempts bounds Read's retries: an update cycle lasts under 2 ms and
// happens once a second, so two consecutive equal readings come quickly.
const maxAttempts = 1000

// Read reads the clock through p and decodes it. centuryReg is the
// century register's index from the FADT (0, or an index inside the
// clock's own registers: none). It reads every
// register once the update-in-progress flag is clear and again, and takes
// the reading only when the two agree, so that a reading never straddles
// an update (a minute rolling over between the minutes and the seconds).
func Read(p Ports, centuryReg uint8) (time.Time, error) {
	reg := func(i uint8) uint8 {
		p.Out8(IndexPort, i&indexMask)
		return p.In8(DataPort)
	}
	snapshot := func() (Registers, bool) {
		if reg(regStatusA)&statusAUpdating != 0 {
			return Registers{}, false
		}
		r := Registers{
			Seconds: reg(regSeconds), Minutes: reg(regMinutes), Hours: reg(regHours),
			Day: reg(regDay), Month: reg(regMonth), Year: reg(regYear),
			StatusB: reg(regStatusB),
		}
		if centuryReg >= firstCMOSRAM && centuryReg <= indexMask {
			r.Century, r.HasCentury = reg(centuryReg), true
		}
		return r, true
	}
	var prev Registers
	havePrev := false
	for range maxAttempts {
		r, ok := snapshot()
		if !ok {
			havePrev = false
			continue
		}
		if havePrev && r == prev {
			return Decode(r)
		}
		prev, havePrev = r, true
	}
	return time.Time{}, ErrBusy
}
