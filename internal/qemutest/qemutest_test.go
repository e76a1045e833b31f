package qemutest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestArgs(t *testing.T) {
	common := []string{"-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot", "-nic", "none"}
	cat := func(parts ...[]string) []string { return slices.Concat(parts...) }
	for _, c := range []struct {
		name string
		o    Options
		vars string
		want []string
	}{
		{"pvh", Options{Kind: PVH, Kernel: "k.elf", CPU: "max"}, "",
			cat([]string{"-accel", "tcg", "-cpu", "max", "-m", "128"}, common, []string{"-kernel", "k.elf"})},
		{"gen1 vhd", Options{Kind: Gen1, Disk: "d.vhd", Format: "vpc", MemMiB: 512, DebugExit: true}, "",
			cat([]string{"-accel", "tcg", "-m", "512"}, common,
				[]string{"-drive", "file=d.vhd,format=vpc,if=ide", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"})},
		{"gen1 raw dirty ram", Options{Kind: Gen1, Disk: "d.img", MemMiB: 64, RAMFile: "ram.bin"}, "",
			cat([]string{"-accel", "tcg", "-m", "64"}, common, []string{"-drive", "file=d.img,format=raw,if=ide",
				"-object", "memory-backend-file,id=ram0,size=64M,mem-path=ram.bin,share=off", "-machine", "memory-backend=ram0"})},
		{"gen2 vhdx", Options{Kind: Gen2, Disk: "d.vhdx", Format: "vhdx", Snapshot: true, Extra: []string{"-smp", "2"}}, "/tmp/v.fd",
			cat([]string{"-accel", "tcg", "-M", "q35", "-m", "128"}, common, []string{
				"-drive", "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
				"-drive", "if=pflash,format=raw,file=/tmp/v.fd",
				"-drive", "file=d.vhdx,format=vhdx,if=virtio,snapshot=on", "-smp", "2"})},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.o.Args(c.vars)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("Args:\n got %q\nwant %q", got, c.want)
			}
		})
	}
	for _, o := range []Options{{}, {Kind: PVH}, {Kind: Gen1}, {Kind: Gen2, Disk: "d"}, {Kind: 9, Disk: "d"}} {
		if _, err := o.Args(""); err == nil {
			t.Errorf("Args(%+v) succeeded, want an error", o)
		}
	}
}

// fakeQEMU puts a shell script named qemu-system-x86_64 first on PATH. It
// prints its arguments on stderr and then runs body.
func fakeQEMU(t *testing.T, body string) {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	dir := t.TempDir()
	script := "#!/bin/sh\n" + body + "\n"
	if err := os.WriteFile(filepath.Join(dir, Binary), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func TestRunLinesAndExitCode(t *testing.T) {
	fakeQEMU(t, `printf 'one\r\ntwo\n'; sleep 0.3; printf 'three'; exit 33`)
	r := Run(t, Options{Kind: PVH, Kernel: "k"}, nil)
	var texts []string
	for _, l := range r.Lines {
		texts = append(texts, l.Text)
	}
	if want := []string{"one", "two", "three"}; !slices.Equal(texts, want) {
		t.Fatalf("lines %q, want %q", texts, want)
	}
	if r.Stopped || r.ExitCode != 33 {
		t.Errorf("Stopped=%v ExitCode=%d, want false, 33", r.Stopped, r.ExitCode)
	}
	// The third line came 0.3 s after the second: timestamps are taken as
	// lines arrive, not when QEMU exits.
	if d := r.Lines[2].At.Sub(r.Lines[1].At); d < 250*time.Millisecond {
		t.Errorf("lines 2 and 3 stamped %v apart, want ≥ 250ms", d)
	}
	if r.Log() != "one\ntwo\nthree\n" {
		t.Errorf("Log() = %q", r.Log())
	}
	if l, ok := r.Find("hre"); !ok || l.Text != "three" {
		t.Errorf("Find = %+v, %v", l, ok)
	}
}

func TestRunStopsOnMatch(t *testing.T) {
	// Without the stop QEMU would run for 60 s; the test's own deadline
	// (Timeout) is longer than that only to prove the stop is what ended it.
	fakeQEMU(t, `echo booting; echo 'gohv: halted'; exec sleep 60`)
	start := time.Now()
	var seen int
	r := Run(t, Options{Kind: PVH, Kernel: "k", Timeout: 2 * time.Minute}, func(l Line) bool {
		seen++
		return strings.Contains(l.Text, "halted")
	})
	if !r.Stopped || r.ExitCode != -1 || seen != 2 {
		t.Errorf("Stopped=%v ExitCode=%d seen=%d, want true, -1, 2", r.Stopped, r.ExitCode, seen)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Run took %v after the match", d)
	}
	if u := Until("gohv: halted"); !u(Line{Text: "x gohv: halted"}) || u(Line{Text: "gohv"}) {
		t.Error("Until matches wrongly")
	}
}

func TestRunTimeoutFails(t *testing.T) {
	fakeQEMU(t, `echo started; exec sleep 60`)
	// Run a subtest through a fake testing.TB that records Fatalf.
	ft := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ft, Options{Kind: PVH, Kernel: "k", Timeout: 500 * time.Millisecond}, nil)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run ignored its timeout")
	}
	if !strings.Contains(ft.msg, "did not finish within 500ms") || !strings.Contains(ft.msg, "started") {
		t.Errorf("fatal message %q, want the timeout and the serial log", ft.msg)
	}
}

// fatalTB turns Fatalf into a recorded message and ends the goroutine, as
// testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Logf(string, ...any) {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{PVH: "pvh", Gen1: "gen1", Gen2: "gen2", 7: "Kind(7)"} {
		if k.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(k), k.String(), want)
		}
	}
}
