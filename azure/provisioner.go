package azure

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Defaults for the zero values of Provisioner's fields.
const (
	DefaultAgentName      = "gohv"
	DefaultAttempts       = 30
	DefaultBackoff        = time.Second
	DefaultMaxBackoff     = 30 * time.Second
	DefaultRequestTimeout = 30 * time.Second

	// maxIncarnationRounds bounds how often a ready report is repeated
	// because the fabric named a newer goal-state incarnation.
	maxIncarnationRounds = 3
	// maxErrorBody bounds what is read (and discarded) of an error answer.
	maxErrorBody = 4 << 10
	// maxHealthAnswer bounds the answer to a health report (empty in
	// practice; its content is not used).
	maxHealthAnswer = 64 << 10
)

// Provisioner reports a gohv guest ready to the Azure fabric and reads its
// instance metadata. Configure it through the exported fields before the
// first method call; the zero value uses the defaults. A Provisioner must
// not be copied after first use.
type Provisioner struct {
	// Client sends the requests. Nil: a client of the Provisioner's own
	// that uses no proxy (IMDS refuses proxied requests) and follows no
	// redirect. A caller's client is used as it is.
	Client *http.Client
	// WireServer is the WireServer's address, normally from DHCP option
	// 245 (WireServerFromDHCP). Zero: DefaultWireServer.
	WireServer netip.Addr
	// Log receives one line per failed attempt and per outcome. Nil:
	// nothing is logged. Written from Run's goroutines; each line is one
	// Write call, serialised by the Provisioner.
	Log io.Writer
	// AgentName is sent as x-ms-agent-name. Empty: DefaultAgentName.
	AgentName string

	// WireServerURL and IMDSURL replace "http://<WireServer>" and
	// "http://169.254.169.254" as base URLs (scheme and host, no path).
	// For tests and for diagnosis through a forwarder; leave them empty
	// on Azure.
	WireServerURL string
	IMDSURL       string

	// Attempts bounds the tries of each operation (0: DefaultAttempts).
	// Between tries the Provisioner waits Backoff, doubling up to
	// MaxBackoff (0: DefaultBackoff, DefaultMaxBackoff); each try is
	// bounded by RequestTimeout (0: DefaultRequestTimeout). All waits end
	// when the context is done.
	Attempts       int
	Backoff        time.Duration
	MaxBackoff     time.Duration
	RequestTimeout time.Duration

	// SkipUserData: Run does not fetch user data.
	SkipUserData bool

	// OnDone, if set, is called once by Run with the result, on Run's
	// goroutine, after Done's channel is closed. It may block only Run.
	OnDone func(Result)

	// Lock order: mu, then logMu (never held together in practice).
	mu        sync.Mutex
	started   bool          // guarded by mu
	done      chan struct{} // guarded by mu; created on first need
	result    Result        // guarded by mu; written once before close(done)
	defClient *http.Client  // guarded by mu

	logMu sync.Mutex // serialises writes to Log
}

// Result is what Run found out.
type Result struct {
	// GoalState is the goal state the last health report answered;
	// nil when none was fetched.
	GoalState *GoalState
	// ReadyErr is nil when the fabric acknowledged the Ready report.
	ReadyErr error
	// Instance is the instance metadata; nil with MetadataErr on failure.
	Instance    *Instance
	MetadataErr error
	// UserData is the VM's decoded user data (nil: none, or not fetched).
	UserData    []byte
	UserDataErr error
}

// Run reports ready and fetches the instance metadata and user data, the
// two concurrently, each retried as configured; it returns when both have
// finished, after publishing the Result (Done, Result, OnDone). The kernel
// runs it on a goroutine of its own so that the application never waits for
// Azure. The returned error joins ReadyErr and MetadataErr. Run may be
// called once; a second call returns ErrAlreadyRun.
func (p *Provisioner) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return ErrAlreadyRun
	}
	p.started = true
	done := p.doneLocked()
	p.mu.Unlock()

	var res Result
	var wg sync.WaitGroup
	wg.Go(func() {
		res.GoalState, res.ReadyErr = p.reportHealth(ctx, HealthReport{State: StateReady})
	})
	wg.Go(func() {
		res.Instance, res.MetadataErr = p.Metadata(ctx)
		if !p.SkipUserData {
			res.UserData, res.UserDataErr = p.UserData(ctx)
		}
	})
	wg.Wait()
	if p.Client == nil {
		p.client().CloseIdleConnections()
	}

	p.mu.Lock()
	p.result = res
	close(done)
	p.mu.Unlock()
	if p.OnDone != nil {
		p.OnDone(res)
	}
	return errors.Join(res.ReadyErr, res.MetadataErr)
}

// Done returns a channel closed when Run has published its Result.
func (p *Provisioner) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.doneLocked()
}

func (p *Provisioner) doneLocked() chan struct{} {
	if p.done == nil {
		p.done = make(chan struct{})
	}
	return p.done
}

// Result returns Run's result; ok is false while Run has not finished.
func (p *Provisioner) Result() (res Result, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.doneLocked():
		return p.result, true
	default:
		return Result{}, false
	}
}

// ReportReady fetches the goal state and posts a Ready health report for
// it, retrying both as configured. It returns nil once the WireServer
// accepted the report.
func (p *Provisioner) ReportReady(ctx context.Context) error {
	_, err := p.reportHealth(ctx, HealthReport{State: StateReady})
	return err
}

// ReportFailure posts a NotReady report with sub-status ProvisioningFailed
// and the description (cut to 512 bytes), for a guest that cannot start
// its application; the fabric then fails the deployment at once instead of
// waiting for its time-out.
func (p *Provisioner) ReportFailure(ctx context.Context, description string) error {
	_, err := p.reportHealth(ctx, HealthReport{
		State:       StateNotReady,
		SubStatus:   SubStatusProvisionFault,
		Description: description,
	})
	return err
}

// GoalState fetches and parses the goal state once, without retries.
func (p *Provisioner) GoalState(ctx context.Context) (*GoalState, error) {
	body, _, err := p.do(ctx, "goal state", http.MethodGet, p.wireBase()+goalStatePath, p.wireHeaders, nil, maxGoalStateSize)
	if err != nil {
		return nil, err
	}
	return ParseGoalState(body)
}

// reportHealth is one health report: each attempt fetches the goal state
// afresh (the incarnation may have moved on since the last attempt) and
// posts the report for it. If the WireServer's answer names a different
// incarnation, the report is repeated for the new goal state, at most
// maxIncarnationRounds times.
func (p *Provisioner) reportHealth(ctx context.Context, r HealthReport) (*GoalState, error) {
	op := "report " + r.State
	var gs *GoalState
	for round := 1; ; round++ {
		var latest string
		err := p.retry(ctx, op, func(ctx context.Context) error {
			g, err := p.GoalState(ctx)
			if err != nil {
				return err
			}
			gs = g
			r.GoalState = *g
			doc, err := EncodeHealth(r)
			if err != nil {
				return err
			}
			_, hdr, err := p.do(ctx, "health", http.MethodPost, p.wireBase()+healthPath, func(h http.Header) {
				p.wireHeaders(h)
				h.Set("Content-Type", healthContentType)
			}, doc, maxHealthAnswer)
			if err != nil {
				return err
			}
			latest = hdr.Get(headerLatestIncarnation)
			return nil
		})
		if err != nil {
			return gs, err
		}
		if latest == "" || latest == gs.Incarnation || checkField("incarnation header", latest, maxFieldLen) != nil {
			p.logf("azure: %s: accepted for incarnation %s", op, gs.Incarnation)
			return gs, nil
		}
		if round == maxIncarnationRounds {
			p.logf("azure: %s: accepted for incarnation %s; fabric still names incarnation %.64q, giving up on it", op, gs.Incarnation, latest)
			return gs, nil
		}
		p.logf("azure: %s: accepted for incarnation %s but fabric names incarnation %.64q; reporting again", op, gs.Incarnation, latest)
	}
}

// Metadata fetches and validates the IMDS instance document, retrying as
// configured.
func (p *Provisioner) Metadata(ctx context.Context) (*Instance, error) {
	var in *Instance
	err := p.retry(ctx, "instance metadata", func(ctx context.Context) error {
		body, _, err := p.do(ctx, "instance metadata", http.MethodGet, p.imdsBase()+instancePath, imdsHeaders, nil, maxInstanceSize)
		if err != nil {
			return err
		}
		in, err = ParseInstance(body)
		return err
	})
	return in, err
}

// UserData fetches and decodes the VM's user data from IMDS, retrying as
// configured; nil, nil when the VM has none. (Custom data is not served by
// IMDS; see the package documentation.)
func (p *Provisioner) UserData(ctx context.Context) ([]byte, error) {
	var data []byte
	err := p.retry(ctx, "user data", func(ctx context.Context) error {
		body, _, err := p.do(ctx, "user data", http.MethodGet, p.imdsBase()+userDataPath, imdsHeaders, nil, maxUserDataBody)
		if err != nil {
			return err
		}
		data, err = DecodeUserData(body)
		return err
	})
	return data, err
}

func (p *Provisioner) wireHeaders(h http.Header) {
	name := p.AgentName
	if name == "" {
		name = DefaultAgentName
	}
	h.Set(headerAgentName, name)
	h.Set(headerVersion, WireProtocolVersion)
}

func imdsHeaders(h http.Header) { h.Set(headerMetadata, "true") }

func (p *Provisioner) wireBase() string {
	if p.WireServerURL != "" {
		return strings.TrimSuffix(p.WireServerURL, "/")
	}
	a := p.WireServer
	if !a.IsValid() {
		a = netip.MustParseAddr(DefaultWireServer)
	}
	// No port in the URL, so that the Host header is the bare address, as
	// the agents send it.
	if a.Is6() && !a.Is4In6() {
		return "http://[" + a.String() + "]"
	}
	return "http://" + a.Unmap().String()
}

func (p *Provisioner) imdsBase() string {
	if p.IMDSURL != "" {
		return strings.TrimSuffix(p.IMDSURL, "/")
	}
	return "http://" + IMDSAddress
}

func (p *Provisioner) client() *http.Client {
	if p.Client != nil {
		return p.Client
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.defClient == nil {
		p.defClient = &http.Client{
			Transport: &http.Transport{
				Proxy:               nil, // IMDS rejects proxied requests
				MaxIdleConnsPerHost: 2,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	return p.defClient
}

// do sends one request and returns the response body, read through a limit:
// a body longer than limit is ErrTooLarge. A status outside 2xx is a
// *StatusError.
func (p *Provisioner) do(ctx context.Context, op, method, url string, headers func(http.Header), body []byte, limit int64) ([]byte, http.Header, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, nil, fmt.Errorf("azure: %s: %w", op, err)
	}
	headers(req.Header)
	resp, err := p.client().Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("azure: %s: %w", op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil, nil, &StatusError{Op: op, Code: resp.StatusCode}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, nil, fmt.Errorf("azure: %s: reading body: %w", op, err)
	}
	if int64(len(b)) > limit {
		return nil, nil, fmt.Errorf("%w: %s body exceeds %d bytes", ErrTooLarge, op, limit)
	}
	return b, resp.Header, nil
}

// retry calls f until it succeeds, fails with a permanent error, the
// attempts are used up or ctx is done, waiting with exponential back-off
// between tries and logging each failure in one line.
func (p *Provisioner) retry(ctx context.Context, op string, f func(context.Context) error) error {
	attempts := p.Attempts
	if attempts <= 0 {
		attempts = DefaultAttempts
	}
	delay := p.Backoff
	if delay <= 0 {
		delay = DefaultBackoff
	}
	maxDelay := p.MaxBackoff
	if maxDelay <= 0 {
		maxDelay = DefaultMaxBackoff
	}
	timeout := p.RequestTimeout
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	for i := 1; ; i++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("azure: %s: %w", op, err)
		}
		actx, cancel := context.WithTimeout(ctx, timeout)
		err := f(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("azure: %s: %w (last error: %v)", op, ctx.Err(), err)
		}
		if !retryable(err) || i >= attempts {
			p.logf("azure: %s: attempt %d/%d failed, giving up: %v", op, i, attempts, err)
			return fmt.Errorf("azure: %s: attempt %d/%d: %w", op, i, attempts, err)
		}
		p.logf("azure: %s: attempt %d/%d failed, retrying in %v: %v", op, i, attempts, delay, err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("azure: %s: %w (last error: %v)", op, ctx.Err(), err)
		case <-t.C:
		}
		delay = min(delay*2, maxDelay)
	}
}

// logf writes one line to Log. Control characters from network-supplied
// text are quoted by the callers' %v of errors built with %q, and new lines
// are replaced here so that a line stays a line.
func (p *Provisioner) logf(format string, args ...any) {
	if p.Log == nil {
		return
	}
	line := fmt.Sprintf(format, args...)
	line = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, line) + "\n"
	p.logMu.Lock()
	defer p.logMu.Unlock()
	_, _ = io.WriteString(p.Log, line)
}
