package main

// These tests drive the built gohv command as a user would: TestMain
// builds it once, each test makes a module of its own outside the
// repository that requires github.com/gohv/gohv through a replace directive
// to this checkout, and runs gohv build, inspect, run and sim on it. Tests
// that need the TamaGo compiler or QEMU skip with one line when they are
// missing.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gohv/gohv/internal/tamago"
)

// gohvBin is the command under test, built by TestMain.
var gohvBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gohv-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gohvBin = filepath.Join(dir, "gohv")
	if out, err := exec.Command("go", "build", "-o", gohvBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building gohv: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// checkout is the repository root (this package is cmd/gohv).
func checkout(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// userModule writes a module outside the repository with the given
// main.go and returns its directory.
func userModule(t *testing.T, mainGo string) string {
	t.Helper()
	dir := t.TempDir()
	root := checkout(t)
	mod := "module example.com/app\n\ngo 1.26.0\n\nrequire github.com/gohv/gohv v0.0.0\n\nreplace github.com/gohv/gohv => " + root + "\n"
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"go.mod": []byte(mod), "go.sum": sum, "main.go": []byte(mainGo)} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const plainMain = `package main

import "fmt"

func main() {
	fmt.Println("hello from a plain program")
}
`

const exit3Main = `package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Println("about to exit 3")
	os.Exit(3)
}
`

// gohv runs the command in dir and returns its stdout, stderr and exit
// status.
func gohv(t *testing.T, dir string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	cmd := exec.Command(gohvBin, args...)
	cmd.Dir = dir
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		status = ee.ExitCode()
	case err != nil:
		t.Fatalf("gohv %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), status
}

func mustGohv(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, errs, st := gohv(t, dir, args...)
	if st != 0 {
		t.Fatalf("gohv %s: exit status %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), st, out, errs)
	}
	return out
}

func needCompiler(t *testing.T) {
	t.Helper()
	if _, err := (tamago.Lookup{Dir: checkout(t)}).Find(); err != nil {
		t.Skip("skipping: no TamaGo compiler (", strings.SplitN(err.Error(), "\n", 2)[0], ")")
	}
}

func needQEMU(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("skipping: qemu-system-x86_64 not installed (apt-get install qemu-system-x86 ovmf)")
	}
}

// leftovers lists the files in dir other than want.
func leftovers(t *testing.T, dir string, want ...string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var extra []string
	for _, e := range ents {
		keep := false
		for _, w := range want {
			keep = keep || e.Name() == w
		}
		if !keep {
			extra = append(extra, e.Name())
		}
	}
	return extra
}

func TestBuildInspectRun(t *testing.T) {
	needCompiler(t)
	dir := userModule(t, plainMain)
	data := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(filepath.Join(data, "www"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "www", "index.html"), []byte("<h1>gohv</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		args  []string
		image string
		want  []string // in gohv inspect's output
		boot  bool
	}{
		{"gen1-raw", []string{"-gen", "1", "-format", "raw", "-data", data}, "g1.raw",
			[]string{"raw, ", "Generation 1", "partition 1: kernel", "partition 2: data", "www/index.html", "13 bytes"}, true},
		{"gen2-vhdx", []string{"--gen=2", "-o", "g2.vhdx"}, "g2.vhdx",
			[]string{"VHDX (dynamic)", "Generation 2", "EFI system"}, true},
		{"gen1-vhd", []string{"-gen", "1", "-format", "vhd", "-size", "24MiB"}, "g1.vhd",
			[]string{"fixed VHD, size 24MiB (25165824 bytes)", "Generation 1"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"build"}, tc.args...)
			if !strings.Contains(strings.Join(tc.args, " "), "-o") {
				args = append(args, "-o", tc.image)
			}
			out := mustGohv(t, dir, append(args, ".")...)
			if !strings.Contains(out, tc.image+": ") || !strings.Contains(out, "the kernel needs") {
				t.Errorf("build output: %q", out)
			}
			info := mustGohv(t, dir, "inspect", tc.image)
			for _, w := range append(tc.want, "kernel: GKI", "CRC-32", " ok, needs at least", "segment 0:") {
				if !strings.Contains(info, w) {
					t.Errorf("inspect lacks %q:\n%s", w, info)
				}
			}
			if tc.image == "g1.vhd" {
				st, err := os.Stat(filepath.Join(dir, tc.image))
				if err != nil || st.Size() != 24<<20+512 {
					t.Errorf("VHD size %v, %v; want 24 MiB + 512-byte footer", st.Size(), err)
				}
			}
			if !tc.boot {
				return
			}
			needQEMU(t)
			out, errs, st := gohv(t, dir, "run", "-timeout", "2m", tc.image)
			if st != 0 || !strings.Contains(out, "hello from a plain program") || !strings.Contains(out, "gohv: exit code 0, powering off") {
				t.Errorf("run %s: status %d\nstdout:\n%s\nstderr:\n%s", tc.image, st, out, errs)
			}
			if strings.Contains(out, "BdsDxe") {
				t.Errorf("run %s: firmware output shown without -firmware-output:\n%s", tc.image, out)
			}
		})
	}
	if extra := leftovers(t, dir, "go.mod", "go.sum", "main.go", "g1.raw", "g2.vhdx", "g1.vhd"); extra != nil {
		t.Errorf("files left in the module: %v", extra)
	}
}

// TestRunExitStatus builds and boots in one step (gohv run ./pkg) a
// program that exits with status 3, which becomes gohv's.
func TestRunExitStatus(t *testing.T) {
	needCompiler(t)
	needQEMU(t)
	dir := userModule(t, exit3Main)
	out, errs, st := gohv(t, dir, "run", "-gen", "1", "-timeout", "2m", ".")
	if st != 3 || !strings.Contains(out, "about to exit 3") || !strings.Contains(out, "gohv: exit code 3, powering off") {
		t.Errorf("status %d, want 3\nstdout:\n%s\nstderr:\n%s", st, out, errs)
	}
	if extra := leftovers(t, dir, "go.mod", "go.sum", "main.go"); extra != nil {
		t.Errorf("files left in the module: %v", extra)
	}
}

const kernelRunMain = `package main

import (
	"context"
	"fmt"

	"github.com/gohv/gohv/kernel"
)

func main() {
	kernel.Run(func(ctx context.Context) error {
		fmt.Println("hello from kernel.Run")
		return nil
	})
}
`

// TestRunKernelRun boots a program that starts the kernel itself: gohv
// adds only the board, and the program's status comes through kernel.Run.
func TestRunKernelRun(t *testing.T) {
	needCompiler(t)
	needQEMU(t)
	dir := userModule(t, kernelRunMain)
	out, errs, st := gohv(t, dir, "run", "-gen", "1", "-timeout", "2m", ".")
	if st != 0 || !strings.Contains(out, "hello from kernel.Run") || !strings.Contains(out, "gohv: exit code 0, powering off") {
		t.Errorf("status %d\nstdout:\n%s\nstderr:\n%s", st, out, errs)
	}
	// One kernel: the start-up line that says VMBus is missing appears once.
	if n := strings.Count(out, "running the application without VMBus"); n > 1 {
		t.Errorf("%d kernels started:\n%s", n, out)
	}
}

// azureMain reads what the kernel's Azure provisioning did.
const azureMain = `package main

import (
	"context"
	"fmt"

	"github.com/gohv/gohv/kernel"
)

func main() {
	kernel.Run(func(ctx context.Context) error {
		p := kernel.FromContext(ctx).Azure()
		if p == nil {
			fmt.Println("not on Azure")
			return nil
		}
		<-p.Done()
		res, _ := p.Result()
		fmt.Println("ready:", res.ReadyErr == nil, "computer name:", res.Instance.ComputerName)
		return nil
	})
}
`

func TestSim(t *testing.T) {
	dir := userModule(t, plainMain)
	out := mustGohv(t, dir, "sim", ".")
	if out != "hello from a plain program\n" {
		t.Errorf("sim output %q", out)
	}
	dir3 := userModule(t, exit3Main)
	disk := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, st := gohv(t, dir3, "sim", "-profile", "ws2016", "-disk", disk+",ro", ".")
	if st != 3 || out != "about to exit 3\n" {
		t.Errorf("sim exit 3: status %d, stdout %q, stderr %q", st, out, errs)
	}
	dirAz := userModule(t, azureMain)
	// kernel.Run's kernel logs to stdout, as on the console of a VM.
	if out := mustGohv(t, dirAz, "sim", "-azure", "."); !strings.Contains(out, "\nready: true computer name: gohv-host\n") {
		t.Errorf("sim -azure output %q", out)
	}
	if out := mustGohv(t, dirAz, "sim", "."); !strings.Contains(out, "\nnot on Azure\n") {
		t.Errorf("sim output %q", out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sim", "-tap", "gohv-no-such-tap", "."}, "gohv-no-such-tap"},
		{[]string{"sim", "-profile", "ws2008", "."}, `unknown profile "ws2008"`},
		{[]string{"sim", "-disk", disk + ",rw", "."}, `unknown option "rw"`},
		{[]string{"sim", "./nope"}, "cannot find package ./nope"},
		{[]string{"sim", "-azure", "-tap", "tap0", "."}, "cannot be combined with -tap"},
	} {
		_, errs, st := gohv(t, dir, tc.args...)
		if st == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("gohv %s: status %d, stderr %q; want failure mentioning %q", strings.Join(tc.args, " "), st, errs, tc.want)
		}
	}
	if extra := leftovers(t, dir, "go.mod", "go.sum", "main.go"); extra != nil {
		t.Errorf("files left in the module: %v", extra)
	}
}

func TestBuildErrors(t *testing.T) {
	dir := userModule(t, plainMain)
	for _, tc := range []struct {
		name, want string
		args       []string
		compiler   bool // the error comes after compiling
	}{
		{"bad format", `unknown -format "qcow2"`, []string{"build", "-format", "qcow2", "."}, false},
		{"bad gen", "-gen 3: use 1", []string{"build", "-gen", "3", "."}, false},
		{"bad size", "-size", []string{"build", "-format", "vhd", "-size", "20.5MiB", "."}, false},
		{"missing data", "-data", []string{"build", "-data", "nope", "."}, false},
		{"missing package", "cannot find package ./nope", []string{"build", "./nope"}, true},
		{"not main", "not a main package", []string{"build", "github.com/gohv/gohv/hv"}, true},
		{"unwritable", "cannot write the image to /nonexistent/x.vhdx", []string{"build", "-o", "/nonexistent/x.vhdx", "."}, true},
		{"mem below floor", "-mem 16 MiB is below what this kernel needs", []string{"build", "-mem", "16", "-o", "small.vhdx", "."}, true},
		{"inspect missing", "no such file", []string{"inspect", "nope.vhdx"}, false},
		{"run missing image", "image nope.vhdx: stat nope.vhdx: no such file", []string{"run", "nope.vhdx"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.compiler {
				needCompiler(t)
			}
			out, errs, st := gohv(t, dir, tc.args...)
			if st == 0 || !strings.Contains(errs, tc.want) {
				t.Errorf("status %d, stderr %q, stdout %q; want failure mentioning %q", st, errs, out, tc.want)
			}
		})
	}
	if extra := leftovers(t, dir, "go.mod", "go.sum", "main.go"); extra != nil {
		t.Errorf("files left behind: %v", extra)
	}

	// A module that does not require gohv: told how to add it, and its
	// go.mod is left alone.
	t.Run("no gohv requirement", func(t *testing.T) {
		needCompiler(t)
		dir := t.TempDir()
		mod := "module example.com/app\n\ngo 1.26.0\n"
		for name, b := range map[string]string{"go.mod": mod, "main.go": plainMain} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, args := range [][]string{{"build", "."}, {"sim", "."}} {
			_, errs, st := gohv(t, dir, args...)
			if st == 0 || !strings.Contains(errs, "does not require github.com/gohv/gohv") || !strings.Contains(errs, "go get -tool github.com/gohv/gohv/cmd/gohv") {
				t.Errorf("gohv %s: status %d, stderr %q", args[0], st, errs)
			}
		}
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err != nil || string(b) != mod {
			t.Errorf("go.mod changed: %q, %v", b, err)
		}
		if extra := leftovers(t, dir, "go.mod", "main.go"); extra != nil {
			t.Errorf("files left behind: %v", extra)
		}
	})
}

// TestNoCompiler runs gohv build with an empty cache directory: the error
// names where the compiler was looked for and how to install it.
func TestNoCompiler(t *testing.T) {
	dir := userModule(t, plainMain)
	cache := t.TempDir()
	cmd := exec.Command(gohvBin, "build", "-o", "x.vhdx", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TAMAGO=", "XDG_CACHE_HOME="+cache, "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("build without a compiler succeeded:\n%s", out)
	}
	want := filepath.Join(cache, "tamago-go", "tamago-go"+strings.TrimPrefix(tamago.GohvModuleVersion, "v"), "bin", "go")
	for _, s := range []string{"TamaGo compiler not found", want + " is missing", "go tool tamago version", "./make.bash", "TAMAGO="} {
		if !strings.Contains(string(out), s) {
			t.Errorf("message lacks %q:\n%s", s, out)
		}
	}
	if extra := leftovers(t, dir, "go.mod", "go.sum", "main.go"); extra != nil {
		t.Errorf("files left behind: %v", extra)
	}
}

func TestLongFlags(t *testing.T) {
	root := newRoot(t.Context())
	got := longFlags(root, []string{"build", "-gen", "1", "-o", "x", "-format=raw", "-x", "--size", "1MiB", ".", "--", "-gen"})
	want := []string{"build", "--gen", "1", "-o", "x", "--format=raw", "-x", "--size", "1MiB", ".", "--", "-gen"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("longFlags = %q, want %q", got, want)
	}
}

func TestExitLine(t *testing.T) {
	for line, want := range map[string]string{
		"gohv: exit code 0, powering off\r\n": "0",
		"xx gohv: exit code 3, powering off":  "3",
		"gohv: exit code -1, powering off":    "-1",
		"gohv: exit code , powering off":      "",
	} {
		m := exitLine.FindStringSubmatch(line)
		got := ""
		if m != nil {
			got = m[1]
		}
		if got != want {
			t.Errorf("%q: got %q, want %q", line, got, want)
		}
	}
}

// TestInterruptLeavesNothing interrupts gohv build while it compiles: no
// image and no temporary file may remain.
func TestInterruptLeavesNothing(t *testing.T) {
	needCompiler(t)
	dir := userModule(t, plainMain)
	cmd := exec.Command(gohvBin, "build", "-o", "x.vhdx", ".")
	cmd.Dir = dir
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// The temporary file next to the output appears before the compiler
	// starts; interrupt once it is there.
	for reserved := false; !reserved; {
		select {
		case err := <-done:
			t.Skipf("build ended before it could be interrupted: %v", err)
		default:
		}
		m, _ := filepath.Glob(filepath.Join(dir, ".x.vhdx.gohv-*"))
		reserved = len(m) > 0
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := <-done
	if err == nil {
		t.Skip("build finished before the interrupt arrived")
	}
	if !strings.Contains(errb.String(), "interrupted") {
		t.Errorf("stderr %q does not say it was interrupted", errb.String())
	}
	if extra := leftovers(t, dir, "go.mod", "go.sum", "main.go"); extra != nil {
		t.Errorf("files left behind: %v", extra)
	}
}
