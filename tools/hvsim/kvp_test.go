package hvsim

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// utf16le writes ASCII s as UTF-16LE with a NUL at b[off:] and returns the
// byte count (docs/hyperv-protocol.md §8.6: sizes include the NUL).
func utf16le(b []byte, off int, s string) int {
	for i := 0; i < len(s); i++ {
		b[off+2*i] = s[i]
		b[off+2*i+1] = 0
	}
	b[off+2*len(s)], b[off+2*len(s)+1] = 0, 0
	return 2*len(s) + 2
}

// kvpHeader is the expected header of a KVP request of body size n.
func kvpHeader(q icPkt, msgMajor byte, n int) []byte {
	return []byte{
		1, 0, 0, 0, byte(20 + n), byte((20 + n) >> 8), 0, 0,
		3, 0, 0, 0, 2, 0, msgMajor, 0, 0, 0, byte(n), byte(n >> 8),
		0, 0, 0, 0, q.p[24], 0x03, 0, 0,
	}
}

// kvpGuest answers ENUMERATE of the auto pool from entries.
func (oc *openedChannel) kvpAnswerEnumerate(t testing.TB, entries [][2]string) {
	t.Helper()
	for i := 0; ; i++ {
		q := oc.nextIC(t)
		want := append(kvpHeader(q, 4, 2580), 3, 2, 0, 0, byte(i), 0, 0, 0)
		if !bytes.Equal(q.p[:len(want)], want) {
			t.Fatalf("ENUMERATE %d\n got % x\nwant % x", i, q.p[:len(want)], want)
		}
		if i == len(entries) {
			oc.answer(t, q, 0x80070103)
			return
		}
		r := bytes.Clone(q.p[:28+2580])
		put32(r, 36, 1) // REG_SZ
		put32(r, 40, uint32(utf16le(r, 48, entries[i][0])))
		put32(r, 44, uint32(utf16le(r, 560, entries[i][1])))
		r[25] = 0x05
		oc.reply(t, q.txid, r)
	}
}

func setupKVP(t *testing.T, auto [][2]string) (*KVP, *openedChannel) {
	t.Helper()
	k := NewKVP()
	oc := setupDevice(t, Config{}, k, 16, 8)
	oc.answerNegotiate(t, testFw3010, []uint32{v50, v40, v30, v10}, v30, v40)
	oc.kvpAnswerEnumerate(t, auto)
	return k, oc
}

func TestKVPAutoEnumeration(t *testing.T) {
	auto := [][2]string{{"FullyQualifiedDomainName", "gohv"}, {"IntegrationServicesVersion", "1.0"}, {"OSName", "gohv"}}
	k, oc := setupKVP(t, auto)
	got, err := k.WaitAuto(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"FullyQualifiedDomainName": "gohv", "IntegrationServicesVersion": "1.0", "OSName": "gohv"}
	if len(got) != len(want) || got["OSName"] != "gohv" || got["IntegrationServicesVersion"] != "1.0" || got["FullyQualifiedDomainName"] != "gohv" {
		t.Fatalf("auto pool %v", got)
	}
	if g := k.GuestAuto(); len(g) != 3 {
		t.Fatalf("GuestAuto %v", g)
	}
	noViolations(t, oc.g.h)
}

// async runs f and returns its error channel.
func async(f func() error) chan error {
	c := make(chan error, 1)
	go func() { c <- f() }()
	return c
}

func TestKVPSetGetDeleteWire(t *testing.T) {
	k, oc := setupKVP(t, nil)
	ctx := ctxT(t)

	// SET into the external pool (docs/hyperv-protocol.md §8.6: record @32).
	res := async(func() error { return k.SetExternal(ctx, "ab", "xyz") })
	q := oc.nextIC(t)
	want := append(kvpHeader(q, 4, 2580),
		1, 0, 0, 0, // @28 op SET, pool external, pad
		1, 0, 0, 0, // @32 type REG_SZ
		6, 0, 0, 0, // @36 key size "ab\0"
		8, 0, 0, 0, // @40 value size "xyz\0"
	)
	want = append(want, 'a', 0, 'b', 0, 0, 0) // @44 key
	if !bytes.Equal(q.p[:len(want)], want) {
		t.Fatalf("SET\n got % x\nwant % x", q.p[:len(want)], want)
	}
	if !bytes.Equal(q.p[556:556+8], []byte{'x', 0, 'y', 0, 'z', 0, 0, 0}) {
		t.Fatalf("SET value % x", q.p[556:564])
	}
	if len(q.p) < 28+2580 {
		t.Fatalf("SET payload %d bytes", len(q.p))
	}
	oc.answer(t, q, 0)
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	if e := k.External(); len(e) != 1 || e["ab"] != "xyz" {
		t.Fatalf("External %v", e)
	}

	// GET from the guest pool: the guest fills the value.
	type getRes struct {
		r   KVPRecord
		err error
	}
	gr := make(chan getRes, 1)
	go func() { r, err := k.Get(ctx, KVPPoolGuest, "k"); gr <- getRes{r, err} }()
	q = oc.nextIC(t)
	want = append(kvpHeader(q, 4, 2580), 0, 1, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 'k', 0, 0, 0)
	if !bytes.Equal(q.p[:len(want)], want) {
		t.Fatalf("GET\n got % x\nwant % x", q.p[:len(want)], want)
	}
	r := bytes.Clone(q.p[:28+2580])
	put32(r, 40, uint32(utf16le(r, 556, "val")))
	r[25] = 0x05
	oc.reply(t, q.txid, r)
	if g := <-gr; g.err != nil || g.r.Key != "k" || g.r.Value != "val" || g.r.Type != KVPTypeString {
		t.Fatalf("Get = %+v, %v", g.r, g.err)
	}

	// GET of a missing key: the guest's HRESULT comes back typed.
	go func() { r, err := k.Get(ctx, KVPPoolGuest, "nope"); gr <- getRes{r, err} }()
	q = oc.nextIC(t)
	oc.answer(t, q, HResultNotFound)
	var he *HResultError
	if g := <-gr; !errors.As(g.err, &he) || he.HResult != HResultNotFound {
		t.Fatalf("Get missing: %v", g.err)
	}

	// DELETE: key size @32, key @36.
	res = async(func() error { return k.Delete(ctx, KVPPoolExternal, "ab") })
	q = oc.nextIC(t)
	want = append(kvpHeader(q, 4, 2580), 2, 0, 0, 0, 6, 0, 0, 0, 'a', 0, 'b', 0, 0, 0)
	if !bytes.Equal(q.p[:len(want)], want) {
		t.Fatalf("DELETE\n got % x\nwant % x", q.p[:len(want)], want)
	}
	oc.answer(t, q, 0)
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	if e := k.External(); len(e) != 0 {
		t.Fatalf("External after DELETE %v", e)
	}
	noViolations(t, oc.g.h)
}

func TestKVPIPInfoWire(t *testing.T) {
	k, oc := setupKVP(t, nil)
	ctx := ctxT(t)
	mac := MACAdapterID([6]byte{0x00, 0x15, 0x5d, 0x01, 0xab, 0xff})
	if mac != "00:15:5D:01:AB:FF" {
		t.Fatalf("MACAdapterID = %q", mac)
	}
	type ipRes struct {
		info IPInfo
		err  error
	}
	res := make(chan ipRes, 1)
	go func() { i, err := k.GetIPInfo(ctx, mac); res <- ipRes{i, err} }()
	q := oc.nextIC(t)
	// 7428-byte body, op @28, pool @29, adapter id @30 (docs/hyperv-protocol.md §8.6).
	want := append(kvpHeader(q, 4, 7428), 4, 0)
	for _, c := range mac {
		want = append(want, byte(c), 0)
	}
	want = append(want, 0, 0)
	if !bytes.Equal(q.p[:len(want)], want) {
		t.Fatalf("GET_IP_INFO\n got % x\nwant % x", q.p[:len(want)], want)
	}
	r := bytes.Clone(q.p[:28+7428])
	r[30+256] = 1                        // IPv4
	r[30+257] = 1                        // DHCP
	utf16le(r, 30+258, "10.0.0.5")       // addresses
	utf16le(r, 30+2306, "255.255.255.0") // subnets
	utf16le(r, 30+4354, "10.0.0.1")      // gateways
	utf16le(r, 30+5378, "1.1.1.1;8.8.8.8")
	r[25] = 0x05
	oc.reply(t, q.txid, r)
	got := <-res
	if got.err != nil || got.info.AdapterID != mac || got.info.AddressFamily != KVPFamilyIPv4 || !got.info.DHCP ||
		!slices.Equal(got.info.Addresses, []string{"10.0.0.5"}) || !slices.Equal(got.info.Subnets, []string{"255.255.255.0"}) ||
		!slices.Equal(got.info.Gateways, []string{"10.0.0.1"}) || !slices.Equal(got.info.DNS, []string{"1.1.1.1", "8.8.8.8"}) {
		t.Fatalf("GetIPInfo = %+v, %v", got.info, got.err)
	}

	set := async(func() error {
		return k.SetIPInfo(ctx, IPInfo{AdapterID: "A", AddressFamily: KVPFamilyBoth, Addresses: []string{"1.2.3.4", "fe80::1"},
			Subnets: []string{"255.0.0.0", "64"}, Gateways: []string{"1.0.0.1"}, DNS: []string{"9.9.9.9"}})
	})
	q = oc.nextIC(t)
	want = append(kvpHeader(q, 4, 7428), 5, 0, 'A', 0, 0, 0)
	if !bytes.Equal(q.p[:len(want)], want) {
		t.Fatalf("SET_IP_INFO\n got % x\nwant % x", q.p[:len(want)], want)
	}
	check := func(off int, s string) {
		t.Helper()
		exp := make([]byte, 2*len(s)+2)
		utf16le(exp, 0, s)
		if !bytes.Equal(q.p[off:off+len(exp)], exp) {
			t.Errorf("@%d % x, want %q", off, q.p[off:off+len(exp)], s)
		}
	}
	if q.p[30+256] != 3 || q.p[30+257] != 0 {
		t.Errorf("family %d dhcp %d", q.p[30+256], q.p[30+257])
	}
	check(30+258, "1.2.3.4;fe80::1")
	check(30+2306, "255.0.0.0;64")
	check(30+4354, "1.0.0.1")
	check(30+5378, "9.9.9.9")
	oc.answer(t, q, 0)
	if err := <-set; err != nil {
		t.Fatal(err)
	}
	noViolations(t, oc.g.h)
}

// TestKVPOneOutstanding: while a request is unanswered, another cannot
// go out: it gives up with its context and nothing reached the ring.
func TestKVPOneOutstanding(t *testing.T) {
	k, oc := setupKVP(t, nil)
	ctx1, cancel1 := context.WithCancel(context.Background())
	first := async(func() error { return k.SetExternal(ctx1, "a", "1") })
	q := oc.nextIC(t)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if err := k.SetExternal(ctx2, "b", "2"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Set: %v", err)
	}
	if p := oc.in.read(); p != nil {
		t.Fatalf("a second request was sent while one was outstanding: % x", p[:48])
	}
	oc.answer(t, q, 0)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	cancel1()
	noViolations(t, oc.g.h)
}

// TestKVPStrictReplies: malformed guest answers are violations and errors.
func TestKVPStrictReplies(t *testing.T) {
	cases := []struct {
		name string
		mod  func(r []byte) []byte
	}{
		{"truncated", func(r []byte) []byte { r[18] = 100; r[19] = 0; return r[:28+100] }},
		{"message size changed", func(r []byte) []byte { r[18], r[19] = 0xd0, 0x07; return r }}, // 2000
		{"key size over 512", func(r []byte) []byte { put32(r, 36, 1); put32(r, 40, 514); return r }},
		{"value size over 2048", func(r []byte) []byte { put32(r, 36, 1); put32(r, 40, 4); put32(r, 44, 2050); return r }},
		{"odd key size", func(r []byte) []byte { put32(r, 36, 1); put32(r, 40, 3); return r }},
		{"wrong index", func(r []byte) []byte {
			put32(r, 32, 7)
			put32(r, 36, 1)
			put32(r, 40, utf16size("k"))
			utf16le(r, 48, "k")
			return r
		}},
		{"empty key", func(r []byte) []byte { put32(r, 36, 1); put32(r, 40, 2); return r }},
		{"wrong op", func(r []byte) []byte { r[28] = 1; return r }},
		{"wrong pool", func(r []byte) []byte { r[29] = 0; return r }},
		{"bad dword", func(r []byte) []byte {
			put32(r, 36, 4)
			put32(r, 40, 4)
			utf16le(r, 48, "k")
			put32(r, 44, 3)
			return r
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := NewKVP()
			oc := setupDevice(t, Config{}, k, 16, 8)
			oc.answerNegotiate(t, testFw3010, []uint32{v50, v40, v30, v10}, v30, v40)
			q := oc.nextIC(t)
			r := bytes.Clone(q.p[:28+2580])
			r[25] = 0x05
			oc.reply(t, q.txid, c.mod(r))
			if _, err := k.WaitAuto(ctxT(t)); !errors.Is(err, ErrKVPEnumeration) || !errors.Is(err, ErrIC) {
				t.Fatalf("WaitAuto: %v", err)
			}
			if v := oc.g.h.Violations(); len(v) != 1 || !errors.Is(v[0], ErrIC) {
				t.Fatalf("violations %v", v)
			}
		})
	}
}

func utf16size(s string) uint32 { return uint32(2*len(s) + 2) }

// TestKVPNeverEnding: a guest that never says "no more items" is cut off.
func TestKVPNeverEnding(t *testing.T) {
	k := NewKVP()
	k.maxEnumerate = 3
	oc := setupDevice(t, Config{}, k, 16, 8)
	oc.answerNegotiate(t, testFw3010, []uint32{v50, v40, v30, v10}, v30, v40)
	oc.kvpAnswerEnumerate(t, [][2]string{{"a", "1"}, {"b", "2"}})
	// A guest pool with more entries than the limit (3):
	res := make(chan error, 1)
	go func() { _, err := k.Enumerate(ctxT(t), KVPPoolGuest); res <- err }()
	for i := 0; i < 3; i++ {
		q := oc.nextIC(t)
		if q.p[28] != 3 || q.p[29] != 1 || get32(q.p, 32) != uint32(i) {
			t.Fatalf("ENUMERATE op %d pool %d index %d", q.p[28], q.p[29], get32(q.p, 32))
		}
		r := bytes.Clone(q.p[:28+2580])
		put32(r, 36, 1)
		put32(r, 40, uint32(utf16le(r, 48, "k")))
		r[25] = 0x05
		oc.reply(t, q.txid, r)
	}
	if err := <-res; err == nil {
		t.Fatal("endless enumeration accepted")
	}
}

func TestKVPTooLong(t *testing.T) {
	long := string(bytes.Repeat([]byte{'x'}, 256)) // 257 UTF-16 units with NUL = 514 bytes
	if _, err := encodeKVPValueMsg(kvpOpSet, 0, 0, 1, long, nil); err == nil {
		t.Fatal("key of 514 bytes encoded")
	}
	if _, err := kvpStringValue(string(bytes.Repeat([]byte{'x'}, 1024))); err == nil {
		t.Fatal("value of 2050 bytes encoded")
	}
	if _, err := kvpStringValue(string(bytes.Repeat([]byte{'x'}, 1023))); err != nil {
		t.Fatalf("value of 2048 bytes: %v", err)
	}
}

// TestKVPGetWrongKey: a GET answered for another key is a violation.
func TestKVPGetWrongKey(t *testing.T) {
	k, oc := setupKVP(t, nil)
	res := async(func() error { _, err := k.Get(ctxT(t), KVPPoolGuest, "k"); return err })
	q := oc.nextIC(t)
	r := bytes.Clone(q.p[:28+2580])
	put32(r, 36, uint32(utf16le(r, 44, "j")))
	put32(r, 40, uint32(utf16le(r, 556, "v")))
	r[25] = 0x05
	oc.reply(t, q.txid, r)
	if err := <-res; !errors.Is(err, ErrIC) {
		t.Fatalf("Get: %v", err)
	}
	if v := oc.g.h.Violations(); len(v) != 1 {
		t.Fatalf("violations %v", v)
	}
}
