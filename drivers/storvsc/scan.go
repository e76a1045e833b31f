package storvsc

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/gohv/gohv/drivers/scsi"
)

// exec runs one SCSI command at a on the primary channel and returns the
// bytes transferred. The data buffer (at most one bounce buffer) is the
// command's own; on a ctx error the command stays in flight and buf must
// not be reused.
func (c *Controller) exec(ctx context.Context, a addr, cdb scsi.CDB, buf []byte, dir uint8) (int, error) {
	if len(buf) == 0 {
		dir = dataNone
	}
	cmd := &scsiCmd{addr: a, cdb: cdb, buf: buf, dir: dir, done: make(chan struct{}, 1)}
	if err := c.queues[0].submit(work{s: cmd}); err != nil {
		return 0, err
	}
	select {
	case <-cmd.done:
		return cmd.n, cmd.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// absent reports whether err says there is no target or LUN at the
// address (SRB status, §6.5).
func absent(err error) bool {
	var se *SCSIError
	if !errors.As(err, &se) {
		return false
	}
	switch se.SRBStatus & srbStatusMask {
	case SRBInvalidLUN, SRBNoDevice, SRBInvalidTarget, SRBSelTimeout, SRBInvalidPath:
		return true
	}
	return false
}

// diskParams is what a probe learns about one LUN.
type diskParams struct {
	inquiry    scsi.InquiryData
	serial     string
	ids        []scsi.Designator
	capacity   scsi.Capacity
	readOnly   bool
	writeCache bool
	discard    discardMode
	maxDiscard uint32
}

const (
	inquiryAlloc = 96
	vpdAlloc     = 255
	rc16Alloc    = 32
	modeAlloc    = 192
	maxLUNList   = 256 // REPORT LUNS entries (the LUN field is one byte)
)

// probe identifies a at LUN level; nil params without error means no disk
// is there (or it is not a direct-access device).
func (c *Controller) probe(ctx context.Context, a addr) (*diskParams, error) {
	buf := make([]byte, inquiryAlloc)
	n, err := c.exec(ctx, a, scsi.Inquiry(inquiryAlloc), buf, dataIn)
	if err != nil {
		if absent(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("INQUIRY %v: %w", a, err)
	}
	inq, err := scsi.ParseInquiry(buf[:n])
	if err != nil {
		return nil, fmt.Errorf("INQUIRY %v: %w", a, err)
	}
	if !inq.Present() || inq.DeviceType != scsi.TypeDisk {
		return nil, nil
	}
	p := &diskParams{inquiry: inq, writeCache: true}

	// VPD pages: hosts may fail any of them (§6.6); each is optional.
	pages := c.vpd(ctx, a, scsi.VPDSupportedPages, func(b []byte) error {
		_, err := scsi.ParseVPDSupportedPages(b)
		return err
	})
	var supported []uint8
	if pages != nil {
		supported, _ = scsi.ParseVPDSupportedPages(pages)
	}
	has := func(pg uint8) bool { return slices.Contains(supported, pg) }
	if has(scsi.VPDUnitSerial) {
		if b := c.vpd(ctx, a, scsi.VPDUnitSerial, nil); b != nil {
			p.serial, _ = scsi.ParseVPDSerial(b)
		}
	}
	if has(scsi.VPDDeviceID) {
		if b := c.vpd(ctx, a, scsi.VPDDeviceID, nil); b != nil {
			p.ids, _ = scsi.ParseVPDDeviceID(b)
		}
	}
	var limits scsi.BlockLimits
	if has(scsi.VPDBlockLimits) {
		if b := c.vpd(ctx, a, scsi.VPDBlockLimits, nil); b != nil {
			limits, _ = scsi.ParseVPDBlockLimits(b)
		}
	}
	var prov scsi.Provisioning
	if has(scsi.VPDProvisioning) {
		if b := c.vpd(ctx, a, scsi.VPDProvisioning, nil); b != nil {
			prov, _ = scsi.ParseVPDProvisioning(b)
		}
	}

	if p.capacity, err = c.readCapacity(ctx, a); err != nil {
		return nil, err
	}
	if bs := int(p.capacity.BlockSize); bs > c.cfg.BounceSize || bs > c.maxTransfer {
		return nil, fmt.Errorf("%v: block size %d larger than a transfer (%d) or bounce buffer (%d)", a, bs, c.maxTransfer, c.cfg.BounceSize)
	}
	if ms, ok := c.modeSense(ctx, a); ok {
		p.readOnly = ms.WriteProtect
		if ms.HasCaching {
			p.writeCache = ms.WriteCache
		}
	}
	// Discard: UNMAP when the provisioning page says so; WRITE SAME(16)
	// with UNMAP otherwise, except on hosts ≤ 5.1 which lack it (§6.6).
	const maxBlocks = 0xFFFFFFFF
	switch {
	case prov.Unmap && (limits.MaxUnmapBlocks > 0 || limits == (scsi.BlockLimits{})):
		p.discard, p.maxDiscard = discardUnmap, limits.MaxUnmapBlocks
		if p.maxDiscard == 0 {
			p.maxDiscard = maxBlocks
		}
	case prov.WriteSame16 && c.version > VersionWin8:
		p.discard, p.maxDiscard = discardWriteSame, maxBlocks
		if limits.MaxWriteSameBlocks > 0 && limits.MaxWriteSameBlocks < maxBlocks {
			p.maxDiscard = uint32(limits.MaxWriteSameBlocks)
		}
	}
	return p, nil
}

// vpd fetches one VPD page; nil when the host fails it or returns
// malformed data (checked by parse when given).
func (c *Controller) vpd(ctx context.Context, a addr, page uint8, parse func([]byte) error) []byte {
	buf := make([]byte, vpdAlloc)
	n, err := c.exec(ctx, a, scsi.InquiryVPD(page, vpdAlloc), buf, dataIn)
	if err != nil || n < 4 || buf[1] != page {
		return nil
	}
	if parse != nil && parse(buf[:n]) != nil {
		return nil
	}
	return buf[:n]
}

// readCapacity tries READ CAPACITY(16), then (10).
func (c *Controller) readCapacity(ctx context.Context, a addr) (scsi.Capacity, error) {
	buf := make([]byte, rc16Alloc)
	n, err16 := c.exec(ctx, a, scsi.ReadCapacity16(rc16Alloc), buf, dataIn)
	if err16 == nil {
		cp, err := scsi.ParseReadCapacity16(buf[:n])
		if err == nil {
			return cp, nil
		}
		err16 = err
	}
	buf = make([]byte, 8)
	n, err := c.exec(ctx, a, scsi.ReadCapacity10(), buf, dataIn)
	if err != nil {
		return scsi.Capacity{}, fmt.Errorf("READ CAPACITY %v: %w (16: %v)", a, err, err16)
	}
	cp, err := scsi.ParseReadCapacity10(buf[:n])
	if err != nil {
		return scsi.Capacity{}, fmt.Errorf("READ CAPACITY(10) %v: %w", a, err)
	}
	if cp.LastLBA == 0xFFFFFFFF {
		return scsi.Capacity{}, fmt.Errorf("READ CAPACITY %v: medium needs READ CAPACITY(16), which failed: %v", a, err16)
	}
	return cp, nil
}

// modeSense reads the caching page: MODE SENSE(6), then (10).
func (c *Controller) modeSense(ctx context.Context, a addr) (scsi.ModeSenseData, bool) {
	buf := make([]byte, modeAlloc)
	if n, err := c.exec(ctx, a, scsi.ModeSense6(scsi.ModePageCaching, 0, true, modeAlloc), buf, dataIn); err == nil {
		if ms, err := scsi.ParseModeSense6(buf[:n]); err == nil {
			return ms, true
		}
	}
	if n, err := c.exec(ctx, a, scsi.ModeSense10(scsi.ModePageCaching, 0, true, modeAlloc), buf, dataIn); err == nil {
		if ms, err := scsi.ParseModeSense10(buf[:n]); err == nil {
			return ms, true
		}
	}
	return scsi.ModeSenseData{}, false
}

// reportLUNs lists the LUNs of a target; absent is true when the target
// does not exist.
func (c *Controller) reportLUNs(ctx context.Context, path, target uint8) (luns []uint8, err error) {
	a := addr{path: path, target: target}
	alloc := 8 + 8*64
	for range 2 {
		buf := make([]byte, alloc)
		n, err := c.exec(ctx, a, scsi.ReportLUNs(uint32(alloc)), buf, dataIn)
		if err != nil {
			return nil, err
		}
		list, total, err := scsi.ParseReportLUNs(buf[:n], nil)
		if err != nil {
			return nil, err
		}
		if len(list) < total && total <= maxLUNList {
			alloc = 8 + 8*total
			continue
		}
		for _, l := range list {
			if num, ok := l.Number(); ok && num <= 0xFF && !slices.Contains(luns, uint8(num)) {
				luns = append(luns, uint8(num))
			}
		}
		return luns, nil
	}
	return luns, nil
}

// targets lists the (path, target) pairs to scan.
func (c *Controller) targets() [][2]uint8 {
	if c.ide {
		return [][2]uint8{{c.idePath, c.ideTgt}}
	}
	var t [][2]uint8
	for i := range min(c.cfg.MaxTargets, 256) {
		t = append(t, [2]uint8{0, uint8(i)})
	}
	return t
}

// Rescan enumerates the controller's targets and LUNs, adds new disks,
// updates changed ones and removes vanished ones, reporting each through
// Config.OnEvent. The driver rescans by itself on ENUMERATE_BUS,
// REMOVE_DEVICE and capacity / LUN-inventory unit attentions.
func (c *Controller) Rescan(ctx context.Context) error {
	c.scanMu.Lock()
	defer c.scanMu.Unlock()
	if c.gone.Load() {
		return ErrRemoved
	}
	err := c.scan(ctx)
	c.mu.Lock()
	c.scanErr = err
	c.mu.Unlock()
	return err
}

func (c *Controller) scan(ctx context.Context) error {
	found := map[addr]*diskParams{}
	var firstErr error
	for _, t := range c.targets() {
		luns, err := c.reportLUNs(ctx, t[0], t[1])
		if err != nil {
			if absent(err) {
				continue
			}
			if ctx.Err() != nil || errors.Is(err, ErrRemoved) {
				return err
			}
			// REPORT LUNS unsupported: probe LUNs 0 .. MaxLUNs−1.
			luns = nil
			for l := range c.cfg.MaxLUNs {
				luns = append(luns, uint8(l))
			}
		}
		for _, l := range luns {
			a := addr{path: t[0], target: t[1], lun: l}
			p, err := c.probe(ctx, a)
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, ErrRemoved) {
					return err
				}
				if firstErr == nil {
					firstErr = err
				}
				// Keep a disk that exists but could not be probed now.
				c.mu.Lock()
				_, known := c.disks[a]
				c.mu.Unlock()
				if known {
					found[a] = nil
				}
				continue
			}
			if p != nil {
				found[a] = p
			}
		}
	}
	c.apply(found)
	return firstErr
}

// apply reconciles the disk set with a scan's results.
func (c *Controller) apply(found map[addr]*diskParams) {
	var events []Event
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	for a, d := range c.disks {
		p, ok := found[a]
		if !ok || (p != nil && p.serial != d.serial) {
			d.removed.Store(true)
			delete(c.disks, a)
			events = append(events, Event{Kind: DiskRemoved, Disk: d})
		}
	}
	for a, p := range found {
		if p == nil {
			continue
		}
		info := c.infoFor(a, p)
		if d, ok := c.disks[a]; ok {
			if *d.info.Load() != info {
				d.info.Store(&info)
				events = append(events, Event{Kind: DiskChanged, Disk: d})
			}
			continue
		}
		d := &Disk{c: c, addr: a, inquiry: p.inquiry, serial: p.serial, ids: p.ids,
			discard: p.discard, maxDiscard: p.maxDiscard}
		d.info.Store(&info)
		c.disks[a] = d
		events = append(events, Event{Kind: DiskAdded, Disk: d})
	}
	c.mu.Unlock()
	slices.SortFunc(events, func(x, y Event) int {
		if x.Kind != y.Kind {
			return int(y.Kind) - int(x.Kind) // changes, then removals, then additions
		}
		return int(x.Disk.addr.lun) - int(y.Disk.addr.lun) + 256*(int(x.Disk.addr.target)-int(y.Disk.addr.target))
	})
	for _, e := range events {
		c.emit(e)
	}
}

func (c *Controller) infoFor(a addr, p *diskParams) Info {
	return Info{
		Name:        c.diskName(a),
		SectorSize:  int(p.capacity.BlockSize),
		Sectors:     p.capacity.Blocks(),
		ReadOnly:    p.readOnly,
		WriteCache:  p.writeCache,
		CanDiscard:  p.discard != discardNone,
		MaxTransfer: c.maxTransfer,
		Queues:      len(c.queues),
	}
}
