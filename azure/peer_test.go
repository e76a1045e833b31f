package azure_test

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gohv/gohv/azure"
	"github.com/gohv/gohv/netstack"
	"github.com/gohv/gohv/netstack/nic"
	"github.com/gohv/gohv/tools/hvsim/azurefabric"
	"github.com/gohv/gohv/tools/hvsim/netvsp"
)

// peerNIC is a nic.NIC whose wire is a netvsp.Peer: what the guest's
// netstack sends reaches the peer's gVisor stack, and what the peer sends
// reaches the guest. No offloads: the netstack computes every checksum.
type peerNIC struct {
	peer *netvsp.Peer
	mac  [6]byte

	mu   sync.Mutex
	recv func(queue int, frame []byte, info nic.RxInfo)
}

func (n *peerNIC) MAC() [6]byte                                  { return n.mac }
func (n *peerNIC) MTU() int                                      { return 1500 }
func (n *peerNIC) Queues() int                                   { return 1 }
func (n *peerNIC) LinkUp() bool                                  { return true }
func (n *peerNIC) Offloads() nic.Offloads                        { return nic.Offloads{} }
func (n *peerNIC) WaitWritable(ctx context.Context, _ int) error { return ctx.Err() }
func (n *peerNIC) SetLinkHandler(func(bool))                     {}
func (n *peerNIC) SetNetworkChangeHandler(func())                {}

func (n *peerNIC) SetReceiver(fn func(int, []byte, nic.RxInfo)) {
	n.mu.Lock()
	n.recv = fn
	n.mu.Unlock()
	n.peer.SetReceiver(func(frame []byte) {
		n.mu.Lock()
		fn := n.recv
		n.mu.Unlock()
		if fn != nil {
			fn(0, frame, nic.RxInfo{})
		}
	})
}

func (n *peerNIC) Send(_ int, parts [][]byte, _ nic.TxInfo) error {
	var f []byte
	for _, p := range parts {
		f = append(f, p...)
	}
	n.peer.Send(f)
	return nil
}

// The Provisioner with its base URLs left empty talks to 168.63.129.16 and
// 169.254.169.254 through the guest's netstack; both addresses live on an
// in-process gVisor peer beyond the guest's default gateway, so no packet
// leaves the test process.
func TestProvisionerThroughNetstack(t *testing.T) {
	peer, err := netvsp.NewPeer(netvsp.PeerConfig{
		MAC:  [6]byte{0x02, 0, 0, 0, 0, 0x01},
		Addr: netip.MustParsePrefix("10.0.0.1/24"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	fabric, err := azurefabric.Attach(peer.Stack(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer fabric.Close()
	wire := fabric.Wire
	t.Cleanup(func() {
		for _, v := range wire.ProtocolViolations() {
			t.Errorf("WireServer: %s", v)
		}
	})

	guest, err := netstack.New(netstack.Config{DisableIPv6: true})
	if err != nil {
		t.Fatal(err)
	}
	defer guest.Close()
	if _, err := guest.AddNIC(&peerNIC{peer: peer, mac: [6]byte{0x02, 0, 0, 0, 0, 0x04}}, netstack.NICOptions{
		Static:  []netip.Prefix{netip.MustParsePrefix("10.0.0.4/24")},
		Gateway: netip.MustParseAddr("10.0.0.1"),
	}); err != nil {
		t.Fatal(err)
	}

	p := &azure.Provisioner{
		Client: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return guest.Dial(ctx, network, addr)
			},
		}},
		Attempts: 3,
		Backoff:  10 * time.Millisecond,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	res, _ := p.Result()
	if res.GoalState.Incarnation != "1" || res.Instance.ComputerName != "gohv-host" {
		t.Fatalf("result %+v", res)
	}
	if _, posts, reports := wire.Counts(); posts != 1 || len(reports) != 1 {
		t.Fatalf("%d health POSTs, %d accepted", posts, len(reports))
	}
}
