package part

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gohv/gohv/drivers/block"
	"github.com/gohv/gohv/internal/hosttool"
	"github.com/gohv/gohv/tools/image/layout"
)

const ss = 512

// gptDisk writes a GPT by hand from the UEFI offsets (not with the code
// under test): 128 entries of 128 bytes at LBA 2 (primary) and at
// last-32 (backup), with the given partitions as [start, end] LBAs.
func gptDisk(t testing.TB, sectors uint64, parts [][2]uint64) *block.Mem {
	t.Helper()
	m, err := block.NewMem("d", ss, sectors)
	if err != nil {
		t.Fatal(err)
	}
	b := m.Bytes()
	le := binary.LittleEndian
	// Protective MBR: one record of type 0xEE from LBA 1.
	b[446+4] = 0xEE
	le.PutUint32(b[446+8:], 1)
	le.PutUint32(b[446+12:], uint32(sectors-1))
	b[510], b[511] = 0x55, 0xAA
	arr := make([]byte, 128*128)
	for i, p := range parts {
		e := arr[i*128:]
		copy(e[0:], TypeLinuxData[:])
		e[16] = byte(i + 1) // unique GUID
		le.PutUint64(e[32:], p[0])
		le.PutUint64(e[40:], p[1])
		le.PutUint64(e[48:], 1<<60)
		for j, c := range "part" {
			le.PutUint16(e[56+2*j:], uint16(c))
		}
	}
	last := sectors - 1
	header := func(my, alt, entries uint64) []byte {
		h := make([]byte, ss)
		copy(h, "EFI PART")
		le.PutUint32(h[8:], 0x00010000)
		le.PutUint32(h[12:], 92)
		le.PutUint64(h[24:], my)
		le.PutUint64(h[32:], alt)
		le.PutUint64(h[40:], 34)
		le.PutUint64(h[48:], last-33)
		copy(h[56:], "0123456789abcdef")
		le.PutUint64(h[72:], entries)
		le.PutUint32(h[80:], 128)
		le.PutUint32(h[84:], 128)
		le.PutUint32(h[88:], crc32.ChecksumIEEE(arr))
		le.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
		return h
	}
	copy(b[1*ss:], header(1, last, 2))
	copy(b[2*ss:], arr)
	copy(b[(last-32)*ss:], arr)
	copy(b[last*ss:], header(last, 1, last-32))
	return m
}

func TestGPTByHand(t *testing.T) {
	ctx := context.Background()
	m := gptDisk(t, 2048, [][2]uint64{{34, 99}, {100, 2014}})
	tab, err := Read(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if tab.Kind != KindGPT || tab.UsedBackup || tab.BackupErr != nil || len(tab.Partitions) != 2 {
		t.Fatalf("table %+v", tab)
	}
	p := tab.Partitions[0]
	if p.Index != 1 || p.Start != 34 || p.Sectors != 66 || p.Type != TypeLinuxData || p.Name != "part" || p.Attributes != 1<<60 || p.GUID[0] != 1 {
		t.Errorf("partition %+v", p)
	}
	if string(tab.DiskGUID[:]) != "0123456789abcdef" {
		t.Errorf("disk GUID %v", tab.DiskGUID)
	}
	if TypeLinuxData.String() != "0FC63DAF-8483-4772-8E79-3D69D8477DE4" || TypeLinuxData[0] != 0xAF {
		t.Errorf("GUID round trip %v % X", TypeLinuxData, TypeLinuxData[:4])
	}
}

func TestGPTRecovery(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name       string
		corrupt    func(b []byte, last uint64)
		useBackup  bool
		backupErr  bool
		wantErr    bool
		wantPrimIn string
	}{
		{"primary header CRC", func(b []byte, _ uint64) { b[ss+60] ^= 1 }, true, false, false, "header CRC"},
		{"primary array", func(b []byte, _ uint64) { b[2*ss+40] ^= 1 }, true, false, false, "entry array CRC"},
		{"primary signature", func(b []byte, _ uint64) { copy(b[ss:], "NOT PART") }, true, false, false, "no signature"},
		{"backup header", func(b []byte, last uint64) { b[last*ss+60] ^= 1 }, false, true, false, ""},
		{"backup array", func(b []byte, last uint64) { b[(last-32)*ss] ^= 1 }, false, true, false, ""},
		{"both", func(b []byte, last uint64) { b[ss+60] ^= 1; b[last*ss+60] ^= 1 }, false, false, true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := gptDisk(t, 2048, [][2]uint64{{34, 99}})
			c.corrupt(m.Bytes(), 2047)
			tab, err := Read(ctx, m)
			if c.wantErr {
				if !errors.Is(err, ErrGPT) {
					t.Fatalf("err %v, want ErrGPT", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tab.UsedBackup != c.useBackup || (tab.BackupErr != nil) != c.backupErr || len(tab.Partitions) != 1 {
				t.Fatalf("table %+v", tab)
			}
			if c.useBackup && !strings.Contains(tab.PrimaryErr.Error(), c.wantPrimIn) {
				t.Errorf("primary error %v lacks %q", tab.PrimaryErr, c.wantPrimIn)
			}
		})
	}
	// A disk grown after partitioning: the backup is not at the last LBA.
	m := gptDisk(t, 2048, [][2]uint64{{34, 99}})
	big, _ := block.NewMem("big", ss, 4096)
	copy(big.Bytes(), m.Bytes())
	tab, err := Read(ctx, big)
	if err != nil || tab.BackupErr == nil || tab.UsedBackup {
		t.Errorf("grown disk: %+v %v", tab, err)
	}
}

func TestGPTRejects(t *testing.T) {
	for _, c := range []struct {
		name  string
		parts [][2]uint64
	}{
		{"overlap", [][2]uint64{{34, 99}, {99, 200}}},
		{"before usable", [][2]uint64{{10, 99}}},
		{"past usable", [][2]uint64{{34, 2040}}},
		{"end before start", [][2]uint64{{100, 99}}},
	} {
		m := gptDisk(t, 2048, c.parts)
		if _, err := Read(context.Background(), m); !errors.Is(err, ErrGPT) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// mbrDisk writes an MBR by hand: records as {boot, type, start, size}.
func mbrDisk(t testing.TB, sectors uint64, recs [][4]uint32) *block.Mem {
	m, err := block.NewMem("d", ss, sectors)
	if err != nil {
		t.Fatal(err)
	}
	b := m.Bytes()
	for i, r := range recs {
		e := b[446+16*i:]
		e[0], e[4] = byte(r[0]), byte(r[1])
		binary.LittleEndian.PutUint32(e[8:], r[2])
		binary.LittleEndian.PutUint32(e[12:], r[3])
	}
	b[510], b[511] = 0x55, 0xAA
	return m
}

func TestMBR(t *testing.T) {
	ctx := context.Background()
	m := mbrDisk(t, 4096, [][4]uint32{{0x80, 0xDA, 2048, 1024}, {0, 0, 0, 0}, {0, 0x0C, 3072, 1024}})
	tab, err := Read(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	want := []Partition{{Index: 1, Start: 2048, Sectors: 1024, MBRType: 0xDA, Bootable: true}, {Index: 3, Start: 3072, Sectors: 1024, MBRType: 0x0C}}
	if tab.Kind != KindMBR || len(tab.Partitions) != 2 || tab.Partitions[0] != want[0] || tab.Partitions[1] != want[1] {
		t.Errorf("table %+v", tab)
	}
	for _, c := range []struct {
		name string
		recs [][4]uint32
		want error
	}{
		{"bad boot flag", [][4]uint32{{0x12, 0x83, 2048, 10}}, ErrMBR},
		{"past end", [][4]uint32{{0, 0x83, 2048, 4096}}, ErrMBR},
		{"overlap", [][4]uint32{{0, 0x83, 2048, 100}, {0, 0x83, 2100, 10}}, ErrMBR},
		{"protective without GPT", [][4]uint32{{0, 0xEE, 1, 4095}}, ErrGPT},
	} {
		if _, err := Read(ctx, mbrDisk(t, 4096, c.recs)); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	blank, _ := block.NewMem("blank", ss, 64)
	if _, err := Read(ctx, blank); !errors.Is(err, ErrNoTable) {
		t.Errorf("blank disk: %v", err)
	}
}

func TestPartitionDevice(t *testing.T) {
	ctx := context.Background()
	m := mbrDisk(t, 4096, [][4]uint32{{0, 0x83, 2048, 8}})
	tab, _ := Read(ctx, m)
	d, err := Open(m, tab.Partitions[0])
	if err != nil {
		t.Fatal(err)
	}
	if i := d.Info(); i.Sectors != 8 || i.Name != "dp1" {
		t.Errorf("info %+v", i)
	}
	w := bytes.Repeat([]byte{9}, 2*ss)
	if _, err := d.WriteAt(ctx, w, 6*ss); err != nil {
		t.Fatal(err)
	}
	if m.Bytes()[(2048+6)*ss] != 9 || m.Bytes()[(2048+8)*ss] != 0 || m.Bytes()[(2048+6)*ss-1] != 0 {
		t.Error("write landed outside its place")
	}
	for _, off := range []int64{7 * ss, 8 * ss, -ss} {
		if _, err := d.WriteAt(ctx, w, off); !errors.Is(err, block.ErrOutOfRange) {
			t.Errorf("write at %d: %v", off, err)
		}
	}
	if err := d.Discard(ctx, 7*ss, 2*ss); !errors.Is(err, block.ErrOutOfRange) {
		t.Errorf("discard past end: %v", err)
	}
	m.SetReadOnly(true)
	if _, err := d.WriteAt(ctx, w, 0); !errors.Is(err, block.ErrReadOnly) {
		t.Errorf("read-only parent: %v", err)
	}
	if _, err := NewDevice(m, 4090, 8, "x"); !errors.Is(err, block.ErrOutOfRange) {
		t.Errorf("window past the disk: %v", err)
	}
}

// fileDisk loads an image file into a memory disk.
func fileDisk(t *testing.T, p string) *block.Mem {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	m, err := block.NewMemFrom(filepath.Base(p), ss, b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newImage(t *testing.T, size int64) string {
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSgdisk reads GPTs made by sgdisk, including after sgdisk
// deliberately damaged the primary.
func TestSgdisk(t *testing.T) {
	hosttool.Need(t, "sgdisk")
	ctx := context.Background()
	p := newImage(t, 8<<20)
	hosttool.Run(t, "sgdisk", "-n", "1:2048:+1M", "-t", "1:EF00", "-c", "1:EFI system",
		"-n", "2:0:+2M", "-t", "2:8300", "-c", "2:Linux ✓",
		"-n", "5:0:0", "-t", "5:0700", "-U", "R", p)
	tab, err := Read(ctx, fileDisk(t, p))
	if err != nil {
		t.Fatal(err)
	}
	if tab.Kind != KindGPT || tab.BackupErr != nil || len(tab.Partitions) != 3 {
		t.Fatalf("table %+v", tab)
	}
	info := hosttool.Run(t, "sgdisk", "-i", "2", p)
	for _, c := range []struct {
		p     Partition
		index int
		start uint64
		typ   GUID
		name  string
	}{
		{tab.Partitions[0], 1, 2048, TypeEFISystem, "EFI system"},
		{tab.Partitions[1], 2, 4096, TypeLinuxData, "Linux ✓"},
		{tab.Partitions[2], 5, 8192, TypeMicrosoftData, ""},
	} {
		if c.p.Index != c.index || c.p.Start != c.start || c.p.Type != c.typ || c.p.Name != c.name {
			t.Errorf("partition %+v, want index %d start %d type %v name %q", c.p, c.index, c.start, c.typ, c.name)
		}
	}
	if !strings.Contains(info, tab.Partitions[1].GUID.String()) {
		t.Errorf("sgdisk names another unique GUID:\n%s\nwe read %v", info, tab.Partitions[1].GUID)
	}
	// Zero the primary header: sgdisk still finds the backup, and so do we.
	b, _ := os.ReadFile(p)
	clear(b[ss : 2*ss])
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	tab2, err := Read(ctx, fileDisk(t, p))
	if err != nil {
		t.Fatal(err)
	}
	if !tab2.UsedBackup || tab2.PrimaryErr == nil || len(tab2.Partitions) != 3 || tab2.Partitions[1] != tab.Partitions[1] {
		t.Errorf("backup table %+v", tab2)
	}
}

func TestSfdiskExtended(t *testing.T) {
	hosttool.Need(t, "sfdisk")
	p := newImage(t, 16<<20)
	script := "label: dos\nstart=2048, size=2048, type=83\nstart=4096, size=20480, type=5\n" +
		"start=6144, size=2048, type=83\nstart=10240, size=4096, type=c\n"
	cmd := exec.Command("sfdisk", p)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	m := fileDisk(t, p)
	tab, err := Read(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	want := []Partition{
		{Index: 1, Start: 2048, Sectors: 2048, MBRType: 0x83},
		{Index: 2, Start: 4096, Sectors: 20480, MBRType: 0x05, Extended: true},
		{Index: 5, Start: 6144, Sectors: 2048, MBRType: 0x83},
		{Index: 6, Start: 10240, Sectors: 4096, MBRType: 0x0C},
	}
	if len(tab.Partitions) != len(want) {
		t.Fatalf("partitions %+v", tab.Partitions)
	}
	for i := range want {
		if tab.Partitions[i] != want[i] {
			t.Errorf("partition %+v, want %+v", tab.Partitions[i], want[i])
		}
	}
	// A chain whose second EBR links to itself is refused.
	b := m.Bytes()
	ebr2 := -1
	for lba := 4097; lba < 4096+20480; lba++ {
		if b[lba*ss+510] == 0x55 && b[lba*ss+511] == 0xAA {
			ebr2 = lba
			break
		}
	}
	if ebr2 < 0 {
		t.Fatal("second EBR not found")
	}
	link := b[ebr2*ss+446+16:]
	link[4] = 0x05
	binary.LittleEndian.PutUint32(link[8:], uint32(ebr2-4096)) // relative to the extended partition
	binary.LittleEndian.PutUint32(link[12:], 1)
	if _, err := Read(context.Background(), m); !errors.Is(err, ErrMBR) {
		t.Errorf("looping EBR chain: %v", err)
	}
}

func TestSfdisk(t *testing.T) {
	hosttool.Need(t, "sfdisk")
	p := newImage(t, 8<<20)
	script := "label: dos\nstart=2048, size=4096, type=83, bootable\nstart=8192, size=4096, type=c\n"
	cmd := exec.Command("sfdisk", p)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	tab, err := Read(context.Background(), fileDisk(t, p))
	if err != nil {
		t.Fatal(err)
	}
	want := []Partition{{Index: 1, Start: 2048, Sectors: 4096, MBRType: 0x83, Bootable: true}, {Index: 2, Start: 8192, Sectors: 4096, MBRType: 0x0C}}
	if tab.Kind != KindMBR || len(tab.Partitions) != 2 || tab.Partitions[0] != want[0] || tab.Partitions[1] != want[1] {
		t.Errorf("table %+v", tab)
	}
}

// TestImageLayouts reads the disks gohv's own image builder makes.
func TestImageLayouts(t *testing.T) {
	ctx := context.Background()
	files := fstest.MapFS{"hello.txt": {Data: []byte("hi")}}
	g1, err := layout.Gen1(layout.Gen1Options{Stage1: []byte{0xEB}, Stage2: make([]byte, ss), Kernel: make([]byte, 4096), Files: files, DiskSignature: 1})
	if err != nil {
		t.Fatal(err)
	}
	g2, err := layout.Gen2(layout.Gen2Options{EFI: []byte("MZ"), Files: files})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*layout.Disk{g1, g2} {
		b := make([]byte, d.Size())
		if _, err := d.ReadAt(b, 0); err != nil {
			t.Fatal(err)
		}
		m, _ := block.NewMemFrom("img", ss, b)
		tab, err := Read(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if tab.BackupErr != nil || len(tab.Partitions) != len(d.Partitions) {
			t.Fatalf("table %+v, want %+v", tab, d.Partitions)
		}
		for i, p := range tab.Partitions {
			w := d.Partitions[i]
			if p.Index != w.Index || int64(p.Start)*ss != w.Start || int64(p.Sectors)*ss != w.Size {
				t.Errorf("partition %+v, want %+v", p, w)
			}
			if tab.Kind == KindGPT && !strings.EqualFold(p.Type.String(), w.Type) {
				t.Errorf("type %v, want %s", p.Type, w.Type)
			}
		}
	}
}

func FuzzParseMBR(f *testing.F) {
	f.Add(mbrDisk(f, 8, [][4]uint32{{0x80, 0x83, 1, 4}}).Bytes()[:ss])
	f.Add(make([]byte, ss))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMBR(b, 1000)
		if err != nil {
			return
		}
		for _, p := range m.Partitions {
			if p.Start == 0 || p.Start+p.Sectors > 1000 {
				t.Fatalf("accepted %+v", p)
			}
		}
	})
}

func FuzzParseGPT(f *testing.F) {
	m := gptDisk(f, 128, [][2]uint64{{34, 60}})
	f.Add(m.Bytes()[ss:2*ss], m.Bytes()[2*ss:34*ss])
	f.Fuzz(func(t *testing.T, hdr, arr []byte) {
		h, err := ParseGPTHeader(hdr, 1, 128)
		if err != nil {
			// Exercise the entry parser on its own with a header that is
			// plausible but not validated.
			h = GPTHeader{FirstUsableLBA: 34, LastUsableLBA: 94, NumEntries: uint32(len(arr) / 128), EntrySize: 128, EntriesCRC: crc32.ChecksumIEEE(arr[:len(arr)/128*128])}
		}
		parts, err := ParseGPTEntries(arr, h)
		if err != nil {
			return
		}
		for _, p := range parts {
			if p.Start < h.FirstUsableLBA || p.Start+p.Sectors-1 > h.LastUsableLBA {
				t.Fatalf("accepted %+v outside %d-%d", p, h.FirstUsableLBA, h.LastUsableLBA)
			}
		}
	})
}

// FuzzRead runs the whole reader over a small disk whose first sectors and
// last sectors are fuzzed.
func FuzzRead(f *testing.F) {
	g := gptDisk(f, 128, [][2]uint64{{34, 60}})
	f.Add(g.Bytes()[:34*ss], g.Bytes()[94*ss:])
	mb := mbrDisk(f, 128, [][4]uint32{{0, 0x83, 2, 100}})
	f.Add(mb.Bytes()[:ss], []byte{})
	ext := mbrDisk(f, 128, [][4]uint32{{0, 0x05, 2, 100}})
	copy(ext.Bytes()[2*ss+446:], []byte{0, 0, 0, 0, 0x83, 0, 0, 0, 1, 0, 0, 0, 10, 0, 0, 0})
	ext.Bytes()[2*ss+510], ext.Bytes()[2*ss+511] = 0x55, 0xAA
	f.Add(ext.Bytes()[:4*ss], []byte{})
	f.Fuzz(func(t *testing.T, head, tail []byte) {
		d, _ := block.NewMem("f", ss, 128)
		copy(d.Bytes(), head)
		if len(tail) <= len(d.Bytes()) {
			copy(d.Bytes()[len(d.Bytes())-len(tail):], tail)
		}
		tab, err := Read(context.Background(), d)
		if err != nil {
			return
		}
		for _, p := range tab.Partitions {
			if _, err := Open(d, p); err != nil {
				t.Fatalf("table accepted a partition off the disk: %+v", p)
			}
		}
	})
}
