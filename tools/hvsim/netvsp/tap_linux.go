//go:build linux

package netvsp

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Linux TUN/TAP interface (linux/if_tun.h).
const (
	tunSetIFF = 0x400454CA // TUNSETIFF = _IOW('T', 202, int)
	iffTAP    = 0x0002
	iffNoPI   = 0x1000
	ifNameSiz = 16
)

// TAP is a Backend bridged to a Linux TAP device: frames from the guest
// are written to it, frames Linux sends on it go to the guest. The device
// appears in the network namespace of the thread that opens it; the caller
// sets that namespace up (addresses, link up), and the device disappears
// when the TAP is closed.
type TAP struct {
	f    *os.File
	name string
	recv atomic.Pointer[func([]byte)]
	wg   sync.WaitGroup
	once sync.Once

	writeErrs, readErrs atomic.Uint64
}

// OpenTAP creates (or attaches to) the TAP device name with IFF_TAP |
// IFF_NO_PI (frames without the packet-information prefix) and starts
// reading from it.
func OpenTAP(name string) (*TAP, error) {
	if len(name) == 0 || len(name) >= ifNameSiz {
		return nil, fmt.Errorf("netvsp: TAP name %q: 1 to %d bytes", name, ifNameSiz-1)
	}
	fd, err := syscall.Open("/dev/net/tun", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("netvsp: open /dev/net/tun: %w", err)
	}
	var ifr struct {
		name  [ifNameSiz]byte
		flags uint16
		_     [22]byte
	}
	copy(ifr.name[:], name)
	ifr.flags = iffTAP | iffNoPI
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), tunSetIFF, uintptr(unsafe.Pointer(&ifr))); e != 0 {
		syscall.Close(fd)
		return nil, fmt.Errorf("netvsp: TUNSETIFF %s: %w", name, e)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("netvsp: TAP non-blocking: %w", err)
	}
	t := &TAP{f: os.NewFile(uintptr(fd), "/dev/net/tun"), name: name}
	t.wg.Add(1)
	go func() { defer t.wg.Done(); t.pump() }()
	return t, nil
}

// pump reads frames from Linux and hands them to the receiver.
func (t *TAP) pump() {
	buf := make([]byte, 65536)
	for {
		n, err := t.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			t.readErrs.Add(1)
			time.Sleep(10 * time.Millisecond) // e.g. EIO while the link is down; do not spin
			continue
		}
		if fn := t.recv.Load(); fn != nil {
			(*fn)(buf[:n])
		}
	}
}

// Name is the interface name.
func (t *TAP) Name() string { return t.name }

// Send implements Backend.
func (t *TAP) Send(frame []byte) {
	if _, err := t.f.Write(frame); err != nil {
		t.writeErrs.Add(1)
	}
}

// WriteErrors counts frames Linux refused (for instance while the
// interface is down).
func (t *TAP) WriteErrors() uint64 { return t.writeErrs.Load() }

// SetReceiver implements Backend.
func (t *TAP) SetReceiver(fn func(frame []byte)) { t.recv.Store(&fn) }

// Close closes the device and waits for the reader.
func (t *TAP) Close() error {
	var err error
	t.once.Do(func() {
		err = t.f.Close()
		t.wg.Wait()
	})
	return err
}

var _ Backend = (*TAP)(nil)
