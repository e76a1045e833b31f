package hvsim

import (
	"errors"
	"testing"
)

// Fuzz targets of every parser of guest IC replies (time sync, KVP, VSS):
// none may panic, and what they accept must be self-consistent.

func icReplySeed(typ uint16, body []byte) []byte {
	b := make([]byte, icOffBody+len(body))
	putICHeader(b, icVersion(3, 0), icVersion(4, 0), typ, 1, len(body))
	b[icOffFlags] = icFlagTransaction | icFlagResponse
	copy(b[icOffBody:], body)
	return b
}

func FuzzParseICReply(f *testing.F) {
	f.Add(icReplySeed(icTypeTimeSync, encodeTimeSyncBody(icVersion(4, 0), 1, 2, 1)))
	f.Add(icReplySeed(icTypeVSS, encodeVSSMsg(vssOpFreeze)))
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseICReply(b)
		if err != nil {
			if !errors.Is(err, errWire) {
				t.Fatalf("error %v does not wrap errWire", err)
			}
			return
		}
		if icOffBody+h.msgSize > len(b) {
			t.Fatalf("accepted message size %d in %d bytes", h.msgSize, len(b))
		}
	})
}

func FuzzParseKVPReply(f *testing.F) {
	enum, _ := encodeKVPValueMsg(kvpOpEnumerate, KVPPoolAuto, 0, 0, "", nil)
	rec := enum[kvpOffEnumRecord-icOffBody:]
	_ = putKVPRecord(rec, KVPTypeString, "OSName", []byte{'g', 0, 0, 0})
	f.Add(icReplySeed(icTypeKVP, enum), uint8(kvpOpEnumerate), uint8(KVPPoolAuto), uint32(0))
	get, _ := encodeKVPValueMsg(kvpOpGet, KVPPoolGuest, 0, KVPTypeDWord, "k", []byte{1, 2, 3, 4})
	f.Add(icReplySeed(icTypeKVP, get), uint8(kvpOpGet), uint8(KVPPoolGuest), uint32(0))
	ip, _ := encodeKVPIPMsg(kvpOpGetIPInfo, IPInfo{AdapterID: "00:15:5D:00:00:01", AddressFamily: 1, Addresses: []string{"10.0.0.2"}})
	f.Add(icReplySeed(icTypeKVP, ip), uint8(kvpOpGetIPInfo), uint8(0), uint32(0))
	f.Add(icReplySeed(icTypeKVP, enum[:40]), uint8(kvpOpEnumerate), uint8(KVPPoolAuto), HResultNoMoreItems)
	f.Fuzz(func(t *testing.T, b []byte, op, pool uint8, status uint32) {
		r, err := parseKVPReply(b, op%6, KVPPool(pool), status)
		if err != nil {
			if !errors.Is(err, errWire) {
				t.Fatalf("error %v does not wrap errWire", err)
			}
			return
		}
		if len(r.record.Raw) > KVPMaxValueSize || len(r.record.Key) > 3*KVPMaxKeySize {
			t.Fatalf("accepted oversized record %d/%d", len(r.record.Key), len(r.record.Raw))
		}
	})
}

func FuzzParseKVPRecord(f *testing.F) {
	rec := make([]byte, kvpRecordLen)
	_ = putKVPRecord(rec, KVPTypeString, "key", []byte{'v', 0, 0, 0})
	f.Add(rec)
	q := make([]byte, kvpRecordLen)
	_ = putKVPRecord(q, KVPTypeQWord, "q", []byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(q)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseKVPRecord(b)
		if err == nil && len(r.Raw) > KVPMaxValueSize {
			t.Fatalf("value of %d bytes", len(r.Raw))
		}
	})
}

func FuzzParseVSSReply(f *testing.F) {
	f.Add(icReplySeed(icTypeVSS, encodeVSSMsg(vssOpHotBackup)), uint8(vssOpHotBackup))
	f.Add([]byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, op uint8) {
		if _, err := parseVSSReply(b, op); err != nil && !errors.Is(err, errWire) {
			t.Fatalf("error %v does not wrap errWire", err)
		}
	})
}

// TestKVPRecordRoundTrip: what the host encodes, the reply parser reads
// back (the guest echoes a record unchanged).
func TestKVPRecordRoundTrip(t *testing.T) {
	for _, c := range []struct {
		typ   uint32
		key   string
		value []byte
		want  string
	}{
		{KVPTypeString, "héllo", []byte{'w', 0, 0xe9, 0, 0, 0}, "wé"},
		{KVPTypeDWord, "d", []byte{0x78, 0x56, 0x34, 0x12}, "305419896"},
		{KVPTypeQWord, "q", []byte{1, 0, 0, 0, 0, 0, 0, 0}, "1"},
		{KVPTypeU64Linux, "l", []byte{2, 0, 0, 0, 0, 0, 0, 0}, "2"},
	} {
		rec := make([]byte, kvpRecordLen)
		if err := putKVPRecord(rec, c.typ, c.key, c.value); err != nil {
			t.Fatal(err)
		}
		r, err := parseKVPRecord(rec)
		if err != nil || r.Key != c.key || r.Value != c.want || r.Type != c.typ {
			t.Errorf("%q: %+v, %v", c.key, r, err)
		}
	}
	ip := IPInfo{AdapterID: "x", AddressFamily: KVPFamilyIPv6, DHCP: true, Addresses: []string{"::1"}, DNS: []string{"a", "b"}}
	b, err := encodeKVPIPMsg(kvpOpSetIPInfo, ip)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseKVPIPRecord(b[kvpOffIP-icOffBody:])
	if err != nil || got.AdapterID != "x" || !got.DHCP || got.AddressFamily != KVPFamilyIPv6 || len(got.DNS) != 2 || got.Gateways != nil {
		t.Fatalf("%+v, %v", got, err)
	}
}
