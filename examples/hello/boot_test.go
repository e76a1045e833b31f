package main

// TestKernelBoots builds this example with the TamaGo compiler and boots it
// under QEMU three ways: directly through the PVH note (-kernel), through
// the Gen1 BIOS loader from an MBR disk, and through the Gen2 UEFI loader
// from a GPT disk under OVMF. It checks from the serial log that main ran,
// that time.Sleep(time.Second) lasted one second of host time within 10%,
// and that the machine powered itself off. Without the compiler (the
// project's own machines) it skips and says so.

import (
	"bufio"
	"bytes"
	"context"
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

	base := []string{"-accel", "tcg", "-cpu", "max", "-m", "1024", "-display", "none", "-monitor", "none",
		"-serial", "stdio", "-no-reboot", "-nic", "none"}
	t.Run("pvh", func(t *testing.T) {
		bootAndCheck(t, append(base, "-kernel", elf))
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
		bootAndCheck(t, append(base, "-drive", "file="+disk+",format=raw,if=ide"))
	})
	t.Run("gen2", func(t *testing.T) {
		code, vars := "/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"
		for _, f := range []string{code, vars} {
			if _, err := os.Stat(f); err != nil {
				t.Skipf("OVMF firmware missing (apt-get install ovmf): %v", err)
			}
		}
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
		varsCopy := filepath.Join(dir, "vars.fd")
		b, err := os.ReadFile(vars)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(varsCopy, b, 0o644); err != nil {
			t.Fatal(err)
		}
		bootAndCheck(t, append(base, "-M", "q35",
			"-drive", "if=pflash,format=raw,readonly=on,file="+code,
			"-drive", "if=pflash,format=raw,file="+varsCopy,
			"-drive", "file="+disk+",format=raw,if=virtio"))
	})
}

// bootAndCheck runs QEMU, timestamps each serial line with the host clock
// as it arrives, and checks the story.
func bootAndCheck(t *testing.T, args []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	var sleepAt, sleptAt time.Time
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		log.WriteString(line + "\n")
		switch {
		case strings.HasPrefix(line, "sleeping 1s"):
			sleepAt = time.Now()
		case strings.HasPrefix(line, "slept "):
			sleptAt = time.Now()
		}
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the kernel did not power off within the deadline; serial log:\n%s", log.String())
	}
	// With -no-reboot, QEMU exits 0 when the guest powers off via ACPI.
	if err != nil {
		t.Fatalf("QEMU: %v\n%s\nserial log:\n%s", err, stderr.String(), log.String())
	}
	if !strings.Contains(log.String(), "hello from gohv") {
		t.Fatalf("main never ran; serial log:\n%s", log.String())
	}
	if sleepAt.IsZero() || sleptAt.IsZero() {
		t.Fatalf("sleep lines missing; serial log:\n%s", log.String())
	}
	if d := sleptAt.Sub(sleepAt); d < 900*time.Millisecond || d > 1100*time.Millisecond {
		t.Errorf("time.Sleep(time.Second) took %v of host time, want 1s ± 10%%; serial log:\n%s", d, log.String())
	}
}
