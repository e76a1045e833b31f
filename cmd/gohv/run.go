package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gohv/gohv/internal/diskinfo"
)

// exitLine is what the kernel prints on COM1 before it powers off
// (boot/power_tamago.go).
var exitLine = regexp.MustCompile(`gohv: exit code (-?[0-9]+), powering off`)

// OVMF firmware locations (Debian/Ubuntu first, then Fedora and Arch).
var ovmfPairs = [][2]string{
	{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
	{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
	{"/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"},
	{"/usr/share/edk2/x64/OVMF_CODE.4m.fd", "/usr/share/edk2/x64/OVMF_VARS.4m.fd"},
}

type runFlags struct {
	buildFlags
	qemu     string
	hyperv   bool
	ovmfCode string
	ovmfVars string
	timeout  time.Duration
	firmware bool
}

func newRun() *cobra.Command {
	var r runFlags
	cmd := &cobra.Command{
		Use:   "run [flags] [IMAGE | ./pkg]",
		Short: "Boot an image (or build a package and boot it) under QEMU",
		Long: `run boots a gohv image under QEMU with COM1 on the terminal and exits with the
guest application's exit status (the kernel reports it on COM1 before it
powers off). Given a package instead of an image file, it builds a raw image
of it first (with the build flags) in a temporary directory. With no
argument it runs the package in the current directory.

Generation 1 boots with SeaBIOS from an IDE disk, Generation 2 with OVMF on
a q35 machine (with a private copy of the UEFI variables). QEMU emulates the
CPU (TCG, -cpu max), so there is no Hyper-V: the kernel says so and runs the
program without VMBus.

-hyperv uses KVM with Hyper-V enlightenments and QEMU's vmbus-bridge instead
(QEMU 8.2+ on a KVM host that offers them). It is untested: the project's
machines have no such KVM.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := "."
			if len(args) == 1 {
				target = args[0]
			}
			return runTarget(cmd.Context(), target, r, cmd.OutOrStdout())
		},
	}
	r.register(cmd, false)
	f := cmd.Flags()
	f.DurationVar(&r.timeout, "timeout", 0, "stop the VM and fail after this long (0: no limit)")
	f.BoolVar(&r.firmware, "firmware-output", false, "show the firmware's output before gohv's loader starts")
	f.StringVar(&r.qemu, "qemu", "qemu-system-x86_64", "QEMU system emulator")
	f.BoolVar(&r.hyperv, "hyperv", false, "KVM with Hyper-V enlightenments and vmbus-bridge (untested)")
	f.StringVar(&r.ovmfCode, "ovmf-code", "", "OVMF code image for Generation 2 (default: found under /usr/share)")
	f.StringVar(&r.ovmfVars, "ovmf-vars", "", "OVMF variables template for Generation 2 (copied, never written)")
	return cmd
}

func runTarget(ctx context.Context, target string, r runFlags, stdout io.Writer) error {
	st := newStatus(r.quiet)
	img, name := target, filepath.Base(target)
	fi, statErr := os.Stat(target)
	switch strings.ToLower(filepath.Ext(target)) {
	case ".vhdx", ".vhd", ".raw", ".img":
		if statErr != nil {
			return fmt.Errorf("image %s: %w", target, statErr)
		}
	}
	qemu, err := exec.LookPath(r.qemu)
	if err != nil {
		return fmt.Errorf("QEMU not found (%v): install it (Debian/Ubuntu: apt-get install qemu-system-x86 ovmf) or name it with -qemu", err)
	}
	work, err := os.MkdirTemp("", "gohv-run-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	if statErr != nil || fi.IsDir() {
		name = target
		// A package: build a raw image of it.
		b := r.buildFlags
		b.format = "raw"
		b.out = filepath.Join(work, "disk.raw")
		if _, _, err := buildImage(ctx, target, b, st); err != nil {
			return err
		}
		img = b.out
	}
	rep, err := diskinfo.Inspect(img)
	if err != nil {
		return err
	}
	if r.mem == 0 {
		r.mem = defaultMem(rep.Generation)
	}
	if rep.Kernel == nil {
		return fmt.Errorf("%s holds no bootable gohv kernel: %v", img, rep.KernelErr)
	}
	if err := checkMem(r.mem, rep.Kernel); err != nil {
		return err
	}
	args, err := qemuArgs(rep, r, work)
	if err != nil {
		return err
	}
	accel := "TCG"
	if r.hyperv {
		accel = "KVM with Hyper-V enlightenments"
	}
	end := st.step(fmt.Sprintf("booting %s (Generation %d, %s)", name, rep.Generation, accel))
	if r.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.timeout)
		defer cancel()
	}
	code, err := runQEMU(ctx, qemu, args, stdout, r.firmware, func() { end(true) })
	end(false)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitStatus(code)
	}
	return nil
}

// qemuArgs returns QEMU's command line for the image rep describes.
func qemuArgs(rep *diskinfo.Report, r runFlags, work string) ([]string, error) {
	format := map[diskinfo.Format]string{diskinfo.Raw: "raw", diskinfo.VHD: "vpc", diskinfo.VHDX: "vhdx"}[rep.Format]
	args := []string{"-m", strconv.Itoa(r.mem), "-display", "none", "-monitor", "none",
		"-serial", "stdio", "-no-reboot", "-nic", "none"}
	if r.hyperv {
		if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
			return nil, fmt.Errorf("-hyperv needs KVM: %w (load kvm_intel or kvm_amd and make /dev/kvm accessible)", err)
		} else {
			f.Close()
		}
		args = append(args, "-accel", "kvm", "-cpu",
			"host,hv-relaxed,hv-vapic,hv-time,hv-vpindex,hv-synic,hv-stimer,hv-runtime,hv-frequencies",
			"-device", "vmbus-bridge")
	} else {
		// tamago/amd64 needs RDRAND, which QEMU's default TCG CPU lacks.
		args = append(args, "-accel", "tcg", "-cpu", "max")
	}
	drive := "file=" + rep.Path + ",format=" + format
	switch rep.Generation {
	case 1:
		return append(args, "-drive", drive+",if=ide"), nil
	case 2:
		code, vars, err := ovmf(r.ovmfCode, r.ovmfVars)
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(vars)
		if err != nil {
			return nil, fmt.Errorf("OVMF variables: %w", err)
		}
		varsCopy := filepath.Join(work, "ovmf-vars.fd")
		if err := os.WriteFile(varsCopy, b, 0o600); err != nil {
			return nil, err
		}
		return append(args, "-M", "q35",
			"-drive", "if=pflash,format=raw,readonly=on,file="+code,
			"-drive", "if=pflash,format=raw,file="+varsCopy,
			"-drive", drive+",if=virtio"), nil
	}
	return nil, fmt.Errorf("%s is not a gohv Generation 1 or 2 disk", rep.Path)
}

// ovmf finds the firmware pair for Generation 2.
func ovmf(code, vars string) (string, string, error) {
	if code != "" || vars != "" {
		if code == "" || vars == "" {
			return "", "", errors.New("give both -ovmf-code and -ovmf-vars")
		}
		return code, vars, nil
	}
	for _, p := range ovmfPairs {
		if exists(p[0]) && exists(p[1]) {
			return p[0], p[1], nil
		}
	}
	return "", "", errors.New("OVMF firmware not found for Generation 2: install it (Debian/Ubuntu: apt-get install ovmf) or give -ovmf-code and -ovmf-vars")
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// runQEMU runs QEMU and copies COM1 to stdout as it comes, from the first
// line gohv's loader or kernel prints ("gohv: ..."); the firmware's output
// before it is held back unless showAll, and shown if the VM fails. It calls
// first when gohv's first line arrives, and returns the exit code the
// kernel reported.
func runQEMU(ctx context.Context, qemu string, args []string, stdout io.Writer, showAll bool, first func()) (int, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	cmd := exec.CommandContext(ctx, qemu, args...)
	// SIGTERM lets QEMU restore the terminal it put into raw mode; KILL
	// follows if it does not exit.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdin = os.Stdin
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting QEMU: %w", err)
	}
	code, seen, started := 0, false, false
	var firmware strings.Builder
	rd := bufio.NewReader(pipe)
	for {
		line, err := rd.ReadString('\n')
		if line != "" {
			if !started {
				if i := strings.Index(line, "gohv: "); i >= 0 {
					started = true
					first()
					line = line[i:]
				}
			}
			switch {
			case started || showAll:
				io.WriteString(stdout, line)
			case firmware.Len() < 1<<20:
				firmware.WriteString(line)
			}
			if m := exitLine.FindStringSubmatch(line); m != nil {
				if n, err := strconv.Atoi(m[1]); err == nil {
					code, seen = n&0xff, true
				}
			}
			if started && strings.Contains(line, "BdsDxe: failed to start") {
				cancel(errLoaderFailed)
			}
		}
		if err != nil {
			break
		}
	}
	err = cmd.Wait()
	fw := ""
	if !started && !showAll && firmware.Len() > 0 {
		fw = "\nfirmware output:\n" + firmware.String()
	}
	switch {
	case errors.Is(context.Cause(ctx), errLoaderFailed):
		return 0, errLoaderFailed
	case ctx.Err() != nil:
		if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
			return 0, fmt.Errorf("the VM did not power off within -timeout%s", fw)
		}
		return 0, fmt.Errorf("interrupted: %w", ctx.Err())
	case err != nil:
		return 0, fmt.Errorf("QEMU failed: %v\n%s%s", err, strings.TrimSpace(stderr.String()), fw)
	case !seen:
		return 0, fmt.Errorf("the VM stopped without the kernel reporting an exit code (no \"gohv: exit code N\" line on COM1)%s", fw)
	}
	return code, nil
}

// errLoaderFailed is the firmware's report that gohv's UEFI loader returned
// (it prints why just before).
var errLoaderFailed = errors.New("the gohv UEFI loader failed (its reason is above)")
