package gen2

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gohv/gohv/boot/kimage"
	"github.com/gohv/gohv/boot/testpayload"
)

//go:embed testdata/payload.bin
var testPayload []byte

const (
	payloadBase  = 0x10010000 // testdata/payload.asm: org
	payloadBSS   = 0x10000    // testdata/payload.asm: BSS_SIZE
	payloadStack = 0x1000     // testdata/payload.asm: STACK_SIZE
	ovmfCode     = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars     = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	guestMiB     = 1024
	exitPass     = 33 // isa-debug-exit: (0x10 << 1) | 1
)

// needTools skips the test unless every host program it names is present.
func needTools(t *testing.T, progs ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots OVMF under TCG: skipped in -short mode")
	}
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s not installed (apt-get install qemu-system-x86 qemu-utils ovmf gdisk dosfstools mtools)", p)
		}
	}
	for _, f := range []string{ovmfCode, ovmfVars} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("OVMF firmware missing: %v", err)
		}
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// espDisk writes a raw GPT disk with one FAT32 EFI System Partition holding
// efi as \EFI\BOOT\BOOTX64.EFI, built with sgdisk, mkfs.fat and mtools so
// that the test does not depend on gohv's own image writer.
func espDisk(t *testing.T, dir string, efi []byte) string {
	t.Helper()
	const (
		diskMiB  = 80
		espStart = 2048 // sectors
		espMiB   = 64
	)
	img := filepath.Join(dir, "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(diskMiB << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	efiPath := filepath.Join(dir, "BOOTX64.EFI")
	if err := os.WriteFile(efiPath, efi, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "sgdisk", "-n", fmt.Sprintf("1:%d:+%dM", espStart, espMiB), "-t", "1:EF00", img)
	run(t, "mkfs.fat", "-F", "32", "--offset", strconv.Itoa(espStart), img, strconv.Itoa(espMiB<<10))
	at := fmt.Sprintf("%s@@%d", img, espStart*512)
	run(t, "mmd", "-i", at, "::/EFI", "::/EFI/BOOT")
	run(t, "mcopy", "-i", at, efiPath, "::/EFI/BOOT/BOOTX64.EFI")
	return img
}

// bootOVMF boots disk under OVMF (TCG) and returns the serial log and
// QEMU's exit status. If until is not empty, QEMU is stopped as soon as the
// log contains it (for loader error paths, where nothing exits QEMU).
func bootOVMF(t *testing.T, disk, format, until string) (string, int) {
	t.Helper()
	dir := t.TempDir()
	vars := filepath.Join(dir, "vars.fd")
	v, err := os.ReadFile(ovmfVars)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vars, v, 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "serial.log")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-accel", "tcg", "-M", "q35", "-m", strconv.Itoa(guestMiB),
		"-nographic", "-monitor", "none", "-serial", "file:"+logPath,
		"-no-reboot", "-nic", "none",
		"-drive", "if=pflash,format=raw,readonly=on,file="+ovmfCode,
		"-drive", "if=pflash,format=raw,file="+vars,
		"-drive", "file="+disk+",format="+format+",if=virtio",
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdin = nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var werr error
wait:
	for {
		select {
		case werr = <-done:
			break wait
		case <-tick.C:
			if until == "" {
				continue
			}
			if b, _ := os.ReadFile(logPath); bytes.Contains(b, []byte(until)) {
				cancel()
				<-done
				return string(b), -1
			}
		}
	}
	log, _ := os.ReadFile(logPath)
	if stderr.Len() > 0 {
		t.Logf("QEMU stderr: %s", stderr.Bytes())
	}
	if ctx.Err() != nil {
		t.Fatalf("QEMU timed out; serial log:\n%s", log)
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		code = ee.ExitCode()
	} else if werr != nil {
		t.Fatalf("QEMU: %v\n%s", werr, stderr.String())
	}
	return string(log), code
}

type e820 struct {
	addr, size uint64
	typ        uint32
}

// parsePayloadLog reads the payload's report lines ("memmap entries N",
// "e820 ADDR SIZE TYPE", "rsdp ADDR ok").
func parsePayloadLog(t *testing.T, log string) (count int, mm []e820, rsdp string) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "memmap" && f[1] == "entries":
			n, err := strconv.ParseUint(f[2], 16, 32)
			if err != nil {
				t.Fatalf("bad line %q", sc.Text())
			}
			count = int(n)
		case len(f) == 4 && f[0] == "e820":
			a, err1 := strconv.ParseUint(f[1], 16, 64)
			s, err2 := strconv.ParseUint(f[2], 16, 64)
			ty, err3 := strconv.ParseUint(f[3], 16, 32)
			if err := errors.Join(err1, err2, err3); err != nil {
				t.Fatalf("bad line %q: %v", sc.Text(), err)
			}
			mm = append(mm, e820{a, s, uint32(ty)})
		case len(f) >= 2 && f[0] == "rsdp":
			rsdp = strings.Join(f[1:], " ")
		}
	}
	return count, mm, rsdp
}

func payloadGKI() []byte {
	return makeGKI(payloadBase, testSeg{
		paddr: payloadBase,
		data:  testPayload,
		memsz: uint64(len(testPayload)) + payloadBSS + payloadStack,
	})
}

// checkBoot asserts what a successful boot of the test payload must show.
func checkBoot(t *testing.T, log string, code int) {
	t.Helper()
	if code != exitPass || !strings.Contains(log, "gohv-gen2-payload: PASS") {
		t.Fatalf("exit status %d, want %d; serial log:\n%s", code, exitPass, log)
	}
	for _, want := range []string{
		"gohv: UEFI loader",
		fmt.Sprintf("gohv: starting kernel at 0x%016x", payloadBase),
		"mode ok", "start_info ok", "bss ok",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("serial log lacks %q", want)
		}
	}
	count, mm, rsdp := parsePayloadLog(t, log)
	if count == 0 || count != len(mm) {
		t.Fatalf("memmap_entries %d, printed %d entries", count, len(mm))
	}
	var ram uint64
	kernelInRAM := false
	for i, e := range mm {
		if e.size == 0 || e.typ < 1 || e.typ > 5 {
			t.Errorf("entry %d %+v: empty or bad type", i, e)
		}
		if i > 0 {
			p := mm[i-1]
			if p.addr+p.size > e.addr {
				t.Errorf("entries %d and %d unsorted or overlapping: %+v %+v", i-1, i, p, e)
			}
			if p.addr+p.size == e.addr && p.typ == e.typ {
				t.Errorf("entries %d and %d not merged: %+v %+v", i-1, i, p, e)
			}
		}
		if e.typ == 1 {
			ram += e.size
			if e.addr <= payloadBase && payloadBase < e.addr+e.size {
				kernelInRAM = true
			}
		}
	}
	// OVMF keeps a few MiB for itself (reserved, ACPI NVS); the rest is RAM.
	if lo, hi := uint64(guestMiB-64)<<20, uint64(guestMiB)<<20; ram < lo || ram > hi {
		t.Errorf("RAM in memmap = %d MiB, want %d..%d MiB", ram>>20, lo>>20, hi>>20)
	}
	if !kernelInRAM {
		t.Errorf("kernel address %#x not in a RAM entry", payloadBase)
	}
	if !strings.HasSuffix(rsdp, " ok") || strings.HasPrefix(rsdp, "0000000000000000") {
		t.Errorf("rsdp line %q, want a non-zero address with a valid RSDP", rsdp)
	}
	t.Logf("memmap: %d entries, %d MiB RAM; rsdp %s", len(mm), ram>>20, rsdp)
}

func TestBootOVMF(t *testing.T) {
	needTools(t, "qemu-system-x86_64", "sgdisk", "mkfs.fat", "mmd", "mcopy")
	efi, err := BuildEFI(payloadGKI())
	if err != nil {
		t.Fatal(err)
	}
	disk := espDisk(t, t.TempDir(), efi)

	t.Run("raw", func(t *testing.T) {
		t.Parallel()
		log, code := bootOVMF(t, disk, "raw", "")
		checkBoot(t, log, code)
	})
	for _, c := range []struct {
		name, format string
		opts         []string
	}{
		{"vhdx", "vhdx", nil},
		{"vhd-fixed", "vpc", []string{"-o", "subformat=fixed,force_size=on"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			needTools(t, "qemu-img")
			img := filepath.Join(t.TempDir(), "disk."+c.format)
			// -U: the raw subtest holds the image open at the same time.
			args := append([]string{"convert", "-U", "-f", "raw", "-O", c.format}, c.opts...)
			run(t, "qemu-img", append(args, disk, img)...)
			log, code := bootOVMF(t, img, c.format, "")
			checkBoot(t, log, code)
		})
	}
}

// TestBootOVMFErrors boots loaders whose kernel cannot be started and checks
// that the loader says why on the firmware console (which OVMF mirrors to
// the serial port) instead of jumping anywhere.
func TestBootOVMFErrors(t *testing.T) {
	needTools(t, "qemu-system-x86_64", "sgdisk", "mkfs.fat", "mmd", "mcopy")
	badCRC := payloadGKI()
	badCRC[len(badCRC)-1] ^= 1
	for _, c := range []struct {
		name string
		gki  []byte
		want string
	}{
		{"crc", badCRC, "gohv: bad kernel image"},
		{"not-ram", makeGKI(0xfec00000, testSeg{paddr: 0xfec00000, data: testPayload, memsz: 0x1000}),
			"gohv: cannot allocate kernel memory at 0x00000000fec00000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			efi, err := BuildEFI(c.gki)
			if err != nil {
				t.Fatal(err)
			}
			disk := espDisk(t, t.TempDir(), efi)
			log, _ := bootOVMF(t, disk, "raw", c.want)
			if !strings.Contains(log, c.want) {
				t.Fatalf("serial log lacks %q:\n%s", c.want, log)
			}
			if strings.Contains(log, "gohv: starting kernel") {
				t.Errorf("loader went on to start the kernel:\n%s", log)
			}
		})
	}
}

// TestBootOVMFKernelImage runs the whole Gen2 chain with the shared pieces:
// the boot/testpayload ELF, flattened by boot/kimage, wrapped by BuildEFI.
func TestBootOVMFKernelImage(t *testing.T) {
	needTools(t, "qemu-system-x86_64", "sgdisk", "mkfs.fat", "mmd", "mcopy")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	elf, err := testpayload.Build(ctx, t.TempDir())
	if errors.Is(err, testpayload.ErrNoToolchain) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	gki, err := kimage.Build(elf)
	if err != nil {
		t.Fatal(err)
	}
	efi, err := BuildEFI(gki)
	if err != nil {
		t.Fatal(err)
	}
	log, code := bootOVMF(t, espDisk(t, t.TempDir(), efi), "raw", "")
	if code != testpayload.ExitPass || !strings.Contains(log, testpayload.PassLine) {
		t.Fatalf("exit status %d, want %d; serial log:\n%s", code, testpayload.ExitPass, log)
	}
	i := strings.Index(log, testpayload.ReportPrefix)
	if i < 0 {
		t.Fatalf("no report line in serial log:\n%s", log)
	}
	report, _, _ := strings.Cut(log[i:], "\n")
	if strings.Contains(report, "rsdp=0x0,") || strings.HasSuffix(strings.TrimSpace(report), "rsdp=0x0") {
		t.Errorf("report %q: rsdp_paddr is zero", report)
	}
	t.Logf("%s", strings.TrimSpace(report))
}
