package e2e

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gohv/gohv/boot/gen2"
	"github.com/gohv/gohv/boot/gen2/internal/ovmftest"
	"github.com/gohv/gohv/boot/testpayload"
	"github.com/gohv/gohv/tools/image"
	"github.com/gohv/gohv/tools/image/layout"
	"github.com/gohv/gohv/tools/image/vhd"
	"github.com/gohv/gohv/tools/image/vhdx"
)

// payloadEFI builds BOOTX64.EFI around the shared test payload.
func payloadEFI(t *testing.T) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	gki, err := testpayload.GKI(ctx, t.TempDir())
	if errors.Is(err, testpayload.ErrNoToolchain) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	efi, err := gen2.BuildEFI(gki)
	if err != nil {
		t.Fatal(err)
	}
	return efi
}

// checkPayload asserts the shared payload's verdict and that the loader
// handed it a non-zero RSDP.
func checkPayload(t *testing.T, log string, code int) {
	t.Helper()
	if code != testpayload.ExitPass || !strings.Contains(log, testpayload.PassLine) {
		t.Fatalf("exit status %d, want %d; serial log:\n%s", code, testpayload.ExitPass, log)
	}
	if !strings.Contains(log, "gohv: boot services exited") {
		t.Errorf("serial log lacks the loader's COM1 line")
	}
	i := strings.Index(log, testpayload.ReportPrefix)
	if i < 0 {
		t.Fatalf("no report line in serial log:\n%s", log)
	}
	report, _, _ := strings.Cut(log[i:], "\n")
	report = strings.TrimSpace(report)
	if !strings.Contains(report, ", rsdp=0x") || strings.HasSuffix(report, "rsdp=0x0") || strings.Contains(report, "rsdp=0x0,") {
		t.Errorf("report %q: want a non-zero rsdp", report)
	}
	t.Log(report)
}

// TestGen2HostToolsDisk boots the shared payload from an ESP built with
// host tools (sgdisk, mkfs.fat, mtools).
func TestGen2HostToolsDisk(t *testing.T) {
	ovmftest.Need(t, ovmftest.Tools...)
	efi := payloadEFI(t)
	log, code := ovmftest.Boot(t, ovmftest.VM{Disk: ovmftest.ESPDisk(t, t.TempDir(), efi), Format: "raw"})
	checkPayload(t, log, code)
}

// TestGen2Image boots the shared payload from disks made entirely by gohv:
// layout.Gen2, then the raw, VHDX and fixed-VHD writers.
func TestGen2Image(t *testing.T) {
	ovmftest.Need(t, "qemu-system-x86_64")
	efi := payloadEFI(t)
	disk, err := layout.Gen2(layout.Gen2Options{EFI: efi})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, format string
		write        func(path string, src image.Source) error
	}{
		{"raw", "raw", image.WriteRaw},
		{"vhdx", "vhdx", func(p string, src image.Source) error { return vhdx.Write(p, src, vhdx.Options{}) }},
		{"vhd-fixed", "vpc", func(p string, src image.Source) error { return vhd.WriteFixed(p, src, vhd.Options{}) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			img := filepath.Join(t.TempDir(), "disk."+c.format)
			if err := c.write(img, disk); err != nil {
				t.Fatal(err)
			}
			log, code := ovmftest.Boot(t, ovmftest.VM{Disk: img, Format: c.format})
			checkPayload(t, log, code)
		})
	}
}
