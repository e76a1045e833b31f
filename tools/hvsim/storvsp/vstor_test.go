package storvsp

import (
	"bytes"
	"encoding/binary"
	"sync"
	"testing"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/tools/hvsim"
)

// VSTOR helpers of the test guest, from §6.3–§6.5.

var testInstance = hvsim.MustParseGUID("12345678-aaaa-bbbb-cccc-0123456789ab")

// vpkt builds a size-byte vstor_packet: @0 operation, @4 flags
// (REQUEST_COMPLETION), @8 status 0, union from @12.
func vpkt(op uint32, size int, union []byte) []byte {
	b := make([]byte, size)
	p32(b, 0, op)
	p32(b, 4, 1)
	copy(b[12:], union)
	return b
}

// txSeq numbers the test guest's requests; txMu guards it where
// goroutines share it (tchan.io).
var (
	txSeq uint64 = 100
	txMu  sync.Mutex
)

// call sends an in-band request with completion requested and returns
// the completion's payload (descriptor checked: type 0xB, same txid).
func (c *tchan) call(payload []byte) []byte {
	c.g.t.Helper()
	txMu.Lock() // tests drive several channels from their own goroutines
	txSeq++
	tx := txSeq
	txMu.Unlock()
	c.send(6, 1, tx, nil, payload)
	return c.completion(tx)
}

func (c *tchan) completion(tx uint64) []byte {
	c.g.t.Helper()
	p := c.recv()
	for c.skipNotes && g16(p, 0) == 6 && g64(p, 8) == 0 {
		c.notes++
		p = c.recv()
	}
	if g16(p, 0) != 0xB || g16(p, 6) != 0 || g64(p, 8) != tx {
		c.g.t.Fatalf("want completion of txid %d, got % x", tx, p[:16])
	}
	return p[int(g16(p, 2))*8:]
}

// negotiate runs §6.4 with version v on the primary; it returns the
// QUERY_PROPERTIES completion.
func (c *tchan) negotiate(v uint16, size int) []byte {
	c.g.t.Helper()
	if r := c.call(vpkt(7, size, nil)); g32(r, 8) != 0 {
		c.g.t.Fatalf("BEGIN_INITIALIZATION status %#x", g32(r, 8))
	}
	var u [4]byte
	p16(u[:], 0, v)
	if r := c.call(vpkt(9, size, u[:])); g32(r, 8) != 0 {
		c.g.t.Fatalf("QUERY_PROTOCOL_VERSION %#x status %#x", v, g32(r, 8))
	}
	props := c.call(vpkt(10, size, nil))
	if r := c.call(vpkt(8, size, nil)); g32(r, 8) != 0 {
		c.g.t.Fatalf("END_INITIALIZATION status %#x", g32(r, 8))
	}
	return props
}

// srbReq is an EXECUTE_SRB request of the test guest.
type srbReq struct {
	path, target, lun byte
	cdb               []byte
	dataIn            byte
	length            uint32
	size              int // packet size: 64 (Win8+) or 48
}

func (s srbReq) bytes() []byte {
	size := s.size
	if size == 0 {
		size = 64
	}
	b := vpkt(3, size, nil)
	p16(b, 12, uint16(size-12)) // vmscsi length
	b[17], b[18], b[19] = s.path, s.target, s.lun
	b[20] = byte(len(s.cdb))
	b[21] = 0x14
	if size == 48 {
		b[21] = 0x12
	}
	b[22] = s.dataIn
	p32(b, 24, s.length)
	copy(b[28:44], s.cdb)
	if size == 64 {
		b[50], b[51] = 0xFF, 0x20
		flags := uint32(0)
		switch s.dataIn {
		case 0:
			flags = 0x80
		case 1:
			flags = 0x40
		}
		p32(b, 52, flags)
		p32(b, 56, 60)
	}
	return b
}

// gpaHeader is the §4.5 header for one range over buf.
func gpaHeader(buf hv.Pages, off, n int) []byte {
	pages := (off%4096 + n + 4095) / 4096
	h := make([]byte, 8+8+8*pages)
	p32(h, 4, 1)
	p32(h, 8, uint32(n))
	p32(h, 12, uint32(off%4096))
	for i := 0; i < pages; i++ {
		p64(h, 16+8*i, buf.PFNAt(off/4096+i))
	}
	return h
}

// srbDone is a decoded SRB completion.
type srbDone struct {
	raw                []byte
	status             uint32
	srbStatus, scsi    byte
	senseLen           byte
	sense              []byte
	transferred        uint32
	path, target, lun  byte
	sizeOfVmscsi       uint16
	cdbLength, dataDir byte
}

func decodeDone(t testing.TB, p []byte) srbDone {
	t.Helper()
	if g32(p, 0) != 1 || len(p) < 48 {
		t.Fatalf("not a COMPLETE_IO: % x", p)
	}
	return srbDone{raw: p, status: g32(p, 8), sizeOfVmscsi: g16(p, 12), srbStatus: p[14], scsi: p[15],
		path: p[17], target: p[18], lun: p[19], cdbLength: p[20], senseLen: p[21], dataDir: p[22],
		transferred: g32(p, 24), sense: p[28:48]}
}

// io runs one SRB; buf (may be zero) is the data buffer, sent GPA-direct
// when s.length > 0.
func (c *tchan) io(s srbReq, buf hv.Pages, off int) srbDone {
	c.g.t.Helper()
	txMu.Lock() // tests drive several channels from their own goroutines
	txSeq++
	tx := txSeq
	txMu.Unlock()
	if s.length > 0 {
		c.send(9, 1, tx, gpaHeader(buf, off, int(s.length)), s.bytes())
	} else {
		c.send(6, 1, tx, nil, s.bytes())
	}
	return decodeDone(c.g.t, c.completion(tx))
}

// rig is a connected guest with one ready SCSI controller.
type rig struct {
	g   *tguest
	d   *StorVSP
	c   *tchan
	buf hv.Pages // 1 MiB data buffer
}

func newRig(t testing.TB, cfg Config, hcfg hvsim.Config, luns map[Addr]LUNConfig) *rig {
	t.Helper()
	if cfg.Instance == (hvsim.GUID{}) {
		cfg.Instance = testInstance
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for a, l := range luns {
		if err := d.Attach(a, l); err != nil {
			t.Fatal(err)
		}
	}
	g := newGuest(t, hcfg, d)
	offers := g.connect()
	if len(offers) != 1 {
		t.Fatalf("%d offers", len(offers))
	}
	c := g.open(offers[0], 32)
	buf, err := g.p.AllocPages(256)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{g: g, d: d, c: c, buf: buf}
}

func noViolations(t testing.TB, h *hvsim.Host) {
	t.Helper()
	if v := h.Violations(); len(v) != 0 {
		t.Fatalf("violations: %v", v)
	}
}

func cdb10(op byte, lba uint32, n uint16) []byte {
	b := make([]byte, 10)
	b[0] = op
	binary.BigEndian.PutUint32(b[2:], lba)
	binary.BigEndian.PutUint16(b[7:], n)
	return b
}

func cdb16(op byte, lba uint64, n uint32) []byte {
	b := make([]byte, 16)
	b[0] = op
	binary.BigEndian.PutUint64(b[2:], lba)
	binary.BigEndian.PutUint32(b[10:], n)
	return b
}

func wantBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s:\n got % x\nwant % x", what, got, want)
	}
}
