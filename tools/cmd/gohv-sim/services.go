package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gohv/gohv/kernel"
	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/simhost"
	"github.com/gohv/gohv/tools/hvsim/storvsp"
)

// showTime prints what the time sync service did: whether the host
// provides the time, when it last did, and the guest clock's offset.
func showTime(ctx context.Context, w io.Writer, k *kernel.Kernel, m *simhost.Machine) error {
	// The host's first message is a SYNC, sent when the service opens.
	if err := m.Standard.TimeSync.WaitAnswered(ctx, 1); err != nil {
		return fmt.Errorf("host: %w", err)
	}
	ts := k.TimeSync
	provides := "no"
	if ts.HostProvidesTime() {
		provides = "yes"
	}
	fmt.Fprintf(w, "guest: time sync: host provides time: %s; last sync %s\n",
		provides, ts.LastSync().UTC().Format(time.RFC3339Nano))
	// Offset is wall time minus reference-counter time: the wall-clock
	// moment the VM's reference counter started.
	fmt.Fprintf(w, "guest: time sync: clock offset %.6fs (wall clock at reference counter zero: %s)\n",
		ts.Offset().Seconds(), time.Unix(0, 0).Add(ts.Offset()).UTC().Format(time.RFC3339Nano))
	fmt.Fprintf(w, "guest: time sync: guest clock minus host clock: %v\n",
		k.Now().Sub(m.Host.Clock().Now()).Round(time.Microsecond))
	return nil
}

// showKVP prints the auto pool the host enumerated from the guest.
func showKVP(ctx context.Context, w io.Writer, m *simhost.Machine) error {
	auto, err := m.Standard.KVP.WaitAuto(ctx)
	if err != nil {
		return fmt.Errorf("host: %w", err)
	}
	if m.NIC != nil {
		// Hyper-V enumerates the auto pool again from time to time; by now
		// the guest has its address.
		recs, err := m.Standard.KVP.Enumerate(ctx, hvsim.KVPPoolAuto)
		if err != nil {
			return fmt.Errorf("host: KVP enumeration: %w", err)
		}
		auto = make(map[string]string, len(recs))
		for _, r := range recs {
			auto[r.Key] = r.Value
		}
	}
	keys := make([]string, 0, len(auto))
	for key := range auto {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "host: KVP auto pool from the guest, %d values:\n", len(keys))
	for _, key := range keys {
		fmt.Fprintf(w, "host:   %s = %s\n", key, auto[key])
	}
	if m.NIC != nil {
		id := hvsim.MACAdapterID(simhost.GuestMAC)
		info, err := m.Standard.KVP.GetIPInfo(ctx, id)
		if err != nil {
			return fmt.Errorf("host: KVP GET_IP_INFO %s: %w", id, err)
		}
		fmt.Fprintf(w, "host: KVP GET_IP_INFO %s: addresses %v, subnets %v, gateways %v, DNS %v, DHCP %v\n",
			id, info.Addresses, info.Subnets, info.Gateways, info.DNS, info.DHCP)
	}
	return nil
}

// logName is the file the backup's writer appends to.
const logName = "gohv-sim.log"

// writer appends lines to a file on a FAT volume, entering the kernel's
// write gate for each write, as any code writing to disks does so that a
// backup sees consistent data.
type writer struct {
	attempts atomic.Uint64 // writes begun (before the gate)
	done     atomic.Uint64 // writes finished
	progress chan struct{} // capacity 1: "a counter changed"
	cancel   context.CancelFunc
	finished chan error
}

func startWriter(ctx context.Context, k *kernel.Kernel, vol *fatVolume) (*writer, error) {
	f, err := vol.fs.Create(logName)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	wr := &writer{progress: make(chan struct{}, 1), cancel: cancel, finished: make(chan error, 1)}
	go func() {
		tick := time.NewTicker(2 * time.Millisecond) // pace, not timing
		defer tick.Stop()
		var err error
		for err == nil {
			select {
			case <-ctx.Done():
				wr.finished <- f.Close()
				return
			case <-tick.C:
			}
			wr.attempts.Add(1)
			wr.signal()
			// The disk's writes pass the kernel's write gate by themselves:
			// during a backup this write waits inside the block layer.
			line := fmt.Sprintf("write %d at %s\n", wr.done.Load()+1, k.Now().UTC().Format(time.RFC3339Nano))
			if _, err = f.Write([]byte(line)); err == nil {
				err = f.Sync()
			}
			if err != nil && ctx.Err() != nil {
				err = nil // stopped while waiting at the gate
				continue
			}
			wr.done.Add(1)
			wr.signal()
		}
		wr.finished <- errors.Join(err, f.Close())
	}()
	return wr, nil
}

func (wr *writer) signal() {
	select {
	case wr.progress <- struct{}{}:
	default:
	}
}

// wait waits until cond holds, re-checking when the writer makes progress.
func (wr *writer) wait(ctx context.Context, cond func() bool) error {
	for !cond() {
		select {
		case <-wr.progress:
		case err := <-wr.finished:
			wr.finished <- err
			return fmt.Errorf("the writer stopped: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (wr *writer) stop() error {
	wr.cancel()
	return <-wr.finished
}

// dirtyBlocks counts the cache blocks the host's disks hold unwritten.
func dirtyBlocks(m *simhost.Machine) int {
	n := 0
	for _, c := range []*storvsp.StorVSP{m.SCSI, m.IDE} {
		if c == nil {
			continue
		}
		for t := range uint8(2) {
			for lun := range uint8(64) {
				if st, ok := c.LUNStats(storvsp.Addr{Target: t, LUN: lun}); ok {
					n += st.DirtyBlocks
				}
			}
		}
	}
	return n
}

// backup runs the host's online backup (VSS) while the guest writes to
// vol (nil: no writable volume, so no writer): during the snapshot the
// guest's disks must be flushed and its writes held at the gate; after
// THAW they go on.
func backup(ctx context.Context, w io.Writer, k *kernel.Kernel, m *simhost.Machine, vol *fatVolume) (err error) {
	var wr *writer
	if vol != nil {
		if wr, err = startWriter(ctx, k, vol); err != nil {
			return fmt.Errorf("guest: %s: %w", logName, err)
		}
		defer func() {
			if e := wr.stop(); e != nil && err == nil {
				err = fmt.Errorf("guest: writer: %w", e)
			}
		}()
		if err := wr.wait(ctx, func() bool { return wr.done.Load() >= 3 }); err != nil {
			return fmt.Errorf("guest: writer: %w", err)
		}
		fmt.Fprintf(w, "guest: writing /%s on %s, each write through the kernel's write gate\n", logName, vol.name)
	}
	gate := k.WriteGate()
	var frozenAt uint64
	err = m.Standard.VSS.Backup(ctx, func(ctx context.Context) error {
		// The guest answered FREEZE: what it wrote is flushed and new
		// writes wait. This is where Hyper-V takes the snapshot.
		if !gate.Held() {
			return errors.New("the guest's write gate is open while frozen")
		}
		now, stop := context.WithCancel(ctx)
		stop()
		if err := gate.Enter(now); err == nil {
			gate.Exit()
			return errors.New("a write got through the held write gate")
		}
		if n := dirtyBlocks(m); n != 0 {
			return fmt.Errorf("%d cache blocks not flushed at FREEZE", n)
		}
		msg := "host: VSS frozen: guest disks flushed (no dirty cache blocks), write gate held"
		if wr != nil {
			frozenAt = wr.done.Load()
			// The writer reaches the gate and stays there.
			if err := wr.wait(ctx, func() bool { return wr.attempts.Load() > frozenAt }); err != nil {
				return err
			}
			if got := wr.done.Load(); got != frozenAt {
				return fmt.Errorf("%d writes finished while frozen", got-frozenAt)
			}
			msg += fmt.Sprintf(", writer waiting at the gate after %d writes", frozenAt)
		}
		fmt.Fprintln(w, msg)
		return nil
	})
	if err != nil {
		return fmt.Errorf("host: backup: %w", err)
	}
	var ops []string
	for _, a := range m.Standard.VSS.Answers() {
		ops = append(ops, fmt.Sprintf("%s %s", a.Op, hresult(a.HResult)))
	}
	fmt.Fprintf(w, "host: VSS backup cycle: %s\n", strings.Join(ops, ", "))
	if wr != nil {
		if err := wr.wait(ctx, func() bool { return wr.done.Load() > frozenAt }); err != nil {
			return fmt.Errorf("guest: writer after THAW: %w", err)
		}
		fmt.Fprintf(w, "guest: writes resumed after THAW (write %d done)\n", frozenAt+1)
	}
	st := k.VSS.Stats()
	fmt.Fprintf(w, "guest: VSS froze %d time(s), thawed %d time(s), frozen now: %v\n", st.Freezes, st.Thaws, st.Frozen)
	return nil
}

func hresult(h uint32) string {
	if h == hvsim.HResultOK {
		return "S_OK"
	}
	return fmt.Sprintf("%#08x", h)
}
