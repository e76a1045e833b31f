package layout

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gohv/gohv/internal/hosttool"
	"github.com/gohv/gohv/tools/image"
)

// standIns are loader and kernel bytes with recognisable patterns, in
// place of the real boot/gen1 and boot/kimage output.
func standIns() (stage1, stage2, gki []byte) {
	stage1 = bytes.Repeat([]byte{0xEB}, 440)
	stage2 = bytes.Repeat([]byte{0x5A, 0x02}, 3*512/2)
	gki = append([]byte("GOHVKIMG"), bytes.Repeat([]byte{0x47}, 1500000)...)
	return
}

func userFiles() fstest.MapFS {
	return fstest.MapFS{
		"hello.txt":                  {Data: []byte("hello, gohv\n")},
		"config/settings.json":       {Data: []byte(`{"port":8080}`)},
		"www/index.html":             {Data: bytes.Repeat([]byte("<p>gohv</p>\n"), 5000)},
		"A Long File Name.data":      {Data: []byte{1, 2, 3}},
		"www/static/empty-file.css":  {Data: nil},
		"config/deeper/nested/x.bin": {Data: bytes.Repeat([]byte{0xFF}, 70000)},
	}
}

func writeRaw(t *testing.T, d *Disk) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := image.WriteRaw(p, d); err != nil {
		t.Fatal(err)
	}
	return p
}

type sfdiskJSON struct {
	PartitionTable struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		Partitions []struct {
			Start    int64  `json:"start"`
			Size     int64  `json:"size"`
			Type     string `json:"type"`
			Bootable bool   `json:"bootable"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

func sfdisk(t *testing.T, img string) sfdiskJSON {
	t.Helper()
	var v sfdiskJSON
	if err := json.Unmarshal([]byte(hosttool.Run(t, "sfdisk", "--json", img)), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// fsckAndList checks the FAT volume at byte offset off with fsck.fat (on an
// extracted copy) and returns `mdir -/ -b` of it.
func fsckAndList(t *testing.T, img string, off, size int64) string {
	t.Helper()
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(t.TempDir(), "part.img")
	if err := os.WriteFile(part, b[off:off+size], 0o644); err != nil {
		t.Fatal(err)
	}
	out := hosttool.Run(t, "fsck.fat", "-n", "-v", part)
	if !strings.Contains(out, "32 bit entries") {
		t.Errorf("fsck.fat does not see FAT32:\n%s", out)
	}
	return hosttool.Run(t, "mdir", "-i", img+"@@"+strconv.FormatInt(off, 10), "-/", "-b", "::/")
}

func mtype(t *testing.T, img string, off int64, p string) []byte {
	t.Helper()
	cmd := exec.Command("mtype", "-i", img+"@@"+strconv.FormatInt(off, 10), "::"+p)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mtype %s: %v", p, err)
	}
	return out
}

func TestGen1Layout(t *testing.T) {
	hosttool.Need(t, "sfdisk", "fsck.fat", "mdir", "mtype")
	s1, s2, gki := standIns()
	files := userFiles()
	d, err := Gen1(Gen1Options{Size: 64 << 20, Stage1: s1, Stage2: s2, Kernel: gki, Files: files, DiskSignature: 0x1234ABCD})
	if err != nil {
		t.Fatal(err)
	}
	img := writeRaw(t, d)
	raw, _ := os.ReadFile(img)

	// Bytes docs/boot.md fixes ("Gen1 disk layout (MBR)").
	if !bytes.Equal(raw[:440], s1) {
		t.Error("stage 1 not in bytes 0..439")
	}
	if got := binary.LittleEndian.Uint32(raw[440:]); got != 0x1234ABCD {
		t.Errorf("disk signature %#x", got)
	}
	if raw[444] != 0 || raw[445] != 0 || raw[510] != 0x55 || raw[511] != 0xAA {
		t.Errorf("bytes 444/445/510/511 = % X % X", raw[444:446], raw[510:512])
	}
	if !bytes.Equal(raw[512:512+len(s2)], s2) {
		t.Error("stage 2 not at LBA 1")
	}
	if !bytes.Equal(raw[1<<20:1<<20+len(gki)], gki) {
		t.Error("GKI not at LBA 2048")
	}
	e := raw[446:462]
	if e[0] != 0x80 || e[4] != 0xDA || binary.LittleEndian.Uint32(e[8:]) != 2048 || binary.LittleEndian.Uint32(e[12:]) != 2*2048 {
		t.Errorf("kernel entry % X", e)
	}

	v := sfdisk(t, img)
	pt := v.PartitionTable
	if pt.Label != "dos" || pt.ID != "0x1234abcd" || len(pt.Partitions) != 2 {
		t.Fatalf("sfdisk: %+v", pt)
	}
	p1, p2 := pt.Partitions[0], pt.Partitions[1]
	// The GKI is 1.43 MiB: kernel partition 2 MiB, data from 3 MiB to the end.
	if p1.Start != 2048 || p1.Size != 4096 || p1.Type != "da" || !p1.Bootable {
		t.Errorf("kernel partition %+v", p1)
	}
	if p2.Start != 3*2048 || p2.Size != (64-3)*2048 || p2.Type != "c" || p2.Bootable {
		t.Errorf("data partition %+v", p2)
	}
	list := fsckAndList(t, img, p2.Start*512, p2.Size*512)
	for name, f := range files {
		if !strings.Contains(list, "::/"+name) {
			t.Errorf("mdir lacks %s:\n%s", name, list)
			continue
		}
		if got := mtype(t, img, p2.Start*512, "/"+name); !bytes.Equal(got, f.Data) {
			t.Errorf("%s reads back %d bytes, want %d", name, len(got), len(f.Data))
		}
	}
}

func TestGen1WithoutDataAndAutoSize(t *testing.T) {
	hosttool.Need(t, "sfdisk")
	s1, s2, gki := standIns()
	d, err := Gen1(Gen1Options{Stage1: s1[:100], Stage2: s2, Kernel: gki})
	if err != nil {
		t.Fatal(err)
	}
	if d.Size() != 3<<20 {
		t.Errorf("auto size %d, want 3 MiB", d.Size())
	}
	pt := sfdisk(t, writeRaw(t, d)).PartitionTable
	if len(pt.Partitions) != 1 || pt.Partitions[0].Start != 2048 || pt.Partitions[0].Type != "da" {
		t.Errorf("%+v", pt)
	}
}

func TestGen2Layout(t *testing.T) {
	hosttool.Need(t, "sfdisk", "sgdisk", "fsck.fat", "mdir", "mtype")
	efi := append([]byte("MZ"), bytes.Repeat([]byte{0xEF}, 2500000)...)
	files := userFiles()
	d, err := Gen2(Gen2Options{Size: 128 << 20, EFI: efi, Files: files})
	if err != nil {
		t.Fatal(err)
	}
	img := writeRaw(t, d)
	out := hosttool.Run(t, "sgdisk", "-v", img)
	if !strings.Contains(out, "No problems found") {
		t.Errorf("sgdisk -v:\n%s", out)
	}
	out = hosttool.Run(t, "sgdisk", "-p", img)
	if !strings.Contains(out, "EF00") || !strings.Contains(out, "0700") {
		t.Errorf("sgdisk -p lacks EF00/0700 partitions:\n%s", out)
	}
	pt := sfdisk(t, img).PartitionTable
	if pt.Label != "gpt" || len(pt.Partitions) != 2 {
		t.Fatalf("sfdisk: %+v", pt)
	}
	esp, data := pt.Partitions[0], pt.Partitions[1]
	if esp.Start != 2048 || esp.Type != "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" || esp.Size != MinFAT32Size/512 {
		t.Errorf("ESP %+v", esp)
	}
	if data.Start != esp.Start+esp.Size || data.Type != "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7" ||
		(data.Start+data.Size)*512 != 127<<20 {
		t.Errorf("data %+v", data)
	}
	list := fsckAndList(t, img, esp.Start*512, esp.Size*512)
	if !strings.Contains(list, "::/EFI/BOOT/BOOTX64.EFI") {
		t.Errorf("ESP listing:\n%s", list)
	}
	if got := mtype(t, img, esp.Start*512, "/EFI/BOOT/BOOTX64.EFI"); !bytes.Equal(got, efi) {
		t.Errorf("BOOTX64.EFI reads back %d bytes, want %d", len(got), len(efi))
	}
	list = fsckAndList(t, img, data.Start*512, data.Size*512)
	for name, f := range files {
		if !strings.Contains(list, "::/"+name) {
			t.Errorf("data listing lacks %s", name)
		} else if got := mtype(t, img, data.Start*512, "/"+name); !bytes.Equal(got, f.Data) {
			t.Errorf("%s differs", name)
		}
	}
}

func TestSizeErrors(t *testing.T) {
	s1, s2, gki := standIns()
	for _, tc := range []struct {
		name string
		err  func() error
		is   error
		says string
	}{
		{"gen1 too small", func() error {
			_, err := Gen1(Gen1Options{Size: 2 << 20, Stage1: s1, Stage2: s2, Kernel: gki})
			return err
		}, ErrTooSmall, "at least 3MiB"},
		{"gen1 data too small", func() error {
			_, err := Gen1(Gen1Options{Size: 16 << 20, Stage1: s1, Stage2: s2, Kernel: gki, Files: fstest.MapFS{}})
			return err
		}, ErrTooSmall, "at least 36MiB"},
		{"gen1 over MBR limit", func() error {
			_, err := Gen1(Gen1Options{Size: 3 << 40, Stage1: s1, Stage2: s2, Kernel: gki})
			return err
		}, ErrInput, "limit"},
		{"stage1 too big", func() error {
			_, err := Gen1(Gen1Options{Stage1: make([]byte, 441), Stage2: s2, Kernel: gki})
			return err
		}, ErrInput, "440"},
		{"stage2 not sectors", func() error {
			_, err := Gen1(Gen1Options{Stage1: s1, Stage2: make([]byte, 100), Kernel: gki})
			return err
		}, ErrInput, "multiple of 512"},
		{"no kernel", func() error {
			_, err := Gen1(Gen1Options{Stage1: s1, Stage2: s2})
			return err
		}, ErrInput, "GKI"},
		{"gen2 too small", func() error {
			_, err := Gen2(Gen2Options{Size: 20 << 20, EFI: []byte("MZ")})
			return err
		}, ErrTooSmall, "at least 35MiB"},
		{"gen2 no efi", func() error {
			_, err := Gen2(Gen2Options{})
			return err
		}, ErrInput, "BOOTX64.EFI"},
	} {
		err := tc.err()
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v (want %v mentioning %q)", tc.name, err, tc.is, tc.says)
		}
	}
}

func TestCHSEncoding(t *testing.T) {
	// LBA 2048 with 255 heads × 63 sectors: cylinder 0, head 32, sector 33.
	if got := chs(2048); got != [3]byte{32, 33, 0} {
		t.Errorf("chs(2048) = % X", got)
	}
	// Past cylinder 1023 the entry saturates to FE FF FF.
	if got := chs(1 << 30); got != [3]byte{0xFE, 0xFF, 0xFF} {
		t.Errorf("chs(2^30) = % X", got)
	}
	// Cylinder 300 (bits 8-9 go in the sector byte's top bits).
	if got := chs(300 * 255 * 63); got != [3]byte{0, 1 | 1<<6, 300 & 0xFF} {
		t.Errorf("chs(cyl 300) = % X", got)
	}
}
