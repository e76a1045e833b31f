package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/gohv/gohv/drivers/shutdown"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// Option configures Run.
type Option func(*runConfig)

type runConfig struct {
	Config
	grace           time.Duration
	shutdownTimeout time.Duration
}

// WithConfig sets the kernel's configuration (platform, extra drivers,
// storage settings, log).
func WithConfig(c Config) Option { return func(r *runConfig) { r.Config = c } }

// WithGracePeriod bounds how long the application may take to return
// after its context is cancelled (default DefaultGracePeriod).
func WithGracePeriod(d time.Duration) Option { return func(r *runConfig) { r.grace = d } }

// WithDriver binds d to the device class class, replacing a standard
// driver for that class.
func WithDriver(class chanmsg.GUID, d Driver) Option {
	return func(r *runConfig) {
		if r.Drivers == nil {
			r.Drivers = map[chanmsg.GUID]Driver{}
		}
		r.Drivers[class] = d
	}
}

type kernelKey struct{}

// FromContext returns the Kernel running the application whose context
// ctx is (or derives from), nil outside Run.
func FromContext(ctx context.Context) *Kernel {
	k, _ := ctx.Value(kernelKey{}).(*Kernel)
	return k
}

// Exit statuses Run reports besides the application's own.
const (
	// ExitError is the status of an application that returned an error.
	ExitError = 1
	// ExitPanic is the status of an application that panicked (as Go
	// itself uses for an unrecovered panic).
	ExitPanic = 2
	// ExitStart is the status when the kernel could not start.
	ExitStart = 3
)

// Run is a gohv program's main: it starts the kernel (Start), runs app
// with a context that is cancelled when the host asks the VM to shut down,
// then runs the shutdown path (Kernel.Close: flush disks, close drivers,
// unload VMBus) and exits with the application's status, which a gohv
// kernel prints on COM1 before it powers off (or restarts, when the host
// asked for a restart). It does not return.
func Run(app func(ctx context.Context) error, opts ...Option) {
	code, req := Execute(context.Background(), app, opts...)
	if req == shutdown.Reboot {
		reboot()
	}
	os.Exit(code)
}

// Execute is Run without the exit: it returns the exit status and what the
// host asked for (shutdown.PowerOff when the application ended by itself).
// The simulator and tests use it.
func Execute(ctx context.Context, app func(ctx context.Context) error, opts ...Option) (int, shutdown.Kind) {
	rc := runConfig{grace: DefaultGracePeriod, shutdownTimeout: DefaultShutdownTimeout}
	for _, o := range opts {
		o(&rc)
	}
	k, err := Start(ctx, rc.Config)
	if err != nil {
		fmt.Fprintf(logOf(rc.Config), "gohv: %v\n", err)
		return ExitStart, shutdown.PowerOff
	}
	code, kind := k.run(ctx, app, rc.grace)
	sctx, cancel := context.WithTimeout(context.Background(), rc.shutdownTimeout)
	defer cancel()
	if err := k.Close(sctx); err != nil {
		k.logf("gohv: shutdown: %v", err)
	}
	return code, kind
}

// run runs app until it returns or the host asks for a shutdown, then
// gives it the grace period.
func (k *Kernel) run(ctx context.Context, app func(ctx context.Context) error, grace time.Duration) (int, shutdown.Kind) {
	actx, cancel := context.WithCancel(context.WithValue(ctx, kernelKey{}, k))
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- k.call(actx, app) }()

	kind := shutdown.PowerOff
	select {
	case code := <-done:
		return code, kind
	case <-ctx.Done():
		k.logf("gohv: stopping the application: %v", ctx.Err())
	case req := <-k.requests(actx):
		kind = req.Kind
		k.logf("gohv: the host asks for %s (%s); stopping the application", req.Kind, req.Message)
	}
	cancel()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case code := <-done:
		return code, kind
	case <-t.C:
		k.logf("gohv: the application did not return within %v; shutting down anyway", grace)
		return ExitError, kind
	}
}

// requests delivers the host's next shutdown request.
func (k *Kernel) requests(ctx context.Context) <-chan shutdown.Request {
	ch := make(chan shutdown.Request, 1)
	go func() {
		if r, err := k.Power.Wait(ctx); err == nil {
			ch <- r
		}
	}()
	return ch
}

// call runs app, turning its error or panic into an exit status.
func (k *Kernel) call(ctx context.Context, app func(ctx context.Context) error) (code int) {
	defer func() {
		if p := recover(); p != nil {
			k.logf("panic: %v\n\n%s", p, debug.Stack())
			code = ExitPanic
		}
	}()
	if err := app(ctx); err != nil {
		if !errors.Is(err, context.Canceled) || ctx.Err() == nil {
			k.logf("gohv: application: %v", err)
			return ExitError
		}
	}
	return 0
}

func logOf(c Config) interface{ Write([]byte) (int, error) } {
	if c.Log != nil {
		return c.Log
	}
	return os.Stdout
}
