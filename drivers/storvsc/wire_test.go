package storvsc

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gohv/gohv/drivers/scsi"
)

// Expected bytes are written from docs/hyperv-protocol.md §6.3 and §4.5,
// not produced by the encoders under test.

func TestEncodeSRBWin8(t *testing.T) {
	var buf [64]byte
	cdb := scsi.Read10(0x01020304, 8)
	p := encodeSRB(buf[:], VersionWin10, &srbRequest{addr: addr{path: 1, target: 2, lun: 3},
		cdb: cdb.Bytes(), dataIn: dataIn, dataLen: 4096, timeout: 30})
	want := []byte{
		3, 0, 0, 0, // operation EXECUTE_SRB
		1, 0, 0, 0, // flags REQUEST_COMPLETION
		0, 0, 0, 0, // status
		0x34, 0, // length
		0, 0, // SRB status, SCSI status
		0, 1, 2, 3, // port, path, target, LUN
		10, 0x14, 1, 0, // CDB length, sense length, data_in read, reserved
		0, 0x10, 0, 0, // data transfer length 4096
		0x28, 0, 1, 2, 3, 4, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, // CDB (16 bytes)
		0, 0, 0, 0, // rest of the 20-byte CDB/sense union
		0, 0, // reserved (Win8 extension)
		0xFF, 0x20, // queue tag untagged, queue action simple
		0x48, 0, 0, 0, // SRB flags DATA_IN | DISABLE_SYNCH_TRANSFER
		30, 0, 0, 0, // timeout
		0, 0, 0, 0, // queue sort key
	}
	if !bytes.Equal(p, want) {
		t.Fatalf("got\n% x\nwant\n% x", p, want)
	}
}

func TestEncodeSRBPreWin8(t *testing.T) {
	buf := bytes.Repeat([]byte{0xEE}, 64)
	cdb := scsi.SynchronizeCache10(0, 0)
	p := encodeSRB(buf, VersionWin7, &srbRequest{addr: addr{lun: 5}, cdb: cdb.Bytes(), dataIn: dataNone})
	want := []byte{
		3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
		0x24, 0, 0, 0, 0, 0, 0, 5,
		10, 0x12, 2, 0,
		0, 0, 0, 0,
		0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0,
	}
	if !bytes.Equal(p, want) {
		t.Fatalf("got\n% x\nwant\n% x", p, want)
	}
}

func TestEncodeControl(t *testing.T) {
	var buf [64]byte
	want := append([]byte{9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x06, 0, 0}, make([]byte, 32)...)
	if p := encodeQueryVersion(buf[:], 48, VersionWin10); !bytes.Equal(p, want) {
		t.Fatalf("QUERY_PROTOCOL_VERSION\n% x", p)
	}
	want = append([]byte{13, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0}, make([]byte, 50)...)
	if p := encodeSubChannels(buf[:], 64, 3); !bytes.Equal(p, want) {
		t.Fatalf("CREATE_SUB_CHANNELS\n% x", p)
	}
	want = append([]byte{4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3}, make([]byte, 44)...)
	if p := encodeReset(buf[:], VersionWin8, OpResetLUN, addr{1, 2, 3}); !bytes.Equal(p, want) {
		t.Fatalf("RESET_LUN\n% x", p)
	}
}

func TestEncodeGPAHeader(t *testing.T) {
	buf := make([]byte, 64)
	h := encodeGPAHeader(buf, 0x2000, 0x200, 0x1122334455, 3)
	want := []byte{
		0, 0, 0, 0, // reserved (packet offset 16)
		1, 0, 0, 0, // range count
		0, 0x20, 0, 0, // byte count
		0, 2, 0, 0, // byte offset
		0x55, 0x44, 0x33, 0x22, 0x11, 0, 0, 0,
		0x56, 0x44, 0x33, 0x22, 0x11, 0, 0, 0,
		0x57, 0x44, 0x33, 0x22, 0x11, 0, 0, 0,
	}
	if !bytes.Equal(h, want) {
		t.Fatalf("got\n% x", h)
	}
	if len(h)%8 != 0 {
		t.Fatal("header not 8-byte aligned")
	}
}

func TestParseCompletion(t *testing.T) {
	b := make([]byte, 64)
	copy(b, []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0x34, 0, 0x84, 0x02, 0, 0, 0, 0, 0, 18, 1, 0, 0x00, 0x02, 0, 0})
	copy(b[28:], []byte{0x70, 0, 6, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x2A, 0x09, 0, 0, 0, 0})
	var c completion
	if err := parseCompletion(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.op != OpCompleteIO || c.srbCode() != SRBError || !c.autosense() || c.scsiStatus != scsi.StatusCheckCondition ||
		c.senseLen != 18 || c.dataLen != 512 || c.sense[12] != 0x2A {
		t.Fatalf("%+v", c)
	}
	// Properties (§6.3 channel properties at union offset 4/8/12).
	p := make([]byte, 48)
	copy(p, []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 4, 0})
	if err := parseCompletion(p, &c); err != nil || c.maxSubChannels != 7 || c.propFlags != 1 || c.maxTransfer != 0x40000 {
		t.Fatalf("%+v %v", c, err)
	}
	if err := parseCompletion(make([]byte, 47), &c); !errors.Is(err, ErrProtocol) {
		t.Fatalf("47 bytes: %v", err)
	}
	b[21] = 21 // sense length beyond the 20-byte buffer
	if err := parseCompletion(b, &c); !errors.Is(err, ErrProtocol) {
		t.Fatalf("sense 21: %v", err)
	}
	b[14] = 0x04 // autosense not valid: sense ignored whatever its length
	if err := parseCompletion(b, &c); err != nil || c.autosense() || c.senseLen != 0 {
		t.Fatalf("no autosense: %+v %v", c, err)
	}
}

func TestIDEAddress(t *testing.T) {
	u := make([]byte, 120)
	u[2], u[3], u[8] = 1, 0, 2
	if p, tg, ide := ideAddress(u); p != 1 || tg != 0 || !ide {
		t.Fatal(p, tg, ide)
	}
	if _, _, ide := ideAddress(u[:11]); ide {
		t.Fatal("short user data accepted")
	}
}

func TestVersionSizes(t *testing.T) {
	for _, tc := range []struct {
		v          Version
		pkt, sense int
		name       string
	}{{VersionWin10, 64, 20, "6.2"}, {VersionWin8, 64, 20, "5.1"}, {VersionWin7, 48, 18, "4.2"}, {VersionWin6, 48, 18, "2.0"}} {
		if tc.v.packetSize() != tc.pkt || tc.v.senseSize() != tc.sense || tc.v.String() != tc.name {
			t.Errorf("%v: %d %d", tc.v, tc.v.packetSize(), tc.v.senseSize())
		}
	}
}

func FuzzParseCompletion(f *testing.F) {
	b := make([]byte, 64)
	copy(b, []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x34, 0, 0x84, 0x02, 0, 0, 0, 0, 0, 18, 1, 0, 0, 2, 0, 0, 0x70, 0, 6})
	f.Add(b)
	f.Add(make([]byte, 48))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c completion
		err := parseCompletion(b, &c)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatal(err)
			}
			return
		}
		if c.senseLen > len(c.sense) {
			t.Fatal("sense length beyond buffer")
		}
		if c.autosense() {
			scsi.ParseSense(c.sense[:c.senseLen])
		}
	})
}
