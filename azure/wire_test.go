package azure_test

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/gohv/gohv/azure"
)

func TestWireServerFromDHCP(t *testing.T) {
	tests := []struct {
		opt  []byte
		want string // "" = error
	}{
		{[]byte{168, 63, 129, 16}, "168.63.129.16"},
		{[]byte{10, 0, 0, 1}, "10.0.0.1"},
		{nil, ""},
		{[]byte{168, 63, 129}, ""},
		{[]byte{168, 63, 129, 16, 0}, ""},
		{[]byte{0, 0, 0, 0}, ""},
		{[]byte{127, 0, 0, 1}, ""},
		{[]byte{224, 0, 0, 1}, ""},
		{[]byte{255, 255, 255, 255}, ""},
	}
	for _, tt := range tests {
		a, err := azure.WireServerFromDHCP(tt.opt)
		if tt.want == "" {
			if !errors.Is(err, azure.ErrBadOption) {
				t.Errorf("%v: got %v, %v; want ErrBadOption", tt.opt, a, err)
			}
			continue
		}
		if err != nil || a != netip.MustParseAddr(tt.want) {
			t.Errorf("%v: got %v, %v; want %s", tt.opt, a, err, tt.want)
		}
	}
}

func TestParseGoalState(t *testing.T) {
	doc := fmt.Sprintf(goalStateTemplate, 7, "a3e6f1f5-7e4b-4a8a-9a77-2d8f0c6a1b42", "f00d.gohv-vm")
	gs, err := azure.ParseGoalState([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := azure.GoalState{Incarnation: "7", ContainerID: "a3e6f1f5-7e4b-4a8a-9a77-2d8f0c6a1b42", InstanceID: "f00d.gohv-vm"}
	if *gs != want {
		t.Fatalf("got %+v, want %+v", *gs, want)
	}
	// The same document behind a UTF-8 byte-order mark.
	gs, err = azure.ParseGoalState(append([]byte{0xef, 0xbb, 0xbf}, doc...))
	if err != nil || *gs != want {
		t.Fatalf("with BOM: got %+v, %v", gs, err)
	}
}

func TestParseGoalStateRejects(t *testing.T) {
	const hdr = `<?xml version="1.0" encoding="utf-8"?>`
	tests := []struct{ name, doc string }{
		{"empty", ""},
		{"not xml", "HTTP/1.1 200 OK"},
		{"truncated", hdr + `<GoalState><Incarnation>1</Incarnation><Container><ContainerId>c`},
		{"wrong root", hdr + `<Health><Incarnation>1</Incarnation></Health>`},
		{"no incarnation", hdr + `<GoalState><Container><ContainerId>c</ContainerId><RoleInstanceList><RoleInstance><InstanceId>i</InstanceId></RoleInstance></RoleInstanceList></Container></GoalState>`},
		{"no container", hdr + `<GoalState><Incarnation>1</Incarnation></GoalState>`},
		{"no role instance", hdr + `<GoalState><Incarnation>1</Incarnation><Container><ContainerId>c</ContainerId><RoleInstanceList></RoleInstanceList></Container></GoalState>`},
		{"empty container id", hdr + `<GoalState><Incarnation>1</Incarnation><Container><ContainerId> </ContainerId><RoleInstanceList><RoleInstance><InstanceId>i</InstanceId></RoleInstance></RoleInstanceList></Container></GoalState>`},
		{"space in instance id", hdr + `<GoalState><Incarnation>1</Incarnation><Container><ContainerId>c</ContainerId><RoleInstanceList><RoleInstance><InstanceId>a b</InstanceId></RoleInstance></RoleInstanceList></Container></GoalState>`},
		{"control byte", hdr + `<GoalState><Incarnation>1&#x7;</Incarnation><Container><ContainerId>c</ContainerId><RoleInstanceList><RoleInstance><InstanceId>i</InstanceId></RoleInstance></RoleInstanceList></Container></GoalState>`},
		{"long id", hdr + `<GoalState><Incarnation>1</Incarnation><Container><ContainerId>` + strings.Repeat("c", 257) + `</ContainerId><RoleInstanceList><RoleInstance><InstanceId>i</InstanceId></RoleInstance></RoleInstanceList></Container></GoalState>`},
	}
	for _, tt := range tests {
		if gs, err := azure.ParseGoalState([]byte(tt.doc)); !errors.Is(err, azure.ErrBadResponse) {
			t.Errorf("%s: got %+v, %v; want ErrBadResponse", tt.name, gs, err)
		}
	}
	big := make([]byte, 256<<10+1)
	if _, err := azure.ParseGoalState(big); !errors.Is(err, azure.ErrTooLarge) {
		t.Errorf("oversized: %v; want ErrTooLarge", err)
	}
}

// The expected documents are written by hand from the shape WALinuxAgent
// sends (one line, XML declaration, xsi and xsd namespace attributes) and
// cloud-init's template (element order, Details for a failure).
func TestEncodeHealth(t *testing.T) {
	gs := azure.GoalState{Incarnation: "3", ContainerID: "a3e6f1f5-7e4b-4a8a-9a77-2d8f0c6a1b42", InstanceID: "f00d.gohv-vm"}
	tests := []struct {
		name string
		r    azure.HealthReport
		want string
	}{
		{
			"ready",
			azure.HealthReport{GoalState: gs, State: azure.StateReady},
			`<?xml version="1.0" encoding="utf-8"?>` +
				`<Health xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">` +
				`<GoalStateIncarnation>3</GoalStateIncarnation>` +
				`<Container>` +
				`<ContainerId>a3e6f1f5-7e4b-4a8a-9a77-2d8f0c6a1b42</ContainerId>` +
				`<RoleInstanceList>` +
				`<Role>` +
				`<InstanceId>f00d.gohv-vm</InstanceId>` +
				`<Health><State>Ready</State></Health>` +
				`</Role>` +
				`</RoleInstanceList>` +
				`</Container>` +
				`</Health>`,
		},
		{
			"failure, escaped",
			azure.HealthReport{GoalState: gs, State: azure.StateNotReady, SubStatus: azure.SubStatusProvisionFault, Description: `disk <sda> & "net"`},
			`<?xml version="1.0" encoding="utf-8"?>` +
				`<Health xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">` +
				`<GoalStateIncarnation>3</GoalStateIncarnation>` +
				`<Container>` +
				`<ContainerId>a3e6f1f5-7e4b-4a8a-9a77-2d8f0c6a1b42</ContainerId>` +
				`<RoleInstanceList>` +
				`<Role>` +
				`<InstanceId>f00d.gohv-vm</InstanceId>` +
				`<Health><State>NotReady</State>` +
				`<Details><SubStatus>ProvisioningFailed</SubStatus><Description>disk &lt;sda&gt; &amp; &#34;net&#34;</Description></Details>` +
				`</Health>` +
				`</Role>` +
				`</RoleInstanceList>` +
				`</Container>` +
				`</Health>`,
		},
	}
	for _, tt := range tests {
		got, err := azure.EncodeHealth(tt.r)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if string(got) != tt.want {
			t.Errorf("%s:\ngot  %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

func TestEncodeHealthTrimsDescription(t *testing.T) {
	gs := azure.GoalState{Incarnation: "1", ContainerID: "c", InstanceID: "i"}
	// 511 ASCII bytes and a 2-byte rune straddling the 512-byte cut.
	desc := strings.Repeat("x", 511) + "é" + "tail"
	got, err := azure.EncodeHealth(azure.HealthReport{GoalState: gs, State: azure.StateNotReady, SubStatus: "s", Description: desc})
	if err != nil {
		t.Fatal(err)
	}
	want := "<Description>" + strings.Repeat("x", 511) + "</Description>"
	if !strings.Contains(string(got), want) {
		t.Fatalf("description not cut to 511 bytes on the rune boundary: %s", got)
	}
}

func TestEncodeHealthRejects(t *testing.T) {
	good := azure.GoalState{Incarnation: "1", ContainerID: "c", InstanceID: "i"}
	for _, r := range []azure.HealthReport{
		{GoalState: good, State: "Bogus"},
		{GoalState: azure.GoalState{ContainerID: "c", InstanceID: "i"}, State: azure.StateReady},
		{GoalState: azure.GoalState{Incarnation: "1", ContainerID: "c<", InstanceID: "i j"}, State: azure.StateReady},
	} {
		if b, err := azure.EncodeHealth(r); err == nil {
			t.Errorf("%+v: encoded %s", r, b)
		}
	}
}
