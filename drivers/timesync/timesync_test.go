package timesync

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gohv/gohv/drivers/ic"
	"github.com/gohv/gohv/drivers/ic/ictest"
)

// fakeClock is a Clock whose reference counter the test advances.
type fakeClock struct {
	ref, off atomic.Int64
	sets     atomic.Int64
}

func (c *fakeClock) ReferenceCounter() uint64 { return uint64(c.ref.Load()) }
func (c *fakeClock) WallOffset() int64        { return c.off.Load() }
func (c *fakeClock) SetWallOffset(off int64)  { c.off.Store(off); c.sets.Add(1) }
func (c *fakeClock) advance(d time.Duration)  { c.ref.Add(int64(d / 100)) }

// syncV4 is a version 4.0 SYNC laid out by hand from docs/hyperv-protocol.md
// §8.1/§8.5: parent time 0x01d89a6e12345678, VM reference time
// 0x0000000012340000, flags SYNC, leap 0, stratum 2.
var syncV4 = []byte{
	0x01, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, // pipe header, size 44
	0x03, 0x00, 0x00, 0x00, // @8 framework 3.0
	0x04, 0x00, // @12 type time sync
	0x04, 0x00, 0x00, 0x00, // @14 message version 4.0
	0x18, 0x00, // @18 size 24
	0x00, 0x00, 0x00, 0x00, // @20 status
	0x07,       // @24 IC transaction id
	0x03,       // @25 transaction | request
	0x00, 0x00, // @26
	0x78, 0x56, 0x34, 0x12, 0x6e, 0x9a, 0xd8, 0x01, // @28 parent time
	0x00, 0x00, 0x34, 0x12, 0x00, 0x00, 0x00, 0x00, // @36 VM reference time
	0x01,                         // @44 flags: SYNC
	0x00,                         // @45 leap indicator
	0x02,                         // @46 stratum
	0x00, 0x00, 0x00, 0x00, 0x00, // @47 reserved
}

// syncV4Reply is its exact reply: flags 5, S_OK, body as received.
var syncV4Reply = func() []byte {
	b := bytes.Clone(syncV4)
	b[25] = 0x05
	return b
}()

const (
	syncParent = 0x01d89a6e12345678
	syncRef    = 0x0000000012340000
)

// sampleV3 builds a version 3.0 message by hand offsets: parent @28, child
// @36, round trip @44, flags @52.
func sampleV3(parent uint64, flags byte) []byte {
	body := make([]byte, 32)
	binary.LittleEndian.PutUint64(body[0:], parent)
	binary.LittleEndian.PutUint64(body[16:], 1234)
	body[24] = flags
	return ictest.Message(ic.TypeTimeSync, ic.Version{Major: 3}, body)
}

func messageV4(parent, ref uint64, flags byte) []byte {
	body := make([]byte, 24)
	binary.LittleEndian.PutUint64(body[0:], parent)
	binary.LittleEndian.PutUint64(body[8:], ref)
	body[16] = flags
	return ictest.Message(ic.TypeTimeSync, ic.Version{Major: 4}, body)
}

func attached(t *testing.T, clk *fakeClock, cfg Config, versions []ic.Version) (*Driver, *ictest.Channel) {
	t.Helper()
	d := New(clk, cfg)
	ch := ictest.New(Class)
	if err := d.attach(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Call(1, ictest.Negotiation(ictest.WindowsFrameworks, versions)); err != nil {
		t.Fatal(err)
	}
	if !d.Stats().IC.Negotiated {
		t.Fatalf("not negotiated with %v", versions)
	}
	return d, ch
}

var v4Host = []ic.Version{{Major: 1}, {Major: 3}, {Major: 4}}

func TestSyncV4ReplyBytesAndStep(t *testing.T) {
	clk := &fakeClock{}
	clk.ref.Store(syncRef + 5000) // 500 µs after the host's sample
	d, ch := attached(t, clk, Config{}, v4Host)
	if d.HostProvidesTime() || !d.LastSync().IsZero() {
		t.Fatal("host time before any message")
	}
	reply, err := ch.Call(0xabc, syncV4)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(reply[:len(syncV4Reply)], syncV4Reply) {
		t.Fatalf("reply\n% x\nwant\n% x", reply, syncV4Reply)
	}
	if got, want := clk.WallOffset(), int64(syncParent-syncRef); got != want {
		t.Fatalf("offset %d, want parent−vmref = %d", got, want)
	}
	// UTC now = parent + (counter now − VM reference time).
	if got, want := Now(clk), Time(syncParent+5000); !got.Equal(want) {
		t.Fatalf("Now = %v, want %v", got, want)
	}
	if got, want := d.LastSync(), Time(syncParent+5000); !got.Equal(want) {
		t.Fatalf("LastSync = %v, want %v", got, want)
	}
	if !d.HostProvidesTime() {
		t.Fatal("HostProvidesTime false after SYNC")
	}
	if d.Offset() != time.Duration(syncParent-syncRef-Epoch1601)*100 {
		t.Fatalf("Offset = %v", d.Offset())
	}
	st := d.Stats()
	if st.Syncs != 1 || st.Steps != 1 || st.Slews != 0 || st.IC.Message != (ic.Version{Major: 4}) {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestSyncV3UsesReceptionTime(t *testing.T) {
	clk := &fakeClock{}
	clk.ref.Store(777)
	_, ch := attached(t, clk, Config{}, []ic.Version{{Major: 1}, {Major: 3}})
	msg := sampleV3(syncParent, byte(FlagSync))
	// The hand layout: flags at @52, parent at @28.
	if msg[52] != 1 || msg[28] != 0x78 {
		t.Fatalf("builder layout % x", msg)
	}
	reply, err := ch.Call(2, msg)
	if err != nil {
		t.Fatal(err)
	}
	if reply[20] != 0 || reply[25] != 5 {
		t.Fatalf("reply % x", reply[:28])
	}
	if got, want := clk.WallOffset(), int64(syncParent-777); got != want {
		t.Fatalf("offset %d, want %d", got, want)
	}
}

func TestSampleSlewIsBounded(t *testing.T) {
	clk := &fakeClock{}
	clk.ref.Store(syncRef)
	d, ch := attached(t, clk, Config{}, v4Host)
	if _, err := ch.Call(3, syncV4); err != nil {
		t.Fatal(err)
	}
	base := clk.WallOffset()
	cases := []struct {
		name    string
		elapsed time.Duration
		err     time.Duration // host ahead of guest by this much
		want    int64         // offset change, 100 ns units
	}{
		// 500 ppm of 5 s is 2.5 ms = 25000 units.
		{"ahead, bounded", 5 * time.Second, 100 * time.Millisecond, 25000},
		{"behind, bounded", 5 * time.Second, -100 * time.Millisecond, -25000},
		{"small, exact", 5 * time.Second, time.Millisecond, 10000},
	}
	for _, c := range cases {
		clk.off.Store(base)
		clk.advance(c.elapsed)
		now := uint64(clk.ref.Load())
		target := base + int64(c.err/100)
		if _, err := ch.Call(4, messageV4(uint64(target)+now, now, byte(FlagSample))); err != nil {
			t.Fatal(err)
		}
		if got := clk.WallOffset() - base; got != c.want {
			t.Errorf("%s: offset moved %d, want %d", c.name, got, c.want)
		}
	}
	st := d.Stats()
	if st.Samples != 3 || st.Slews != 3 || st.Steps != 1 {
		t.Fatalf("Stats = %+v", st)
	}
	if st.LastError != time.Millisecond {
		t.Fatalf("LastError = %v", st.LastError)
	}
}

func TestSampleBeyondThresholdSteps(t *testing.T) {
	clk := &fakeClock{}
	d, ch := attached(t, clk, Config{StepThreshold: 2 * time.Second}, v4Host)
	if _, err := ch.Call(3, messageV4(syncParent, 0, byte(FlagSync))); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Second)
	now := uint64(clk.ref.Load())
	target := int64(syncParent) + int64(3*time.Second/100)
	if _, err := ch.Call(4, messageV4(uint64(target)+now, now, byte(FlagSample))); err != nil {
		t.Fatal(err)
	}
	if clk.WallOffset() != target {
		t.Fatalf("offset %d, want stepped to %d", clk.WallOffset(), target)
	}
	if st := d.Stats(); st.Steps != 2 || st.Slews != 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestFirstSampleStepsWithoutSync(t *testing.T) {
	clk := &fakeClock{}
	_, ch := attached(t, clk, Config{}, v4Host)
	if _, err := ch.Call(4, messageV4(syncParent, 10, byte(FlagSample))); err != nil {
		t.Fatal(err)
	}
	if clk.WallOffset() != syncParent-10 {
		t.Fatalf("offset %d after first sample", clk.WallOffset())
	}
}

func TestProbeChangesNothing(t *testing.T) {
	clk := &fakeClock{}
	d, ch := attached(t, clk, Config{}, v4Host)
	reply, err := ch.Call(5, messageV4(syncParent, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if reply[20] != 0 || clk.sets.Load() != 0 || d.HostProvidesTime() {
		t.Fatalf("probe: status % x, %d sets", reply[20:24], clk.sets.Load())
	}
	if d.Stats().Probes != 1 {
		t.Fatal("probe not counted")
	}
}

func TestMonotonicNeverGoesBack(t *testing.T) {
	clk := &fakeClock{}
	clk.ref.Store(1e9)
	_, ch := attached(t, clk, Config{}, v4Host)
	if _, err := ch.Call(1, messageV4(syncParent, 1e9, byte(FlagSync))); err != nil {
		t.Fatal(err)
	}
	wallBefore, monoBefore := Now(clk), clk.ReferenceCounter()
	clk.advance(time.Millisecond)
	// The host's clock is an hour behind: wall time steps back.
	now := uint64(clk.ref.Load())
	if _, err := ch.Call(2, messageV4(syncParent-uint64(time.Hour/100), now, byte(FlagSync))); err != nil {
		t.Fatal(err)
	}
	wallAfter, monoAfter := Now(clk), clk.ReferenceCounter()
	if monoAfter < monoBefore {
		t.Fatalf("monotonic went back: %d then %d", monoBefore, monoAfter)
	}
	if d := wallBefore.Sub(wallAfter); d < 59*time.Minute {
		t.Fatalf("wall moved %v, want about an hour back", -d)
	}
}

func TestMalformed(t *testing.T) {
	clk := &fakeClock{}
	d, ch := attached(t, clk, Config{}, v4Host)
	cases := []struct {
		name string
		msg  []byte
	}{
		{"short v4", syncV4[:40]},
		{"parent beyond int64", messageV4(1<<63, 0, byte(FlagSync))},
	}
	for _, c := range cases {
		reply, err := ch.Call(9, c.msg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(reply[20:24], []byte{0x57, 0x00, 0x07, 0x80}) {
			t.Errorf("%s: status % x, want E_INVALIDARG", c.name, reply[20:24])
		}
	}
	if clk.sets.Load() != 0 || d.Stats().Invalid != 2 {
		t.Fatalf("malformed messages applied: %+v", d.Stats())
	}
}

// Version lists the hosts offer (docs/hyperv-protocol.md §8.2). Windows
// Server 2012 R2 predates time sync 4.0 (inferred from the version's
// introduction with Windows Server 2016; OpenVMM offers 4.0 only).
func TestNegotiationWithHosts(t *testing.T) {
	hosts := []struct {
		name     string
		versions []ic.Version
		want     ic.Version
	}{
		{"WS2012R2", []ic.Version{{Major: 1}, {Major: 3}}, ic.Version{Major: 3}},
		{"WS2016", []ic.Version{{Major: 1}, {Major: 3}, {Major: 4}}, ic.Version{Major: 4}},
		{"WS2019", []ic.Version{{Major: 1}, {Major: 3}, {Major: 4}}, ic.Version{Major: 4}},
		{"WS2022", []ic.Version{{Major: 1}, {Major: 3}, {Major: 4}}, ic.Version{Major: 4}},
		{"OpenVMM", []ic.Version{{Major: 4}}, ic.Version{Major: 4}},
		{"WS2008", []ic.Version{{Major: 1}}, ic.Version{Major: 1}},
	}
	for _, h := range hosts {
		d, _ := attached(t, &fakeClock{}, Config{}, h.versions)
		if got := d.Stats().IC.Message; got != h.want {
			t.Errorf("%s: negotiated %v, want %v", h.name, got, h.want)
		}
	}
}

func TestHandleAllocatesNothing(t *testing.T) {
	clk := &fakeClock{}
	d := New(clk, Config{})
	sync := bytes.Clone(syncV4)
	sample := messageV4(syncParent, syncRef, byte(FlagSample))
	n := testing.AllocsPerRun(100, func() {
		d.handle(sync, Version4)
		d.handle(sample, Version4)
		_ = d.LastSync()
	})
	if n != 0 {
		t.Fatalf("%v allocations per message", n)
	}
}

func TestTimeConversion(t *testing.T) {
	cases := []struct {
		in   int64
		want time.Time
	}{
		{Epoch1601, time.Unix(0, 0).UTC()},
		{Epoch1601 + 15, time.Unix(0, 1500).UTC()},
		{Epoch1601 - 15, time.Unix(0, -1500).UTC()},
		{0, time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, c := range cases {
		if got := Time(c.in); !got.Equal(c.want) {
			t.Errorf("Time(%d) = %v, want %v", c.in, got, c.want)
		}
	}
}

func FuzzHandle(f *testing.F) {
	f.Add(syncV4, uint16(4))
	f.Add(sampleV3(syncParent, 2), uint16(3))
	f.Add([]byte{1, 2, 3}, uint16(1))
	f.Fuzz(func(t *testing.T, b []byte, major uint16) {
		clk := &fakeClock{}
		clk.ref.Store(12345)
		d := New(clk, Config{})
		v := ic.Version{Major: major}
		msg := bytes.Clone(b)
		s, err := ParseSample(msg, v)
		st := d.handle(msg, v)
		if err != nil && st == ic.StatusOK {
			t.Fatalf("malformed message answered S_OK: %v", err)
		}
		if err == nil && s.Flags&(FlagSync|FlagSample) != 0 && Now(clk).IsZero() {
			t.Fatal("no wall time after an applied message")
		}
		if !bytes.Equal(msg, b) {
			t.Fatal("handler changed the body")
		}
	})
}

// BenchmarkHandle measures applying one SAMPLE against a baseline that
// only reads the clock.
func BenchmarkHandle(b *testing.B) {
	clk := &fakeClock{}
	d := New(clk, Config{})
	m := messageV4(syncParent, syncRef, byte(FlagSample))
	b.Run("baseline-clock-read", func(b *testing.B) {
		b.ReportAllocs()
		var sink uint64
		for b.Loop() {
			sink += clk.ReferenceCounter() + uint64(clk.WallOffset())
		}
		_ = sink
	})
	b.Run("sample", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d.handle(m, Version4)
		}
		b.ReportMetric(float64(d.Stats().Slews)/float64(b.N), "slews/op")
	})
}

// TestLayoutPinned pins the wire constants to docs/hyperv-protocol.md §8.5.
func TestLayoutPinned(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"parent time", offParentTime, 28},
		{"child time", offChildTime, 36},
		{"round trip", offRoundTrip, 44},
		{"flags < 4.0", offFlagsV1, 52},
		{"VM reference time", offVMReferenceTime, 36},
		{"flags 4.0", offFlagsV4, 44},
		{"leap indicator", offLeapIndicator, 45},
		{"stratum", offStratum, 46},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if Epoch1601 != 116444736000000000 {
		t.Errorf("Epoch1601 = %d", Epoch1601)
	}
}
