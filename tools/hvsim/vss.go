package hvsim

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// VSS is the host of the VSS (backup) IC (docs/hyperv-protocol.md §9.1).
// Backup runs Hyper-V's online backup of a running guest: the HOT_BACKUP
// check, FREEZE (the guest quiesces writes), the caller's work while the
// guest is frozen (the snapshot), THAW and BU_COMPLETE. The single steps
// are exported too, so a test can FREEZE and never THAW (a host that dies
// mid-backup) and watch the guest recover on its own. Every answer is
// recorded (Answers).
//
// Offered versions: framework 3.0, 1.0; messages 7.0, 6.0, 5.0, 4.0 on
// WS2019/WS2022, 6.0, 5.0, 4.0 on WS2016, 5.0, 4.0 on WS2012R2 (FREEZE and
// THAW need 5.0, Linux's only version; the per-release lists are inferred
// from OpenVMM's 4.0–7.0).
type VSS struct {
	icService
	icRequests

	// Timeout bounds each VSS request of Backup (default 60 s); the
	// caller's context still applies.
	Timeout time.Duration

	mu      sync.Mutex
	answers []VSSAnswer
}

// VSSAnswer is one VSS request and the guest's answer.
type VSSAnswer struct {
	Op      string // "HOT_BACKUP", "FREEZE", "THAW", "BU_COMPLETE", …
	HResult uint32
	Flags   uint32 // operation data (HOT_BACKUP: VSSNoAutoRecovery etc.)
	Err     error  // transport error or timeout (then HResult is 0)
}

// NewVSS returns a VSS IC host.
func NewVSS() *VSS {
	v := &VSS{icRequests: newICRequests(), Timeout: 60 * time.Second}
	v.icService = icService{name: "vss", class: ClassVSS,
		inst: MustParseGUID("ee0f6cd3-4ac7-4d7d-9a35-8a8d7c2a6f01"), icType: icTypeVSS,
		versions: vssVersions}
	return v
}

func vssVersions(p Profile) (fw, msg []uint32) {
	fw = []uint32{icVersion(3, 0), icVersion(1, 0)}
	switch p {
	case WS2012R2:
		return fw, []uint32{icVersion(5, 0), icVersion(4, 0)}
	case WS2016:
		return fw, []uint32{icVersion(6, 0), icVersion(5, 0), icVersion(4, 0)}
	}
	return fw, []uint32{icVersion(7, 0), icVersion(6, 0), icVersion(5, 0), icVersion(4, 0)}
}

// op sends one VSS operation and records the answer.
func (v *VSS) op(ctx context.Context, op uint8) (VSSAnswer, error) {
	a := VSSAnswer{Op: vssOpName(op)}
	rep, h, ch, err := v.request(ctx, &v.icService, icTypeVSS, encodeVSSMsg(op))
	if err == nil {
		a.HResult = h.status
		a.Flags, err = parseVSSReply(rep.body, op)
		if err == nil && h.msgSize != h.sentSize {
			err = fmt.Errorf("%s reply message size %d, sent %d", a.Op, h.msgSize, h.sentSize)
		}
		if err != nil {
			err = violation(ch, "vss", err)
		}
	}
	if err == nil && a.HResult != HResultOK {
		err = &HResultError{Service: "vss", Op: a.Op, HResult: a.HResult}
	} else if err != nil {
		err = fmt.Errorf("hvsim: vss %s: %w", a.Op, err)
		a.Err = err
	}
	v.mu.Lock()
	v.answers = append(v.answers, a)
	v.mu.Unlock()
	return a, err
}

// CheckHotBackup sends HOT_BACKUP and returns the guest's feature flags
// (Linux answers VSSNoAutoRecovery).
func (v *VSS) CheckHotBackup(ctx context.Context) (flags uint32, err error) {
	a, err := v.op(ctx, vssOpHotBackup)
	return a.Flags, err
}

// Freeze asks the guest to quiesce its writes.
func (v *VSS) Freeze(ctx context.Context) error { _, err := v.op(ctx, vssOpFreeze); return err }

// Thaw lets the guest resume writes.
func (v *VSS) Thaw(ctx context.Context) error { _, err := v.op(ctx, vssOpThaw); return err }

// Complete sends BU_COMPLETE (backup finished).
func (v *VSS) Complete(ctx context.Context) error { _, err := v.op(ctx, vssOpBUComplete); return err }

// ErrBackupRefused is returned by Backup when the guest refused the
// HOT_BACKUP check or FREEZE: the backup did not happen online.
var ErrBackupRefused = errors.New("hvsim: vss: guest refused the online backup")

// Backup runs an online backup: HOT_BACKUP, FREEZE, frozen(ctx) (the
// snapshot; the guest is frozen while it runs), THAW, BU_COMPLETE. Each
// request is bounded by v.Timeout. When the check or FREEZE fails the
// backup stops with an error wrapping ErrBackupRefused (after a THAW if
// FREEZE was sent, like Hyper-V aborting the snapshot); frozen's error
// does not skip THAW. The result joins every failure.
func (v *VSS) Backup(ctx context.Context, frozen func(ctx context.Context) error) error {
	step := func(f func(context.Context) error) error {
		rctx, cancel := context.WithTimeout(ctx, v.Timeout)
		defer cancel()
		return f(rctx)
	}
	if err := step(func(c context.Context) error { _, err := v.CheckHotBackup(c); return err }); err != nil {
		return fmt.Errorf("%w: %w", ErrBackupRefused, err)
	}
	if err := step(v.Freeze); err != nil {
		return errors.Join(fmt.Errorf("%w: %w", ErrBackupRefused, err), step(v.Thaw))
	}
	var errs []error
	if frozen != nil {
		errs = append(errs, frozen(ctx))
	}
	errs = append(errs, step(v.Thaw))
	errs = append(errs, step(v.Complete))
	return errors.Join(errs...)
}

// Answers returns every VSS request's answer so far, oldest first.
func (v *VSS) Answers() []VSSAnswer {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]VSSAnswer(nil), v.answers...)
}
