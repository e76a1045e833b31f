// GOOS=tamago only: syscall.MkDev and syscall.DevFile exist only in
// tamago-go. The "!linux" keeps this file out of the project's stock-Go
// compile check (GOOS=linux -tags tamago, tools/scripts/tamago-check.sh),
// whose standard library lacks them.

//go:build tamago && !linux

package osfs

import (
	"io/fs"
	"syscall"
)

// Install mirrors fsys under root (for example "/disk") in TamaGo's
// in-memory filesystem, so that os.Open, os.ReadFile and os.ReadDir reach
// it; write may be nil (read-only), FATWriter(volume) or Ext4Writer(volume). Call it before
// other goroutines use the os package (tamago's MkDev takes no lock).
func Install(fsys fs.FS, root string, write WriteFunc) error {
	return Mirror(fsys, root, Hooks{
		Mkdir: syscall.Mkdir,
		MkDev: func(path string, mode uint32, open func() (DevFile, error)) error {
			return syscall.MkDev(path, mode, func() (syscall.DevFile, error) { return open() })
		},
		Write: write,
	})
}
