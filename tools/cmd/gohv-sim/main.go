// Command gohv-sim runs gohv's kernel start-up path (kernel.Execute: VMBus
// client, driver registry, integration services, storage) as an ordinary
// process against a simulated Hyper-V machine (tools/hvsim/simhost) and
// narrates what happens: the negotiated VMBus version, every offered
// device and its driver, the disks found with their partitions,
// filesystems and files (read, and on FAT volumes a file written), the
// time the host provides, what KVP told the host, an online backup (VSS
// FREEZE/THAW) taken while the guest writes, heartbeats answered, and a
// graceful shutdown requested by the host and carried out by the guest. It
// exits 0 when all of that worked.
//
// Without -disk the machine has one 64 MiB memory disk holding a FAT32
// volume. With -disk the images are attached in order: SCSI LUNs 0, 1, …
// and, with ",ide", IDE targets (a Generation 1 boot disk). FAT32 volumes
// on writable disks get /gohv-sim.txt (and /gohv-sim.log from the backup
// writer); ext2/3/4 volumes are only read.
//
// Usage:
//
//	gohv-sim [-profile ws2022|ws2019|ws2016|ws2012r2|all] [-heartbeats N] [-interval D] [-disk PATH[,ro][,ide]]...
//	gohv-sim -linux-http ADDR -hold D   (the guest's HTTP handler on Linux, no VM: a baseline)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gohv/gohv/drivers/block/fat"
	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/kernel"
	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/simhost"
	"github.com/gohv/gohv/tools/hvsim/storvsp"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

var profiles = map[string]hvsim.Profile{
	"ws2022":   hvsim.WS2022,
	"ws2019":   hvsim.WS2019,
	"ws2016":   hvsim.WS2016,
	"ws2012r2": hvsim.WS2012R2,
}

// options are the demo's settings.
type options struct {
	profile    hvsim.Profile
	heartbeats int
	interval   time.Duration
	timeout    time.Duration
	disks      []simhost.Disk
	tap        string
	hold       time.Duration
	azure      bool
}

func main() {
	profile := flag.String("profile", "ws2022", "host to simulate: ws2022, ws2019, ws2016, ws2012r2 or all")
	beats := flag.Int("heartbeats", 3, "heartbeats to answer before the host asks for shutdown")
	interval := flag.Duration("interval", 250*time.Millisecond, "host heartbeat interval (Hyper-V uses seconds)")
	timeout := flag.Duration("timeout", 30*time.Second, "give up after this long")
	var disks []simhost.Disk
	flag.Func("disk", "attach a disk image (raw, or VHDX by extension) as the next SCSI LUN, or IDE target with ,ide: PATH[,ro][,ide]; repeatable", func(s string) error {
		d, err := simhost.ParseDisk(s)
		if err == nil {
			disks = append(disks, d)
		}
		return err
	})
	tap := flag.String("tap", "", "plug the guest's NIC into this Linux TAP device (run dnsmasq on it for DHCP) instead of the in-process peer network")
	hold := flag.Duration("hold", 0, "keep the guest's HTTP server up this long before the host asks for shutdown (for curl over -tap)")
	azure := flag.Bool("azure", false, "make the in-process network look like Azure's (DHCP option 245, a simulated WireServer and IMDS): the kernel reports Ready on its own")
	linuxHTTP := flag.String("linux-http", "", "run no VM: serve the guest's HTTP handler on Linux's own stack at this address for -hold (the baseline of tools/scripts/bench-http.sh)")
	flag.Parse()
	if *linuxHTTP != "" {
		ctx, cancel := context.WithTimeout(context.Background(), *hold)
		err := serveLinux(ctx, os.Stdout, *linuxHTTP)
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "gohv-sim: %v\n", err)
			os.Exit(1)
		}
		return
	}

	var run []hvsim.Profile
	if *profile == "all" {
		run = []hvsim.Profile{hvsim.WS2022, hvsim.WS2019, hvsim.WS2016, hvsim.WS2012R2}
	} else if p, ok := profiles[strings.ToLower(*profile)]; ok {
		run = []hvsim.Profile{p}
	} else {
		fmt.Fprintf(os.Stderr, "gohv-sim: unknown -profile %q: use ws2022, ws2019, ws2016, ws2012r2 or all\n", *profile)
		os.Exit(2)
	}
	if *beats < 1 || *interval <= 0 || *timeout <= 0 {
		fmt.Fprintln(os.Stderr, "gohv-sim: -heartbeats must be at least 1, -interval and -timeout positive")
		os.Exit(2)
	}
	for _, p := range run {
		err := demo(os.Stdout, options{profile: p, heartbeats: *beats, interval: *interval, timeout: *timeout, disks: disks, tap: *tap, hold: *hold, azure: *azure})
		if err != nil {
			fmt.Fprintf(os.Stderr, "gohv-sim: %v\n", err)
			os.Exit(1)
		}
	}
}

// memDiskBytes is the default disk's size.
const memDiskBytes = 64 << 20

// memDisk is the default disk: a FAT32 volume in memory with a file to
// read.
func memDisk() (*storvsp.MemStore, error) {
	s := storvsp.NewMemStore(memDiskBytes)
	var t fat.Tree
	if err := t.AddFile("README.TXT", []byte("This volume lives in the simulated host's memory.\n")); err != nil {
		return nil, err
	}
	if err := fat.Write(s, 0, memDiskBytes, &t, fat.Options{Label: "GOHV SIM"}); err != nil {
		return nil, fmt.Errorf("formatting the memory disk: %w", err)
	}
	return s, nil
}

// demo boots the guest stack against a fresh simulated machine and shuts
// it down through the host's shutdown integration service.
func demo(out io.Writer, o options) error {
	// The kernel's log and the application both write to w, from
	// different goroutines.
	w := &lockedWriter{w: out}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()

	hostHB := hvsim.NewHeartbeat(o.interval) // demo-friendly interval
	m, err := simhost.New(simhost.Config{Profile: o.profile, Disks: o.disks, TAP: o.tap, Heartbeat: hostHB, Azure: o.azure})
	if err != nil {
		return err
	}
	defer m.Close()
	if len(o.disks) == 0 {
		store, err := memDisk()
		if err != nil {
			return err
		}
		if err := m.SCSI.Attach(storvsp.Addr{}, storvsp.LUNConfig{Store: store, WriteCache: true, Serial: "memdisk"}); err != nil {
			return err
		}
	}
	host := m.Host
	fmt.Fprintf(w, "host: simulated Hyper-V %s (VMBus up to %s), %d devices\n",
		o.profile, chanmsg.Version(o.profile.MaxVersion()), len(m.Standard.All))

	type answer struct {
		hr  uint32
		err error
	}
	answered := make(chan answer, 1)
	var k *kernel.Kernel
	app := func(ctx context.Context) error {
		k = kernel.FromContext(ctx)
		fmt.Fprintf(w, "guest: VMBus version %s negotiated\n", k.VMBusVersion())
		for _, ch := range k.Bus().Channels() {
			o := ch.Offer()
			name := chanmsg.ClassName(o.InterfaceType)
			if name == "" {
				name = "unknown class " + o.InterfaceType.String()
			}
			fmt.Fprintf(w, "guest: offer relid %-3d %-22s instance %s\n", o.RelID, name, o.InterfaceInstance)
		}
		for _, b := range k.Devices() {
			if b.Bound() {
				fmt.Fprintf(w, "guest: driver %s bound to relid %d\n", b.Driver, b.Offer.RelID)
			} else if b.Err != nil {
				return fmt.Errorf("guest: driver %s failed on relid %d: %w", b.Driver, b.Offer.RelID, b.Err)
			}
		}

		vols, err := showDisks(ctx, w, k)
		if err != nil {
			return err
		}
		defer vols.sync(w)
		if err := showTime(ctx, w, k, m); err != nil {
			return err
		}
		stopNet, err := showNetwork(ctx, w, k, m)
		if err != nil {
			return err
		}
		defer stopNet()
		if err := showAzure(ctx, w, k, m); err != nil {
			return err
		}
		if o.hold > 0 {
			fmt.Fprintf(w, "guest: holding for %v\n", o.hold)
			select {
			case <-time.After(o.hold):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := showKVP(ctx, w, m); err != nil {
			return err
		}
		if err := backup(ctx, w, k, m, vols.writable()); err != nil {
			return err
		}

		for hostHB.Stats().Correct < uint64(o.heartbeats) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("only %d of %d heartbeats answered: %w", hostHB.Stats().Correct, o.heartbeats, ctx.Err())
			case <-time.After(o.interval / 4):
			}
		}
		st := k.Heartbeat.Stats()
		fmt.Fprintf(w, "guest: answered %d heartbeats (last sequence %d); host counted %d correct, %d wrong\n",
			st.Beats, st.LastSequence, hostHB.Stats().Correct, hostHB.Stats().Wrong)

		// The host asks for a shutdown; the kernel cancels ctx.
		go func() {
			hr, err := m.Standard.Shutdown.Request(context.WithoutCancel(ctx), 0, "gohv-sim demo")
			answered <- answer{hr, err}
		}()
		<-ctx.Done()
		fmt.Fprintln(w, "guest: application stopped by the host's shutdown request")
		// Let the host have its answer before the kernel closes the
		// channels: the simulated host drops an answer still in the ring
		// when the guest closes the channel right after writing it.
		a := <-answered
		answered <- a
		return nil
	}
	code, kind := kernel.Execute(ctx, app, kernel.WithConfig(kernel.Config{
		Platform: func() (hv.Platform, error) { return host.Platform(), nil },
		Log:      w,
	}))
	if code != 0 {
		return fmt.Errorf("guest: exit status %d", code)
	}
	if k == nil {
		return errors.New("guest: the application never ran")
	}
	a := <-answered
	if a.err != nil {
		return fmt.Errorf("host: shutdown request: %w", a.err)
	}
	if a.hr != 0 {
		return fmt.Errorf("host: guest answered shutdown with HRESULT %#08x, want S_OK", a.hr)
	}
	fmt.Fprintf(w, "host: guest accepted the shutdown (S_OK); guest shut down for %s\n", kind)
	bs := k.Bus().Stats()
	fmt.Fprintf(w, "guest: VMBus unloaded (%d messages in, %d out, %d interrupts)\n", bs.MessagesIn, bs.MessagesOut, bs.Interrupts)
	host.Close()
	if v := host.Violations(); len(v) > 0 {
		return fmt.Errorf("host recorded %d protocol violations, first: %w", len(v), v[0])
	}
	fmt.Fprintf(w, "host: no protocol violations; powered off\n")
	return nil
}

// lockedWriter serialises writes.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
