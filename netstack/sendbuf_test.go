package netstack_test

import (
	"testing"

	"github.com/gohv/gohv/netstack"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

func TestTCPSendBuffer(t *testing.T) {
	for _, c := range []struct {
		name      string
		cfg       int
		want, max int
	}{
		{"default", 0, 1 << 20, 4 << 20},
		{"smaller", 256 << 10, 256 << 10, 4 << 20},
		{"larger", 16 << 20, 16 << 20, 16 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, err := netstack.New(netstack.Config{DisableIPv6: true, TCPSendBuffer: c.cfg})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var o tcpip.TCPSendBufferSizeRangeOption
			if err := st.GVisor().TransportProtocolOption(tcp.ProtocolNumber, &o); err != nil {
				t.Fatal(err)
			}
			if o.Default != c.want || o.Max != c.max {
				t.Fatalf("send buffer default %d max %d, want %d and %d", o.Default, o.Max, c.want, c.max)
			}
		})
	}
}
