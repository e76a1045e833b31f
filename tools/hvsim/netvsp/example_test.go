package netvsp_test

import (
	"fmt"
	"net/netip"

	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/netvsp"
)

// A simulated host with a NIC plugged into an in-process peer at 10.0.0.1;
// a guest driver stack started on h.Platform() finds the NIC among its
// offers, and tests talk to it through peer.ListenTCP and peer.DialTCP.
func Example() {
	h, err := hvsim.New(hvsim.Config{})
	if err != nil {
		panic(err)
	}
	defer h.Close()
	peer, err := netvsp.NewPeer(netvsp.PeerConfig{Addr: netip.MustParsePrefix("10.0.0.1/24")})
	if err != nil {
		panic(err)
	}
	defer peer.Close()
	nic, err := netvsp.New(h, netvsp.Config{Backend: peer, MaxQueues: 2})
	if err != nil {
		panic(err)
	}
	if _, err := h.AddDevice(nic); err != nil {
		panic(err)
	}
	fmt.Println(nic.Offer().Class == netvsp.ClassNetwork, nic.State().LinkUp, peer.Addr())
	// Output: true true 10.0.0.1
}
