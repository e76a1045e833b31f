package azure_test

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// fakeWire is a WireServer written from the published protocol
// (WALinuxAgent wire.py, cloud-init helpers/azure.py), independent of the
// package's encoder: it checks the request line and headers, serves a goal
// state and records the health reports it accepts.
type fakeWire struct {
	t *testing.T

	mu          sync.Mutex
	incarnation int
	containerID string
	instanceID  string
	// failGoalState answers that many goal-state requests with 503.
	failGoalState int
	// goalStateBody, when set, replaces the goal-state document.
	goalStateBody []byte
	// status, when not zero, answers every request with it.
	status int
	// latestHeader, when set, is sent as the latest incarnation header in
	// answer to a health report (then cleared).
	bumpAfterReport bool
	// bumpBetween: after serving a goal state, move to the next
	// incarnation once (so that the report is stale).
	bumpBetween bool

	requests      int
	goalStateGets int
	healthPosts   int
	reports       []fakeHealth
	rawReports    [][]byte
	// failed is signalled (non-blocking) after each failed answer.
	failed chan struct{}
}

// fakeHealth is the test's own reading of a Health document.
type fakeHealth struct {
	XMLName     xml.Name `xml:"Health"`
	Incarnation string   `xml:"GoalStateIncarnation"`
	Container   struct {
		ContainerID string `xml:"ContainerId"`
		Role        struct {
			InstanceID string `xml:"InstanceId"`
			State      string `xml:"Health>State"`
			SubStatus  string `xml:"Health>Details>SubStatus"`
		} `xml:"RoleInstanceList>Role"`
	} `xml:"Container"`
}

func newFakeWire(t *testing.T) (*fakeWire, *httptest.Server) {
	f := newFakeWireState(t)
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	return f, srv
}

// newFakeWireState returns the fake without a server; t may be nil (for
// examples), then protocol violations only fail the request.
func newFakeWireState(t *testing.T) *fakeWire {
	return &fakeWire{
		t:           t,
		incarnation: 1,
		containerID: "a3e6f1f5-7e4b-4a8a-9a77-2d8f0c6a1b42",
		instanceID:  "f00dfeed0c2c4f6e9b1d3e0a7c5b9d11.gohv-vm",
		failed:      make(chan struct{}, 64),
	}
}

func (f *fakeWire) errorf(format string, args ...any) {
	if f.t != nil {
		f.errorf(format, args...)
	}
}

func (f *fakeWire) fail(w http.ResponseWriter, code int) {
	w.WriteHeader(code)
	select {
	case f.failed <- struct{}{}:
	default:
	}
}

func (f *fakeWire) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	if r.Header.Get("x-ms-version") != "2012-11-30" || r.Header.Get("x-ms-agent-name") == "" {
		f.errorf("wire request %s %s: headers %v", r.Method, r.URL, r.Header)
		f.fail(w, http.StatusBadRequest)
		return
	}
	if f.status != 0 {
		f.fail(w, f.status)
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/machine/" && r.URL.RawQuery == "comp=goalstate":
		f.goalStateGets++
		if f.failGoalState > 0 {
			f.failGoalState--
			f.fail(w, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		if f.goalStateBody != nil {
			_, _ = w.Write(f.goalStateBody)
			return
		}
		fmt.Fprintf(w, goalStateTemplate, f.incarnation, f.containerID, f.instanceID)
		if f.bumpBetween {
			f.bumpBetween = false
			f.incarnation++
		}
	case r.Method == http.MethodPost && r.URL.Path == "/machine" && r.URL.RawQuery == "comp=health":
		f.healthPosts++
		if ct := r.Header.Get("Content-Type"); ct != "text/xml; charset=utf-8" {
			f.errorf("health Content-Type %q", ct)
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			f.fail(w, http.StatusBadRequest)
			return
		}
		var h fakeHealth
		if err := xml.Unmarshal(body, &h); err != nil {
			f.errorf("health body does not parse: %v\n%s", err, body)
			f.fail(w, http.StatusBadRequest)
			return
		}
		if h.Incarnation != fmt.Sprint(f.incarnation) {
			// A report for a goal state that is no longer current.
			f.fail(w, http.StatusGone)
			return
		}
		if h.Container.ContainerID != f.containerID || h.Container.Role.InstanceID != f.instanceID {
			f.fail(w, http.StatusBadRequest)
			return
		}
		f.reports = append(f.reports, h)
		f.rawReports = append(f.rawReports, body)
		if f.bumpAfterReport {
			f.bumpAfterReport = false
			f.incarnation++
		}
		w.Header().Set("x-ms-latest-goal-state-incarnation-number", fmt.Sprint(f.incarnation))
		w.WriteHeader(http.StatusOK)
	default:
		f.errorf("unexpected wire request %s %s", r.Method, r.URL)
		f.fail(w, http.StatusNotFound)
	}
}

func (f *fakeWire) counts() (gets, posts int, reports []fakeHealth) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.goalStateGets, f.healthPosts, append([]fakeHealth(nil), f.reports...)
}

// goalStateTemplate is a goal state in the shape the WireServer serves
// (cloud-init's unit tests and WALinuxAgent's test data have the same
// elements), with the three values the report echoes as verbs.
const goalStateTemplate = `<?xml version="1.0" encoding="utf-8"?>
<GoalState xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="goalstate10.xsd">
  <Version>2012-11-30</Version>
  <Incarnation>%d</Incarnation>
  <Machine>
    <ExpectedState>Started</ExpectedState>
    <StopRolesDeadlineHint>300000</StopRolesDeadlineHint>
    <LBProbePorts>
      <Port>16001</Port>
    </LBProbePorts>
    <ExpectHealthReport>FALSE</ExpectHealthReport>
  </Machine>
  <Container>
    <ContainerId>%s</ContainerId>
    <RoleInstanceList>
      <RoleInstance>
        <InstanceId>%s</InstanceId>
        <State>Started</State>
        <Configuration>
          <HostingEnvironmentConfig>http://168.63.129.16:80/machine/x?comp=config&amp;type=hostingEnvironmentConfig&amp;incarnation=1</HostingEnvironmentConfig>
          <SharedConfig>http://168.63.129.16:80/machine/x?comp=config&amp;type=sharedConfig&amp;incarnation=1</SharedConfig>
          <ExtensionsConfig>http://168.63.129.16:80/machine/x?comp=config&amp;type=extensionsConfig&amp;incarnation=1</ExtensionsConfig>
          <FullConfig>http://168.63.129.16:80/machine/x?comp=config&amp;type=fullConfig&amp;incarnation=1</FullConfig>
          <ConfigName>x.0.x.0._gohv-vm.1.xml</ConfigName>
        </Configuration>
      </RoleInstance>
    </RoleInstanceList>
  </Container>
</GoalState>
`

// fakeIMDS is an Instance Metadata Service written from Microsoft's IMDS
// documentation: it requires "Metadata: true" (400 otherwise), answers 410
// while "starting", and serves the instance document and user data.
type fakeIMDS struct {
	mu         sync.Mutex
	status     int    // when not zero, answer every request with it
	fail410    int    // answer that many requests with 410 Gone
	instance   []byte // instance document; nil: instanceDoc
	userData   string // base64 text
	instGets   int
	userGets   int
	noMetaSeen bool
}

func newFakeIMDS(t *testing.T) (*fakeIMDS, *httptest.Server) {
	f := &fakeIMDS{}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeIMDS) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Metadata") != "true" || r.Header.Get("X-Forwarded-For") != "" {
		f.noMetaSeen = true
		http.Error(w, `{"error":"Bad request. Required metadata header not specified"}`, http.StatusBadRequest)
		return
	}
	if f.status != 0 {
		w.WriteHeader(f.status)
		return
	}
	q := r.URL.Query()
	switch r.URL.Path {
	case "/metadata/instance":
		f.instGets++
		if q.Get("api-version") != "2021-02-01" {
			http.Error(w, "bad api-version", http.StatusBadRequest)
			return
		}
	case "/metadata/instance/compute/userData":
		f.userGets++
		if q.Get("api-version") != "2021-01-01" || q.Get("format") != "text" {
			http.Error(w, "bad query", http.StatusBadRequest)
			return
		}
	default:
		http.NotFound(w, r)
		return
	}
	if f.fail410 > 0 {
		f.fail410--
		w.WriteHeader(http.StatusGone)
		return
	}
	if r.URL.Path == "/metadata/instance/compute/userData" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, f.userData)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if f.instance != nil {
		_, _ = w.Write(f.instance)
		return
	}
	_, _ = io.WriteString(w, instanceDoc)
}

// instanceDoc follows the example in Microsoft's IMDS documentation
// (api-version 2021-02-01), shortened to the fields gohv reads plus a few
// it ignores.
const instanceDoc = `{
  "compute": {
    "azEnvironment": "AzurePublicCloud",
    "customData": "",
    "location": "westeurope",
    "name": "gohv-vm",
    "offer": "",
    "osProfile": {
      "adminUsername": "azureuser",
      "computerName": "gohv-host",
      "disablePasswordAuthentication": "true"
    },
    "osType": "Linux",
    "resourceGroupName": "gohv-rg",
    "resourceId": "/subscriptions/8d10da13-8125-4ba9-a717-bf7490507b3d/resourceGroups/gohv-rg/providers/Microsoft.Compute/virtualMachines/gohv-vm",
    "subscriptionId": "8d10da13-8125-4ba9-a717-bf7490507b3d",
    "tags": "",
    "vmId": "02aab8a4-74ef-476e-8182-f6d2ba4166a6",
    "vmSize": "Standard_B2s",
    "zone": ""
  },
  "network": {
    "interface": [{
      "ipv4": {
        "ipAddress": [{
          "privateIpAddress": "10.144.133.132",
          "publicIpAddress": "20.61.1.2"
        }],
        "subnet": [{
          "address": "10.144.133.128",
          "prefix": "26"
        }]
      },
      "ipv6": {
        "ipAddress": [{"privateIpAddress": "fd00::4"}]
      },
      "macAddress": "0011AAFFBB22"
    }]
  }
}`
