package kvp_test

import (
	"fmt"

	"github.com/gohv/gohv/drivers/kvp"
)

func Example() {
	d := kvp.New(kvp.Config{System: kvp.SystemInfo{FullyQualifiedDomainName: "web1.example.com", OSVersion: "0.1"}})
	// The kernel attaches d to the KVP channel (d.Attach) when the bus
	// offers it. The application publishes to the guest pool, which the
	// host reads (Get-VMKvp, Msvm_KvpExchangeComponent.GuestExchangeItems).
	if err := d.Publish("Role", "frontend"); err != nil {
		fmt.Println(err)
	}
	fmt.Println(d.Entries(kvp.PoolGuest))
	// Output: [{Role frontend}]
}

func ExampleDriver_Watch() {
	d := kvp.New(kvp.Config{})
	changed, stop := d.Watch()
	defer stop()
	go func() {
		for range changed {
			// The host set or deleted a key in the external or
			// auto-external pool: reread what the application uses.
			if v, ok := d.Get(kvp.PoolExternal, "ConfigURL"); ok {
				fmt.Println("config from", v)
			}
		}
	}()
}
