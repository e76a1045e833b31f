package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gohv/gohv/internal/hosttool"
	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/simhost"
	"github.com/gohv/gohv/tools/image"
	"github.com/gohv/gohv/tools/image/layout"
)

// TestDemo runs the demo against every host profile and checks the story
// it tells: the version each Windows Server release negotiates, the offers,
// the bindings, the memory disk's volume read and written, the time the
// host provides, the KVP auto pool, a backup taken while the guest writes,
// the heartbeats and the accepted shutdown.
func TestDemo(t *testing.T) {
	for _, tc := range []struct {
		profile hvsim.Profile
		version string
	}{
		{hvsim.WS2022, "5.3"},
		{hvsim.WS2019, "5.2"},
		{hvsim.WS2016, "4.0"},
		{hvsim.WS2012R2, "3.0"},
	} {
		t.Run(tc.profile.String(), func(t *testing.T) {
			var out bytes.Buffer
			// The newest host also plays Azure.
			azure := tc.profile == hvsim.WS2022
			err := demo(&out, options{profile: tc.profile, heartbeats: 3, interval: 5 * time.Millisecond, timeout: 30 * time.Second, azure: azure})
			if err != nil {
				t.Fatalf("demo: %v\n%s", err, out.String())
			}
			want := []string{
				"guest: VMBus version " + tc.version + " negotiated",
				"heartbeat              instance ",
				"shutdown               instance",
				"storvsc",
				"netvsc",
				"guest: driver heartbeat bound",
				"guest: driver shutdown bound",
				"guest: driver timesync bound",
				"guest: driver kvp bound",
				"guest: driver vss bound",
				"guest: driver storvsc bound",
				"gohv: disk scsi-",
				// Storage: the default memory disk's FAT32 volume.
				"guest: SCSI disk scsi-f8b3781b-0:0:0: 64 MiB, 512-byte sectors, read-write",
				"guest:   whole disk: fat32 filesystem",
				"guest:     /README.TXT (50 bytes, read \"This volume lives in the simulated host'\")",
				"guest:     wrote /gohv-sim.txt (",
				// Time sync.
				"guest: time sync: host provides time: yes; last sync 20",
				"guest: time sync: guest clock minus host clock: ",
				// Network: DHCP from the simulated host, HTTP both ways.
				"gohv: address 192.168.200.10/24 (dhcp)",
				"guest: network: address 192.168.200.10, DNS [192.168.200.1]",
				"host: GET http://192.168.200.10/ from the peer: \"hello from the gohv guest at 192.168.200.10\"",
				"guest: GET http://192.168.200.1:8080/: \"hello from the host's peer, you are 192.168.200.10:",
				"gohv: net: dhcp4: lease 192.168.200.10/24 lost: released",
				// KVP: what the kernel tells the host.
				"host: KVP auto pool from the guest, ",
				"host:   NetworkAddressIPv4 = 192.168.200.10",
				"host: KVP GET_IP_INFO 00:15:5D:67:68:76: addresses [192.168.200.10 fe80::215:5dff:fe67:6876], subnets [255.255.255.0 /64], gateways [192.168.200.1], DNS [192.168.200.1], DHCP true",
				"host:   OSName = gohv",
				"host:   ProcessorArchitecture = x86_64",
				// VSS.
				"guest: writing /gohv-sim.log on scsi-f8b3781b-0:0:0 whole disk",
				"host: VSS frozen: guest disks flushed (no dirty cache blocks), write gate held, writer waiting at the gate after ",
				"host: VSS backup cycle: HOT_BACKUP S_OK, FREEZE S_OK, THAW S_OK, BU_COMPLETE S_OK",
				"guest: writes resumed after THAW",
				"guest: VSS froze 1 time(s), thawed 1 time(s), frozen now: false",
				"gohv: the host asks for power-off",
				"host: guest accepted the shutdown (S_OK); guest shut down for power-off",
				"host: no protocol violations",
			}
			if azure {
				want = append(want,
					"gohv: on Azure (WireServer 168.63.129.16): reporting ready in the background",
					"guest: Azure: Ready reported for goal state incarnation 1",
					"guest: Azure: VM gohv-vm (Standard_B2s) in westeurope, computer name gohv-host",
					"host: WireServer accepted a health report: Ready for incarnation 1 (1 post(s))")
			} else if strings.Contains(out.String(), "Azure") {
				t.Errorf("Azure lines without -azure:\n%s", out.String())
			}
			for _, want := range want {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

// TestDemoImages runs the demo on real disk images made by the project's
// image builder and by the host's mkfs tools: a Generation 1 boot disk on
// IDE (MBR: kernel partition + FAT32 data partition), an ext4 image and a
// whole-disk FAT32 image on SCSI. It checks what the guest found and read,
// then checks with the host's fsck, mtools and debugfs that what the guest
// wrote is there and the volumes are clean.
func TestDemoImages(t *testing.T) {
	hosttool.Need(t, "mkfs.fat", "mcopy", "mtype", "fsck.fat", "mke2fs", "e2fsck", "debugfs")
	dir := t.TempDir()

	// The Gen1 boot disk, as `gohv image` lays it out.
	gen1 := filepath.Join(dir, "gen1.raw")
	d, err := layout.Gen1(layout.Gen1Options{
		Stage1: []byte{0xEB, 0xFE}, Stage2: make([]byte, 512), Kernel: []byte("a GKI would be here"),
		Files: fstest.MapFS{
			"HELLO.TXT":     {Data: []byte("hello from the Gen1 data partition\n")},
			"docs/notes.md": {Data: []byte("# notes\n" + strings.Repeat("x", 5000))},
		},
		DiskSignature: 0x600D600D,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := image.WriteRaw(gen1, d); err != nil {
		t.Fatal(err)
	}
	data := d.Partitions[1]

	// A whole-disk FAT32 image from mkfs.fat, with a file from mcopy.
	vfat := filepath.Join(dir, "data.vfat")
	hosttool.Run(t, "mkfs.fat", "-F", "32", "-n", "HOSTFAT", "-C", vfat, "40960")
	src := filepath.Join(dir, "fromhost.txt")
	if err := os.WriteFile(src, []byte("copied in by mcopy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hosttool.Run(t, "mcopy", "-i", vfat, src, "::/FROMHOST.TXT")

	// An ext4 image from mke2fs -d.
	tree := filepath.Join(dir, "ext4src")
	for name, body := range map[string]string{
		"ext.txt":        "read from ext4\n",
		"sub/deeper.bin": strings.Repeat("\x00\x01", 6000),
	} {
		p := filepath.Join(tree, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ext4 := filepath.Join(dir, "data.ext4")
	hosttool.Run(t, "mke2fs", "-q", "-F", "-t", "ext4", "-d", tree, ext4, "8M")

	var out bytes.Buffer
	disks := []simhost.Disk{{Path: gen1, IDE: true}, {Path: ext4}, {Path: vfat}}
	if err := demo(&out, options{profile: hvsim.WS2022, heartbeats: 1, interval: 5 * time.Millisecond, timeout: 30 * time.Second, disks: disks}); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		// The IDE boot disk: its MBR, the kernel partition nobody mounts,
		// the FAT32 data partition with the files the layout put there.
		"guest: IDE disk ide-00000000-0:0:0: ",
		"guest:   MBR partition table, 2 partitions",
		"guest:   partition 1 (type 0xda, 1 MiB): no filesystem",
		"guest:   partition 2 (type 0x0c, ",
		"MiB): fat32 filesystem",
		"guest:     /HELLO.TXT (35 bytes, read \"hello from the Gen1 data partition\")",
		"guest:     /docs/\n",
		"guest:     /docs/notes.md (5008 bytes, read \"# notes\")",
		// The SCSI disks.
		"guest: SCSI disk scsi-f8b3781b-0:0:0: 8 MiB, 512-byte sectors, read-write",
		"guest:   whole disk: ext4 filesystem",
		"guest:     /ext.txt (15 bytes, read \"read from ext4\")",
		"guest:     /sub/deeper.bin (12000 bytes, read)\n",
		"guest: SCSI disk scsi-f8b3781b-0:0:1: 40 MiB, 512-byte sectors, read-write",
		"guest:     /FROMHOST.TXT (19 bytes, read \"copied in by mcopy\")",
		"host: VSS backup cycle: HOT_BACKUP S_OK, FREEZE S_OK, THAW S_OK, BU_COMPLETE S_OK",
		"host: no protocol violations",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "wrote /gohv-sim.txt"); n != 3 {
		t.Errorf("wrote /gohv-sim.txt on %d volumes, want 3 (two FAT32, one ext4):\n%s", n, got)
	}
	// The ext4 volume: Linux's debugfs reads what the guest wrote and
	// what mke2fs put there, untouched.
	if stamp := debugfsCat(t, ext4, "/gohv-sim.txt"); !strings.HasPrefix(stamp, "written by gohv-sim at 20") {
		t.Errorf("ext4: gohv-sim.txt = %q", stamp)
	}
	if old := debugfsCat(t, ext4, "/ext.txt"); old != "read from ext4\n" {
		t.Errorf("ext4: ext.txt = %q after the guest wrote beside it", old)
	}

	// What the guest wrote is on the images, and the host's checkers
	// find the volumes clean.
	vfatAt := vfat
	gen1At := gen1 + "@@" + itoa(data.Start)
	for _, img := range []string{vfatAt, gen1At} {
		stamp := hosttool.Run(t, "mtype", "-i", img, "::/gohv-sim.txt")
		if !strings.HasPrefix(stamp, "written by gohv-sim at 20") {
			t.Errorf("%s: gohv-sim.txt = %q", img, stamp)
		}
	}
	logs := 0
	for _, img := range []string{vfatAt, gen1At} {
		if strings.Contains(hosttool.Run(t, "mdir", "-b", "-i", img, "::/"), "gohv-sim.log") {
			logs++
			if l := hosttool.Run(t, "mtype", "-i", img, "::/gohv-sim.log"); !strings.HasPrefix(l, "write 1 at 20") {
				t.Errorf("%s: gohv-sim.log = %q", img, l)
			}
		}
	}
	if logs != 1 {
		t.Errorf("gohv-sim.log on %d volumes, want 1", logs)
	}
	t.Log(hosttool.Run(t, "fsck.fat", "-n", vfat))
	part := filepath.Join(dir, "gen1-data.vfat")
	raw, err := os.ReadFile(gen1)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(part, raw[data.Start:data.Start+data.Size], 0o644); err != nil {
		t.Fatal(err)
	}
	t.Log(hosttool.Run(t, "fsck.fat", "-n", part))
	t.Log(hosttool.Run(t, "e2fsck", "-fn", ext4))
}

// debugfsCat returns a file of an ext4 image as debugfs reads it (its
// banner goes to stderr and is left out).
func debugfsCat(t *testing.T, img, name string) string {
	t.Helper()
	out, err := exec.Command("debugfs", "-R", "cat "+name, img).Output()
	if err != nil {
		t.Fatalf("debugfs cat %s: %v", name, err)
	}
	return string(out)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestDemoReadOnlyDisk: a FAT32 image attached read-only is listed and
// read but not written, and the backup runs without a writer.
func TestDemoReadOnlyDisk(t *testing.T) {
	hosttool.Need(t, "mkfs.fat", "mcopy")
	dir := t.TempDir()
	vfat := filepath.Join(dir, "ro.vfat")
	hosttool.Run(t, "mkfs.fat", "-F", "32", "-C", vfat, "40960")
	src := filepath.Join(dir, "keep.txt")
	if err := os.WriteFile(src, []byte("do not touch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hosttool.Run(t, "mcopy", "-i", vfat, src, "::/KEEP.TXT")
	before, err := os.ReadFile(vfat)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	o := options{profile: hvsim.WS2016, heartbeats: 1, interval: 5 * time.Millisecond, timeout: 30 * time.Second,
		disks: []simhost.Disk{{Path: vfat, ReadOnly: true}}}
	if err := demo(&out, o); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"guest: SCSI disk scsi-f8b3781b-0:0:0: 40 MiB, 512-byte sectors, read-only",
		"guest:     /KEEP.TXT (13 bytes, read \"do not touch\")",
		"host: VSS frozen: guest disks flushed (no dirty cache blocks), write gate held\n",
		"host: VSS backup cycle: HOT_BACKUP S_OK, FREEZE S_OK, THAW S_OK, BU_COMPLETE S_OK",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "wrote /") || strings.Contains(got, "writing /") {
		t.Errorf("the demo wrote to a read-only disk:\n%s", got)
	}
	if after, err := os.ReadFile(vfat); err != nil || !bytes.Equal(before, after) {
		t.Errorf("the read-only image changed (read error %v)", err)
	}
}

func TestPreview(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"hello\nworld\n", "hello", true},
		{"", "", true},
		{strings.Repeat("a", 39) + "é tail", strings.Repeat("a", 39), true}, // é would be cut: dropped
		{"\x00\x01binary", "", false},
		{"\xff\xfe", "", false},
	} {
		got, ok := preview([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("preview(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestServeLinux: -linux-http serves the guest's handler on Linux's stack.
func TestServeLinux(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- serveLinux(ctx, pw, "127.0.0.1:0"); pw.Close() }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "linux: serving HTTP on ")
	if !ok {
		t.Fatalf("first line %q", line)
	}
	go io.Copy(io.Discard, pr)
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "hello from the gohv guest at 127.0.0.1\n"; string(body) != want {
		t.Errorf("body %q, want %q", body, want)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serveLinux: %v", err)
	}
}
