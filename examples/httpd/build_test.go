package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gohv/gohv/boot/kimage"
	"github.com/gohv/gohv/internal/tamago"
)

// TestBuildsWithTamaGo builds httpd as a gohv kernel (net/http, gVisor and
// the whole driver stack linked for GOOS=tamago) and checks that the
// loaders can take the result. Without the compiler it skips.
func TestBuildsWithTamaGo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a kernel")
	}
	c, err := tamago.Lookup{Dir: "."}.Find()
	if err != nil {
		t.Skipf("skipping the kernel build: %v", err)
	}
	elf := filepath.Join(t.TempDir(), "httpd.elf")
	cmd := exec.Command(c.Go, "build", "-tags", "linkcpuinit,linkramstart",
		"-ldflags", "-T 0x02010000 -R 0x1000", "-o", elf, ".")
	cmd.Env = append(c.Env(os.Environ()), "GOOS=tamago", "GOARCH=amd64", "GOOSPKG=github.com/usbarmory/tamago")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building httpd with %s: %v\n%s", c.Go, err, out)
	}
	b, err := os.ReadFile(elf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kimage.Build(b); err != nil {
		t.Fatalf("the loaders cannot take the kernel: %v", err)
	}
}
