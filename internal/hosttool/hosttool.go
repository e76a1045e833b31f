// Package hosttool is test support for tests that use host programs (QEMU,
// qemu-img, partition and filesystem checkers, assemblers): a test skips,
// naming the Debian package to install, when one is missing, and fails with
// the program's output when it fails. Only tests import it.
package hosttool

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// debianPackage names the package that provides each program, for the skip
// message (.ci/run installs them all).
var debianPackage = map[string]string{
	"qemu-system-x86_64": "qemu-system-x86",
	"qemu-img":           "qemu-utils",
	"sfdisk":             "fdisk",
	"sgdisk":             "gdisk",
	"fsck.fat":           "dosfstools",
	"mkfs.fat":           "dosfstools",
	"mdir":               "mtools",
	"mtype":              "mtools",
	"mcopy":              "mtools",
	"mmd":                "mtools",
	"nasm":               "nasm",
	"ld":                 "binutils",
	"objcopy":            "binutils",
	"mke2fs":             "e2fsprogs",
	"mkfs.ext4":          "e2fsprogs",
	"e2fsck":             "e2fsprogs",
	"debugfs":            "e2fsprogs",
	"dnsmasq":            "dnsmasq",
}

// Need skips the test unless every program is on PATH.
func Need(t testing.TB, progs ...string) {
	t.Helper()
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			pkg := debianPackage[p]
			if pkg == "" {
				pkg = p
			}
			t.Skipf("%s not installed (apt-get install %s); skipping", p, pkg)
		}
	}
}

// Run runs a program and returns its combined output, failing the test
// with that output if it exits non-zero. mtools' geometry check is off:
// the images under test are not floppies.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
