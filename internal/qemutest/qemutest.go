// Package qemutest is test support for every test that boots something
// under QEMU (software emulation, TCG): it builds the command line for the
// three ways gohv boots — a PVH ELF through -kernel, a Gen1 disk on IDE
// under SeaBIOS, a Gen2 disk under OVMF with a private copy of the OVMF
// variable store — runs QEMU with COM1 on a pipe, hands each serial line
// to a callback with the host time it arrived, stops QEMU when the callback
// says so, enforces a hard timeout and kills QEMU when the test ends.
//
// A test that calls Run skips, with a line naming the Debian package to
// install, when qemu-system-x86_64 or (for Gen2) OVMF is missing
// (internal/hosttool). Only tests import this package; it owns no image
// format and builds no disks (boot/gen2/internal/ovmftest and
// tools/image do that).
package qemutest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gohv/gohv/internal/hosttool"
)

// Binary is the QEMU system emulator every boot runs.
const Binary = "qemu-system-x86_64"

// OVMF firmware files (Debian package ovmf). Gen2 boots run OVMFCode
// read-only and a private, writable copy of OVMFVars.
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// DefaultTimeout bounds a boot whose Options leave Timeout zero: TCG on a
// loaded two-core machine, OVMF included.
const DefaultTimeout = 3 * time.Minute

// DebugExitPort is the I/O port of the isa-debug-exit device that
// Options.DebugExit adds. A guest byte v written there makes QEMU exit with
// status v<<1 | 1.
const DebugExitPort = 0xf4

// Kind is how the guest is started.
type Kind int

const (
	// PVH loads an ELF with a PVH note through QEMU's -kernel (the
	// "One hand-off protocol: PVH" of docs/boot.md).
	PVH Kind = iota + 1
	// Gen1 boots a disk on IDE under SeaBIOS (i440FX machine), like a
	// Hyper-V Generation 1 VM.
	Gen1
	// Gen2 boots a disk under OVMF (q35 machine, disk on virtio), like a
	// Hyper-V Generation 2 VM.
	Gen2
)

func (k Kind) String() string {
	switch k {
	case PVH:
		return "pvh"
	case Gen1:
		return "gen1"
	case Gen2:
		return "gen2"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Options describe one boot. The zero value of every field but Kind and
// Kernel/Disk is usable.
type Options struct {
	Kind   Kind
	Kernel string // PVH: the ELF file
	Disk   string // Gen1, Gen2: the image file
	Format string // Gen1, Gen2: QEMU block format (raw, vpc, vhdx); "" means raw
	// Snapshot opens the disk with snapshot=on: the guest's writes go to a
	// temporary overlay, and parallel boots of one image need no lock.
	Snapshot bool

	MemMiB int    // guest RAM (-m); zero means 128
	CPU    string // -cpu model; "" leaves QEMU's default
	// DebugExit adds isa-debug-exit at DebugExitPort so that the guest can
	// choose QEMU's exit status.
	DebugExit bool
	// RAMFile, if not empty, backs guest RAM with that file (private
	// mapping), so the guest starts with the file's bytes in memory.
	RAMFile string
	// Extra arguments, appended last.
	Extra []string

	Timeout time.Duration // hard limit; zero means DefaultTimeout
}

// Line is one line of serial output (COM1) without its line ending.
type Line struct {
	Text string
	At   time.Time // host time at which the line arrived on the pipe
}

// Result is the outcome of a boot.
type Result struct {
	Lines []Line
	// Stopped is true when the callback asked to stop and QEMU was killed.
	Stopped bool
	// ExitCode is QEMU's exit status, -1 when Stopped.
	ExitCode int
	Stderr   string
}

// Log is the serial output, one "\n"-terminated line per Line.
func (r Result) Log() string {
	var b strings.Builder
	for _, l := range r.Lines {
		b.WriteString(l.Text)
		b.WriteByte('\n')
	}
	return b.String()
}

// Find returns the first line containing s.
func (r Result) Find(s string) (Line, bool) {
	for _, l := range r.Lines {
		if strings.Contains(l.Text, s) {
			return l, true
		}
	}
	return Line{}, false
}

// Args returns QEMU's arguments for o. varsCopy is the writable copy of
// the OVMF variable store that a Gen2 boot uses (ignored otherwise). COM1
// goes to standard output; there is no monitor, no display, no network,
// and a guest reset makes QEMU exit (-no-reboot).
func (o Options) Args(varsCopy string) ([]string, error) {
	mem := o.MemMiB
	if mem == 0 {
		mem = 128
	}
	format := o.Format
	if format == "" {
		format = "raw"
	}
	// No -nographic: with it SeaBIOS mirrors INT 10h text to COM1 (sercon),
	// doubling every loader message on the serial log.
	args := []string{"-accel", "tcg"}
	if o.CPU != "" {
		args = append(args, "-cpu", o.CPU)
	}
	if o.Kind == Gen2 {
		args = append(args, "-M", "q35")
	}
	args = append(args, "-m", strconv.Itoa(mem),
		"-display", "none", "-monitor", "none", "-serial", "stdio",
		"-no-reboot", "-nic", "none") // -nic none: OVMF would try network boot for minutes
	drive := func(iface string) string {
		d := "file=" + o.Disk + ",format=" + format + ",if=" + iface
		if o.Snapshot {
			d += ",snapshot=on"
		}
		return d
	}
	switch o.Kind {
	case PVH:
		if o.Kernel == "" {
			return nil, errors.New("qemutest: PVH boot without a kernel")
		}
		args = append(args, "-kernel", o.Kernel)
	case Gen1:
		if o.Disk == "" {
			return nil, errors.New("qemutest: Gen1 boot without a disk")
		}
		args = append(args, "-drive", drive("ide"))
	case Gen2:
		if o.Disk == "" {
			return nil, errors.New("qemutest: Gen2 boot without a disk")
		}
		if varsCopy == "" {
			return nil, errors.New("qemutest: Gen2 boot without an OVMF variable store")
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,readonly=on,file="+OVMFCode,
			"-drive", "if=pflash,format=raw,file="+varsCopy,
			"-drive", drive("virtio"))
	default:
		return nil, fmt.Errorf("qemutest: unknown boot kind %v", o.Kind)
	}
	if o.DebugExit {
		args = append(args, "-device", fmt.Sprintf("isa-debug-exit,iobase=%#x,iosize=0x04", DebugExitPort))
	}
	if o.RAMFile != "" {
		args = append(args,
			"-object", fmt.Sprintf("memory-backend-file,id=ram0,size=%dM,mem-path=%s,share=off", mem, o.RAMFile),
			"-machine", "memory-backend=ram0")
	}
	return append(args, o.Extra...), nil
}

// Need skips t, saying what to install, unless QEMU (and, for Gen2, the
// OVMF firmware) is present.
func Need(t testing.TB, k Kind) {
	t.Helper()
	hosttool.Need(t, Binary)
	if k == Gen2 {
		for _, f := range []string{OVMFCode, OVMFVars} {
			if _, err := os.Stat(f); err != nil {
				t.Skipf("OVMF firmware %s missing (apt-get install ovmf); skipping", f)
			}
		}
	}
}

// slots bounds how many guests one test binary runs at once, so that each
// boot stays well inside its timeout on a small machine. It is a
// semaphore, not state: nothing reads it but Run.
var slots = make(chan struct{}, 2)

// Run boots o and calls onLine (if not nil) for every serial line, on the
// test's goroutine, as it arrives. When onLine returns true QEMU is killed
// and Run returns with Stopped set. Run fails the test (with the serial
// log) when QEMU cannot start or the timeout expires, and skips it when
// QEMU or OVMF is missing. QEMU never outlives the test.
func Run(t testing.TB, o Options, onLine func(Line) (stop bool)) Result {
	t.Helper()
	Need(t, o.Kind)
	var vars string
	if o.Kind == Gen2 {
		vars = filepath.Join(t.TempDir(), "OVMF_VARS.fd")
		b, err := os.ReadFile(OVMFVars)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vars, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args, err := o.Args(vars)
	if err != nil {
		t.Fatal(err)
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	slots <- struct{}{}
	defer func() { <-slots }()

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, Binary, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", Binary, err)
	}
	// Kill QEMU however the test ends (t.Fatal in onLine included); Wait
	// below has normally reaped it already, and then Kill is a no-op error.
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})

	var r Result
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := Line{Text: strings.TrimRight(sc.Text(), "\r"), At: time.Now()}
		r.Lines = append(r.Lines, l)
		if onLine != nil && onLine(l) {
			r.Stopped = true
			_ = cmd.Process.Kill()
			break
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	werr := cmd.Wait()
	r.Stderr = stderr.String()
	r.ExitCode = cmd.ProcessState.ExitCode()
	if r.Stopped {
		r.ExitCode = -1
	}
	if r.Stderr != "" {
		t.Logf("%s stderr: %s", Binary, r.Stderr)
	}
	if !r.Stopped && ctx.Err() != nil {
		t.Fatalf("%s did not finish within %v; serial log:\n%s", Binary, timeout, r.Log())
	}
	var ee *exec.ExitError
	if werr != nil && !r.Stopped && !errors.As(werr, &ee) {
		t.Fatalf("%s: %v\n%s", Binary, werr, r.Stderr)
	}
	return r
}

// Until returns a callback that stops the boot at the first line
// containing s.
func Until(s string) func(Line) bool {
	return func(l Line) bool { return strings.Contains(l.Text, s) }
}
