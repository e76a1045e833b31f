package rtc

import (
	"errors"
	"testing"
	"time"
)

// cmos is an MC146818 as a board's ports see it: 128 registers behind an
// index port. tick, when set, runs before every data-port read (a clock
// that moves while it is read).
type cmos struct {
	reg   [128]uint8
	index uint8
	reads int
	tick  func(c *cmos)
}

func (c *cmos) Out8(port uint16, v uint8) {
	if port == IndexPort {
		c.index = v
	}
}

func (c *cmos) In8(port uint16) uint8 {
	if port != DataPort {
		return 0xff
	}
	c.reads++
	if c.tick != nil {
		c.tick(c)
	}
	return c.reg[c.index&0x7f]
}

// set stores t in BCD, 24-hour mode, with the century at 0x32 (where
// QEMU's FADT says it is).
func (c *cmos) set(t time.Time) {
	bcd := func(n int) uint8 { return uint8(n/10<<4 | n%10) }
	c.reg[regSeconds] = bcd(t.Second())
	c.reg[regMinutes] = bcd(t.Minute())
	c.reg[regHours] = bcd(t.Hour())
	c.reg[regDay] = bcd(t.Day())
	c.reg[regMonth] = bcd(int(t.Month()))
	c.reg[regYear] = bcd(t.Year() % 100)
	c.reg[0x32] = bcd(t.Year() / 100)
	c.reg[regStatusB] = statusB24Hour
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		r    Registers
		want time.Time
	}{
		{"bcd 24h", Registers{Seconds: 0x59, Minutes: 0x07, Hours: 0x23, Day: 0x31, Month: 0x12, Year: 0x26, StatusB: statusB24Hour},
			time.Date(2026, 12, 31, 23, 7, 59, 0, time.UTC)},
		{"binary 24h", Registers{Seconds: 59, Minutes: 7, Hours: 23, Day: 31, Month: 12, Year: 26, StatusB: statusB24Hour | statusBBinary},
			time.Date(2026, 12, 31, 23, 7, 59, 0, time.UTC)},
		{"bcd 12h midnight", Registers{Seconds: 0, Minutes: 0, Hours: 0x12, Day: 1, Month: 1, Year: 0x27},
			time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"bcd 12h noon", Registers{Hours: 0x12 | hourPM, Day: 1, Month: 1, Year: 0x27},
			time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC)},
		{"bcd 12h 11 pm", Registers{Hours: 0x11 | hourPM, Day: 1, Month: 1, Year: 0x27},
			time.Date(2027, 1, 1, 23, 0, 0, 0, time.UTC)},
		{"binary 12h 1 pm", Registers{Hours: 1 | hourPM, Day: 1, Month: 1, Year: 27, StatusB: statusBBinary},
			time.Date(2027, 1, 1, 13, 0, 0, 0, time.UTC)},
		{"century register", Registers{Day: 0x29, Month: 0x02, Year: 0x96, Century: 0x19, HasCentury: true, StatusB: statusB24Hour},
			time.Date(1996, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"leap day", Registers{Day: 0x29, Month: 0x02, Year: 0x28, StatusB: statusB24Hour},
			time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.r)
			if err != nil || !got.Equal(tt.want) {
				t.Fatalf("Decode = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	ok := Registers{Seconds: 0x30, Minutes: 0x30, Hours: 0x12, Day: 0x15, Month: 0x06, Year: 0x26, StatusB: statusB24Hour}
	tests := []struct {
		name string
		mod  func(*Registers)
	}{
		{"uninitialised CMOS", func(r *Registers) { *r = Registers{} }},
		{"all ones (no RTC)", func(r *Registers) {
			*r = Registers{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, false, 0xff}
		}},
		{"bcd digit over 9", func(r *Registers) { r.Seconds = 0x3a }},
		{"seconds 60", func(r *Registers) { r.Seconds = 0x60 }},
		{"minutes 60", func(r *Registers) { r.Minutes = 0x60 }},
		{"hours 24", func(r *Registers) { r.Hours = 0x24 }},
		{"12h hour 0", func(r *Registers) { r.StatusB = 0; r.Hours = 0 }},
		{"12h hour 13", func(r *Registers) { r.StatusB = 0; r.Hours = 0x13 }},
		{"month 13", func(r *Registers) { r.Month = 0x13 }},
		{"day 0", func(r *Registers) { r.Day = 0 }},
		{"31 June", func(r *Registers) { r.Day = 0x31 }},
		{"29 February 2026", func(r *Registers) { r.Month, r.Day = 0x02, 0x29 }},
		{"century 0x18", func(r *Registers) { r.Century, r.HasCentury = 0x18, true }},
		{"binary year 100", func(r *Registers) {
			r.StatusB |= statusBBinary
			r.Year = 100
			r.Seconds, r.Minutes, r.Hours, r.Day, r.Month = 0, 0, 0, 1, 1
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok
			tt.mod(&r)
			if got, err := Decode(r); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Decode(%+v) = %v, %v; want ErrInvalid", r, got, err)
			}
		})
	}
}

func TestRead(t *testing.T) {
	want := time.Date(2026, 12, 6, 7, 30, 15, 0, time.UTC)
	var c cmos
	c.set(want)
	got, err := Read(&c, 0x32)
	if err != nil || !got.Equal(want) {
		t.Fatalf("Read = %v, %v; want %v", got, err, want)
	}
	// Without a century register the year is read as 20xx.
	c.reg[0x32] = 0x19
	if got, err := Read(&c, 0); err != nil || !got.Equal(want) {
		t.Fatalf("Read without century = %v, %v; want %v", got, err, want)
	}
	// A century index inside the clock's own registers is ignored.
	if got, err := Read(&c, regStatusB); err != nil || !got.Equal(want) {
		t.Fatalf("Read with century index %#x = %v, %v; want %v", regStatusB, got, err, want)
	}
}

// TestReadAcrossRollover: the clock moves from 23:59:59 to the next day
// while it is read; Read must return one or the other, never a mix such
// as 23:59:00 of the next day or 00:00:59 of the first.
func TestReadAcrossRollover(t *testing.T) {
	before := time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)
	after := before.Add(time.Second)
	for at := 1; at < 20; at++ {
		var c cmos
		c.set(before)
		c.tick = func(c *cmos) {
			if c.reads == at {
				c.set(after)
			}
		}
		got, err := Read(&c, 0x32)
		if err != nil || !(got.Equal(before) || got.Equal(after)) {
			t.Fatalf("rollover at read %d: Read = %v, %v; want %v or %v", at, got, err, before, after)
		}
	}
}

func TestReadWaitsForUpdate(t *testing.T) {
	want := time.Date(2026, 12, 6, 7, 30, 15, 0, time.UTC)
	var c cmos
	c.set(want)
	c.reg[regStatusA] = statusAUpdating
	c.tick = func(c *cmos) {
		if c.reads == 50 {
			c.reg[regStatusA] = 0
		}
	}
	got, err := Read(&c, 0x32)
	if err != nil || !got.Equal(want) {
		t.Fatalf("Read = %v, %v; want %v", got, err, want)
	}
	if c.reads < 50 {
		t.Fatalf("read the clock during its update (%d reads)", c.reads)
	}
}

func TestReadBusy(t *testing.T) {
	var c cmos
	c.reg[regStatusA] = statusAUpdating
	if _, err := Read(&c, 0); !errors.Is(err, ErrBusy) {
		t.Fatalf("Read of a clock that never finishes updating: %v, want ErrBusy", err)
	}
	// A clock that changes on every read never gives two equal readings.
	c.reg[regStatusA] = 0
	c.set(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c.tick = func(c *cmos) { c.reg[regSeconds] = uint8(c.reads%60/10<<4 | c.reads%10) }
	if _, err := Read(&c, 0); !errors.Is(err, ErrBusy) {
		t.Fatalf("Read of a clock changing on every read: %v, want ErrBusy", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{0x59, 0x07, 0x23, 0x31, 0x12, 0x26, 0x20, 1, statusB24Hour})
	f.Add([]byte{59, 7, 1 | hourPM, 29, 2, 28, 0, 0, statusBBinary})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 9 {
			return
		}
		r := Registers{b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]&1 != 0, b[8]}
		got, err := Decode(r)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if got.Year() < 1900 || got.Year() > 9999 || got.Location() != time.UTC {
			t.Fatalf("Decode(%+v) = %v", r, got)
		}
	})
}
