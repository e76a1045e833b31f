package ext4

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The Linux kernel as a peer: a Debian kernel (linux-image-amd64) booted
// in QEMU with a busybox initramfs mounts the volumes this package wrote,
// checks their files, changes them and unmounts; e2fsck and this package
// then check what Linux left. These tests are skipped unless qemu, a
// kernel under /boot with its modules and a static busybox are installed
// (apt-get install qemu-system-x86 linux-image-amd64 busybox-static), and
// in -short mode.

type linuxVM struct {
	kernel  string
	modDir  string
	busybox string
	kvm     bool
}

func needLinux(t *testing.T) *linuxVM {
	t.Helper()
	if testing.Short() {
		t.Skip("boots Linux in QEMU; skipped in -short mode")
	}
	need(t, "qemu-system-x86_64", "qemu-system-x86")
	kernels, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(kernels) == 0 {
		t.Skip("no kernel in /boot (apt-get install linux-image-amd64); skipping")
	}
	k := kernels[len(kernels)-1]
	ver := strings.TrimPrefix(filepath.Base(k), "vmlinuz-")
	mods := filepath.Join("/lib/modules", ver)
	if _, err := os.Stat(filepath.Join(mods, "modules.dep")); err != nil {
		t.Skipf("no modules for %s; skipping", ver)
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox not installed (apt-get install busybox-static); skipping")
	}
	if out, _ := exec.Command("file", "-L", bb).Output(); bytes.Contains(out, []byte("dynamically")) {
		t.Skip("busybox is not static (apt-get install busybox-static); skipping")
	}
	// KVM only on request: nested KVM hangs the guest on some hosts, and
	// emulation boots in well under a minute.
	return &linuxVM{kernel: k, modDir: mods, busybox: bb, kvm: os.Getenv("GOHV_QEMU_KVM") == "1"}
}

// modules returns the .ko files to load for names, dependencies first,
// from modules.dep.
func (vm *linuxVM) modules(t *testing.T, names ...string) []string {
	b, err := os.ReadFile(filepath.Join(vm.modDir, "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	deps := map[string][]string{}
	byName := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		mod, rest, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		byName[strings.TrimSuffix(filepath.Base(mod), ".ko")] = mod
	}
	var out []string
	seen := map[string]bool{}
	var add func(m string)
	add = func(m string) {
		if seen[m] {
			return
		}
		seen[m] = true
		for _, d := range deps[m] {
			add(d)
		}
		out = append(out, m)
	}
	for _, n := range names {
		m, ok := byName[n]
		if !ok {
			t.Skipf("kernel module %s not found; skipping", n)
		}
		add(m)
	}
	return out
}

// cpio builds a newc initramfs.
type cpio struct {
	bytes.Buffer
	ino int
}

func (c *cpio) add(name string, mode uint32, data []byte, rdevMajor, rdevMinor int) {
	c.ino++
	fmt.Fprintf(&c.Buffer, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.WriteString(name + "\x00")
	for c.Len()%4 != 0 {
		c.WriteByte(0)
	}
	c.Write(data)
	for c.Len()%4 != 0 {
		c.WriteByte(0)
	}
}

// run boots Linux with img as /dev/vda and script (busybox sh) as the
// test, returning the console output.
func (vm *linuxVM) run(t *testing.T, img, script string) string {
	t.Helper()
	mods := vm.modules(t, "virtio_pci", "virtio_blk", "crc32c_generic", "ext4")
	var c cpio
	for _, d := range []string{"bin", "dev", "proc", "sys", "mnt", "m"} {
		c.add(d, 0o040755, nil, 0, 0)
	}
	c.add("dev/console", 0o020600, nil, 5, 1)
	bb, err := os.ReadFile(vm.busybox)
	if err != nil {
		t.Fatal(err)
	}
	c.add("bin/busybox", 0o100755, bb, 0, 0)
	var load strings.Builder
	for _, m := range mods {
		b, err := os.ReadFile(filepath.Join(vm.modDir, m))
		if err != nil {
			t.Fatal(err)
		}
		c.add("m/"+filepath.Base(m), 0o100644, b, 0, 0)
		fmt.Fprintf(&load, "insmod /m/%s || echo INSMODFAIL %s\n", filepath.Base(m), m)
	}
	init := "#!/bin/busybox sh\n/bin/busybox --install -s /bin\nexport PATH=/bin\n" +
		"mount -t proc proc /proc\nmount -t devtmpfs dev /dev\nmount -t sysfs sys /sys\n" + load.String() +
		"i=0; while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done\n" +
		"echo GUEST-START\n" + script + "\necho GUEST-DONE\ndmesg | grep -i -e ext4 -e jbd2 | sed 's/^/DMESG /'\npoweroff -f\n"
	c.add("init", 0o100755, []byte(init), 0, 0)
	c.add("TRAILER!!!", 0, nil, 0, 0)
	initrd := filepath.Join(t.TempDir(), "initrd.cpio")
	if err := os.WriteFile(initrd, c.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), vmTimeout)
	defer cancel()
	args := []string{"-m", "512", "-nographic", "-no-reboot", "-kernel", vm.kernel, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 " + vmAppend, "-drive", "file=" + img + ",format=raw,if=virtio"}
	if vm.kvm {
		args = append(args, "-enable-kvm", "-cpu", "host")
	}
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	cmd.WaitDelay = 5 * time.Second // do not wait for pipes after a kill
	out, err := cmd.CombinedOutput()
	s := strings.ReplaceAll(string(out), "\r", "")
	if err != nil || !strings.Contains(s, "GUEST-DONE") {
		t.Fatalf("qemu: %v\n%s", err, s)
	}
	if strings.Contains(s, "INSMODFAIL") {
		t.Fatalf("loading modules failed:\n%s", s)
	}
	return s[strings.Index(s, "GUEST-START"):]
}

// sums parses "SUM <md5>  ./path" lines.
func sums(out string) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		// md5sum prints the digest, two spaces, the name (which may
		// hold spaces).
		l, ok := strings.CutPrefix(sc.Text(), "SUM ")
		if sum, name, ok2 := strings.Cut(l, "  "); ok && ok2 && len(sum) == 32 {
			m[strings.TrimPrefix(name, "./")] = sum
		}
	}
	return m
}

// vmTimeout bounds one boot of the guest.
var vmTimeout = 3 * time.Minute

// vmAppend is added to the guest kernel command line.
var vmAppend = "loglevel=3"

func md5hex(b []byte) string { return fmt.Sprintf("%x", md5.Sum(b)) }

// checkDmesg fails on ext4 or jbd2 errors in the guest's log.
func checkDmesg(t *testing.T, out string) {
	t.Helper()
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "DMESG ") {
			n++
			t.Log(l)
		}
	}
	if n == 0 {
		t.Error("no ext4 messages from the guest kernel")
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "DMESG ") && (strings.Contains(l, "error") || strings.Contains(l, "corrupt") ||
			strings.Contains(l, "checksum") || strings.Contains(l, "warning")) {
			t.Errorf("guest kernel: %s", l)
		}
	}
}

// TestLinuxMounts has Linux read a volume after the workload, including a
// hash-tree directory made linear, then change it; e2fsck and this
// package check the result.
func TestLinuxMounts(t *testing.T) {
	vm := needLinux(t)
	need(t, "e2fsck", "e2fsprogs")
	tr := sampleTree(300)
	src := tr.write(t)
	_, img := mkfs(t, src, "64M", "-t", "ext4", "-b", "1024")
	exec.Command("e2fsck", "-fyD", img).Run() // index the directories
	m := load(t, img)
	f, err := MountRW(context.Background(), m, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := workload(t, f, 1024)
	writeFile(t, f, "many/added", []byte("added")) // "many" was a hash tree
	want["many/added"] = []byte("added")
	must(t, f.Sync())
	save(t, m, img)
	fsck(t, img)

	out := vm.run(t, img, `mount -t ext4 /dev/vda /mnt || echo MOUNTFAIL
cd /mnt && find . -type f | sort | while read f; do echo "SUM $(md5sum "$f")"; done
echo from-linux > /mnt/from-linux.txt
mkdir /mnt/linux-dir && cp /mnt/new.txt /mnt/linux-dir/copy
for i in $(seq 1 40); do echo $i > /mnt/many-new/by-linux-$i; echo $i > /mnt/many/by-linux-$i; done
rm /mnt/frag.bin
mv /mnt/moved-d3 /mnt/linux-dir/
cd / && umount /mnt || echo UMOUNTFAIL`)
	if strings.Contains(out, "MOUNTFAIL") || strings.Contains(out, "UMOUNTFAIL") {
		t.Fatalf("guest:\n%s", out)
	}
	checkDmesg(t, out)
	got := sums(out)
	for p, b := range want {
		if b == nil {
			if _, ok := got[p]; ok {
				t.Errorf("Linux sees removed %s", p)
			}
			continue
		}
		if got[p] != md5hex(b) {
			t.Errorf("Linux reads %s: md5 %s, want %s", p, got[p], md5hex(b))
		}
	}
	for p, b := range tr.files {
		if _, changed := want[p]; !changed && got[p] != md5hex(b) {
			t.Errorf("Linux reads untouched %s: md5 %s, want %s", p, got[p], md5hex(b))
		}
	}
	fsck(t, img)
	g, err := Mount(context.Background(), load(t, img))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := g.ReadFile("from-linux.txt"); string(b) != "from-linux\n" || err != nil {
		t.Errorf("from-linux.txt: %q %v", b, err)
	}
	if b, err := g.ReadFile("linux-dir/moved-d3/leaf.txt"); string(b) != "leaf" || err != nil {
		t.Errorf("moved by Linux: %q %v", b, err)
	}
	if es, err := g.ReadDir("many-new"); err != nil || len(es) != 149+40 {
		t.Errorf("many-new: %d entries, %v", len(es), err)
	}
}

// TestLinuxReplays crashes a journaled Sync after its commit block and
// before the blocks are in place: Linux's own journal recovery at mount
// must bring back the whole transaction.
func TestLinuxReplays(t *testing.T) {
	vm := needLinux(t)
	need(t, "e2fsck", "e2fsprogs")
	src := tree{files: map[string][]byte{"old.txt": []byte("old")}}.write(t)
	_, img := mkfs(t, src, "32M", "-t", "ext4", "-b", "4096")
	journalCsumV3(t, img)
	m := load(t, img)
	base := bytes.Clone(m.Bytes())
	dev := &logDev{Mem: m}
	f, err := MountRW(context.Background(), dev, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data := pattern(300000, 5)
	must(t, f.Mkdir("dir"))
	writeFile(t, f, "dir/new.bin", data)
	must(t, f.Remove("old.txt"))
	start := dev.writes()
	must(t, f.Sync())
	// The crash: right after the flush that follows the commit block.
	flushes, cut := 0, -1
	for i := start; i < dev.writes(); i++ {
		if dev.log[i].data == nil {
			if flushes++; flushes == 2 {
				cut = i + 1
			}
		}
	}
	if cut < 0 {
		t.Fatal("no commit in the Sync")
	}
	if err := os.WriteFile(img, dev.image(base, cut, false), 0o644); err != nil {
		t.Fatal(err)
	}
	out := vm.run(t, img, `mount -t ext4 /dev/vda /mnt || echo MOUNTFAIL
cd /mnt && find . -type f | sort | while read f; do echo "SUM $(md5sum "$f")"; done
cd / && umount /mnt || echo UMOUNTFAIL`)
	if strings.Contains(out, "MOUNTFAIL") || strings.Contains(out, "UMOUNTFAIL") {
		t.Fatalf("guest:\n%s", out)
	}
	if !strings.Contains(out, "recovery complete") {
		t.Errorf("Linux did not recover the journal:\n%s", out)
	}
	checkDmesg(t, out)
	got := sums(out)
	if got["dir/new.bin"] != md5hex(data) {
		t.Errorf("after recovery dir/new.bin md5 %s, want %s", got["dir/new.bin"], md5hex(data))
	}
	if _, ok := got["old.txt"]; ok {
		t.Error("after recovery old.txt is still there")
	}
	fsck(t, img)
}
