package kvp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/gohv/gohv/drivers/ic"
	"github.com/gohv/gohv/drivers/ic/ictest"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// Offsets written out from docs/hyperv-protocol.md §8.6, independently of
// the package's constants: operation @28, pool @29, value record @32
// (type @32, key size @36, value size @40, key @44, value @556); enumerate
// index @32, record @36 (type @36, key size @40, value size @44, key @48,
// value @560); IP record @30 (adapter id @30, family @286, DHCP @287,
// addresses @288, subnets @2336, gateways @4384, DNS @5408).
const (
	valueBody = 2580 // KVP body of value operations, counted from @28
	ipBody    = 7428 // of IP operations
)

func u16(s string) []byte {
	var b []byte
	for _, c := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return b
}

func u16z(s string) []byte { return append(u16(s), 0, 0) }

// msg returns a KVP message with operation op on pool, body size n
// counted from @28, and the given byte snippets placed at absolute offsets.
func msg(op, pool byte, n int, at map[int][]byte) []byte {
	body := make([]byte, n)
	body[0], body[1] = op, pool
	m := ictest.Message(ic.TypeKVP, ic.Version{Major: 4}, body)
	for off, b := range at {
		copy(m[off:], b)
	}
	return m
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

func setMsg(pool byte, key, value string) []byte {
	return msg(1, pool, valueBody, map[int][]byte{
		32: le32(1), 36: le32(uint32(2*len(key) + 2)), 40: le32(uint32(2*len(value) + 2)),
		44: u16z(key), 556: u16z(value),
	})
}

func getMsg(pool byte, key string) []byte {
	return msg(0, pool, valueBody, map[int][]byte{36: le32(uint32(2*len(key) + 2)), 44: u16z(key)})
}

func enumMsg(pool byte, index uint32) []byte {
	return msg(3, pool, valueBody, map[int][]byte{32: le32(index)})
}

func deleteMsg(pool byte, key string) []byte {
	return msg(2, pool, valueBody, map[int][]byte{32: le32(uint32(2*len(key) + 2)), 36: u16z(key)})
}

func status(reply []byte) ic.Status { return ic.Status(binary.LittleEndian.Uint32(reply[20:])) }

// str reads NUL-terminated UTF-16LE text at off.
func str(b []byte, off int) string {
	var u []uint16
	for i := off; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

type addrs []netip.Addr

func (a addrs) AppendAddrs(dst []netip.Addr) []netip.Addr { return append(dst, a...) }

type adapters struct {
	mac  [6]byte
	id   chanmsg.GUID
	info AdapterInfo
	set  []AdapterInfo
	err  error
}

func (p *adapters) AdapterInfo(mac [6]byte, info *AdapterInfo) bool {
	if mac != p.mac {
		return false
	}
	info.DHCP = p.info.DHCP
	info.Addrs = append(info.Addrs, p.info.Addrs...)
	info.Gateways = append(info.Gateways, p.info.Gateways...)
	info.DNS = append(info.DNS, p.info.DNS...)
	return true
}

func (p *adapters) SetAdapterInfo(id chanmsg.GUID, info AdapterInfo) error {
	if id != p.id {
		return ErrNotFound
	}
	p.set = append(p.set, info)
	return p.err
}

var testSystem = SystemInfo{
	FullyQualifiedDomainName: "vm1.example.com", OSBuildNumber: "42", OSName: "gohv",
	OSMajorVersion: "1", OSMinorVersion: "2", OSVersion: "1.2.42", ProcessorArchitecture: "x86_64",
	IntegrationServicesVersion: "3.1",
}

var testAddrs = addrs{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("198.51.100.7")}

func attached(t testing.TB, cfg Config) (*Driver, *ictest.Channel) {
	t.Helper()
	d := New(cfg)
	ch := ictest.New(Class)
	if err := d.attach(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Call(1, ictest.Negotiation(ictest.WindowsFrameworks, []ic.Version{{Major: 3}, {Major: 4}})); err != nil {
		t.Fatal(err)
	}
	if st := d.Stats().IC; !st.Negotiated || st.Message != (ic.Version{Major: 4}) {
		t.Fatalf("negotiation: %+v", st)
	}
	return d, ch
}

func call(t *testing.T, ch *ictest.Channel, m []byte) []byte {
	t.Helper()
	reply, err := ch.Call(7, m)
	if err != nil {
		t.Fatal(err)
	}
	if len(reply) < len(m) || reply[25] != 5 {
		t.Fatalf("reply of %d bytes flags %#x", len(reply), reply[25])
	}
	return reply
}

func TestHostSetThenGetBytes(t *testing.T) {
	d, ch := attached(t, Config{})
	watch, stop := d.Watch()
	defer stop()
	set := setMsg(0, "Role", "web")
	// The SET request laid out by hand: op 1, pool 0, REG_SZ, key size 10,
	// value size 8, "Role" and "web" in UTF-16LE.
	want := map[int][]byte{
		28: {1, 0}, 32: {1, 0, 0, 0}, 36: {10, 0, 0, 0}, 40: {8, 0, 0, 0},
		44:  {'R', 0, 'o', 0, 'l', 0, 'e', 0, 0, 0},
		556: {'w', 0, 'e', 0, 'b', 0, 0, 0},
	}
	for off, b := range want {
		if !bytes.Equal(set[off:off+len(b)], b) {
			t.Fatalf("request @%d = % x, want % x", off, set[off:off+len(b)], b)
		}
	}
	reply := call(t, ch, set)
	// The reply is the request with flags 5 and S_OK, body unchanged.
	wantReply := bytes.Clone(set)
	wantReply[25] = 5
	if !bytes.Equal(reply[:len(set)], wantReply) {
		t.Fatal("SET reply differs from the request beyond flags")
	}
	select {
	case <-watch:
	default:
		t.Fatal("no watch signal after host SET")
	}
	if v, ok := d.Get(PoolExternal, "Role"); !ok || v.Str != "web" || v.Type != TypeString || v.String() != "web" {
		t.Fatalf("Get = %+v, %v", v, ok)
	}
	// The host's GET: type, value size and value filled in at @32, @40,
	// @556; the rest of the value field zero.
	get := getMsg(0, "Role")
	copy(get[556:], "garbage from the host")
	reply = call(t, ch, get)
	if status(reply) != ic.StatusOK {
		t.Fatalf("GET status %v", status(reply))
	}
	if !bytes.Equal(reply[32:36], []byte{1, 0, 0, 0}) || !bytes.Equal(reply[40:44], []byte{8, 0, 0, 0}) ||
		!bytes.Equal(reply[556:564], []byte{'w', 0, 'e', 0, 'b', 0, 0, 0}) || !allZero(reply[564:2604]) {
		t.Fatalf("GET reply type % x size % x value % x", reply[32:36], reply[40:44], reply[556:580])
	}
	// Setting the same value again changes nothing and signals nothing.
	call(t, ch, setMsg(0, "Role", "web"))
	select {
	case <-watch:
		t.Fatal("watch signalled an unchanged value")
	default:
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func TestAutoPoolEnumeration(t *testing.T) {
	_, ch := attached(t, Config{System: testSystem, Addresses: testAddrs})
	want := []struct{ key, value string }{
		{"FullyQualifiedDomainName", "vm1.example.com"},
		{"IntegrationServicesVersion", "3.1"},
		{"NetworkAddressIPv4", "192.0.2.10;198.51.100.7"},
		{"NetworkAddressIPv6", "2001:db8::10"},
		{"OSBuildNumber", "42"},
		{"OSName", "gohv"},
		{"OSMajorVersion", "1"},
		{"OSMinorVersion", "2"},
		{"OSVersion", "1.2.42"},
		{"ProcessorArchitecture", "x86_64"},
	}
	for i, w := range want {
		reply := call(t, ch, enumMsg(2, uint32(i)))
		if status(reply) != ic.StatusOK {
			t.Fatalf("index %d: status %v", i, status(reply))
		}
		if got := str(reply, 48); got != w.key {
			t.Errorf("index %d: key %q, want %q", i, got, w.key)
		}
		if got := str(reply, 560); got != w.value {
			t.Errorf("index %d: value %q, want %q", i, got, w.value)
		}
		if ks := binary.LittleEndian.Uint32(reply[40:]); ks != uint32(2*len(w.key)+2) {
			t.Errorf("index %d: key size %d", i, ks)
		}
		if vs := binary.LittleEndian.Uint32(reply[44:]); vs != uint32(2*len(w.value)+2) {
			t.Errorf("index %d: value size %d", i, vs)
		}
		if typ := binary.LittleEndian.Uint32(reply[36:]); typ != 1 {
			t.Errorf("index %d: type %d", i, typ)
		}
	}
	// Byte-exact check of index 5: "OSName" = "gohv".
	reply := call(t, ch, enumMsg(2, 5))
	exact := map[int][]byte{
		32: {5, 0, 0, 0}, 36: {1, 0, 0, 0}, 40: {14, 0, 0, 0}, 44: {10, 0, 0, 0},
		48:  {'O', 0, 'S', 0, 'N', 0, 'a', 0, 'm', 0, 'e', 0, 0, 0},
		560: {'g', 0, 'o', 0, 'h', 0, 'v', 0, 0, 0},
	}
	for off, b := range exact {
		if !bytes.Equal(reply[off:off+len(b)], b) {
			t.Errorf("@%d = % x, want % x", off, reply[off:off+len(b)], b)
		}
	}
	// Past the end: 0x80070103.
	reply = call(t, ch, enumMsg(2, 10))
	if !bytes.Equal(reply[20:24], []byte{0x03, 0x01, 0x07, 0x80}) {
		t.Fatalf("past-end status % x", reply[20:24])
	}
	// GET on the auto pool by name.
	reply = call(t, ch, getMsg(2, "OSVersion"))
	if status(reply) != ic.StatusOK || str(reply, 556) != "1.2.42" {
		t.Fatalf("auto GET: %v %q", status(reply), str(reply, 556))
	}
}

func TestPublishEnumerateDelete(t *testing.T) {
	d, ch := attached(t, Config{})
	if err := d.Publish("app", "ready"); err != nil {
		t.Fatal(err)
	}
	if err := d.Publish("ünïcode", "𝄞"); err != nil {
		t.Fatal(err)
	}
	reply := call(t, ch, enumMsg(1, 1))
	if status(reply) != ic.StatusOK || str(reply, 48) != "ünïcode" || str(reply, 560) != "𝄞" {
		t.Fatalf("enumerate guest pool: %v %q %q", status(reply), str(reply, 48), str(reply, 560))
	}
	if vs := binary.LittleEndian.Uint32(reply[44:]); vs != 6 { // surrogate pair + NUL
		t.Fatalf("value size %d", vs)
	}
	if status(call(t, ch, enumMsg(1, 2))) != ic.StatusNoMoreItems {
		t.Fatal("guest pool enumeration did not end")
	}
	// Host writes to the guest pool are refused.
	if st := status(call(t, ch, setMsg(1, "app", "x"))); st != ic.StatusNotSupported {
		t.Fatalf("host SET on guest pool: %v", st)
	}
	if err := d.Unpublish("app"); err != nil {
		t.Fatal(err)
	}
	if reply := call(t, ch, enumMsg(1, 0)); str(reply, 48) != "ünïcode" {
		t.Fatalf("after Unpublish index 0 = %q", str(reply, 48))
	}
	if err := d.Unpublish("app"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Unpublish: %v", err)
	}
	// Host DELETE on its own pool.
	call(t, ch, setMsg(3, "HostName", "hv01"))
	if e := d.Entries(PoolAutoExternal); len(e) != 1 || e[0].Key != "HostName" || e[0].Value.Str != "hv01" {
		t.Fatalf("Entries = %+v", e)
	}
	del := deleteMsg(3, "HostName")
	if !bytes.Equal(del[32:36], []byte{18, 0, 0, 0}) || del[36] != 'H' {
		t.Fatalf("DELETE layout % x", del[28:40])
	}
	if st := status(call(t, ch, del)); st != ic.StatusOK {
		t.Fatalf("DELETE: %v", st)
	}
	if st := status(call(t, ch, del)); st != ic.StatusNoMoreItems {
		t.Fatalf("second DELETE: %v", st)
	}
	if _, ok := d.Get(PoolAutoExternal, "HostName"); ok {
		t.Fatal("deleted key still there")
	}
}

func TestPoolsAndLimits(t *testing.T) {
	d, ch := attached(t, Config{MaxEntries: 2})
	cases := []struct {
		name string
		m    []byte
		want ic.Status
	}{
		{"set external", setMsg(0, "a", "1"), ic.StatusOK},
		{"set external 2", setMsg(0, "b", "2"), ic.StatusOK},
		{"set external full", setMsg(0, "c", "3"), ic.StatusFail},
		{"replace when full", setMsg(0, "b", "22"), ic.StatusOK},
		{"set auto", setMsg(2, "x", "1"), ic.StatusNotSupported},
		{"set auto-internal", setMsg(4, "x", "1"), ic.StatusNotSupported},
		{"get auto-internal", getMsg(4, "x"), ic.StatusNotSupported},
		{"unknown pool", getMsg(9, "x"), ic.StatusInvalidArg},
		{"get missing", getMsg(0, "zz"), ic.StatusNoMoreItems},
		{"unknown operation", msg(9, 0, valueBody, nil), ic.StatusInvalidArg},
		{"short", msg(0, 0, 100, nil), ic.StatusInvalidArg},
		{"key size 0", msg(0, 0, valueBody, map[int][]byte{36: le32(0)}), ic.StatusInvalidArg},
		{"key size odd", msg(0, 0, valueBody, map[int][]byte{36: le32(3), 44: u16("ab")}), ic.StatusInvalidArg},
		{"key size 514", msg(0, 0, valueBody, map[int][]byte{36: le32(514), 44: u16("ab")}), ic.StatusInvalidArg},
		{"key without room for NUL", msg(0, 0, valueBody, map[int][]byte{36: le32(512), 44: u16(strings.Repeat("k", 256))}), ic.StatusInvalidArg},
		{"empty key", msg(0, 0, valueBody, map[int][]byte{36: le32(2)}), ic.StatusInvalidArg},
		{"value size 2049", msg(1, 0, valueBody, map[int][]byte{32: le32(1), 36: le32(4), 40: le32(2049), 44: u16z("k")}), ic.StatusInvalidArg},
		{"unknown value type", msg(1, 0, valueBody, map[int][]byte{32: le32(3), 36: le32(4), 40: le32(2), 44: u16z("k")}), ic.StatusInvalidArg},
		{"short DWORD", msg(1, 0, valueBody, map[int][]byte{32: le32(4), 36: le32(4), 40: le32(2), 44: u16z("k")}), ic.StatusInvalidArg},
	}
	for _, c := range cases {
		if got := status(call(t, ch, c.m)); got != c.want {
			t.Errorf("%s: status %v, want %v", c.name, got, c.want)
		}
	}
	// A DWORD and a Linux-style QWORD from the host.
	d2, ch2 := attached(t, Config{})
	call(t, ch2, msg(1, 0, valueBody, map[int][]byte{32: le32(4), 36: le32(4), 40: le32(4), 44: u16z("n"), 556: le32(0xdeadbeef)}))
	call(t, ch2, msg(1, 0, valueBody, map[int][]byte{32: le32(8), 36: le32(4), 40: le32(8), 44: u16z("q"), 556: {1, 0, 0, 0, 0, 0, 0, 1}}))
	if v, _ := d2.Get(PoolExternal, "n"); v.Int != 0xdeadbeef || v.String() != "3735928559" {
		t.Fatalf("DWORD = %+v", v)
	}
	if v, _ := d2.Get(PoolExternal, "q"); v.Int != 1<<56|1 {
		t.Fatalf("QWORD = %+v", v)
	}
	// Application limits.
	if err := d.Publish(strings.Repeat("k", 255), strings.Repeat("v", 1023)); err != nil {
		t.Fatalf("largest pair: %v", err)
	}
	for _, c := range []struct {
		key, value string
		want       error
	}{
		{strings.Repeat("k", 256), "v", ErrKey},
		{"", "v", ErrKey},
		{"a\x00b", "v", ErrKey},
		{"k", strings.Repeat("v", 1024), ErrValue},
		{"another", "v", nil},
		{"third", "v", ErrPoolFull},
	} {
		if err := d.Publish(c.key, c.value); !errors.Is(err, c.want) {
			t.Errorf("Publish(%.10q…, %.10q…) = %v, want %v", c.key, c.value, err, c.want)
		}
	}
	st := d.Stats()
	if st.Operations[OpSet] == 0 || st.Malformed < 9 {
		t.Fatalf("Stats = %+v", st)
	}
}

var (
	testMAC     = [6]byte{0x00, 0x15, 0x5d, 0x0a, 0x0b, 0x0c}
	testAdapter = chanmsg.MustParseGUID("6c2fd8b8-1d69-4b1c-b7c5-3f2e1b9a0c11")
)

const testAdapterID = "{6C2FD8B8-1D69-4B1C-B7C5-3F2E1B9A0C11}"

func ipMsg(op byte, adapter string, at map[int][]byte) []byte {
	if at == nil {
		at = map[int][]byte{}
	}
	at[30] = u16z(adapter)
	return msg(op, 0, ipBody, at)
}

func TestGetIPInfoBytes(t *testing.T) {
	p := &adapters{mac: testMAC, info: AdapterInfo{
		DHCP: true,
		Addrs: []netip.Prefix{netip.MustParsePrefix("2001:db8::5/64"), netip.MustParsePrefix("192.0.2.5/24"),
			netip.MustParsePrefix("10.1.2.3/16")},
		Gateways: []netip.Addr{netip.MustParseAddr("192.0.2.1")},
		DNS:      []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53")},
	}}
	_, ch := attached(t, Config{Adapters: p})
	m := ipMsg(4, "00-15-5D-0A-0B-0C", nil)
	if len(m) != 28+7428 || m[28] != 4 {
		t.Fatalf("request of %d bytes", len(m))
	}
	reply := call(t, ch, m)
	if status(reply) != ic.StatusOK {
		t.Fatalf("status %v", status(reply))
	}
	if got := str(reply, 30); got != "00-15-5D-0A-0B-0C" {
		t.Errorf("adapter id %q", got)
	}
	if reply[286] != 3 || reply[287] != 1 {
		t.Errorf("family %d dhcp %d, want 3, 1", reply[286], reply[287])
	}
	for _, c := range []struct {
		off  int
		want string
	}{
		{288, "192.0.2.5;10.1.2.3;2001:db8::5"},
		{2336, "255.255.255.0;255.255.0.0;/64"},
		{4384, "192.0.2.1"},
		{5408, "192.0.2.53;2001:db8::53"},
	} {
		if got := str(reply, c.off); got != c.want {
			t.Errorf("@%d = %q, want %q", c.off, got, c.want)
		}
	}
	if !bytes.Equal(reply[288:298], []byte{'1', 0, '9', 0, '2', 0, '.', 0, '0', 0}) {
		t.Errorf("@288 bytes % x", reply[288:298])
	}
	if st := status(call(t, ch, ipMsg(4, "00:15:5d:00:00:01", nil))); st != ic.StatusFail {
		t.Errorf("unknown adapter: %v", st)
	}
	if st := status(call(t, ch, ipMsg(4, "not a mac", nil))); st != ic.StatusInvalidArg {
		t.Errorf("bad adapter id: %v", st)
	}
}

func TestSetIPInfo(t *testing.T) {
	p := &adapters{mac: testMAC, id: testAdapter}
	_, ch := attached(t, Config{Adapters: p})
	m := ipMsg(5, testAdapterID, map[int][]byte{
		286: {3}, 287: {0},
		288:  u16z("192.0.2.9;2001:db8::9"),
		2336: u16z("255.255.255.128;64"),
		4384: u16z("192.0.2.1"),
		5408: u16z("192.0.2.53,2001:db8::53"),
	})
	if st := status(call(t, ch, m)); st != ic.StatusOK {
		t.Fatalf("SET_IP_INFO: %v", st)
	}
	if len(p.set) != 1 {
		t.Fatalf("provider got %d configurations", len(p.set))
	}
	got := p.set[0]
	want := AdapterInfo{
		Addrs:    []netip.Prefix{netip.MustParsePrefix("192.0.2.9/25"), netip.MustParsePrefix("2001:db8::9/64")},
		Gateways: []netip.Addr{netip.MustParseAddr("192.0.2.1")},
		DNS:      []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53")},
	}
	if got.DHCP || !equalPrefixes(got.Addrs, want.Addrs) || !equalAddrs(got.Gateways, want.Gateways) || !equalAddrs(got.DNS, want.DNS) {
		t.Fatalf("applied %+v, want %+v", got, want)
	}
	cases := []struct {
		name string
		m    []byte
		want ic.Status
	}{
		{"bad mask", ipMsg(5, testAdapterID, map[int][]byte{288: u16z("192.0.2.9"), 2336: u16z("255.0.255.0")}), ic.StatusInvalidArg},
		{"no subnet", ipMsg(5, testAdapterID, map[int][]byte{288: u16z("192.0.2.9")}), ic.StatusInvalidArg},
		{"bad address", ipMsg(5, testAdapterID, map[int][]byte{288: u16z("192.0.2"), 2336: u16z("255.0.0.0")}), ic.StatusInvalidArg},
		{"unknown adapter", ipMsg(5, "6c2fd8b8-1d69-4b1c-b7c5-000000000000", nil), ic.StatusNotFound},
		{"MAC instead of GUID", ipMsg(5, "00:15:5d:0a:0b:0c", nil), ic.StatusInvalidArg},
	}
	for _, c := range cases {
		if st := status(call(t, ch, c.m)); st != c.want {
			t.Errorf("%s: %v, want %v", c.name, st, c.want)
		}
	}
	p.err = errors.New("stack refuses")
	if st := status(call(t, ch, ipMsg(5, testAdapterID, nil))); st != ic.StatusFail {
		t.Errorf("provider error: %v", st)
	}
	// Without a provider both IP operations are refused clearly.
	_, ch2 := attached(t, Config{})
	for _, op := range []byte{4, 5} {
		if st := status(call(t, ch2, ipMsg(op, testAdapterID, nil))); st != ic.StatusNotSupported {
			t.Errorf("op %d without provider: %v", op, st)
		}
	}
}

func equalPrefixes(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalAddrs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Version lists the hosts offer (docs/hyperv-protocol.md §8.2). Windows
// lists are inferred from the version names (Linux hv_kvp.c: 1.0 WS2008,
// 3.0 Windows 7, 4.0 Windows 8 and later); OpenVMM's list is from its
// source.
func TestNegotiationWithHosts(t *testing.T) {
	hosts := []struct {
		name     string
		versions []ic.Version
		want     ic.Version
	}{
		{"WS2008", []ic.Version{{Major: 1}}, ic.Version{Major: 1}},
		{"WS2012R2", []ic.Version{{Major: 1}, {Major: 3}, {Major: 4}}, ic.Version{Major: 4}},
		{"WS2016", []ic.Version{{Major: 1}, {Major: 3}, {Major: 4}}, ic.Version{Major: 4}},
		{"WS2019", []ic.Version{{Major: 3}, {Major: 4}, {Major: 5}}, ic.Version{Major: 4}},
		{"WS2022", []ic.Version{{Major: 3}, {Major: 4}, {Major: 5}}, ic.Version{Major: 4}},
		{"OpenVMM", []ic.Version{{Major: 3}, {Major: 4}, {Major: 5}}, ic.Version{Major: 4}},
	}
	for _, h := range hosts {
		d := New(Config{})
		ch := ictest.New(Class)
		if err := d.attach(context.Background(), ch); err != nil {
			t.Fatal(err)
		}
		if _, err := ch.Call(1, ictest.Negotiation(ictest.WindowsFrameworks, h.versions)); err != nil {
			t.Fatal(err)
		}
		if got := d.Stats().IC.Message; got != h.want {
			t.Errorf("%s: negotiated %v, want %v", h.name, got, h.want)
		}
	}
}

func TestHandleAllocatesNothing(t *testing.T) {
	p := &adapters{mac: testMAC, info: AdapterInfo{
		Addrs:    []netip.Prefix{netip.MustParsePrefix("192.0.2.5/24"), netip.MustParsePrefix("2001:db8::5/64")},
		Gateways: []netip.Addr{netip.MustParseAddr("192.0.2.1")},
	}}
	d := New(Config{System: testSystem, Addresses: testAddrs, Adapters: p})
	if err := d.Publish("app", "ready"); err != nil {
		t.Fatal(err)
	}
	d.handle(setMsg(0, "Role", "web"), ic.Version{Major: 4})
	_, stop := d.Watch()
	defer stop()
	msgs := [][]byte{
		enumMsg(2, 2), enumMsg(2, 3), enumMsg(2, 0), enumMsg(1, 0), enumMsg(1, 5),
		getMsg(0, "Role"), getMsg(2, "OSName"), setMsg(0, "Role", "web"), setMsg(0, "Role", "db"),
		ipMsg(4, "00:15:5d:0a:0b:0c", nil), msg(0, 0, 10, nil),
	}
	for _, m := range msgs {
		m := m
		if n := testing.AllocsPerRun(50, func() { d.handle(m, ic.Version{Major: 4}) }); n != 0 {
			t.Errorf("op %d pool %d: %v allocations", m[28], m[29], n)
		}
	}
}

func FuzzHandle(f *testing.F) {
	f.Add(setMsg(0, "k", "v"))
	f.Add(enumMsg(2, 3))
	f.Add(getMsg(1, "app"))
	f.Add(deleteMsg(3, "HostName"))
	f.Add(ipMsg(4, "00:15:5d:0a:0b:0c", nil))
	f.Add(ipMsg(5, testAdapterID, map[int][]byte{288: u16z("192.0.2.9"), 2336: u16z("255.255.255.0")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := &adapters{mac: testMAC, id: testAdapter, info: AdapterInfo{Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.5/24")}}}
		d := New(Config{System: testSystem, Addresses: testAddrs, Adapters: p, MaxEntries: 4})
		_ = d.Publish("app", "ready")
		m := bytes.Clone(b)
		st := d.handle(m, ic.Version{Major: 4})
		if len(m) != len(b) {
			t.Fatal("message length changed")
		}
		if _, err := ParseHeader(b); err != nil && st == ic.StatusOK {
			t.Fatalf("malformed message answered S_OK: %v", err)
		}
		for _, e := range d.Entries(PoolExternal) {
			if e.Key == "" {
				t.Fatal("empty key stored")
			}
		}
	})
}

func FuzzParseIPInfo(f *testing.F) {
	rec := func(at map[int][]byte) []byte {
		b := make([]byte, IPRecordSize)
		for off, s := range at {
			copy(b[off-30:], s)
		}
		return b
	}
	f.Add(rec(map[int][]byte{30: u16z(testAdapterID), 288: u16z("192.0.2.9;2001:db8::9"), 2336: u16z("255.255.255.0;/64")}))
	f.Add(rec(map[int][]byte{30: u16z("6c2fd8b8-1d69-4b1c-b7c5-3f2e1b9a0c11"), 4384: u16z("1.2.3.4")}))
	f.Add([]byte{1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, info, err := ParseIPInfo(b)
		if err != nil {
			return
		}
		for _, p := range info.Addrs {
			if !p.IsValid() {
				t.Fatalf("invalid prefix %v accepted", p)
			}
		}
	})
}

func TestMalformedAllocatesNothing(t *testing.T) {
	d := New(Config{})
	for _, m := range [][]byte{
		msg(0, 0, 10, nil), msg(9, 0, valueBody, nil),
		msg(0, 0, valueBody, map[int][]byte{36: le32(0)}),
		msg(1, 0, valueBody, map[int][]byte{32: le32(1), 36: le32(4), 40: le32(4000), 44: u16z("k")}),
	} {
		if n := testing.AllocsPerRun(50, func() { d.handle(m, ic.Version{Major: 4}) }); n != 0 {
			t.Errorf("malformed op %d: %v allocations", m[28], n)
		}
	}
}

// BenchmarkHandle measures answering one auto-pool enumeration (the host
// polls these) against a baseline of copying the message, the least any
// handler costs.
func BenchmarkHandle(b *testing.B) {
	d := New(Config{System: testSystem, Addresses: testAddrs})
	m := enumMsg(2, 2)
	scratch := make([]byte, len(m))
	b.Run("baseline-copy", func(b *testing.B) {
		b.SetBytes(int64(len(m)))
		b.ReportAllocs()
		for b.Loop() {
			copy(scratch, m)
		}
	})
	b.Run("enumerate-auto-ipv4", func(b *testing.B) {
		b.SetBytes(int64(len(m)))
		b.ReportAllocs()
		for b.Loop() {
			d.handle(m, ic.Version{Major: 4})
		}
	})
	if err := d.Publish("app", "ready"); err != nil {
		b.Fatal(err)
	}
	g := getMsg(1, "app")
	b.Run("get-guest", func(b *testing.B) {
		b.SetBytes(int64(len(g)))
		b.ReportAllocs()
		for b.Loop() {
			d.handle(g, ic.Version{Major: 4})
		}
	})
}

// TestLayoutPinned pins the wire constants to docs/hyperv-protocol.md §8.6.
func TestLayoutPinned(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"value record", RecordSize, 2572},
		{"value message from @28", minEnumerate - 28, 2580},
		{"IP record", IPRecordSize, 7426},
		{"IP message from @28", minIP - 28, 7428},
		{"record key", recKey, 12},
		{"record value", recValue, 524},
		{"IP family", offIPBody + ipFamily, 286},
		{"IP addresses", offIPBody + ipAddresses, 288},
		{"IP subnets", offIPBody + ipSubnets, 2336},
		{"IP gateways", offIPBody + ipGateways, 4384},
		{"IP DNS", offIPBody + ipDNS, 5408},
		{"delete key", offDeleteKey, 36},
		{"enumerate record", offEnumRecord, 36},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}
