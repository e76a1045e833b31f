package azure_test

import (
	"encoding/base64"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/gohv/gohv/azure"
)

func TestParseInstance(t *testing.T) {
	in, err := azure.ParseInstance([]byte(instanceDoc))
	if err != nil {
		t.Fatal(err)
	}
	want := &azure.Instance{
		Name:           "gohv-vm",
		VMSize:         "Standard_B2s",
		Location:       "westeurope",
		VMID:           "02aab8a4-74ef-476e-8182-f6d2ba4166a6",
		ResourceGroup:  "gohv-rg",
		SubscriptionID: "8d10da13-8125-4ba9-a717-bf7490507b3d",
		ComputerName:   "gohv-host",
		Interfaces: []azure.Interface{{
			MAC: [6]byte{0x00, 0x11, 0xaa, 0xff, 0xbb, 0x22},
			IPv4: []azure.IPAddress{{
				Private: netip.MustParseAddr("10.144.133.132"),
				Public:  netip.MustParseAddr("20.61.1.2"),
			}},
			Subnets: []netip.Prefix{netip.MustParsePrefix("10.144.133.128/26")},
			IPv6:    []netip.Addr{netip.MustParseAddr("fd00::4")},
		}},
	}
	if !reflect.DeepEqual(in, want) {
		t.Fatalf("got  %+v\nwant %+v", in, want)
	}
	in, err = azure.ParseInstance(append([]byte{0xef, 0xbb, 0xbf}, instanceDoc...))
	if err != nil || !reflect.DeepEqual(in, want) {
		t.Fatalf("with BOM: got %+v, %v", in, err)
	}
}

func TestParseInstanceRejects(t *testing.T) {
	const vmID = `"vmId":"02aab8a4-74ef-476e-8182-f6d2ba4166a6"`
	tests := []struct{ name, doc string }{
		{"empty", ``},
		{"not json", `<html>`},
		{"no compute", `{"network":{}}`},
		{"no vmId", `{"compute":{"name":"x"}}`},
		{"bad vmId", `{"compute":{"vmId":"02aab8a4-74ef-476e-8182-f6d2ba4166aZ"}}`},
		{"control in name", `{"compute":{` + vmID + `,"name":"a\u0001b"}}`},
		{"long name", `{"compute":{` + vmID + `,"name":"` + strings.Repeat("n", 257) + `"}}`},
		{"wrong type", `{"compute":{` + vmID + `,"name":7}}`},
		{"short mac", `{"compute":{` + vmID + `},"network":{"interface":[{"macAddress":"0011AA"}]}}`},
		{"bad mac", `{"compute":{` + vmID + `},"network":{"interface":[{"macAddress":"0011AAFFBBZZ"}]}}`},
		{"bad ipv4", `{"compute":{` + vmID + `},"network":{"interface":[{"macAddress":"0011AAFFBB22","ipv4":{"ipAddress":[{"privateIpAddress":"fd00::1"}]}}]}}`},
		{"bad public", `{"compute":{` + vmID + `},"network":{"interface":[{"macAddress":"0011AAFFBB22","ipv4":{"ipAddress":[{"privateIpAddress":"10.0.0.4","publicIpAddress":"x"}]}}]}}`},
		{"bad prefix", `{"compute":{` + vmID + `},"network":{"interface":[{"macAddress":"0011AAFFBB22","ipv4":{"subnet":[{"address":"10.0.0.0","prefix":"33"}]}}]}}`},
		{"bad ipv6", `{"compute":{` + vmID + `},"network":{"interface":[{"macAddress":"0011AAFFBB22","ipv6":{"ipAddress":[{"privateIpAddress":"10.0.0.4"}]}}]}}`},
		{"too many nics", `{"compute":{` + vmID + `},"network":{"interface":[` + strings.Repeat(`{"macAddress":"0011AAFFBB22"},`, 64) + `{"macAddress":"0011AAFFBB22"}]}}`},
	}
	for _, tt := range tests {
		if in, err := azure.ParseInstance([]byte(tt.doc)); !errors.Is(err, azure.ErrBadResponse) {
			t.Errorf("%s: got %+v, %v; want ErrBadResponse", tt.name, in, err)
		}
	}
	if _, err := azure.ParseInstance(make([]byte, 1<<20+1)); !errors.Is(err, azure.ErrTooLarge) {
		t.Errorf("oversized: %v; want ErrTooLarge", err)
	}
}

func TestDecodeUserData(t *testing.T) {
	max := strings.Repeat("u", azure.MaxUserData)
	tests := []struct {
		name    string
		body    string
		want    string
		wantErr error
	}{
		{"empty", "", "", nil},
		{"blank", " \r\n", "", nil},
		{"text", "I2Nsb3VkLWNvbmZpZwo=", "#cloud-config\n", nil},
		{"wrapped", "I2Nsb3Vk\r\nLWNvbmZpZwo=\n", "#cloud-config\n", nil},
		{"at limit", base64.StdEncoding.EncodeToString([]byte(max)), max, nil},
		{"over limit", base64.StdEncoding.EncodeToString([]byte(max + "u")), "", azure.ErrTooLarge},
		{"not base64", "@@@@", "", azure.ErrBadResponse},
		{"bad padding", "I2Nsb3VkLWNvbmZpZwo", "", azure.ErrBadResponse},
		{"huge body", strings.Repeat("A", 200<<10), "", azure.ErrTooLarge},
	}
	for _, tt := range tests {
		got, err := azure.DecodeUserData([]byte(tt.body))
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("%s: err %v, want %v", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("%s: got %q, %v; want %q", tt.name, got, err, tt.want)
		}
		if tt.want == "" && got != nil {
			t.Errorf("%s: got non-nil empty user data", tt.name)
		}
	}
}
