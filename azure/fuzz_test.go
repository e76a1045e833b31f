package azure_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/gohv/gohv/azure"
)

// The fuzz targets feed network-supplied bytes to each parser: none may
// panic, and whatever they accept must satisfy the documented invariants.

func FuzzParseGoalState(f *testing.F) {
	f.Add([]byte(fmt.Sprintf(goalStateTemplate, 1, "c", "i")))
	f.Add([]byte(`<GoalState><Incarnation>1</Incarnation><Container><ContainerId>c</ContainerId><RoleInstanceList><RoleInstance><InstanceId>i</InstanceId></RoleInstance></RoleInstanceList></Container></GoalState>`))
	f.Add([]byte(`<GoalState><Incarnation>`))
	f.Add([]byte(`<!DOCTYPE x [<!ENTITY a "aaaa">]><GoalState>&a;</GoalState>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		gs, err := azure.ParseGoalState(b)
		if err != nil {
			return
		}
		// An accepted goal state must be encodable as a report.
		if _, err := azure.EncodeHealth(azure.HealthReport{GoalState: *gs, State: azure.StateReady}); err != nil {
			t.Fatalf("accepted %+v but cannot report it: %v", gs, err)
		}
	})
}

func FuzzParseInstance(f *testing.F) {
	f.Add([]byte(instanceDoc))
	f.Add([]byte(`{"compute":{"vmId":"02aab8a4-74ef-476e-8182-f6d2ba4166a6"}}`))
	f.Add([]byte(`{"compute":{"vmId":"02aab8a4-74ef-476e-8182-f6d2ba4166a6"},"network":{"interface":[{"macAddress":"0011AAFFBB22","ipv4":{"subnet":[{"address":"10.0.0.0","prefix":"8"}]}}]}}`))
	f.Add([]byte(`{"compute":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := azure.ParseInstance(b)
		if err != nil {
			return
		}
		if len(in.VMID) != 36 || len(in.Interfaces) > 64 {
			t.Fatalf("accepted %+v", in)
		}
		for _, ni := range in.Interfaces {
			for _, a := range ni.IPv4 {
				if !a.Private.Is4() || (a.Public.IsValid() && !a.Public.Is4()) {
					t.Fatalf("accepted IPv4 pair %+v", a)
				}
			}
			for _, p := range ni.Subnets {
				if !p.Addr().Is4() || p.Bits() < 0 || p.Masked() != p {
					t.Fatalf("accepted subnet %v", p)
				}
			}
		}
	})
}

func FuzzDecodeUserData(f *testing.F) {
	f.Add([]byte("I2Nsb3VkLWNvbmZpZwo="))
	f.Add([]byte("I2Nsb3Vk\r\nLWNvbmZpZwo=\n"))
	f.Add([]byte(""))
	f.Add([]byte("===="))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := azure.DecodeUserData(b)
		if err == nil && len(d) > azure.MaxUserData {
			t.Fatalf("accepted %d bytes", len(d))
		}
	})
}

func FuzzWireServerFromDHCP(f *testing.F) {
	f.Add([]byte{168, 63, 129, 16})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := azure.WireServerFromDHCP(b)
		if err == nil && (len(b) != 4 || a != netip.AddrFrom4([4]byte(b))) {
			t.Fatalf("%v accepted as %v", b, a)
		}
	})
}
