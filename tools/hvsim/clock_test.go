package hvsim

import (
	"testing"
	"time"
)

func TestManualClock(t *testing.T) {
	c := NewManualClock(tsT0)
	c.Advance(time.Second)
	c.Advance(-time.Hour) // ignored: time does not run backwards
	c.SetWall(tsT0.Add(-time.Minute))
	if !c.Now().Equal(tsT0.Add(-time.Minute)) || c.Uptime() != time.Second {
		t.Fatalf("now %v uptime %v", c.Now(), c.Uptime())
	}
	h, err := New(Config{Clock: c})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.Clock() != Clock(c) || h.ReferenceTime() != 10_000_000 {
		t.Fatalf("reference time %d", h.ReferenceTime())
	}
	if got := h.Platform().(interface{ TimeRefCount() uint64 }).TimeRefCount(); got != 10_000_000 {
		t.Fatalf("TimeRefCount %d", got)
	}
}

func TestSystemClockReference(t *testing.T) {
	h, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	a := h.ReferenceTime()
	time.Sleep(2 * time.Millisecond) // time must pass for the counter to move
	if b := h.ReferenceTime(); b < a+20_000 {
		t.Fatalf("reference counter %d then %d after 2 ms", a, b)
	}
}

func TestStandardICs(t *testing.T) {
	std := Standard()
	want := map[GUID]Device{ClassTimeSync: std.TimeSync, ClassKVP: std.KVP, ClassVSS: std.VSS,
		ClassHeartbeat: std.Heartbeat, ClassShutdown: std.Shutdown}
	for _, d := range std.All {
		if w, ok := want[d.Offer().Class]; ok {
			if d != w {
				t.Errorf("class %v offered by %T, not the StandardDevices field", d.Offer().Class, d)
			}
			delete(want, d.Offer().Class)
		}
	}
	if len(want) != 0 {
		t.Fatalf("not offered: %v", want)
	}
}
