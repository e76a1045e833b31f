package hvsim_test

import (
	"context"
	"fmt"
	"time"

	"github.com/gohv/gohv/tools/hvsim"
)

// A test owns the host's time: it moves the clock and reads the reference
// counter the way the guest does (TIME_REF_COUNT on the platform).
func ExampleManualClock() {
	clk := hvsim.NewManualClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	h, err := hvsim.New(hvsim.Config{Clock: clk})
	if err != nil {
		panic(err)
	}
	defer h.Close()
	ts := hvsim.NewTimeSync(0) // SYNC once the guest negotiated; no periodic samples
	h.AddDevice(ts)

	clk.Advance(2 * time.Second)
	counter := h.Platform().(interface{ TimeRefCount() uint64 })
	fmt.Println(counter.TimeRefCount(), hvsim.FromFileTime(hvsim.FileTime(clk.Now())))
	// Output: 20000000 2026-01-02 03:04:07 +0000 UTC
}

// The KVP host reads what the guest published and writes host data.
func ExampleKVP() {
	h, _ := hvsim.New(hvsim.Config{})
	defer h.Close()
	kvp := hvsim.NewKVP()
	h.AddDevice(kvp)
	// ... start the guest with its KVP driver on h.Platform() ...
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if auto, err := kvp.WaitAuto(ctx); err == nil {
		fmt.Println(auto["OSName"])
		_ = kvp.SetExternal(ctx, "VirtualMachineName", "demo")
		info, _ := kvp.GetIPInfo(ctx, hvsim.MACAdapterID([6]byte{0x00, 0x15, 0x5d, 0, 0, 1}))
		fmt.Println(info.Addresses)
	}
}

// An online backup: the callback runs while the guest is frozen.
func ExampleVSS_Backup() {
	h, _ := hvsim.New(hvsim.Config{})
	defer h.Close()
	vss := hvsim.NewVSS()
	h.AddDevice(vss)
	// ... start the guest with its VSS driver on h.Platform() ...
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	err := vss.Backup(ctx, func(ctx context.Context) error {
		// snapshot the guest's disks here
		return nil
	})
	// Without a guest the HOT_BACKUP check never starts: one answer, an error.
	fmt.Println(err != nil, len(vss.Answers()))
	// Output: true 1
}
