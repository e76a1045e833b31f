// Package ovmftest boots UEFI disk images under QEMU (TCG) with OVMF for
// the tests of boot/gen2 and its end-to-end tests: it builds a GPT disk with
// a FAT32 ESP using host tools (sgdisk, mkfs.fat, mtools), independently of
// gohv's own image writer, and runs QEMU with a serial log, isa-debug-exit
// and a deadline. Test support only; nothing in an image imports it.
package ovmftest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gohv/gohv/internal/hosttool"
)

// Firmware and guest used by Boot.
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	GuestMiB = 1024
)

// Tools are the host programs ESPDisk and Boot need.
var Tools = []string{"qemu-system-x86_64", "sgdisk", "mkfs.fat", "mmd", "mcopy"}

// Need skips the test unless every host program it names is present.
func Need(t testing.TB, progs ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots OVMF under TCG: skipped in -short mode")
	}
	hosttool.Need(t, progs...)
	for _, f := range []string{OVMFCode, OVMFVars} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("OVMF firmware missing: %v", err)
		}
	}
}

// ESPDisk writes a raw GPT disk with one FAT32 EFI System Partition holding
// efi as \EFI\BOOT\BOOTX64.EFI, built with sgdisk, mkfs.fat and mtools so
// that the test does not depend on gohv's own image writer.
func ESPDisk(t testing.TB, dir string, efi []byte) string {
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
	hosttool.Run(t, "sgdisk", "-n", fmt.Sprintf("1:%d:+%dM", espStart, espMiB), "-t", "1:EF00", img)
	hosttool.Run(t, "mkfs.fat", "-F", "32", "--offset", strconv.Itoa(espStart), img, strconv.Itoa(espMiB<<10))
	at := fmt.Sprintf("%s@@%d", img, espStart*512)
	hosttool.Run(t, "mmd", "-i", at, "::/EFI", "::/EFI/BOOT")
	hosttool.Run(t, "mcopy", "-i", at, efiPath, "::/EFI/BOOT/BOOTX64.EFI")
	return img
}

// VM describes one boot.
type VM struct {
	Disk   string // image file
	Format string // QEMU block format: raw, vhdx, vpc
	MemMiB int    // guest RAM; zero means GuestMiB
	// Until, if not empty, stops QEMU as soon as the serial log contains
	// it (for loader error paths, where nothing exits QEMU).
	Until string
}

// Boot boots vm.Disk under OVMF (TCG) with a 120 s deadline and returns the
// serial log and QEMU's exit status (-1 when stopped by vm.Until).
func Boot(t testing.TB, vm VM) (string, int) {
	t.Helper()
	if vm.MemMiB == 0 {
		vm.MemMiB = GuestMiB
	}
	dir := t.TempDir()
	vars := filepath.Join(dir, "vars.fd")
	v, err := os.ReadFile(OVMFVars)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vars, v, 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "serial.log")
	qemuSlots <- struct{}{}
	defer func() { <-qemuSlots }()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-accel", "tcg", "-M", "q35", "-m", strconv.Itoa(vm.MemMiB),
		"-nographic", "-monitor", "none", "-serial", "file:"+logPath,
		"-no-reboot", "-nic", "none",
		"-drive", "if=pflash,format=raw,readonly=on,file="+OVMFCode,
		"-drive", "if=pflash,format=raw,file="+vars,
		"-drive", // snapshot: guests never change the image, and parallel boots
		// of one image need no write lock.
		"file="+vm.Disk+",format="+vm.Format+",if=virtio,snapshot=on",
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
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
			if vm.Until == "" {
				continue
			}
			if b, _ := os.ReadFile(logPath); bytes.Contains(b, []byte(vm.Until)) {
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

// qemuSlots bounds how many TCG guests the parallel subtests run at once,
// so that each boot stays well inside its timeout on a small machine.
var qemuSlots = make(chan struct{}, 2)
