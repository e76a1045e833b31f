package storvsp_test

import (
	"fmt"

	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/storvsp"
)

// A SCSI controller with a 64 MiB memory disk at LUN 0 and a read-only
// disk at LUN 1, offered by a simulated WS2022 host.
func ExampleNew() {
	h, err := hvsim.New(hvsim.Config{})
	if err != nil {
		panic(err)
	}
	defer h.Close()
	ctl, err := storvsp.New(storvsp.Config{Instance: hvsim.MustParseGUID("f2d3a7b1-0c3e-4b8e-9a56-123456789abc")})
	if err != nil {
		panic(err)
	}
	if err := ctl.Attach(storvsp.Addr{LUN: 0}, storvsp.LUNConfig{Store: storvsp.NewMemStore(64 << 20), WriteCache: true}); err != nil {
		panic(err)
	}
	if err := ctl.Attach(storvsp.Addr{LUN: 1}, storvsp.LUNConfig{Store: storvsp.NewMemStore(1 << 20), ReadOnly: true}); err != nil {
		panic(err)
	}
	relid, err := h.AddDevice(ctl)
	if err != nil {
		panic(err)
	}
	fmt.Println(relid, ctl.Offer().Class, ctl.Ready())
	// Output: 1 ba6163d9-04a1-4d29-b605-72e2ffb1dc7f false
}
