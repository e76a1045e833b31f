package boot

import (
	"slices"
	"testing"
)

func TestSelectClock(t *testing.T) {
	cases := []struct {
		name string
		in   clockInputs
		want []ClockSource
	}{
		{"hyper-v gen2", clockInputs{HyperV: true, ReferenceTSC: true, ReferenceCounter: true, PMTimer: true}, []ClockSource{ClockReferenceTSC, ClockReferenceCounter, ClockTSCPMTimer, ClockNone}},
		{"hyper-v without TSC page", clockInputs{HyperV: true, ReferenceCounter: true, PIT: true}, []ClockSource{ClockReferenceCounter, ClockTSCPIT, ClockNone}},
		{"qemu tcg", clockInputs{PMTimer: true, PIT: true}, []ClockSource{ClockTSCPMTimer, ClockTSCPIT, ClockNone}},
		{"TSC page bits without Hyper-V ignored", clockInputs{ReferenceTSC: true, PIT: true}, []ClockSource{ClockTSCPIT, ClockNone}},
		{"nothing", clockInputs{}, []ClockSource{ClockNone}},
	}
	for _, c := range cases {
		if got := selectClock(c.in); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	for s := ClockNone; s <= ClockTSCPIT; s++ {
		if s.String() == "unknown clock source" {
			t.Errorf("%d has no name", s)
		}
	}
	if ClockSource(99).String() != "unknown clock source" {
		t.Error("out of range name")
	}
}

// PIT command bytes (8254 datasheet, control word: SC1 SC0 RW1 RW0 M2 M1 M0 BCD).
func TestPITValues(t *testing.T) {
	if PITChannel2Mode0 != 0xB0 || PITLatch2 != 0x80 {
		t.Errorf("mode %#x latch %#x", PITChannel2Mode0, PITLatch2)
	}
	for _, c := range []struct{ in, want uint8 }{{0x00, 0x01}, {0x02, 0x01}, {0x23, 0x21}, {0xff, 0xfd}} {
		if got := pitGate(c.in); got != c.want {
			t.Errorf("pitGate(%#x) = %#x, want %#x", c.in, got, c.want)
		}
	}
}
