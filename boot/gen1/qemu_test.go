package gen1_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gohv/gohv/boot/gen1"
	"github.com/gohv/gohv/boot/kimage"
	"github.com/gohv/gohv/boot/testpayload"
	"github.com/gohv/gohv/internal/qemutest"
)

const (
	qemuTimeout = 90 * time.Second // TCG on a loaded 2-core machine
	guestMiB    = testpayload.MinMemoryMiB
	diskSize    = 4 << 20
)

// qemuRun is the outcome of one boot.
type qemuRun struct {
	log      string
	exitCode int  // -1 when QEMU was stopped by the test
	matched  bool // the stop line was seen
}

// runQEMU boots disk (format as qemu's -drive format=) with SeaBIOS on an
// IDE disk, COM1 on a pipe and isa-debug-exit. It stops QEMU once a line
// containing stop appears (for loaders that halt), or when the guest exits.
// ram, if not empty, backs guest RAM with that file (private mapping) so
// the guest starts with non-zero memory.
func runQEMU(t *testing.T, disk, format string, memMiB int, ram, stop string) qemuRun {
	t.Helper()
	var until func(qemutest.Line) bool
	if stop != "" {
		until = qemutest.Until(stop)
	}
	r := qemutest.Run(t, qemutest.Options{
		Kind: qemutest.Gen1, Disk: disk, Format: format, MemMiB: memMiB,
		DebugExit: true, RAMFile: ram, Timeout: qemuTimeout,
	}, until)
	return qemuRun{log: r.Log(), exitCode: r.ExitCode, matched: r.Stopped}
}

// buildGKI assembles the test payload and flattens it.
func buildGKI(t *testing.T) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	gki, err := testpayload.GKI(ctx, t.TempDir())
	if errors.Is(err, testpayload.ErrNoToolchain) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return gki
}

// dirtyRAM writes a RAM backing file full of 0xA5 so that the payload's
// "bss zero" check proves the loader zeroed the bss.
func dirtyRAM(t *testing.T, dir string, mib int) string {
	t.Helper()
	p := filepath.Join(dir, "ram.bin")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := bytes.Repeat([]byte{0xa5}, 1<<20)
	for range mib {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var reportRE = regexp.MustCompile(regexp.QuoteMeta(testpayload.ReportPrefix) +
	`(\d+), ram=(\d+) KiB, bss zero ok, data ok, entry ok, rsdp=0x([0-9a-f]{8})`)

// checkBooted asserts the loader's progress lines and the payload's report.
func checkBooted(t *testing.T, r qemuRun) {
	t.Helper()
	for _, want := range []string{"gohv: stage 2", "gohv: kernel partition at LBA 2048", "gohv: entering kernel at 0x1001", testpayload.PassLine} {
		if !strings.Contains(r.log, want) {
			t.Errorf("serial log lacks %q", want)
		}
	}
	m := reportRE.FindStringSubmatch(r.log)
	if m == nil {
		t.Fatalf("no payload report line; serial log:\n%s", r.log)
	}
	if n, _ := strconv.Atoi(m[1]); n == 0 {
		t.Error("memmap has no entries")
	}
	if kib, _ := strconv.Atoi(m[2]); kib < guestMiB*1024*9/10 || kib > guestMiB*1024 {
		t.Errorf("ram=%d KiB, want about %d MiB", kib, guestMiB)
	}
	if rsdp, _ := strconv.ParseUint(m[3], 16, 32); rsdp < 0xe0000 || rsdp >= 0x100000 {
		// SeaBIOS puts the RSDP in the BIOS area; the loader must find it.
		t.Errorf("rsdp=%#x, want the RSDP SeaBIOS placed in 0xE0000-0xFFFFF", rsdp)
	}
	if r.exitCode != testpayload.ExitPass {
		t.Errorf("qemu exit code %d, want %d (payload PASS)", r.exitCode, testpayload.ExitPass)
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("serial log:\n%s", r.log)
	}
}

// TestBootQEMU boots the test payload through stage 1 and stage 2 under
// SeaBIOS from raw, fixed VHD and VHDX disks, and checks the loader's
// error paths. `make loader-test` runs it.
func TestBootQEMU(t *testing.T) {
	qemutest.Need(t, qemutest.Gen1)
	gki := buildGKI(t)
	dir := t.TempDir()
	good := rawDisk(diskSize, gki, kernelPart(diskSize), mbrPart{typ: 0x0c, lba: 4096, sectors: 2048})
	goodPath := writeFile(t, dir, "good.img", good)
	var ramOnce sync.Once
	var ram string
	dirty := func(t *testing.T) string {
		ramOnce.Do(func() { ram = dirtyRAM(t, dir, guestMiB) })
		return ram
	}

	t.Run("raw", func(t *testing.T) {
		t.Parallel()
		checkBooted(t, runQEMU(t, goodPath, "raw", guestMiB, dirty(t), ""))
	})
	// A TamaGo-sized image: 8 MiB more data (256 bounce-buffer chunks) and
	// an 8 MiB bss in a third segment.
	bigGKI := withSegment(t, gki, 0x12000000, pseudoRandom(8<<20), 16<<20)
	bigSize := 16 << 20
	bigPath := writeFile(t, dir, "big.img", rawDisk(bigSize, bigGKI, kernelPart(bigSize)))
	t.Run("large kernel", func(t *testing.T) {
		t.Parallel()
		checkBooted(t, runQEMU(t, bigPath, "raw", guestMiB, "", ""))
	})
	for _, c := range []struct {
		name, format string
		opts         []string
	}{
		{"vhd", "vpc", []string{"-o", "subformat=fixed,force_size=on"}},
		{"vhdx", "vhdx", nil},
	} {
		// Convert before any parallel boot: QEMU locks good.img.
		p := convertDisk(t, goodPath, c.format, c.opts...)
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			checkBooted(t, runQEMU(t, p, c.format, guestMiB, "", ""))
		})
	}

	corrupt := func(f func(d []byte)) []byte {
		d := bytes.Clone(good)
		f(d)
		return d
	}
	neg := []struct {
		name string
		disk []byte
		mem  int
		want string
	}{
		{"no kernel partition", rawDisk(diskSize, gki, mbrPart{active: true, typ: 0x0c, lba: 2048, sectors: 2048}), guestMiB, "gohv: no gohv kernel partition"},
		{"inactive kernel partition", rawDisk(diskSize, gki, mbrPart{typ: gen1.KernelPartitionType, lba: 2048, sectors: 2048}), guestMiB, "gohv: no gohv kernel partition"},
		{"bad magic", corrupt(func(d []byte) { d[2048*512] = 'X' }), guestMiB, "gohv: bad kernel image (header)"},
		{"bad segment", corrupt(func(d []byte) { d[2048*512+32+8] = 1 /* unaligned file offset */ }), guestMiB, "gohv: bad kernel image (header)"},
		{"entry outside segments", corrupt(func(d []byte) { binary.LittleEndian.PutUint32(d[2048*512+16:], 0x200000) }), guestMiB, "gohv: bad kernel image (header)"},
		{"no stage 2", corrupt(func(d []byte) { clear(d[512:1024]) }), guestMiB, "gohv: stage 2 missing or damaged"},
		{"crc mismatch", corrupt(func(d []byte) { d[2048*512+len(gki)-600] ^= 0x40 }), guestMiB, "gohv: bad kernel image (CRC-32 mismatch)"},
		{"too little ram", good, 128, "gohv: warning: kernel does not fit in RAM"},
		{"truncated disk", good[:2048*512+4096], guestMiB, "gohv: disk read error at LBA "},
	}
	for _, c := range neg {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := writeFile(t, t.TempDir(), "disk.img", c.disk)
			r := runQEMU(t, p, "raw", c.mem, "", c.want)
			if !r.matched {
				t.Fatalf("serial log lacks %q:\n%s", c.want, r.log)
			}
			if testing.Verbose() {
				t.Logf("serial log:\n%s", r.log)
			}
			if strings.Contains(r.log, "gohv: entering kernel") {
				t.Errorf("loader entered the kernel despite the error:\n%s", r.log)
			}
		})
	}
}

// convertDisk turns a raw image into another format with qemu-img.
func convertDisk(t *testing.T, raw, format string, opts ...string) string {
	t.Helper()
	qimg, err := exec.LookPath("qemu-img")
	if err != nil {
		t.Skip("qemu-img not installed (apt-get install qemu-utils)")
	}
	out := filepath.Join(t.TempDir(), "disk."+format)
	args := append([]string{"convert", "-f", "raw", "-O", format}, opts...)
	args = append(args, raw, out)
	if b, err := exec.Command(qimg, args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %v: %v\n%s", args, err, b)
	}
	return out
}

// withSegment returns gki with one more segment appended (header, data and
// CRC rewritten by hand, following the table of docs/boot.md).
func withSegment(t *testing.T, gki []byte, paddr uint64, data []byte, memSize uint64) []byte {
	t.Helper()
	le := binary.LittleEndian
	out := bytes.Clone(gki)
	n := le.Uint32(out[20:])
	total := le.Uint32(out[24:])
	e := out[32+24*n:]
	le.PutUint64(e[0:], paddr)
	le.PutUint32(e[8:], total)
	le.PutUint32(e[12:], uint32(len(data)))
	le.PutUint64(e[16:], memSize)
	out = append(out, data...)
	out = append(out, make([]byte, (512-len(out)%512)%512)...)
	le.PutUint32(out[20:], n+1)
	le.PutUint32(out[24:], uint32(len(out)))
	le.PutUint32(out[28:], crc32.ChecksumIEEE(out[le.Uint32(out[12:]):]))
	if _, err := kimage.Parse(out); err != nil {
		t.Fatal(err)
	}
	return out
}

func pseudoRandom(n int) []byte {
	b := make([]byte, n)
	x := uint32(1)
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}
