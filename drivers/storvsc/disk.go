package storvsc

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gohv/gohv/drivers/scsi"
)

// discardMode is how a disk deallocates blocks.
type discardMode uint8

const (
	discardNone      discardMode = iota
	discardUnmap                 // UNMAP with a one-descriptor list
	discardWriteSame             // WRITE SAME(16) with the UNMAP bit
)

// Disk is one logical unit: a block device (the block-layer contract's
// Device and Submitter). It is safe for concurrent use.
type Disk struct {
	c    *Controller
	addr addr

	info atomic.Pointer[Info]

	// Identification, fixed at discovery.
	inquiry scsi.InquiryData
	serial  string
	ids     []scsi.Designator

	discard    discardMode
	maxDiscard uint32 // blocks per discard command

	removed atomic.Bool
	syncs   sync.Pool // of *syncReq
}

var _ Submitter = (*Disk)(nil)

// Info returns the disk's current description; capacity and flags follow
// rescans.
func (d *Disk) Info() Info { return *d.info.Load() }

// Address returns the SCSI path, target and LUN.
func (d *Disk) Address() (path, target, lun uint8) { return d.addr.path, d.addr.target, d.addr.lun }

// Inquiry returns the standard INQUIRY data.
func (d *Disk) Inquiry() scsi.InquiryData { return d.inquiry }

// Serial returns the unit serial number (VPD page 0x80), if the host gave
// one.
func (d *Disk) Serial() string { return d.serial }

// Identifiers returns the device identification descriptors (VPD page
// 0x83), if the host gave them.
func (d *Disk) Identifiers() []scsi.Designator { return slices.Clone(d.ids) }

// Removed reports whether the disk is gone (hot-removed or the controller
// rescinded).
func (d *Disk) Removed() bool { return d.removed.Load() || d.c.gone.Load() }

// Controller returns the disk's controller.
func (d *Disk) Controller() *Controller { return d.c }

func (d *Disk) String() string { return d.Info().Name }

// check validates a request against the disk; it does not allocate.
func (d *Disk) check(r *Request, info *Info) error {
	if d.Removed() {
		return ErrRemoved
	}
	ss := int64(info.SectorSize)
	size := int64(info.Sectors) * ss
	switch r.Op {
	case OpRead, OpWrite:
		n := int64(len(r.Buf))
		if r.Off%ss != 0 || n%ss != 0 || n == 0 {
			return ErrUnaligned
		}
		if r.Off < 0 || r.Off > size || n > size-r.Off {
			return ErrOutOfRange
		}
		if r.Op == OpWrite && info.ReadOnly {
			return ErrReadOnly
		}
	case OpFlush:
	case OpDiscard:
		if !info.CanDiscard {
			return ErrNotSupported
		}
		if info.ReadOnly {
			return ErrReadOnly
		}
		if r.Off%ss != 0 || r.Len%ss != 0 || r.Len <= 0 {
			return ErrUnaligned
		}
		if r.Off < 0 || r.Off > size || r.Len > size-r.Off {
			return ErrOutOfRange
		}
	default:
		return ErrNotSupported
	}
	return nil
}

// Submit starts r asynchronously. r.Done runs once when it ends, on the
// completing channel's dispatch goroutine (or, for a request failed by a
// timeout or by the controller going away, on the driver goroutine that
// noticed); it must not block. Submit returns an error, and does not call
// Done, when r is invalid, the disk is gone, or every request slot of the
// channel is held by a request that timed out and the host has not
// completed since (ErrTimeout: the host stopped answering). r.Queue picks the channel
// (modulo Info().Queues). Requests larger than the host's maximum transfer
// are split and run segment by segment. Neither Submit nor the completion
// allocates.
//
// A read or write whose buffer the platform can translate goes GPA-direct
// from r.Buf; the host may write into r.Buf until Done. If the request
// fails by timeout, the host may still complete the transfer later.
func (d *Disk) Submit(r *Request) error {
	info := d.info.Load()
	if err := d.check(r, info); err != nil {
		return &IOError{Op: r.Op, Off: r.Off, Err: err}
	}
	r.Err, r.N = nil, 0
	if err := d.c.pickQueue(r.Queue).submit(work{d: d, r: r}); err != nil {
		return &IOError{Op: r.Op, Off: r.Off, Err: err}
	}
	return nil
}

// syncReq is a pooled request for the synchronous methods.
type syncReq struct {
	r    Request
	done chan struct{}
}

func (d *Disk) getSync() *syncReq {
	if v := d.syncs.Get(); v != nil {
		return v.(*syncReq)
	}
	s := &syncReq{done: make(chan struct{}, 1)}
	s.r.Done = func(*Request) { s.done <- struct{}{} }
	return s
}

// do runs r synchronously. If ctx ends first, do returns ctx's error and
// the request stays in flight (its buffer may still be written by the
// host until it completes or times out).
func (d *Disk) do(ctx context.Context, op Op, p []byte, off, n int64) (int, error) {
	s := d.getSync()
	s.r.Op, s.r.Buf, s.r.Off, s.r.Len = op, p, off, n
	s.r.Queue = int(d.c.rr.Add(1))
	if err := d.Submit(&s.r); err != nil {
		d.syncs.Put(s)
		return 0, err
	}
	select {
	case <-s.done:
	case <-ctx.Done():
		return 0, &IOError{Op: op, Off: off, Err: ctx.Err()}
	}
	nn, err := s.r.N, s.r.Err
	s.r.Buf = nil
	d.syncs.Put(s)
	return nn, err
}

// ReadAt reads len(p) bytes at off (both multiples of the sector size).
func (d *Disk) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	return d.do(ctx, OpRead, p, off, 0)
}

// WriteAt writes p at off (both multiples of the sector size).
func (d *Disk) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	return d.do(ctx, OpWrite, p, off, 0)
}

// Flush makes completed writes durable (SYNCHRONIZE CACHE).
func (d *Disk) Flush(ctx context.Context) error {
	_, err := d.do(ctx, OpFlush, nil, 0, 0)
	return err
}

// Discard deallocates n bytes at off (UNMAP, or WRITE SAME(16) with the
// UNMAP bit where UNMAP is absent). ErrNotSupported unless CanDiscard.
func (d *Disk) Discard(ctx context.Context, off, n int64) error {
	_, err := d.do(ctx, OpDiscard, nil, off, n)
	return err
}

func sortDisks(ds []*Disk) {
	slices.SortFunc(ds, func(a, b *Disk) int {
		return int(a.addr.path)<<16 + int(a.addr.target)<<8 + int(a.addr.lun) -
			(int(b.addr.path)<<16 + int(b.addr.target)<<8 + int(b.addr.lun))
	})
}

func (c *Controller) diskName(a addr) string {
	kind := "scsi"
	if c.ide {
		kind = "ide"
	}
	inst := c.primary.Offer().InterfaceInstance.String()
	return fmt.Sprintf("%s-%s-%d:%d:%d", kind, inst[:8], a.path, a.target, a.lun)
}
