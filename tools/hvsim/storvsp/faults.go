package storvsp

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Failure is an injected SRB outcome (FailNext).
type Failure struct {
	SRBStatus  byte // code without the autosense bit (it is set when Sense is given)
	SCSIStatus byte
	// Sense is copied into the completion's sense area (at most 18 bytes
	// are kept) and sets the autosense-valid bit.
	Sense []byte
	// Match selects the commands that fail (nil: every EXECUTE_SRB to an
	// attached LUN). It gets the CDB and runs on a channel goroutine.
	Match func(cdb []byte) bool
}

// CheckCondition is CHECK CONDITION with fixed-format sense data: SRB
// status ERROR with autosense, as Hyper-V reports a disk's check condition
// (what Linux storvsc expects in order to read the sense).
func CheckCondition(key, asc, ascq byte) Failure {
	s := fixedSense(key, asc, ascq)
	return Failure{SRBStatus: SRBError, SCSIStatus: SCSICheckCondition, Sense: s[:]}
}

// Busy is SCSI status BUSY with SRB status BUSY (NTSTATUS DEVICE_BUSY):
// the guest is expected to retry.
func Busy() Failure { return Failure{SRBStatus: SRBBusy, SCSIStatus: SCSIBusy} }

// TaskSetFull is SCSI status TASK SET FULL with SRB status BUSY: the guest
// is expected to retry with fewer commands outstanding.
func TaskSetFull() Failure { return Failure{SRBStatus: SRBBusy, SCSIStatus: SCSITaskSetFull} }

type failRule struct {
	left int
	res  result
	f    Failure
}

// faults is the controller's fault state; every method is safe for
// concurrent use.
type faults struct {
	// armed is true while any fault is set or a completion is held, so
	// the SRB path takes mu only then. Updated under mu by every change.
	armed atomic.Bool

	mu           sync.Mutex
	rules        []failRule
	lose         int
	delayN       int
	delay        time.Duration
	reorder      bool
	held         []byte
	heldTxID     uint64
	heldCh       *chanState
	shortN       int
	shortBytes   uint32
	rescindAfter int
}

// FailNext makes the next n matching SRBs complete with f instead of
// running (nothing reaches the disk).
func (d *StorVSP) FailNext(n int, f Failure) {
	res := result{srb: f.SRBStatus &^ SRBAutosenseValid, scsi: f.SCSIStatus}
	res.senseLen = copy(res.sense[:], f.Sense)
	d.faults.mu.Lock()
	defer d.faults.mu.Unlock()
	d.faults.rules = append(d.faults.rules, failRule{left: n, res: res, f: f})
	d.faults.update()
}

// update recomputes armed; mu held.
func (f *faults) update() {
	f.armed.Store(len(f.rules) > 0 || f.lose > 0 || f.delayN > 0 || f.reorder || f.held != nil ||
		f.shortN > 0 || f.rescindAfter > 0)
}

// LoseCompletions drops the completions of the next n SRBs after they ran:
// the guest never hears of them (it must time out).
func (d *StorVSP) LoseCompletions(n int) {
	d.faults.mu.Lock()
	defer d.faults.mu.Unlock()
	d.faults.lose = n
	d.faults.update()
}

// DelayCompletions sends the completions of the next n SRBs dl late,
// without holding up the channel: later requests complete first.
func (d *StorVSP) DelayCompletions(n int, dl time.Duration) {
	d.faults.mu.Lock()
	defer d.faults.mu.Unlock()
	d.faults.delayN, d.faults.delay = n, dl
	d.faults.update()
}

// ReorderCompletions swaps SRB completions in pairs while on: each odd one
// is held until the next is written. Turning it off releases a held one.
func (d *StorVSP) ReorderCompletions(on bool) {
	d.faults.mu.Lock()
	d.faults.reorder = on
	var held []byte
	var txid uint64
	var c *chanState
	if !on && d.faults.held != nil {
		held, txid, c = d.faults.held, d.faults.heldTxID, d.faults.heldCh
		d.faults.held, d.faults.heldCh = nil, nil
	}
	d.faults.update()
	d.faults.mu.Unlock()
	if c != nil {
		c.send(txid, held)
	}
}

// ShortTransfers makes the next n successful data transfers report only
// bytes transferred (0: half of what moved), with SRB status DATA_OVERRUN
// (docs/hyperv-protocol.md §6.5: the transfer length is then valid).
func (d *StorVSP) ShortTransfers(n int, bytes uint32) {
	d.faults.mu.Lock()
	defer d.faults.mu.Unlock()
	d.faults.shortN, d.faults.shortBytes = n, bytes
	d.faults.update()
}

// RescindAfter takes n more SRBs normally, then on the next one withdraws
// the controller (every channel rescinded) without completing it: a
// rescind with I/O outstanding.
func (d *StorVSP) RescindAfter(n int) {
	d.faults.mu.Lock()
	defer d.faults.mu.Unlock()
	d.faults.rescindAfter = n + 1
	d.faults.update()
}

// Rescind withdraws the controller's primary channel and sub-channels
// (Host.Rescind of each).
func (d *StorVSP) Rescind() error {
	d.mu.Lock()
	h, primary, subs := d.host, d.primaryRel, append([]uint32(nil), d.subRelIDs...)
	d.subRelIDs, d.subOffered = nil, 0
	d.mu.Unlock()
	if h == nil {
		return ErrNotRunning
	}
	var first error
	for _, r := range append(subs, primary) {
		if err := h.Rescind(r); err != nil && first == nil {
			first = fmt.Errorf("storvsp: rescind relid %d: %w", r, err)
		}
	}
	return first
}

// Crash models a host crash: from now on nothing is answered or completed
// (SRBs in flight included), the channels stay open but dead, and every
// LUN's write cache is discarded, so only writes that were flushed (or
// FUA, or written without WriteCache) are in the stores. It returns the
// number of cache blocks lost.
func (d *StorVSP) Crash() int {
	if !d.crashed.CompareAndSwap(false, true) {
		return 0
	}
	close(d.crashCh)
	d.lunMu.RLock()
	defer d.lunMu.RUnlock()
	n := 0
	for _, u := range d.luns {
		n += u.crash()
	}
	return n
}

// Crashed reports whether Crash was called.
func (d *StorVSP) Crashed() bool { return d.crashed.Load() }

// before is consulted for each well-formed SRB: an injected failure to
// complete with, or rescind == true to rescind instead of completing.
func (f *faults) before(cdb []byte, present bool) (res *result, rescind bool) {
	if !f.armed.Load() {
		return nil, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.update()
	if f.rescindAfter > 0 {
		f.rescindAfter--
		if f.rescindAfter == 0 {
			return nil, true
		}
	}
	for i := range f.rules {
		r := &f.rules[i]
		if r.left <= 0 || !present || (r.f.Match != nil && !r.f.Match(cdb)) {
			continue
		}
		r.left--
		out := r.res
		if r.left == 0 {
			f.rules = append(f.rules[:i], f.rules[i+1:]...)
		}
		return &out, false
	}
	return nil, false
}

// shorten applies ShortTransfers to a successful result.
func (f *faults) shorten(res *result) {
	if res.srb != SRBSuccess || res.transferred == 0 || !f.armed.Load() {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.update()
	if f.shortN <= 0 {
		return
	}
	f.shortN--
	n := f.shortBytes
	if n == 0 || n >= res.transferred {
		n = res.transferred / 2
	}
	res.transferred = n
	res.srb = SRBDataOverrun
}

// route applies the completion faults; true means the completion was
// taken care of (dropped, delayed or held).
func (f *faults) route(c *chanState, txid uint64, b []byte) bool {
	if !f.armed.Load() {
		return false
	}
	f.mu.Lock()
	switch {
	case f.lose > 0:
		f.lose--
		f.update()
		f.mu.Unlock()
		c.d.stats.lost.Add(1)
		return true
	case f.delayN > 0:
		f.delayN--
		dl := f.delay
		f.update()
		f.mu.Unlock()
		cp := append([]byte(nil), b...)
		time.AfterFunc(dl, func() { c.send(txid, cp) })
		return true
	case f.reorder && f.held == nil:
		f.held = append(f.held[:0:0], b...)
		f.heldTxID, f.heldCh = txid, c
		f.update()
		f.mu.Unlock()
		return true
	case f.reorder:
		held, htx, hc := f.held, f.heldTxID, f.heldCh
		f.held, f.heldCh = nil, nil
		f.update()
		f.mu.Unlock()
		c.send(txid, b)
		hc.send(htx, held)
		return true
	}
	f.mu.Unlock()
	return false
}

// dropHeld forgets a held completion (its channel went away).
func (f *faults) dropHeld() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held, f.heldCh = nil, nil
	f.update()
}

// send writes a completion unless the controller crashed.
func (c *chanState) send(txid uint64, b []byte) {
	if c.d.crashed.Load() {
		c.d.stats.lost.Add(1)
		return
	}
	if c.ch.Send(c.ctx, pktCompletion, 0, txid, b) == nil {
		c.d.stats.completions.Add(1)
	}
}
