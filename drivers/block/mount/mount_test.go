package mount

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/gohv/gohv/drivers/block"
	"github.com/gohv/gohv/drivers/block/ext4"
	"github.com/gohv/gohv/drivers/block/fat"
	"github.com/gohv/gohv/drivers/block/part"
	"github.com/gohv/gohv/internal/hosttool"
	"github.com/gohv/gohv/tools/image/layout"
)

func memFrom(t testing.TB, d *layout.Disk) *block.Mem {
	b := make([]byte, d.Size())
	if _, err := d.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	m, err := block.NewMemFrom("disk", 512, b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestImageLayouts(t *testing.T) {
	ctx := context.Background()
	files := fstest.MapFS{"etc/config.txt": {Data: []byte("answer=42")}}
	g1, err := layout.Gen1(layout.Gen1Options{Stage1: []byte{0xEB}, Stage2: make([]byte, 512), Kernel: []byte("GKI"), Files: files, DiskSignature: 7})
	if err != nil {
		t.Fatal(err)
	}
	vols, tab, err := Mount(ctx, memFrom(t, g1), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tab.Kind != part.KindMBR || len(vols) != 2 {
		t.Fatalf("table %v, %d volumes", tab.Kind, len(vols))
	}
	if vols[0].Type != Unknown || !errors.Is(vols[0].Err, ErrUnknown) || vols[0].FS != nil {
		t.Errorf("kernel partition: %+v", vols[0])
	}
	if vols[1].Type != FAT32 || vols[1].Err != nil {
		t.Fatalf("data partition: %+v", vols[1])
	}
	if b, err := fs.ReadFile(vols[1].FS, "etc/config.txt"); string(b) != "answer=42" {
		t.Errorf("config: %q %v", b, err)
	}

	g2, err := layout.Gen2(layout.Gen2Options{EFI: []byte("MZ efi"), Files: files})
	if err != nil {
		t.Fatal(err)
	}
	vols, tab, err = Mount(ctx, memFrom(t, g2), Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if tab.Kind != part.KindGPT || len(vols) != 2 || vols[0].Type != FAT32 || vols[1].Type != FAT32 {
		t.Fatalf("table %v volumes %+v", tab.Kind, vols)
	}
	if vols[0].Partition.Type != part.TypeEFISystem {
		t.Errorf("first partition type %v", vols[0].Partition.Type)
	}
	if b, err := fs.ReadFile(vols[0].FS, "EFI/BOOT/BOOTX64.EFI"); string(b) != "MZ efi" {
		t.Errorf("ESP: %q %v", b, err)
	}
	if _, err := vols[1].FS.(*fat.FS).Create("x"); !errors.Is(err, fat.ErrReadOnly) {
		t.Errorf("read-only mount allowed a create: %v", err)
	}
}

// TestToolMadeDisk partitions a disk with sgdisk and fills the partitions
// with mkfs.fat + mcopy and mke2fs -d.
func TestToolMadeDisk(t *testing.T) {
	hosttool.Need(t, "sgdisk", "mkfs.fat", "mcopy")
	if _, err := exec.LookPath("mke2fs"); err != nil {
		t.Skip("mke2fs not installed (apt-get install e2fsprogs); skipping")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "on-ext4.txt"), []byte("ext4 data"), 0o644)
	os.WriteFile(filepath.Join(dir, "on-fat.txt"), []byte("fat data"), 0o644)
	ext := filepath.Join(dir, "ext.img")
	hosttool.Run(t, "mke2fs", "-q", "-F", "-t", "ext4", "-d", src, ext, "8M")
	vfat := filepath.Join(dir, "fat.img")
	os.WriteFile(vfat, nil, 0o644)
	os.Truncate(vfat, 40<<20)
	hosttool.Run(t, "mkfs.fat", "-F", "32", "-S", "512", "-s", "1", vfat)
	hosttool.Run(t, "mcopy", "-i", vfat, filepath.Join(dir, "on-fat.txt"), "::/")

	disk := filepath.Join(dir, "disk.img")
	os.WriteFile(disk, nil, 0o644)
	os.Truncate(disk, 52<<20)
	hosttool.Run(t, "sgdisk", "-n", "1:2048:+40M", "-t", "1:0700", "-n", "2:0:+8M", "-t", "2:8300", disk)
	img, _ := os.ReadFile(disk)
	fb, _ := os.ReadFile(vfat)
	eb, _ := os.ReadFile(ext)
	copy(img[2048*512:], fb)
	copy(img[(2048+40*2048)*512:], eb)
	m, _ := block.NewMemFrom("disk", 512, img)

	vols, tab, err := Mount(context.Background(), m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tab.Kind != part.KindGPT || len(vols) != 2 || vols[0].Type != FAT32 || vols[1].Type != Ext4 {
		t.Fatalf("volumes %+v", vols)
	}
	for _, c := range []struct {
		v          Volume
		name, want string
	}{{vols[0], "on-fat.txt", "fat data"}, {vols[1], "on-ext4.txt", "ext4 data"}} {
		if b, err := fs.ReadFile(c.v.FS, c.name); string(b) != c.want {
			t.Errorf("%s: %q %v", c.name, b, err)
		}
	}
	if e, ok := vols[1].FS.(*ext4.FS); !ok || e.Writable() {
		t.Errorf("ext4 mounted read-write without Ext4Write: %T", vols[1].FS)
	}
	vols, _, err = Mount(context.Background(), m, Options{Ext4Write: true})
	if err != nil {
		t.Fatal(err)
	}
	e, ok := vols[1].FS.(*ext4.FS)
	if !ok || !e.Writable() || vols[1].WriteErr != nil {
		t.Fatalf("ext4 with Ext4Write: %T %v", vols[1].FS, vols[1].WriteErr)
	}
	w, err := e.Create("from-guest.txt")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("guest"))
	w.Close()
	if err := e.Sync(); err != nil {
		t.Fatal(err)
	}
	if b, err := fs.ReadFile(e, "from-guest.txt"); string(b) != "guest" {
		t.Errorf("from-guest.txt: %q %v", b, err)
	}
}

func TestWholeDisk(t *testing.T) {
	hosttool.Need(t, "mkfs.fat")
	img := filepath.Join(t.TempDir(), "floppy.img")
	os.WriteFile(img, nil, 0o644)
	os.Truncate(img, 40<<20)
	hosttool.Run(t, "mkfs.fat", "-F", "32", "-S", "512", "-s", "1", img)
	b, _ := os.ReadFile(img)
	m, _ := block.NewMemFrom("floppy", 512, b)
	vols, tab, err := Mount(context.Background(), m, Options{})
	if err != nil || tab != nil || len(vols) != 1 || vols[0].Type != FAT32 || vols[0].Partition != nil {
		t.Fatalf("%+v %+v %v", vols, tab, err)
	}
	blank, _ := block.NewMem("blank", 512, 4096)
	if _, _, err := Mount(context.Background(), blank, Options{}); !errors.Is(err, ErrUnknown) {
		t.Errorf("blank disk: %v", err)
	}
}

// Example mounts a disk's partitions, reads a file from the data volume
// and writes one back.
func Example() {
	ctx := context.Background()
	// A Gen1 disk as gohv's image builder makes it, in memory; on Hyper-V
	// the device would be a storvsc disk from the block.Registry.
	img, _ := layout.Gen1(layout.Gen1Options{Stage1: []byte{0xEB}, Stage2: make([]byte, 512), Kernel: []byte("GKI"),
		Files: fstest.MapFS{"config.txt": {Data: []byte("answer=42\n")}}, DiskSignature: 1})
	raw := make([]byte, img.Size())
	img.ReadAt(raw, 0)
	disk, _ := block.NewMemFrom("disk0", 512, raw)

	vols, _, err := Mount(ctx, disk, Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, v := range vols {
		if v.Type != FAT32 {
			continue
		}
		b, _ := fs.ReadFile(v.FS, "config.txt")
		fmt.Printf("%s partition %d: config.txt = %q\n", v.Type, v.Partition.Index, b)

		fsys := v.FS.(*fat.FS) // FAT volumes are writable
		if err := fsys.Mkdir("log"); err != nil && !errors.Is(err, fs.ErrExist) {
			fmt.Println(err)
			return
		}
		w, err := fsys.Create("log/boot.txt")
		if err != nil {
			fmt.Println(err)
			return
		}
		w.Write([]byte("booted\n"))
		w.Close()
		if err := fsys.Sync(); err != nil { // durable on the disk
			fmt.Println(err)
			return
		}
		b, _ = fs.ReadFile(fsys, "log/boot.txt")
		fmt.Printf("log/boot.txt = %q\n", bytes.TrimSpace(b))
	}
	// Output:
	// fat32 partition 2: config.txt = "answer=42\n"
	// log/boot.txt = "booted"
}
