package kvp

import (
	"encoding/binary"

	"github.com/gohv/gohv/drivers/ic"
)

// handle answers one KVP message in place. It runs on the bus dispatch
// goroutine and allocates nothing once the pools stopped growing.
//
// Failure statuses follow Linux's daemon where the host sees them: a
// missing key on GET or DELETE and the end of an enumeration are
// StatusNoMoreItems (Linux tools/hv/hv_kvp_daemon.c HV_S_CONT); an unknown
// adapter is StatusFail for GET_IP_INFO and StatusNotFound for SET_IP_INFO
// (likewise); a malformed message StatusInvalidArg; a pool the host may
// not touch, or IP operations without an AdapterProvider,
// StatusNotSupported; a full pool StatusFail.
func (d *Driver) handle(msg []byte, _ ic.Version) ic.Status {
	h, need := parseHeader(msg)
	if need != 0 {
		d.malformed.Add(1)
		return ic.StatusInvalidArg
	}
	d.ops[h.Operation].Add(1)
	var st ic.Status
	switch h.Operation {
	case OpGet:
		st = d.get(msg, h.Pool)
	case OpSet:
		st = d.set(msg, h.Pool)
	case OpDelete:
		st = d.delete(msg, h.Pool)
	case OpEnumerate:
		st = d.enumerate(msg, h.Pool)
	case OpGetIPInfo:
		st = d.getIPInfo(msg)
	case OpSetIPInfo:
		st = d.setIPInfo(msg)
	}
	switch st {
	case ic.StatusOK:
	case ic.StatusInvalidArg:
		d.malformed.Add(1)
		d.failed.Add(1)
	default:
		d.failed.Add(1)
	}
	return st
}

// poolStatus classifies a pool for an operation: stored pools are those
// kept in d.pools the operation may touch.
func poolStatus(p Pool, hostWrites bool) ic.Status {
	switch p {
	case PoolExternal, PoolAutoExternal:
		return ic.StatusOK
	case PoolGuest, PoolAuto:
		if hostWrites {
			// The guest owns these: the host reads them only.
			return ic.StatusNotSupported
		}
		return ic.StatusOK
	case PoolAutoInternal:
		return ic.StatusNotSupported
	}
	return ic.StatusInvalidArg
}

func (d *Driver) get(msg []byte, pool Pool) ic.Status {
	if st := poolStatus(pool, false); st != ic.StatusOK {
		return st
	}
	rec := msg[offGetSetRecord : offGetSetRecord+RecordSize]
	r, err := parseRecord(rec, false)
	if err != nil {
		return ic.StatusInvalidArg
	}
	if pool == PoolAuto {
		for i, k := range AutoKeys {
			if equalASCII(r.key, k) {
				d.putAuto(rec, i)
				return ic.StatusOK
			}
		}
		return ic.StatusNoMoreItems
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s := &d.pools[pool]
	i := s.find(r.key)
	if i < 0 {
		return ic.StatusNoMoreItems
	}
	e := s.entries[i]
	putRecordValue(rec, e.typ, e.valBytes())
	return ic.StatusOK
}

func (d *Driver) set(msg []byte, pool Pool) ic.Status {
	if st := poolStatus(pool, true); st != ic.StatusOK {
		return st
	}
	r, err := parseRecord(msg[offGetSetRecord:offGetSetRecord+RecordSize], true)
	if err != nil {
		return ic.StatusInvalidArg
	}
	d.mu.Lock()
	changed, ok := d.pools[pool].put(&d.free, d.cfg.MaxEntries, r.key, r.typ, r.value)
	d.mu.Unlock()
	if !ok {
		return ic.StatusFail
	}
	if changed {
		d.notify()
	}
	return ic.StatusOK
}

func (d *Driver) delete(msg []byte, pool Pool) ic.Status {
	if st := poolStatus(pool, true); st != ic.StatusOK {
		return st
	}
	k, err := key(msg[offDeleteKey:offDeleteKey+KeyMax], binary.LittleEndian.Uint32(msg[offDeleteKeySize:]))
	if err != nil {
		return ic.StatusInvalidArg
	}
	d.mu.Lock()
	ok := d.pools[pool].remove(&d.free, k)
	d.mu.Unlock()
	if !ok {
		return ic.StatusNoMoreItems
	}
	d.notify()
	return ic.StatusOK
}

func (d *Driver) enumerate(msg []byte, pool Pool) ic.Status {
	if st := poolStatus(pool, false); st != ic.StatusOK {
		return st
	}
	index := binary.LittleEndian.Uint32(msg[offEnumIndex:])
	rec := msg[offEnumRecord : offEnumRecord+RecordSize]
	if pool == PoolAuto {
		if index >= uint32(len(AutoKeys)) {
			return ic.StatusNoMoreItems
		}
		w := utf16Writer{b: rec[recKey : recKey+KeyMax]}
		writeItem(&w, AutoKeys[index], 0)
		binary.LittleEndian.PutUint32(rec[recKeySize:], uint32(w.finish()))
		d.putAuto(rec, int(index))
		return ic.StatusOK
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s := &d.pools[pool]
	if index >= uint32(len(s.entries)) {
		return ic.StatusNoMoreItems
	}
	e := s.entries[index]
	putRecordKey(rec, e.keyBytes())
	putRecordValue(rec, e.typ, e.valBytes())
	return ic.StatusOK
}

// putAuto writes the value of auto key i into rec as a REG_SZ.
func (d *Driver) putAuto(rec []byte, i int) {
	w := utf16Writer{b: rec[recValue : recValue+ValueMax]}
	switch i {
	case autoIPv4, autoIPv6:
		if d.cfg.Addresses != nil {
			d.addrs = d.cfg.Addresses.AppendAddrs(d.addrs[:0])
			for _, a := range d.addrs {
				a = a.Unmap()
				if a.Is4() != (i == autoIPv4) || !a.IsValid() {
					continue
				}
				d.text = a.AppendTo(d.text[:0])
				writeItem(&w, d.text, ';')
			}
		}
	default:
		writeItem(&w, d.auto[i], 0)
	}
	binary.LittleEndian.PutUint32(rec[recValueType:], uint32(TypeString))
	binary.LittleEndian.PutUint32(rec[recValueSize:], uint32(w.finish()))
}
