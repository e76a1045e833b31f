package azure_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http/httptest"

	"github.com/gohv/gohv/azure"
	"github.com/gohv/gohv/tools/hvsim/azurefabric"
)

func base64Text(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) + "\n" }

// The kernel starts the Provisioner on its own goroutine once DHCP has
// configured the NIC, and the application reads the result when (and if) it
// needs it. On Azure WireServer comes from DHCP option 245 and the base URLs
// stay empty; this example runs against in-process fakes.
func ExampleProvisioner_Run() {
	wire := httptest.NewServer(newFakeWireState(nil))
	defer wire.Close()
	imds := httptest.NewServer(&azurefabric.IMDS{})
	defer imds.Close()

	opt245 := []byte{168, 63, 129, 16} // from the DHCP lease
	addr, err := azure.WireServerFromDHCP(opt245)
	if err != nil {
		fmt.Println("not on Azure:", err)
		return
	}
	p := &azure.Provisioner{
		WireServer:    addr,
		WireServerURL: wire.URL, // for the example only
		IMDSURL:       imds.URL, // for the example only
	}
	go p.Run(context.Background())

	<-p.Done()
	res, _ := p.Result()
	fmt.Println("ready:", res.ReadyErr == nil)
	fmt.Println("host name:", res.Instance.ComputerName)
	// Output:
	// ready: true
	// host name: gohv-host
}
