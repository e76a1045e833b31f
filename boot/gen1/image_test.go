package gen1_test

import (
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gohv/gohv/boot/gen1"
	"github.com/gohv/gohv/tools/image"
	"github.com/gohv/gohv/tools/image/layout"
	"github.com/gohv/gohv/tools/image/vhd"
	"github.com/gohv/gohv/tools/image/vhdx"
)

// TestBootQEMUImageTool boots disks made the way users make them: the Gen1
// layout and the raw, fixed VHD and VHDX writers of tools/image, with a
// FAT32 data partition next to the kernel partition.
func TestBootQEMUImageTool(t *testing.T) {
	gki := buildGKI(t)
	disk, err := layout.Gen1(layout.Gen1Options{
		Stage1:        gen1.Stage1(),
		Stage2:        gen1.Stage2(),
		Kernel:        gki,
		Files:         fstest.MapFS{"hello.txt": {Data: []byte("hello from gohv\n")}},
		DiskSignature: 0x76686f67,
		Time:          time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	})
	if err != nil {
		t.Fatalf("layout.Gen1: %v", err)
	}
	dir := t.TempDir()
	for _, c := range []struct {
		name, format string
		write        func(path string) error
	}{
		{"raw", "raw", func(p string) error { return image.WriteRaw(p, disk) }},
		{"vhd", "vpc", func(p string) error { return vhd.WriteFixed(p, disk, vhd.Options{}) }},
		{"vhdx", "vhdx", func(p string) error { return vhdx.Write(p, disk, vhdx.Options{}) }},
		{"vhdx fixed", "vhdx", func(p string) error { return vhdx.Write(p, disk, vhdx.Options{Fixed: true}) }},
	} {
		p := filepath.Join(dir, c.name+"."+c.format)
		if err := c.write(p); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			checkBooted(t, runQEMU(t, p, c.format, guestMiB, "", ""))
		})
	}
}
