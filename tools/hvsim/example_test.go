package hvsim_test

import (
	"fmt"
	"time"

	"github.com/gohv/gohv/tools/hvsim"
)

// A test builds a host with the devices it wants and hands the guest stack
// the platform; afterwards it checks that the guest broke no rule.
func Example() {
	h, err := hvsim.New(hvsim.Config{Profile: hvsim.WS2022})
	if err != nil {
		panic(err)
	}
	defer h.Close()
	hb := hvsim.NewHeartbeat(100 * time.Millisecond)
	h.AddDevice(hb)
	h.AddDevice(hvsim.NewShutdown())
	p := h.Platform()

	// ... start the guest's VMBus client on p here ...
	pages, _ := p.AllocPages(4)
	fmt.Println(len(p.SynICs()), pages.Count(), pages.PFN >= 0x100)
	fmt.Println(len(h.Violations()))
	// Output:
	// 1 4 true
	// 0
}

// Standard gives the offer list of a WS2022 Generation 2 VM.
func ExampleStandard() {
	h, _ := hvsim.New(hvsim.Config{})
	defer h.Close()
	std := hvsim.Standard()
	for _, d := range std.All {
		h.AddDevice(d)
	}
	fmt.Println(len(std.All), std.All[2].Offer().Class == hvsim.ClassHeartbeat)
	// Output: 11 true
}
