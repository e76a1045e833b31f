package netstack_test

import (
	"context"
	"fmt"
	"io"
	"net/netip"

	"github.com/gohv/gohv/netstack"
	"github.com/gohv/gohv/netstack/nictest"
)

// Two stacks over fake NICs wired back to back, statically addressed: one
// listens, the other dials. On Hyper-V the NIC is a *netvsc.NIC and the
// address usually comes from DHCP (leave NICOptions.Static empty).
func Example() {
	n1, n2 := nictest.Pair(nictest.Config{MAC: [6]byte{2, 0, 0, 0, 0, 1}}, nictest.Config{MAC: [6]byte{2, 0, 0, 0, 0, 2}})
	defer n1.Close()
	defer n2.Close()

	server, _ := netstack.New(netstack.Config{})
	defer server.Close()
	server.AddNIC(n1, netstack.NICOptions{Static: []netip.Prefix{netip.MustParsePrefix("192.168.7.1/24")}})
	client, _ := netstack.New(netstack.Config{})
	defer client.Close()
	client.AddNIC(n2, netstack.NICOptions{Static: []netip.Prefix{netip.MustParsePrefix("192.168.7.2/24")}})

	l, err := server.Listen("tcp", ":8080")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			io.WriteString(c, "hello from "+c.LocalAddr().String())
			c.Close()
		}
	}()

	c, err := client.Dial(context.Background(), "tcp", "192.168.7.1:8080")
	if err != nil {
		fmt.Println(err)
		return
	}
	msg, _ := io.ReadAll(c)
	c.Close()
	fmt.Println(string(msg))
	// Output: hello from 192.168.7.1:8080
}

// Watch reports address changes, for example to publish them through KVP.
func ExampleStack_Watch() {
	n1, n2 := nictest.Pair(nictest.Config{MAC: [6]byte{2, 0, 0, 0, 0, 1}}, nictest.Config{MAC: [6]byte{2, 0, 0, 0, 0, 2}})
	defer n1.Close()
	defer n2.Close()
	st, _ := netstack.New(netstack.Config{DisableIPv6: true})
	defer st.Close()
	w := st.Watch()
	defer w.Close()
	st.AddNIC(n1, netstack.NICOptions{Static: []netip.Prefix{netip.MustParsePrefix("10.1.0.4/16")}})
	ev, _ := w.Next(context.Background())
	fmt.Println(ev.Kind, ev.Address.Prefix, ev.Address.Origin)
	// Output: address added 10.1.0.4/16 static
}
