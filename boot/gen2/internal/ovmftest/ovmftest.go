// Package ovmftest boots UEFI disk images under QEMU (TCG) with OVMF for
// the tests of boot/gen2 and its end-to-end tests: it builds a GPT disk with
// a FAT32 ESP using host tools (sgdisk, mkfs.fat, mtools), independently of
// gohv's own image writer, and boots it through internal/qemutest with
// isa-debug-exit and a deadline. Test support only; nothing in an image
// imports it.
package ovmftest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gohv/gohv/internal/hosttool"
	"github.com/gohv/gohv/internal/qemutest"
)

// Firmware and guest used by Boot.
const (
	OVMFCode = qemutest.OVMFCode
	OVMFVars = qemutest.OVMFVars
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
	qemutest.Need(t, qemutest.Gen2)
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
	var until func(qemutest.Line) bool
	if vm.Until != "" {
		until = qemutest.Until(vm.Until)
	}
	r := qemutest.Run(t, qemutest.Options{
		Kind: qemutest.Gen2, Disk: vm.Disk, Format: vm.Format, MemMiB: vm.MemMiB,
		// snapshot: guests never change the image, and parallel boots of
		// one image need no write lock.
		Snapshot:  true,
		DebugExit: true,
		Timeout:   120 * time.Second,
	}, until)
	return r.Log(), r.ExitCode
}
