package main

// TestKernelBoots builds this example with the TamaGo compiler and boots it
// under QEMU three ways: directly through the PVH note (-kernel), through
// the Gen1 BIOS loader from an MBR disk, and through the Gen2 UEFI loader
// from a GPT disk under OVMF. It checks from the serial log that main ran,
// that time.Sleep(time.Second) lasted one second of host time within 10%,
// and that the machine powered itself off. Without the compiler (the
// project's own machines) it skips and says so.

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gohv/gohv/boot/gen1"
	"github.com/gohv/gohv/boot/gen2"
	"github.com/gohv/gohv/boot/kimage"
	"github.com/gohv/gohv/internal/hosttool"
	"github.com/gohv/gohv/internal/qemutest"
	"github.com/gohv/gohv/tools/image"
	"github.com/gohv/gohv/tools/image/layout"
)

func tamagoCompiler(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("../../tools/scripts/tamago.sh").Output()
	if err != nil {
		var ee *exec.ExitError
		reason := err.Error()
		if errors.As(err, &ee) {
			reason = strings.TrimSpace(string(ee.Stderr))
		}
		t.Skipf("skipping kernel boot: %s", reason)
	}
	return strings.TrimSpace(string(out))
}

func TestKernelBoots(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU")
	}
	tamago := tamagoCompiler(t)
	hosttool.Need(t, "qemu-system-x86_64")
	dir := t.TempDir()
	elf := filepath.Join(dir, "kernel.elf")
	build := exec.Command(tamago, "build", "-tags", "linkcpuinit,linkramstart",
		"-ldflags", "-T 0x02010000 -R 0x1000", "-o", elf, ".")
	build.Env = append(os.Environ(), "GOOS=tamago", "GOARCH=amd64", "GOOSPKG=github.com/usbarmory/tamago")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the kernel: %v\n%s", err, out)
	}
	elfBytes, err := os.ReadFile(elf)
	if err != nil {
		t.Fatal(err)
	}
	gki, err := kimage.Build(elfBytes)
	if err != nil {
		t.Fatalf("kernel image: %v", err)
	}

	t.Run("pvh", func(t *testing.T) {
		bootAndCheck(t, qemutest.Options{Kind: qemutest.PVH, Kernel: elf})
	})
	t.Run("gen1", func(t *testing.T) {
		d, err := layout.Gen1(layout.Gen1Options{Stage1: gen1.Stage1(), Stage2: gen1.Stage2(), Kernel: gki})
		if err != nil {
			t.Fatal(err)
		}
		disk := filepath.Join(dir, "gen1.raw")
		if err := image.WriteRaw(disk, d); err != nil {
			t.Fatal(err)
		}
		bootAndCheck(t, qemutest.Options{Kind: qemutest.Gen1, Disk: disk})
	})
	t.Run("gen2", func(t *testing.T) {
		qemutest.Need(t, qemutest.Gen2)
		efi, err := gen2.BuildEFI(gki)
		if err != nil {
			t.Fatal(err)
		}
		d, err := layout.Gen2(layout.Gen2Options{EFI: efi})
		if err != nil {
			t.Fatal(err)
		}
		disk := filepath.Join(dir, "gen2.raw")
		if err := image.WriteRaw(disk, d); err != nil {
			t.Fatal(err)
		}
		bootAndCheck(t, qemutest.Options{Kind: qemutest.Gen2, Disk: disk})
	})
}

// guestMiB is the RAM every boot gets: the 128 MiB floor the kernel must
// fit in (docs/boot.md, "Memory layout").
const guestMiB = 128

// loaderFailures are serial-log fragments after which the kernel can no
// longer start: the loaders' error messages (boot/gen1/src/stage2.asm,
// boot/gen2/loader.asm) and OVMF giving up on the boot entry. Stopping
// there fails the boot at once instead of at the timeout.
var loaderFailures = []string{
	"gohv: bad kernel image",
	"gohv: cannot ",
	"gohv: no gohv kernel partition",
	"gohv: disk read error",
	"gohv: no E820",
	"gohv: stage 2 missing",
	"gohv: ExitBootServices failed",
	"BdsDxe: failed to start",
}

// bootAndCheck boots the kernel with guestMiB of RAM, takes the host time
// at which each serial line arrived, and checks the story.
func bootAndCheck(t *testing.T, o qemutest.Options) {
	t.Helper()
	o.CPU = "max"
	o.MemMiB = guestMiB
	r := qemutest.Run(t, o, func(l qemutest.Line) bool {
		for _, m := range loaderFailures {
			if strings.Contains(l.Text, m) {
				return true
			}
		}
		return false
	})
	log := r.Log()
	if r.Stopped {
		t.Fatalf("the loader failed: %q\nserial log:\n%s", r.Lines[len(r.Lines)-1].Text, log)
	}
	// With -no-reboot, QEMU exits 0 when the guest powers off via ACPI.
	if r.ExitCode != 0 {
		t.Fatalf("QEMU exit status %d, want 0 (ACPI power-off)\n%s\nserial log:\n%s", r.ExitCode, r.Stderr, log)
	}
	if _, ok := r.Find("hello from gohv"); !ok {
		t.Fatalf("main never ran; serial log:\n%s", log)
	}
	var sleepAt, sleptAt time.Time
	sawTime := false
	for _, l := range r.Lines {
		switch {
		case strings.HasPrefix(l.Text, "time: "):
			sawTime = true
			// Without Hyper-V's time sync the wall clock comes from the
			// RTC, which QEMU starts at the host's UTC time.
			guest, err := time.Parse(time.RFC3339, strings.TrimSpace(strings.TrimPrefix(l.Text, "time: ")))
			if err != nil {
				t.Errorf("time line %q: %v", l.Text, err)
			} else if d := l.At.Sub(guest); d < -5*time.Second || d > 30*time.Second {
				t.Errorf("guest wall clock %v, host %v when the line arrived (%v apart); serial log:\n%s", guest, l.At.UTC(), d, log)
			}
		case strings.HasPrefix(l.Text, "sleeping 1s"):
			sleepAt = l.At
		case strings.HasPrefix(l.Text, "slept "):
			sleptAt = l.At
		}
	}
	if !sawTime {
		t.Errorf("time line missing; serial log:\n%s", log)
	}
	if sleepAt.IsZero() || sleptAt.IsZero() {
		t.Fatalf("sleep lines missing; serial log:\n%s", log)
	}
	if d := sleptAt.Sub(sleepAt); d < 900*time.Millisecond || d > 1100*time.Millisecond {
		t.Errorf("time.Sleep(time.Second) took %v of host time, want 1s ± 10%%; serial log:\n%s", d, log)
	}
	if testing.Verbose() {
		t.Logf("serial log:\n%s", log)
	}
}
