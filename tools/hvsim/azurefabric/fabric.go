// Package azurefabric simulates the two Azure endpoints a VM talks to
// while it starts: the WireServer (goal state and health reports, at
// 168.63.129.16) and the Instance Metadata Service (at 169.254.169.254).
// They are written from the published protocol (WALinuxAgent's wire.py,
// cloud-init's helpers/azure.py, Microsoft's IMDS documentation), apart
// from gohv's azure package, whose requests they check: this package must
// not import it. Tests and the simulated machine (simhost) serve them on
// a peer gVisor stack or an httptest server.
package azurefabric

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sync"
)

// Azure's fixed addresses (docs/azure.md).
var (
	WireServerAddr = netip.MustParseAddr("168.63.129.16")
	IMDSAddr       = netip.MustParseAddr("169.254.169.254")
)

// WireServer is a simulated WireServer: it checks each request's line and
// headers, serves a goal state and records the health reports it accepts.
// Hold its lock to change the knobs or read the records while it serves.
type WireServer struct {
	sync.Mutex

	Incarnation int
	ContainerID string
	InstanceID  string
	// FailGoalState answers that many goal-state requests with 503.
	FailGoalState int
	// GoalStateBody, when set, replaces the goal-state document.
	GoalStateBody []byte
	// Status, when not zero, answers every request with it.
	Status int
	// BumpAfterReport moves to the next incarnation after the next
	// accepted report (and says so in the answer's header).
	BumpAfterReport bool
	// BumpBetween moves to the next incarnation once, right after serving
	// a goal state, so that the report that follows is stale.
	BumpBetween bool

	Requests      int
	GoalStateGets int
	HealthPosts   int
	Reports       []Health
	RawReports    [][]byte
	// Violations lists requests that broke the protocol (headers, method,
	// path, body); a correct client leaves it empty.
	Violations []string

	failed chan struct{}
}

// Health is this package's own reading of a Health report document.
type Health struct {
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

// NewWireServer returns a WireServer at incarnation 1.
func NewWireServer() *WireServer {
	return &WireServer{
		Incarnation: 1,
		ContainerID: "a3e6f1f5-7e4b-4a8a-9a77-2d8f0c6a1b42",
		InstanceID:  "f00dfeed0c2c4f6e9b1d3e0a7c5b9d11.gohv-vm",
		failed:      make(chan struct{}, 64),
	}
}

// Failed receives (without blocking the server; up to 64 queued) after
// each request answered with an error status.
func (f *WireServer) Failed() <-chan struct{} { return f.failed }

// Counts returns the goal-state requests, health posts and accepted
// reports so far.
func (f *WireServer) Counts() (gets, posts int, reports []Health) {
	f.Lock()
	defer f.Unlock()
	return f.GoalStateGets, f.HealthPosts, append([]Health(nil), f.Reports...)
}

// ProtocolViolations returns a copy of Violations.
func (f *WireServer) ProtocolViolations() []string {
	f.Lock()
	defer f.Unlock()
	return append([]string(nil), f.Violations...)
}

func (f *WireServer) violation(format string, args ...any) {
	f.Violations = append(f.Violations, fmt.Sprintf(format, args...))
}

func (f *WireServer) fail(w http.ResponseWriter, code int) {
	w.WriteHeader(code)
	select {
	case f.failed <- struct{}{}:
	default:
	}
}

// ServeHTTP answers one WireServer request.
func (f *WireServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.Lock()
	defer f.Unlock()
	f.Requests++
	if r.Header.Get("x-ms-version") != "2012-11-30" || r.Header.Get("x-ms-agent-name") == "" {
		f.violation("wire request %s %s: headers %v", r.Method, r.URL, r.Header)
		f.fail(w, http.StatusBadRequest)
		return
	}
	if f.Status != 0 {
		f.fail(w, f.Status)
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/machine/" && r.URL.RawQuery == "comp=goalstate":
		f.GoalStateGets++
		if f.FailGoalState > 0 {
			f.FailGoalState--
			f.fail(w, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		if f.GoalStateBody != nil {
			_, _ = w.Write(f.GoalStateBody)
			return
		}
		fmt.Fprintf(w, GoalStateTemplate, f.Incarnation, f.ContainerID, f.InstanceID)
		if f.BumpBetween {
			f.BumpBetween = false
			f.Incarnation++
		}
	case r.Method == http.MethodPost && r.URL.Path == "/machine" && r.URL.RawQuery == "comp=health":
		f.HealthPosts++
		if ct := r.Header.Get("Content-Type"); ct != "text/xml; charset=utf-8" {
			f.violation("health Content-Type %q", ct)
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			f.fail(w, http.StatusBadRequest)
			return
		}
		var h Health
		if err := xml.Unmarshal(body, &h); err != nil {
			f.violation("health body does not parse: %v\n%s", err, body)
			f.fail(w, http.StatusBadRequest)
			return
		}
		if h.Incarnation != fmt.Sprint(f.Incarnation) {
			// A report for a goal state that is no longer current.
			f.fail(w, http.StatusGone)
			return
		}
		if h.Container.ContainerID != f.ContainerID || h.Container.Role.InstanceID != f.InstanceID {
			f.fail(w, http.StatusBadRequest)
			return
		}
		f.Reports = append(f.Reports, h)
		f.RawReports = append(f.RawReports, body)
		if f.BumpAfterReport {
			f.BumpAfterReport = false
			f.Incarnation++
		}
		w.Header().Set("x-ms-latest-goal-state-incarnation-number", fmt.Sprint(f.Incarnation))
		w.WriteHeader(http.StatusOK)
	default:
		f.violation("unexpected wire request %s %s", r.Method, r.URL)
		f.fail(w, http.StatusNotFound)
	}
}

// GoalStateTemplate is a goal state in the shape the WireServer serves
// (cloud-init's unit tests and WALinuxAgent's test data have the same
// elements), with the three values the report echoes as verbs:
// incarnation, container id, instance id.
const GoalStateTemplate = `<?xml version="1.0" encoding="utf-8"?>
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

// IMDS is a simulated Instance Metadata Service: it requires "Metadata:
// true" (400 otherwise), can answer 410 while "starting", and serves the
// instance document and user data. Hold its lock to change the knobs.
type IMDS struct {
	sync.Mutex
	// Status, when not zero, answers every request with it.
	Status int
	// Fail410 answers that many requests with 410 Gone.
	Fail410 int
	// Instance is the instance document; nil serves InstanceDoc.
	Instance []byte
	// UserData is the user data as IMDS serves it (base64 text).
	UserData string

	InstanceGets      int
	UserDataGets      int
	MissingHeaderSeen bool
}

// ServeHTTP answers one IMDS request.
func (f *IMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.Lock()
	defer f.Unlock()
	if r.Header.Get("Metadata") != "true" || r.Header.Get("X-Forwarded-For") != "" {
		f.MissingHeaderSeen = true
		http.Error(w, `{"error":"Bad request. Required metadata header not specified"}`, http.StatusBadRequest)
		return
	}
	if f.Status != 0 {
		w.WriteHeader(f.Status)
		return
	}
	q := r.URL.Query()
	switch r.URL.Path {
	case "/metadata/instance":
		f.InstanceGets++
		if q.Get("api-version") != "2021-02-01" {
			http.Error(w, "bad api-version", http.StatusBadRequest)
			return
		}
	case "/metadata/instance/compute/userData":
		f.UserDataGets++
		if q.Get("api-version") != "2021-01-01" || q.Get("format") != "text" {
			http.Error(w, "bad query", http.StatusBadRequest)
			return
		}
	default:
		http.NotFound(w, r)
		return
	}
	if f.Fail410 > 0 {
		f.Fail410--
		w.WriteHeader(http.StatusGone)
		return
	}
	if r.URL.Path == "/metadata/instance/compute/userData" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, f.UserData)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if f.Instance != nil {
		_, _ = w.Write(f.Instance)
		return
	}
	_, _ = io.WriteString(w, InstanceDoc)
}

// InstanceDoc follows the example in Microsoft's IMDS documentation
// (api-version 2021-02-01), shortened to the fields gohv reads plus a few
// it ignores.
const InstanceDoc = `{
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
