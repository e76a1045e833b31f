package hvsim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
)

// KVP is the host of the key-value pair exchange IC
// (docs/hyperv-protocol.md §8.6). Like Hyper-V, once the guest negotiated
// it enumerates the guest's auto pool (ENUMERATE with index 0, 1, 2, …
// until the guest answers HResultNoMoreItems) and records the values
// (GuestAuto). Tests then read and write pools with Get, Set, SetExternal,
// Delete, Enumerate, GetIPInfo and SetIPInfo. At most one transaction is
// outstanding: calls queue up.
//
// Every value operation is sent with the 2580-byte body of the largest
// value message, every IP operation with the 7428-byte IP body
// (docs/hyperv-protocol.md §8.6), and the guest's reply must keep those sizes.
//
// Offered versions: framework 3.0, 1.0; messages 5.0 (OpenVMM), 4.0, 3.0,
// 1.0 on WS2016 and later, 4.0, 3.0, 1.0 on WS2012R2 (Linux: 4.0 is the
// Windows 8 / Server 2012 version; 5.0 on 2016+ is inferred).
type KVP struct {
	icService
	icRequests

	// maxEnumerate bounds the auto-pool enumeration against a guest that
	// never says "no more items".
	maxEnumerate int

	mu         sync.Mutex
	external   map[string]string // what the guest accepted into the external pool
	auto       map[string]string
	autoErr    error
	enumerated chan struct{} // closed when the first enumeration ended
}

// NewKVP returns a KVP IC host.
func NewKVP() *KVP {
	k := &KVP{icRequests: newICRequests(), maxEnumerate: 256, enumerated: make(chan struct{})}
	k.icService = icService{name: "kvp", class: ClassKVP,
		inst: MustParseGUID("242ff919-07db-4180-9c2e-b86cb68c8c55"), icType: icTypeKVP,
		versions: kvpVersions}
	k.onReady = k.enumerateAuto
	return k
}

func kvpVersions(p Profile) (fw, msg []uint32) {
	fw = []uint32{icVersion(3, 0), icVersion(1, 0)}
	if p == WS2012R2 {
		return fw, []uint32{icVersion(4, 0), icVersion(3, 0), icVersion(1, 0)}
	}
	return fw, []uint32{icVersion(5, 0), icVersion(4, 0), icVersion(3, 0), icVersion(1, 0)}
}

// ErrKVPEnumeration is returned by WaitAuto when the auto-pool
// enumeration did not end with HResultNoMoreItems.
var ErrKVPEnumeration = errors.New("hvsim: kvp: auto pool enumeration failed")

func (k *KVP) enumerateAuto(ctx context.Context, ch *Channel) {
	recs, err := k.enumerate(ctx, KVPPoolAuto)
	auto := map[string]string{}
	for _, r := range recs {
		auto[r.Key] = r.Value
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.auto, k.autoErr = auto, err
	select {
	case <-k.enumerated:
	default:
		close(k.enumerated)
	}
}

// GuestAuto returns the guest's auto pool as last enumerated (nil before
// the first enumeration ended).
func (k *KVP) GuestAuto() map[string]string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return maps.Clone(k.auto)
}

// WaitAuto waits for the first auto-pool enumeration after the guest
// negotiated and returns its result; the error wraps ErrKVPEnumeration
// when the enumeration ended otherwise than with HResultNoMoreItems.
func (k *KVP) WaitAuto(ctx context.Context) (map[string]string, error) {
	select {
	case <-k.enumerated:
	case <-ctx.Done():
		return nil, fmt.Errorf("hvsim: kvp: waiting for the auto pool: %w", ctx.Err())
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.autoErr != nil {
		return maps.Clone(k.auto), fmt.Errorf("%w: %w", ErrKVPEnumeration, k.autoErr)
	}
	return maps.Clone(k.auto), nil
}

// Enumerate lists pool with ENUMERATE index 0, 1, … until the guest
// answers HResultNoMoreItems.
func (k *KVP) Enumerate(ctx context.Context, pool KVPPool) ([]KVPRecord, error) {
	return k.enumerate(ctx, pool)
}

func (k *KVP) enumerate(ctx context.Context, pool KVPPool) ([]KVPRecord, error) {
	var out []KVPRecord
	for i := 0; ; i++ {
		if i == k.maxEnumerate {
			return out, fmt.Errorf("hvsim: kvp: guest still enumerating pool %d at index %d", pool, i)
		}
		body, err := encodeKVPValueMsg(kvpOpEnumerate, pool, uint32(i), 0, "", nil)
		if err != nil {
			return out, err
		}
		r, err := k.do(ctx, kvpOpEnumerate, pool, body)
		var he *HResultError
		if errors.As(err, &he) && he.HResult == HResultNoMoreItems {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, r.record)
	}
}

// do runs one KVP operation and validates the reply.
func (k *KVP) do(ctx context.Context, op uint8, pool KVPPool, body []byte) (kvpReply, error) {
	return k.doKey(ctx, op, pool, body, "")
}

// doKey is do for a GET of key: the reply must be for that key.
func (k *KVP) doKey(ctx context.Context, op uint8, pool KVPPool, body []byte, key string) (kvpReply, error) {
	rep, h, ch, err := k.request(ctx, &k.icService, icTypeKVP, body)
	if err != nil {
		return kvpReply{}, fmt.Errorf("hvsim: kvp %s: %w", kvpOpName(op), err)
	}
	if h.msgSize != h.sentSize {
		return kvpReply{}, violation(ch, "kvp", fmt.Errorf("%s reply message size %d, sent %d", kvpOpName(op), h.msgSize, h.sentSize))
	}
	r, err := parseKVPReply(rep.body, op, pool, h.status)
	if err != nil {
		return kvpReply{}, violation(ch, "kvp", err)
	}
	if op == kvpOpEnumerate && h.status == HResultOK {
		if want := le.Uint32(body[kvpOffEnumIndex-icOffBody:]); r.index != want {
			return kvpReply{}, violation(ch, "kvp", fmt.Errorf("ENUMERATE reply for index %d to index %d", r.index, want))
		}
		if r.record.Key == "" {
			return kvpReply{}, violation(ch, "kvp", fmt.Errorf("ENUMERATE reply with an empty key at index %d", r.index))
		}
	}
	if op == kvpOpGet && h.status == HResultOK && r.record.Key != key {
		return kvpReply{}, violation(ch, "kvp", fmt.Errorf("GET %q answered for key %q", key, r.record.Key))
	}
	if h.status != HResultOK {
		return r, &HResultError{Service: "kvp", Op: kvpOpName(op), HResult: h.status}
	}
	return r, nil
}

// Get asks the guest for key in pool.
func (k *KVP) Get(ctx context.Context, pool KVPPool, key string) (KVPRecord, error) {
	body, err := encodeKVPValueMsg(kvpOpGet, pool, 0, KVPTypeString, key, nil)
	if err != nil {
		return KVPRecord{}, fmt.Errorf("hvsim: kvp GET: %w", err)
	}
	r, err := k.doKey(ctx, kvpOpGet, pool, body, key)
	if err != nil {
		return KVPRecord{}, err
	}
	return r.record, nil
}

// Set writes key = value (REG_SZ) into pool in the guest.
func (k *KVP) Set(ctx context.Context, pool KVPPool, key, value string) error {
	v, err := kvpStringValue(value)
	if err != nil {
		return fmt.Errorf("hvsim: kvp SET: %w", err)
	}
	return k.SetRaw(ctx, pool, KVPTypeString, key, v)
}

// SetRaw writes key with a value of type typ given as its raw bytes (at
// most KVPMaxValueSize).
func (k *KVP) SetRaw(ctx context.Context, pool KVPPool, typ uint32, key string, value []byte) error {
	body, err := encodeKVPValueMsg(kvpOpSet, pool, 0, typ, key, value)
	if err != nil {
		return fmt.Errorf("hvsim: kvp SET: %w", err)
	}
	if _, err := k.do(ctx, kvpOpSet, pool, body); err != nil {
		return err
	}
	if pool == KVPPoolExternal {
		rec := make([]byte, kvpRecordLen)
		_ = putKVPRecord(rec, typ, key, value) // encoded above already
		r, perr := parseKVPRecord(rec)
		k.mu.Lock()
		if k.external == nil {
			k.external = map[string]string{}
		}
		if perr == nil {
			k.external[key] = r.Value
		} else {
			k.external[key] = string(value)
		}
		k.mu.Unlock()
	}
	return nil
}

// External returns the external pool as the guest accepted it: every key
// a successful SET wrote and no successful DELETE removed since.
func (k *KVP) External() map[string]string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return maps.Clone(k.external)
}

// SetExternal writes key = value into the external pool (host → guest
// data), as the host's Msvm_KvpExchangeComponent AddKvpItems does.
func (k *KVP) SetExternal(ctx context.Context, key, value string) error {
	return k.Set(ctx, KVPPoolExternal, key, value)
}

// Delete removes key from pool in the guest.
func (k *KVP) Delete(ctx context.Context, pool KVPPool, key string) error {
	body, err := encodeKVPDeleteMsg(pool, key)
	if err != nil {
		return fmt.Errorf("hvsim: kvp DELETE: %w", err)
	}
	if _, err := k.do(ctx, kvpOpDelete, pool, body); err != nil {
		return err
	}
	if pool == KVPPoolExternal {
		k.mu.Lock()
		delete(k.external, key)
		k.mu.Unlock()
	}
	return nil
}

// MACAdapterID formats mac as the adapter id of GET_IP_INFO: upper-case
// hex pairs separated by colons (the form Linux's hv_kvp_daemon compares
// with the interfaces' addresses).
func MACAdapterID(mac [6]byte) string {
	return fmt.Sprintf("%02X:%02X:%02X:%02X:%02X:%02X", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5])
}

// GetIPInfo asks the guest for the IP configuration of the adapter
// adapterID (see MACAdapterID).
func (k *KVP) GetIPInfo(ctx context.Context, adapterID string) (IPInfo, error) {
	body, err := encodeKVPIPMsg(kvpOpGetIPInfo, IPInfo{AdapterID: adapterID})
	if err != nil {
		return IPInfo{}, fmt.Errorf("hvsim: kvp GET_IP_INFO: %w", err)
	}
	r, err := k.do(ctx, kvpOpGetIPInfo, 0, body)
	if err != nil {
		return IPInfo{}, err
	}
	return r.ip, nil
}

// SetIPInfo injects an IP configuration (SET_IP_INFO).
func (k *KVP) SetIPInfo(ctx context.Context, info IPInfo) error {
	body, err := encodeKVPIPMsg(kvpOpSetIPInfo, info)
	if err != nil {
		return fmt.Errorf("hvsim: kvp SET_IP_INFO: %w", err)
	}
	_, err = k.do(ctx, kvpOpSetIPInfo, 0, body)
	return err
}
