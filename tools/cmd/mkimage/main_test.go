package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gohv/gohv/boot/kimage"
	"github.com/gohv/gohv/boot/testpayload"
	"github.com/gohv/gohv/internal/hosttool"
	"github.com/gohv/gohv/internal/qemutest"
)

// payload builds the test kernel ELF, or skips.
func payload(t *testing.T) []byte {
	t.Helper()
	elf, err := testpayload.Build(context.Background(), t.TempDir())
	if errors.Is(err, testpayload.ErrNoToolchain) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return elf
}

func mkimage(args ...string) (string, error) {
	var out, errb bytes.Buffer
	err := run(args, &out, &errb)
	return out.String() + errb.String(), err
}

func TestAllFormats(t *testing.T) {
	hosttool.Need(t, "qemu-img")
	dir := t.TempDir()
	kernel := filepath.Join(dir, "kernel.elf")
	if err := os.WriteFile(kernel, payload(t), 0o644); err != nil {
		t.Fatal(err)
	}
	files := filepath.Join(dir, "files")
	if err := os.MkdirAll(filepath.Join(files, "www"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(files, "www", "index.html"), []byte("<h1>gohv</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	qfmt := map[string]string{"raw": "raw", "vhd": "vpc", "vhdx": "vhdx", "vhdx-fixed": "vhdx"}
	for _, gen := range []string{"1", "2"} {
		for _, format := range []string{"raw", "vhd", "vhdx", "vhdx-fixed"} {
			out := filepath.Join(dir, "gen"+gen+"-"+format+".img")
			msg, err := mkimage("-gen", gen, "-format", format, "-kernel", kernel, "-size", "96MiB", "-files", files, "-o", out)
			if err != nil {
				t.Fatalf("gen %s %s: %v\n%s", gen, format, err, msg)
			}
			info, err := exec.Command("qemu-img", "info", "-f", qfmt[format], "--output=json", out).CombinedOutput()
			if err != nil || !strings.Contains(string(info), `"virtual-size": 100663296,`) {
				t.Errorf("gen %s %s: qemu-img info: %v\n%s", gen, format, err, info)
			}
			if qfmt[format] == "vhdx" {
				if b, err := exec.Command("qemu-img", "check", "-f", "vhdx", out).CombinedOutput(); err != nil {
					t.Errorf("gen %s %s: qemu-img check: %v\n%s", gen, format, err, b)
				}
			}
		}
	}
	for format, want := range map[string]string{
		"vhdx":       "VHDX (dynamic), virtual size 96MiB (100663296 bytes), block size 1MiB",
		"vhdx-fixed": "VHDX (fixed), virtual size 96MiB (100663296 bytes), block size 1MiB, 96 of 96 blocks present",
		"vhd":        "fixed VHD, size 96MiB (100663296 bytes), creator \"win \"",
		"raw":        "raw, 96MiB",
	} {
		msg, err := mkimage("inspect", filepath.Join(dir, "gen1-"+format+".img"))
		if err != nil || !strings.Contains(msg, want) {
			t.Errorf("inspect %s: %v\n%s\nwant %s", format, err, msg, want)
		}
	}
	// A fixed VHD is the raw disk plus a footer: the same bytes but for
	// the random MBR disk signature (bytes 440..443).
	raw, err1 := os.ReadFile(filepath.Join(dir, "gen1-raw.img"))
	v, err2 := os.ReadFile(filepath.Join(dir, "gen1-vhd.img"))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if len(v) != len(raw)+512 || !bytes.Equal(raw[:440], v[:440]) || !bytes.Equal(raw[444:], v[444:len(raw)]) {
		t.Error("VHD data differs from the raw image beyond the disk signature")
	}
}

func TestAutoSize(t *testing.T) {
	hosttool.Need(t, "qemu-img")
	dir := t.TempDir()
	kernel := filepath.Join(dir, "kernel.elf")
	if err := os.WriteFile(kernel, payload(t), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		gen, format string
		want        int64
	}{{"1", "raw", 2 << 20}, {"1", "vhd", 20 << 20}, {"2", "vhdx", 35 << 20}} {
		out := filepath.Join(dir, tc.gen+tc.format)
		if msg, err := mkimage("-gen", tc.gen, "-format", tc.format, "-kernel", kernel, "-o", out); err != nil {
			t.Fatalf("%v\n%s", err, msg)
		}
		q := map[string]string{"raw": "raw", "vhd": "vpc", "vhdx": "vhdx"}[tc.format]
		info, _ := exec.Command("qemu-img", "info", "-f", q, "--output=json", out).CombinedOutput()
		if !strings.Contains(string(info), `"virtual-size": `+strconv.FormatInt(tc.want, 10)+",") {
			t.Errorf("gen %s %s: want %d bytes:\n%s", tc.gen, tc.format, tc.want, info)
		}
	}
}

func TestErrorsLeaveNoFile(t *testing.T) {
	dir := t.TempDir()
	gkiPath := filepath.Join(dir, "kernel.gki")
	// A GKI-shaped file that kimage rejects is enough for the errors that
	// do not need a kernel; those that do use the real payload when the
	// toolchain is present.
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"unknown format", []string{"-format", "qcow2", "-kernel", "k"}, `unknown -format "qcow2"`},
		{"bad generation", []string{"-gen", "3", "-kernel", "k"}, "-gen 3"},
		{"missing kernel", []string{"-kernel", filepath.Join(dir, "nope.elf")}, "nope.elf: no such file"},
		{"no kernel flag", nil, "-kernel"},
		{"vhd not whole MiB", []string{"-format", "vhd", "-size", "67109376", "-kernel", "k"}, "64MiB (67108864 bytes) or 65MiB (68157440 bytes)"},
		{"vhd below Azure minimum", []string{"-format", "vhd", "-size", "16MiB", "-kernel", "k"}, "minimum of 20MiB"},
		{"bad size", []string{"-size", "lots", "-kernel", "k"}, `size "lots"`},
		{"kernel not ELF", []string{"-kernel", gkiPath}, "kernel.gki"},
		{"missing files dir", []string{"-kernel", "k", "-files", filepath.Join(dir, "nodir")}, "nodir"},
	} {
		if err := os.WriteFile(gkiPath, []byte("not a kernel"), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "out.img")
		msg, err := mkimage(append(tc.args, "-o", out)...)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if !strings.Contains(err.Error()+msg, tc.says) {
			t.Errorf("%s: %v, want mention of %q", tc.name, err, tc.says)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s: output exists", tc.name)
		}
	}
	if _, err := mkimage("-kernel", "k"); err == nil || !strings.Contains(err.Error(), "-o") {
		t.Errorf("no -o: %v", err)
	}
}

func TestTooSmallLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "kernel.elf")
	if err := os.WriteFile(kernel, payload(t), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.vhdx")
	_, err := mkimage("-gen", "2", "-kernel", kernel, "-size", "8MiB", "-o", out)
	if err == nil || !strings.Contains(err.Error(), "too small") || !strings.Contains(err.Error(), "at least 35MiB") {
		t.Errorf("err = %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the kernel", len(ents))
	}
}

// TestGKIInput takes an already built GKI.
func TestGKIInput(t *testing.T) {
	dir := t.TempDir()
	gki, err := kimage.Build(payload(t))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "k.gki")
	if err := os.WriteFile(p, gki, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "d.raw")
	if msg, err := mkimage("-gen", "1", "-format", "raw", "-gki", p, "-o", out); err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[1<<20:1<<20+len(gki)], gki) {
		t.Error("GKI not at the kernel partition")
	}
}

// TestBootsInQEMU boots mkimage's Gen1 fixed VHD and Gen2 VHDX with the test
// payload as kernel, under SeaBIOS and OVMF with software emulation.
func TestBootsInQEMU(t *testing.T) {
	qemutest.Need(t, qemutest.Gen1)
	if testing.Short() {
		t.Skip("boot test skipped in -short mode")
	}
	dir := t.TempDir()
	kernel := filepath.Join(dir, "kernel.elf")
	if err := os.WriteFile(kernel, payload(t), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		gen, format string
	}{{"1", "vhd"}, {"2", "vhdx"}}
	for _, tc := range cases {
		t.Run("gen"+tc.gen, func(t *testing.T) {
			out := filepath.Join(dir, "boot-"+tc.gen+"."+tc.format)
			if msg, err := mkimage("-gen", tc.gen, "-format", tc.format, "-kernel", kernel, "-o", out); err != nil {
				t.Fatalf("%v\n%s", err, msg)
			}
			o := qemutest.Options{Kind: qemutest.Gen1, Disk: out, Format: "vpc",
				MemMiB: testpayload.MinMemoryMiB, DebugExit: true}
			if tc.gen == "2" {
				o.Kind, o.Format = qemutest.Gen2, "vhdx"
			}
			r := qemutest.Run(t, o, nil)
			if _, ok := r.Find(testpayload.PassLine); !ok {
				t.Errorf("no %q on the serial console:\n%s", testpayload.PassLine, r.Log())
			}
			if r.ExitCode != testpayload.ExitPass {
				t.Errorf("QEMU exit status %d, want %d (payload PASS)", r.ExitCode, testpayload.ExitPass)
			}
		})
	}
}
