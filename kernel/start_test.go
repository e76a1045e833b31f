package kernel_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gohv/gohv/drivers/block"
	"github.com/gohv/gohv/drivers/shutdown"
	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/kernel"
	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/simhost"
	"github.com/gohv/gohv/tools/hvsim/storvsp"
)

// profiles are the simulated Windows Server releases.
var profiles = []hvsim.Profile{hvsim.WS2012R2, hvsim.WS2016, hvsim.WS2019, hvsim.WS2022}

// syncBuffer is a log the kernel's goroutines and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// machine is a simulated VM whose SCSI LUN 0 is a memory store the test
// can inspect.
type machine struct {
	*simhost.Machine
	store *storvsp.MemStore
	log   *syncBuffer
}

const diskBytes = 4 << 20

// newMachine assembles a simulated VM of profile p with one 4 MiB disk
// (write-back cache on) and checks at clean-up that the host recorded no
// protocol violations.
func newMachine(t *testing.T, p hvsim.Profile) *machine {
	t.Helper()
	return newMachineConfig(t, simhost.Config{Profile: p})
}

func newMachineConfig(t *testing.T, cfg simhost.Config) *machine {
	t.Helper()
	m, err := simhost.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mc := &machine{Machine: m, store: storvsp.NewMemStore(diskBytes), log: &syncBuffer{}}
	if err := m.SCSI.Attach(storvsp.Addr{}, storvsp.LUNConfig{Store: mc.store, WriteCache: true, Serial: "test"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Close()
		if v := m.Host.Violations(); len(v) != 0 {
			t.Errorf("host recorded %d protocol violations, first: %v", len(v), v[0])
		}
		if t.Failed() {
			t.Logf("kernel log:\n%s", mc.log.String())
		}
	})
	return mc
}

func (m *machine) config() kernel.Config {
	return kernel.Config{
		Platform: func() (hv.Platform, error) { return m.Host.Platform(), nil },
		Log:      m.log,
	}
}

// start starts a kernel on m and closes it at clean-up.
func (m *machine) start(t *testing.T) *kernel.Kernel {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	k, err := kernel.Start(ctx, m.config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		if err := k.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return k
}

// TestExecuteStatus checks the exit status and log of each way an
// application can end.
func TestExecuteStatus(t *testing.T) {
	errApp := errors.New("disk full")
	for _, tc := range []struct {
		name   string
		app    func(ctx context.Context) error
		status int
		log    []string
	}{
		{"nil", func(ctx context.Context) error { return nil }, 0, nil},
		{"error", func(ctx context.Context) error { return fmt.Errorf("saving: %w", errApp) }, kernel.ExitError,
			[]string{"gohv: application: saving: disk full"}},
		{"panic", func(ctx context.Context) error { panic("out of bananas") }, kernel.ExitPanic,
			[]string{"panic: out of bananas", "goroutine ", "start_test.go"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(t, hvsim.WS2022)
			ctx, cancel := context.WithTimeout(context.Background(), testWait)
			defer cancel()
			ran := false
			code, kind := kernel.Execute(ctx, func(ctx context.Context) error {
				ran = kernel.FromContext(ctx) != nil
				return tc.app(ctx)
			}, kernel.WithConfig(m.config()))
			if code != tc.status || kind != shutdown.PowerOff {
				t.Fatalf("Execute = %d, %v; want %d, power-off", code, kind, tc.status)
			}
			if !ran {
				t.Fatal("FromContext returned nil inside the application")
			}
			log := m.log.String()
			for _, want := range tc.log {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %q:\n%s", want, log)
				}
			}
			if tc.status == 0 && strings.Contains(log, "application:") {
				t.Errorf("log reports an application failure:\n%s", log)
			}
		})
	}
}

// TestExecuteGracePeriod: an application that ignores its cancelled
// context is abandoned after the grace period with status 1, and the
// kernel still shuts down.
func TestExecuteGracePeriod(t *testing.T) {
	m := newMachine(t, hvsim.WS2022)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	release := make(chan struct{})
	defer close(release) // lets the stuck application go at the end
	type result struct {
		code int
		kind shutdown.Kind
	}
	done := make(chan result, 1)
	go func() {
		code, kind := kernel.Execute(ctx, func(context.Context) error {
			close(started)
			<-release // ignores cancellation
			return nil
		}, kernel.WithConfig(m.config()), kernel.WithGracePeriod(20*time.Millisecond))
		done <- result{code, kind}
	}()
	select {
	case <-started:
	case <-time.After(testWait):
		t.Fatal("the application never started")
	}
	cancel()
	select {
	case r := <-done:
		if r.code != kernel.ExitError || r.kind != shutdown.PowerOff {
			t.Fatalf("Execute = %d, %v; want %d, power-off", r.code, r.kind, kernel.ExitError)
		}
	case <-time.After(testWait):
		t.Fatal("Execute did not return after the grace period")
	}
	if log := m.log.String(); !strings.Contains(log, "did not return within 20ms") {
		t.Errorf("log does not report the abandoned application:\n%s", log)
	}
}

// TestExecuteHostShutdown: the host's shutdown integration service
// cancels the application's context; Execute reports what the host asked
// for.
func TestExecuteHostShutdown(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags uint32
		kind  shutdown.Kind
	}{
		{"power-off", 0, shutdown.PowerOff},
		{"restart", hvsim.ShutdownRestart, shutdown.Reboot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(t, hvsim.WS2022)
			ctx, cancel := context.WithTimeout(context.Background(), testWait)
			defer cancel()
			hresult := make(chan error, 1)
			code, kind := kernel.Execute(ctx, func(actx context.Context) error {
				go func() {
					hr, err := m.Standard.Shutdown.Request(ctx, tc.flags, "test "+tc.name)
					if err == nil && hr != hvsim.HResultOK {
						err = fmt.Errorf("HRESULT %#x", hr)
					}
					hresult <- err
				}()
				<-actx.Done()
				// The host has its answer before the kernel closes the
				// channel (the simulated host drops an answer still in
				// the ring when the guest closes right after writing it).
				if err := <-hresult; err != nil {
					t.Errorf("host's request: %v", err)
				}
				return actx.Err() // cancellation is a clean exit
			}, kernel.WithConfig(m.config()))
			if code != 0 || kind != tc.kind {
				t.Fatalf("Execute = %d, %v; want 0, %v", code, kind, tc.kind)
			}
			if log := m.log.String(); !strings.Contains(log, "the host asks for "+tc.kind.String()+" (test "+tc.name+")") {
				t.Errorf("log lacks the request:\n%s", log)
			}
		})
	}
}

// TestExecuteNoPlatform: without Hyper-V the kernel says so in one line and
// the application still runs.
func TestExecuteNoPlatform(t *testing.T) {
	var log syncBuffer
	var k *kernel.Kernel
	code, kind := kernel.Execute(context.Background(), func(ctx context.Context) error {
		k = kernel.FromContext(ctx)
		return nil
	}, kernel.WithConfig(kernel.Config{Log: &log}))
	if code != 0 || kind != shutdown.PowerOff {
		t.Fatalf("Execute = %d, %v; want 0, power-off", code, kind)
	}
	if k == nil {
		t.Fatal("the application did not run with a kernel")
	}
	if !errors.Is(k.NoVMBus(), kernel.ErrNoPlatform) || k.Bus() != nil || k.VMBusVersion() != 0 {
		t.Fatalf("NoVMBus %v, Bus %v, version %v", k.NoVMBus(), k.Bus(), k.VMBusVersion())
	}
	want := "gohv: no Hyper-V VMBus on this machine; running the application without VMBus\n"
	if got := log.String(); got != want {
		t.Fatalf("log = %q, want %q", got, want)
	}
}

// TestStartProfiles binds the standard drivers on every simulated Windows
// Server release without protocol violations (checked at clean-up).
func TestStartProfiles(t *testing.T) {
	for _, p := range profiles {
		t.Run(p.String(), func(t *testing.T) {
			m := newMachine(t, p)
			k := m.start(t)
			if k.VMBusVersion() == 0 {
				t.Fatal("no VMBus version")
			}
			bound := map[string]int{}
			for _, b := range k.Devices() {
				if b.Err != nil {
					t.Errorf("binding failed: %v", b)
				}
				if b.Bound() {
					bound[b.Driver]++
				}
			}
			for _, d := range []string{"heartbeat", "shutdown", "timesync", "kvp", "vss", "storvsc"} {
				if bound[d] != 1 {
					t.Errorf("driver %s bound %d times; bindings %v", d, bound[d], k.Devices())
				}
			}
			if n := len(k.Disks.Devices()); n != 1 {
				t.Fatalf("%d disks, want 1", n)
			}
			if info := k.Disks.Devices()[0].Info(); info.Sectors*uint64(info.SectorSize) != diskBytes || !info.WriteCache {
				t.Fatalf("disk info %+v", info)
			}
		})
	}
}

// TestCloseFlushesDisks: data written into the host's write-back caches
// of two disks is durable in their stores once Close (the shutdown path)
// returns, through a SYNCHRONIZE CACHE per disk. The flushes are counted
// by the host's controller, so they went over the channel, before VMBus
// was unloaded.
func TestCloseFlushesDisks(t *testing.T) {
	m := newMachine(t, hvsim.WS2022)
	second := storvsp.NewMemStore(diskBytes)
	if err := m.SCSI.Attach(storvsp.Addr{LUN: 1}, storvsp.LUNConfig{Store: second, WriteCache: true}); err != nil {
		t.Fatal(err)
	}
	k := m.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	devs := k.Disks.Devices()
	if len(devs) != 2 {
		t.Fatalf("%d disks, want 2", len(devs))
	}
	data := bytes.Repeat([]byte("gohv"), 2048) // 8 KiB
	const off = 64 << 10
	for _, d := range devs {
		if _, err := d.WriteAt(ctx, data, off); err != nil {
			t.Fatal(err)
		}
	}
	stores := map[uint8]*storvsp.MemStore{0: m.store, 1: second}
	before := map[uint8]storvsp.LUNStats{}
	for lun, s := range stores {
		st, _ := m.SCSI.LUNStats(storvsp.Addr{LUN: lun})
		if st.DirtyBlocks == 0 || bytes.Equal(s.Bytes()[off:off+len(data)], data) {
			t.Fatalf("LUN %d: the write is already durable before Close (stats %+v): the test proves nothing", lun, st)
		}
		before[lun] = st
	}
	if err := k.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for lun, s := range stores {
		if !bytes.Equal(s.Bytes()[off:off+len(data)], data) {
			t.Errorf("LUN %d: the data is not in the store after Close", lun)
		}
		st, _ := m.SCSI.LUNStats(storvsp.Addr{LUN: lun})
		if st.Flushes != before[lun].Flushes+1 || st.DirtyBlocks != 0 {
			t.Errorf("LUN %d after Close: %+v, want one more flush and no dirty blocks", lun, st)
		}
	}
	for _, d := range devs {
		if _, err := d.ReadAt(ctx, make([]byte, 512), 0); !errors.Is(err, block.ErrRemoved) {
			t.Fatalf("read after Close: %v, want ErrRemoved", err)
		}
	}
}

// TestDiskHotPlug: disks attached and detached while the kernel runs
// appear in and disappear from k.Disks, with Watch events.
func TestDiskHotPlug(t *testing.T) {
	m := newMachine(t, hvsim.WS2022)
	k := m.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	w := k.Disks.Watch()
	defer w.Close()
	first := nextEvent(ctx, t, w)
	if first.Kind != block.Added || first.Device != k.Disks.Devices()[0] {
		t.Fatalf("first event %v, want the boot-time disk added", first.Kind)
	}

	second := storvsp.NewMemStore(2 << 20)
	if err := m.SCSI.Attach(storvsp.Addr{LUN: 1}, storvsp.LUNConfig{Store: second, Serial: "hot"}); err != nil {
		t.Fatal(err)
	}
	e := nextEvent(ctx, t, w)
	if e.Kind != block.Added || e.Device.Info().Sectors*uint64(e.Device.Info().SectorSize) != 2<<20 {
		t.Fatalf("event %v %+v, want the 2 MiB disk added", e.Kind, e.Device.Info())
	}
	if n := len(k.Disks.Devices()); n != 2 {
		t.Fatalf("%d disks after hot-add, want 2", n)
	}
	if _, err := e.Device.WriteAt(ctx, bytes.Repeat([]byte{0xA5}, 512), 0); err != nil {
		t.Fatal(err)
	}
	if second.Bytes()[0] != 0xA5 {
		t.Fatal("write to the hot-added disk did not reach its store")
	}

	if err := m.SCSI.Detach(storvsp.Addr{LUN: 1}); err != nil {
		t.Fatal(err)
	}
	r := nextEvent(ctx, t, w)
	if r.Kind != block.Removed || r.Device != e.Device {
		t.Fatalf("event %v %v, want the hot-added disk removed", r.Kind, r.Device.Info().Name)
	}
	devs := k.Disks.Devices()
	if len(devs) != 1 || devs[0] == e.Device {
		t.Fatalf("disks after hot-remove: %v", devs)
	}
	if _, err := e.Device.ReadAt(ctx, make([]byte, 512), 0); !errors.Is(err, block.ErrRemoved) {
		t.Fatalf("read from the removed disk: %v, want ErrRemoved", err)
	}
}

// TestDiskRescind: the host withdraws the controller with a request in
// flight; that request and later ones fail with ErrRemoved, the disk
// leaves k.Disks, and the shutdown path still completes.
func TestDiskRescind(t *testing.T) {
	m := newMachine(t, hvsim.WS2022)
	k := m.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	w := k.Disks.Watch()
	defer w.Close()
	disk := k.Disks.Devices()[0]
	if e := nextEvent(ctx, t, w); e.Kind != block.Added || e.Device != disk {
		t.Fatalf("first event %v, want the disk added", e.Kind)
	}

	m.SCSI.RescindAfter(0) // the next SRB is never completed: the controller goes
	buf := make([]byte, 4096)
	if _, err := disk.ReadAt(ctx, buf, 0); !errors.Is(err, block.ErrRemoved) {
		t.Fatalf("read in flight at the rescind: %v, want ErrRemoved", err)
	}
	if e := nextEvent(ctx, t, w); e.Kind != block.Removed || e.Device != disk {
		t.Fatalf("event %v, want the disk removed", e.Kind)
	}
	if n := len(k.Disks.Devices()); n != 0 {
		t.Fatalf("%d disks after the rescind", n)
	}
	for _, op := range []func() error{
		func() error { _, err := disk.ReadAt(ctx, buf, 0); return err },
		func() error { _, err := disk.WriteAt(ctx, buf, 0); return err },
		func() error { return disk.Flush(ctx) },
	} {
		if err := op(); !errors.Is(err, block.ErrRemoved) {
			t.Fatalf("I/O after the rescind: %v, want ErrRemoved", err)
		}
	}
	if err := k.Close(ctx); err != nil {
		t.Fatalf("Close after the rescind: %v", err)
	}
}

func nextEvent(ctx context.Context, t *testing.T, w *block.Watcher) block.Event {
	t.Helper()
	e, err := w.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestCloseDuringRescan shuts the kernel down right after a hot-add, while
// the storage driver's rescan may still be sending: Close completes, and
// under -race no buffer is shared between a finished send and the next.
// (It caught vmbus.Channel.trySend reading the caller's parts after the
// packet was published, when storvsc had already reused its slot.)
func TestCloseDuringRescan(t *testing.T) {
	for i := range 5 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			m := newMachine(t, hvsim.WS2022)
			k := m.start(t)
			if err := m.SCSI.Attach(storvsp.Addr{LUN: 1}, storvsp.LUNConfig{Store: storvsp.NewMemStore(1 << 20)}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), testWait)
			defer cancel()
			if err := k.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if n := len(k.Disks.Devices()); n != 0 {
				t.Fatalf("%d disks left after Close", n)
			}
		})
	}
}

// TestIntegrationServicesProfiles checks, on every simulated release,
// what the kernel wires the integration services to: the time sync
// driver sets the kernel's clock (Now follows the host's reference
// counter after the SYNC), KVP reports Config.System with gohv's defaults
// filled in, and a VSS backup finds the disks flushed and writes held at
// the write gate until THAW.
func TestIntegrationServicesProfiles(t *testing.T) {
	for _, p := range profiles {
		t.Run(p.String(), func(t *testing.T) {
			epoch := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
			clock := hvsim.NewManualClock(epoch)
			m := newMachineConfig(t, simhost.Config{Profile: p, Clock: clock})
			cfg := m.config()
			cfg.System.FullyQualifiedDomainName = "vm1.example"
			ctx, cancel := context.WithTimeout(context.Background(), testWait)
			defer cancel()
			k, err := kernel.Start(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close(ctx)

			// Time: the host's SYNC sets the clock; the reference
			// counter carries it forward.
			if err := m.Standard.TimeSync.WaitAnswered(ctx, 1); err != nil {
				t.Fatal(err)
			}
			if !k.TimeSync.HostProvidesTime() || !k.TimeSync.LastSync().Equal(epoch) {
				t.Fatalf("HostProvidesTime %v, LastSync %v; want true, %v", k.TimeSync.HostProvidesTime(), k.TimeSync.LastSync(), epoch)
			}
			if got := k.Now(); !got.Equal(epoch) {
				t.Fatalf("Now = %v after the SYNC, want %v", got, epoch)
			}
			clock.Advance(90 * time.Minute)
			if got, want := k.Now(), epoch.Add(90*time.Minute); !got.Equal(want) {
				t.Fatalf("Now = %v after 90 minutes of reference time, want %v", got, want)
			}

			// KVP: the auto pool the host enumerates.
			auto, err := m.Standard.KVP.WaitAuto(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for key, want := range map[string]string{
				"FullyQualifiedDomainName": "vm1.example", "OSName": "gohv", "ProcessorArchitecture": "x86_64",
			} {
				if auto[key] != want {
					t.Errorf("auto pool %s = %q, want %q (pool %v)", key, auto[key], want, auto)
				}
			}

			// VSS: a write sits in the host's cache; FREEZE flushes it
			// and holds the gate.
			disk := k.Disks.Devices()[0]
			if _, err := disk.WriteAt(ctx, bytes.Repeat([]byte{0x5A}, 4096), 0); err != nil {
				t.Fatal(err)
			}
			gate := k.WriteGate()
			frozen := false
			err = m.Standard.VSS.Backup(ctx, func(context.Context) error {
				frozen = true
				if st, _ := m.SCSI.LUNStats(storvsp.Addr{}); st.DirtyBlocks != 0 || m.store.Bytes()[0] != 0x5A {
					t.Errorf("at FREEZE: %+v, first byte %#x: the snapshot would miss a write", st, m.store.Bytes()[0])
				}
				done, stop := context.WithCancel(ctx)
				stop()
				if err := gate.Enter(done); !errors.Is(err, context.Canceled) {
					if err == nil {
						gate.Exit()
					}
					t.Errorf("Enter while frozen: %v, want to wait (context.Canceled)", err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !frozen {
				t.Fatal("the snapshot callback never ran")
			}
			if err := gate.Enter(ctx); err != nil {
				t.Fatalf("Enter after THAW: %v", err)
			}
			gate.Exit()
			if st := k.VSS.Stats(); st.Freezes != 1 || st.Thaws != 1 || st.Frozen {
				t.Fatalf("VSS stats %+v", st)
			}
		})
	}
}

// TestLogOneWriterAtATime: the storage controllers (SCSI and IDE) attach
// on their own goroutines and both report disks; the kernel serialises its
// log lines, so a plain bytes.Buffer as Config.Log is safe (-race checks)
// and every line arrives whole.
func TestLogOneWriterAtATime(t *testing.T) {
	img := filepath.Join(t.TempDir(), "ide.raw")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	m := newMachineConfig(t, simhost.Config{Profile: hvsim.WS2022, Disks: []simhost.Disk{{Path: img, IDE: true}}})
	var log bytes.Buffer // not safe for concurrent use
	cfg := m.config()
	cfg.Log = &log
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	k, err := kernel.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := log.String()
	for _, want := range []string{
		"gohv: disk scsi-f8b3781b-0:0:0: 4 MiB, 512-byte sectors\n",
		"gohv: disk ide-00000000-0:0:0: 1 MiB, 512-byte sectors\n",
		"gohv: disk scsi-f8b3781b-0:0:0 removed\n",
		"gohv: disk ide-00000000-0:0:0 removed\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
}

// TestExecuteShutdownAnswerSent: an application that returns the moment
// its context is cancelled makes the kernel close the channels while the
// shutdown driver is still answering the host; the answer goes out first
// (the shutdown service drops none).
func TestExecuteShutdownAnswerSent(t *testing.T) {
	for i := range 3 { // the race is narrow: a few tries (drivers/ic has the deterministic test)
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			m := newMachine(t, hvsim.WS2022)
			ctx, cancel := context.WithTimeout(context.Background(), testWait)
			defer cancel()
			var k *kernel.Kernel
			requested := make(chan struct{})
			code, kind := kernel.Execute(ctx, func(actx context.Context) error {
				k = kernel.FromContext(actx)
				go func() {
					defer close(requested)
					// The answer may reach a host whose channel is
					// already closing: only the guest side is checked.
					m.Standard.Shutdown.Request(ctx, 0, "now") //nolint:errcheck
				}()
				<-actx.Done()
				return nil
			}, kernel.WithConfig(m.config()))
			<-requested
			if code != 0 || kind != shutdown.PowerOff {
				t.Fatalf("Execute = %d, %v", code, kind)
			}
			if st := k.Shutdown.Stats(); st.Accepted != 1 || st.IC.Dropped != 0 || st.IC.BadMessages != 0 {
				t.Fatalf("shutdown stats %+v: the answer was not sent", st)
			}
		})
	}
}
