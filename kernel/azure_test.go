package kernel_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/kernel"
	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/azurefabric"
	"github.com/gohv/gohv/tools/hvsim/simhost"
)

// TestAzureProvisioning runs the kernel on a simulated machine whose
// network looks like Azure's: the lease carries option 245, and the
// kernel, with no help from the application, reports Ready to the
// WireServer behind the gateway and reads the instance metadata.
func TestAzureProvisioning(t *testing.T) {
	m, err := simhost.New(simhost.Config{Profile: hvsim.WS2022, Azure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var log syncBuffer
	k, err := kernel.Start(ctx, kernel.Config{Platform: func() (hv.Platform, error) { return m.Host.Platform(), nil }, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close(ctx)
	if ws, ok := k.Net().WireServer(); !ok || ws != azurefabric.WireServerAddr {
		t.Fatalf("WireServer from the lease: %v, %v; want %v", ws, ok, azurefabric.WireServerAddr)
	}
	p := k.Azure()
	if p == nil {
		t.Fatalf("no provisioner started; log:\n%s", log.String())
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		t.Fatal("provisioning did not finish")
	}
	res, _ := p.Result()
	if res.ReadyErr != nil || res.MetadataErr != nil {
		t.Fatalf("ready: %v; metadata: %v", res.ReadyErr, res.MetadataErr)
	}
	if res.Instance == nil || res.Instance.ComputerName != "gohv-host" {
		t.Errorf("instance metadata %+v", res.Instance)
	}
	_, posts, reports := m.Azure.Wire.Counts()
	if posts != 1 || len(reports) != 1 || reports[0].Container.Role.State != "Ready" {
		t.Errorf("%d health posts, reports %+v; want one Ready", posts, reports)
	}
	for _, v := range m.Azure.Wire.ProtocolViolations() {
		t.Errorf("WireServer: %s", v)
	}
	if !strings.Contains(log.String(), "on Azure (WireServer 168.63.129.16)") {
		t.Errorf("log does not say the kernel found Azure:\n%s", log.String())
	}
}
