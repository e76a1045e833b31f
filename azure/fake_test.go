package azure_test

import (
	"net/http/httptest"
	"testing"

	"github.com/gohv/gohv/tools/hvsim/azurefabric"
)

// The WireServer and IMDS the tests talk to are azurefabric's, written
// from the published protocol apart from this package.
const (
	goalStateTemplate = azurefabric.GoalStateTemplate
	instanceDoc       = azurefabric.InstanceDoc
)

func newFakeWire(t *testing.T) (*azurefabric.WireServer, *httptest.Server) {
	f := newFakeWireState(t)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

// newFakeWireState returns the fake without a server; with t set, a
// protocol violation the fake saw fails the test at its end.
func newFakeWireState(t *testing.T) *azurefabric.WireServer {
	f := azurefabric.NewWireServer()
	if t != nil {
		t.Cleanup(func() {
			for _, v := range f.ProtocolViolations() {
				t.Errorf("WireServer: %s", v)
			}
		})
	}
	return f
}

func newFakeIMDS(t *testing.T) (*azurefabric.IMDS, *httptest.Server) {
	f := &azurefabric.IMDS{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}
