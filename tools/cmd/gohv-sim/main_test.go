package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gohv/gohv/tools/hvsim"
)

// TestDemo runs the demo against every host profile and checks the story
// it tells: the version each Windows Server release negotiates, the offers,
// the bindings, the heartbeats and the accepted shutdown.
func TestDemo(t *testing.T) {
	for _, tc := range []struct {
		profile hvsim.Profile
		version string
	}{
		{hvsim.WS2022, "5.3"},
		{hvsim.WS2019, "5.2"},
		{hvsim.WS2016, "4.0"},
		{hvsim.WS2012R2, "3.0"},
	} {
		t.Run(tc.profile.String(), func(t *testing.T) {
			var out bytes.Buffer
			err := demo(&out, options{profile: tc.profile, heartbeats: 3, interval: 5 * time.Millisecond, timeout: 30 * time.Second})
			if err != nil {
				t.Fatalf("demo: %v\n%s", err, out.String())
			}
			for _, want := range []string{
				"guest: VMBus version " + tc.version + " negotiated",
				"heartbeat              instance ",
				"shutdown               instance",
				"storvsc",
				"netvsc",
				"guest: driver heartbeat bound",
				"guest: driver shutdown bound",
				"gohv: the host asks for power-off",
				"guest: driver storvsc bound",
				"gohv: disk scsi-",
				"host: guest accepted the shutdown (S_OK); guest shut down for power-off",
				"host: no protocol violations",
			} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}
