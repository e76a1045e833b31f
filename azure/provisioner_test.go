package azure_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gohv/gohv/azure"
	"github.com/gohv/gohv/tools/hvsim/azurefabric"
)

// syncBuffer is a log sink safe for the Provisioner's goroutines.
type syncBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSuffix(s.b.String(), "\n"), "\n")
}

// newProvisioner points a Provisioner at the fakes. Tests must always set
// both base URLs: no test traffic goes to Azure's real addresses.
func newProvisioner(wireURL, imdsURL string, log *syncBuffer) *azure.Provisioner {
	p := &azure.Provisioner{
		WireServerURL: wireURL,
		IMDSURL:       imdsURL,
		Attempts:      5,
		Backoff:       time.Millisecond,
		MaxBackoff:    4 * time.Millisecond,
	}
	if log != nil {
		p.Log = log
	}
	return p
}

func TestReportReady(t *testing.T) {
	wire, ws := newFakeWire(t)
	var log syncBuffer
	p := newProvisioner(ws.URL, "http://127.0.0.1:1", &log)
	if err := p.ReportReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	gets, posts, reports := wire.Counts()
	if gets != 1 || posts != 1 || len(reports) != 1 {
		t.Fatalf("goal state GETs %d, health POSTs %d, reports %d; want 1, 1, 1", gets, posts, len(reports))
	}
	r := reports[0]
	if r.Incarnation != "1" || r.Container.Role.State != "Ready" || r.Container.Role.SubStatus != "" {
		t.Fatalf("report %+v", r)
	}
	// The document on the wire, byte for byte (hand-written).
	want := `<?xml version="1.0" encoding="utf-8"?><Health xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"><GoalStateIncarnation>1</GoalStateIncarnation><Container><ContainerId>a3e6f1f5-7e4b-4a8a-9a77-2d8f0c6a1b42</ContainerId><RoleInstanceList><Role><InstanceId>f00dfeed0c2c4f6e9b1d3e0a7c5b9d11.gohv-vm</InstanceId><Health><State>Ready</State></Health></Role></RoleInstanceList></Container></Health>`
	if got := string(wire.RawReports[0]); got != want {
		t.Fatalf("health body\ngot  %s\nwant %s", got, want)
	}
	if l := log.lines(); len(l) != 1 || !strings.Contains(l[0], "accepted for incarnation 1") {
		t.Fatalf("log %q", l)
	}
}

func TestReportReadyRetries(t *testing.T) {
	wire, ws := newFakeWire(t)
	wire.FailGoalState = 2
	var log syncBuffer
	p := newProvisioner(ws.URL, "http://127.0.0.1:1", &log)
	if err := p.ReportReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	gets, posts, reports := wire.Counts()
	if gets != 3 || posts != 1 || len(reports) != 1 {
		t.Fatalf("goal state GETs %d, health POSTs %d, reports %d; want 3, 1, 1", gets, posts, len(reports))
	}
	l := log.lines()
	if len(l) != 3 || log.writes != 3 {
		t.Fatalf("want 2 failure lines and 1 success line in 3 writes, got %d writes: %q", log.writes, l)
	}
	for i, s := range l[:2] {
		want := fmt.Sprintf("attempt %d/5 failed, retrying", i+1)
		if !strings.Contains(s, want) || !strings.Contains(s, "503") {
			t.Errorf("line %d %q lacks %q and the status", i, s, want)
		}
	}
}

func TestReportReadyGivesUp(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(*azurefabric.WireServer)
		wantErr  error
		wantGets int
	}{
		{"bad xml", func(f *azurefabric.WireServer) { f.GoalStateBody = []byte("<GoalState><Incarnation>1</Incarn") }, azure.ErrBadResponse, 5},
		{"missing fields", func(f *azurefabric.WireServer) {
			f.GoalStateBody = []byte("<GoalState><Incarnation>1</Incarnation></GoalState>")
		}, azure.ErrBadResponse, 5},
		{"oversized", func(f *azurefabric.WireServer) {
			f.GoalStateBody = append([]byte("<GoalState>"), bytes.Repeat([]byte(" "), 256<<10)...)
		}, azure.ErrTooLarge, 5},
		{"always 500", func(f *azurefabric.WireServer) { f.Status = 500 }, azure.ErrHTTPStatus, 0},
		{"403 is permanent", func(f *azurefabric.WireServer) { f.Status = 403 }, azure.ErrHTTPStatus, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire, ws := newFakeWire(t)
			tt.setup(wire)
			var log syncBuffer
			p := newProvisioner(ws.URL, "http://127.0.0.1:1", &log)
			err := p.ReportReady(context.Background())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			gets, posts, _ := wire.Counts()
			if posts != 0 || (tt.wantGets != 0 && gets != tt.wantGets) {
				t.Fatalf("GETs %d POSTs %d", gets, posts)
			}
			var se *azure.StatusError
			if errors.As(err, &se) {
				wantLines := 5
				if se.Code == 403 {
					wantLines = 1
				}
				if l := log.lines(); len(l) != wantLines {
					t.Fatalf("status %d: %d log lines, want %d: %q", se.Code, len(l), wantLines, l)
				}
			}
			if l := log.lines(); !strings.Contains(l[len(l)-1], "giving up") {
				t.Fatalf("last line %q", l[len(l)-1])
			}
		})
	}
}

// A report for a goal state that moved on between GET and POST is refused
// (the fake answers 410); the next attempt fetches the new goal state.
func TestReportReadyStaleIncarnation(t *testing.T) {
	wire, ws := newFakeWire(t)
	wire.BumpBetween = true
	p := newProvisioner(ws.URL, "http://127.0.0.1:1", nil)
	if err := p.ReportReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	gets, posts, reports := wire.Counts()
	if gets != 2 || posts != 2 || len(reports) != 1 || reports[0].Incarnation != "2" {
		t.Fatalf("GETs %d POSTs %d reports %+v; want 2, 2, one for incarnation 2", gets, posts, reports)
	}
}

// When the WireServer's answer names a newer incarnation, the report is
// repeated for the new goal state.
func TestReportReadyNewIncarnation(t *testing.T) {
	wire, ws := newFakeWire(t)
	wire.BumpAfterReport = true
	var log syncBuffer
	p := newProvisioner(ws.URL, "http://127.0.0.1:1", &log)
	if err := p.ReportReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, _, reports := wire.Counts()
	if len(reports) != 2 || reports[0].Incarnation != "1" || reports[1].Incarnation != "2" {
		t.Fatalf("reports %+v; want incarnations 1 then 2", reports)
	}
	if l := log.lines(); len(l) != 2 || !strings.Contains(l[0], "reporting again") {
		t.Fatalf("log %q", l)
	}
}

func TestReportFailure(t *testing.T) {
	wire, ws := newFakeWire(t)
	p := newProvisioner(ws.URL, "http://127.0.0.1:1", nil)
	if err := p.ReportFailure(context.Background(), "no disk"); err != nil {
		t.Fatal(err)
	}
	_, _, reports := wire.Counts()
	if len(reports) != 1 || reports[0].Container.Role.State != "NotReady" || reports[0].Container.Role.SubStatus != "ProvisioningFailed" {
		t.Fatalf("reports %+v", reports)
	}
}

// Cancelling the context ends a back-off wait at once.
func TestReportReadyContext(t *testing.T) {
	wire, ws := newFakeWire(t)
	wire.Status = 503
	p := newProvisioner(ws.URL, "http://127.0.0.1:1", nil)
	p.Backoff = time.Hour
	p.MaxBackoff = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.ReportReady(ctx) }()
	<-wire.Failed() // the first attempt failed; the Provisioner now waits an hour
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	wire.Lock()
	n := wire.Requests
	wire.Unlock()
	if n != 1 {
		t.Fatalf("%d requests after cancel, want 1", n)
	}
}

func TestMetadata(t *testing.T) {
	imds, is := newFakeIMDS(t)
	imds.Fail410 = 2
	imds.UserData = "I2Nsb3VkLWNvbmZpZwo=\n"
	var log syncBuffer
	p := newProvisioner("http://127.0.0.1:1", is.URL, &log)
	in, err := p.Metadata(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if in.ComputerName != "gohv-host" || in.VMID != "02aab8a4-74ef-476e-8182-f6d2ba4166a6" || len(in.Interfaces) != 1 {
		t.Fatalf("instance %+v", in)
	}
	if l := log.lines(); len(l) != 2 || !strings.Contains(l[0], "410") {
		t.Fatalf("log %q; want two lines for the two 410s", l)
	}
	ud, err := p.UserData(context.Background())
	if err != nil || string(ud) != "#cloud-config\n" {
		t.Fatalf("user data %q, %v", ud, err)
	}
	if imds.MissingHeaderSeen {
		t.Fatal("a request lacked the Metadata header")
	}
}

func TestMetadataRejects(t *testing.T) {
	tests := []struct {
		name    string
		body    []byte
		wantErr error
	}{
		{"oversized", append([]byte(`{"compute":{"name":"`), bytes.Repeat([]byte("a"), 1<<20)...), azure.ErrTooLarge},
		{"bad json", []byte(`{"compute":`), azure.ErrBadResponse},
		{"bad vmId", []byte(`{"compute":{"vmId":"nope"}}`), azure.ErrBadResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			imds, is := newFakeIMDS(t)
			imds.Instance = tt.body
			p := newProvisioner("http://127.0.0.1:1", is.URL, nil)
			p.Attempts = 2
			if _, err := p.Metadata(context.Background()); !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			imds.Lock()
			n := imds.InstanceGets
			imds.Unlock()
			if n != 2 {
				t.Fatalf("%d GETs, want 2", n)
			}
		})
	}
}

func TestRun(t *testing.T) {
	wire, ws := newFakeWire(t)
	wire.FailGoalState = 1
	imds, is := newFakeIMDS(t)
	imds.UserData = base64Text("#!/bin/true\n")
	p := newProvisioner(ws.URL, is.URL, nil)
	if _, ok := p.Result(); ok {
		t.Fatal("Result ok before Run")
	}
	var cbRes azure.Result
	var cbCalls int
	p.OnDone = func(r azure.Result) {
		cbCalls++
		cbRes = r
	}
	done := p.Done()
	errc := make(chan error, 1)
	go func() { errc <- p.Run(context.Background()) }()
	<-done
	res, ok := p.Result()
	if !ok {
		t.Fatal("Result not ok after Done")
	}
	if res.ReadyErr != nil || res.MetadataErr != nil || res.UserDataErr != nil {
		t.Fatalf("result errors: %v %v %v", res.ReadyErr, res.MetadataErr, res.UserDataErr)
	}
	if res.GoalState == nil || res.GoalState.Incarnation != "1" || res.Instance.Name != "gohv-vm" || string(res.UserData) != "#!/bin/true\n" {
		t.Fatalf("result %+v", res)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if cbCalls != 1 || cbRes.Instance != res.Instance {
		t.Fatalf("OnDone called %d times with %+v", cbCalls, cbRes)
	}
	if err := p.Run(context.Background()); !errors.Is(err, azure.ErrAlreadyRun) {
		t.Fatalf("second Run: %v", err)
	}
}

// Run publishes a result even when everything fails, and two Provisioners
// in one process do not share state.
func TestRunFailuresAndTwoProvisioners(t *testing.T) {
	wire, ws := newFakeWire(t)
	wire.Status = 403
	imds, is := newFakeIMDS(t)
	imds.Status = 403
	bad := newProvisioner(ws.URL, is.URL, nil)

	wire2, ws2 := newFakeWire(t)
	_, is2 := newFakeIMDS(t)
	good := newProvisioner(ws2.URL, is2.URL, nil)
	good.SkipUserData = true

	var wg sync.WaitGroup
	var badErr, goodErr error
	wg.Go(func() { badErr = bad.Run(context.Background()) })
	wg.Go(func() { goodErr = good.Run(context.Background()) })
	wg.Wait()

	res, ok := bad.Result()
	if !ok || !errors.Is(res.ReadyErr, azure.ErrHTTPStatus) || !errors.Is(res.MetadataErr, azure.ErrHTTPStatus) || res.Instance != nil {
		t.Fatalf("bad result %+v, ok %v", res, ok)
	}
	if !errors.Is(badErr, azure.ErrHTTPStatus) {
		t.Fatalf("bad Run error %v", badErr)
	}
	if goodErr != nil {
		t.Fatalf("good Run: %v", goodErr)
	}
	if _, _, reports := wire2.Counts(); len(reports) != 1 {
		t.Fatalf("good provisioner: %d reports", len(reports))
	}
	if r, _ := good.Result(); r.UserData != nil || r.UserDataErr != nil {
		t.Fatalf("SkipUserData: %+v", r)
	}
}

// A caller's client is used as it is; here it adds a header the fakes
// would not otherwise see.
func TestCallerClient(t *testing.T) {
	var seen []string
	var mu sync.Mutex
	wire, ws := newFakeWire(t)
	p := newProvisioner(ws.URL, "http://127.0.0.1:1", nil)
	p.AgentName = "custom-agent"
	p.Client = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		seen = append(seen, r.Header.Get("x-ms-agent-name"))
		mu.Unlock()
		return http.DefaultTransport.RoundTrip(r)
	})}
	if err := p.ReportReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[0] != "custom-agent" || seen[1] != "custom-agent" {
		t.Fatalf("agent names seen by the caller's transport: %q", seen)
	}
	if _, posts, _ := wire.Counts(); posts != 1 {
		t.Fatalf("%d POSTs", posts)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// With the base URLs empty the Provisioner addresses the WireServer from
// WireServer (or the default) and IMDS at 169.254.169.254. The caller's
// transport here answers in-process from the fakes' handlers: no packet is
// sent anywhere.
func TestDefaultURLs(t *testing.T) {
	tests := []struct {
		name       string
		wireServer string // "" = zero Addr
		wantHost   string
	}{
		{"default", "", "168.63.129.16"},
		{"from DHCP", "10.9.8.7", "10.9.8.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire := newFakeWireState(t)
			imds := &azurefabric.IMDS{}
			var mu sync.Mutex
			var urls []string
			p := &azure.Provisioner{
				Attempts: 1,
				Client: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
					mu.Lock()
					urls = append(urls, r.Method+" "+r.URL.String()+" Host="+r.Host)
					mu.Unlock()
					rec := httptest.NewRecorder()
					if r.URL.Host == azure.IMDSAddress {
						imds.ServeHTTP(rec, r)
					} else {
						wire.ServeHTTP(rec, r)
					}
					return rec.Result(), nil
				})},
			}
			if tt.wireServer != "" {
				p.WireServer = netip.MustParseAddr(tt.wireServer)
			}
			if err := p.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			want := map[string]bool{
				"GET http://" + tt.wantHost + "/machine/?comp=goalstate Host=" + tt.wantHost:                                            true,
				"POST http://" + tt.wantHost + "/machine?comp=health Host=" + tt.wantHost:                                               true,
				"GET http://169.254.169.254/metadata/instance?api-version=2021-02-01 Host=169.254.169.254":                              true,
				"GET http://169.254.169.254/metadata/instance/compute/userData?api-version=2021-01-01&format=text Host=169.254.169.254": true,
			}
			mu.Lock()
			defer mu.Unlock()
			if len(urls) != len(want) {
				t.Fatalf("requests %q", urls)
			}
			for _, u := range urls {
				if !want[u] {
					t.Errorf("unexpected request %q", u)
				}
			}
		})
	}
}
