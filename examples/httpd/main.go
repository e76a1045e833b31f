// Command httpd is a web server in a gohv kernel: net/http, unchanged,
// serving the files of the VM's data partition (the FAT32 partition
// `gohv build -data DIR` writes, or any FAT32 or ext4 filesystem on the
// VM's disks), with graceful shutdown: Stop-VM on Hyper-V (or the
// simulated host's shutdown request) closes the listener, lets the requests
// in flight finish, and the kernel then flushes the disks and powers off.
//
// It runs the same in a gohv kernel (Hyper-V, Azure) and as a Linux
// process against the simulated host: `gohv sim -tap tap0 ./examples/httpd`.
package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/http"
	"time"

	"github.com/gohv/gohv/drivers/block/mount"
	"github.com/gohv/gohv/kernel"
)

func main() {
	addr := flag.String("addr", ":80", "address to listen on")
	flag.Parse()
	kernel.Run(func(ctx context.Context) error { return serve(ctx, *addr) },
		kernel.WithGracePeriod(15*time.Second))
}

// serve runs the server until ctx is cancelled, then shuts it down
// gracefully.
func serve(ctx context.Context, addr string) error {
	k := kernel.FromContext(ctx)
	root, where := content(ctx, k)
	fmt.Println("httpd: serving", where)

	mux := http.NewServeMux()
	mux.Handle("/", http.FileServerFS(root))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ln, err := k.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println("httpd: listening on", ln.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()

	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	// The grace period of kernel.Run bounds this; keep a little of it for
	// the kernel's own shutdown path.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("httpd: shutdown: %w", err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Println("httpd: stopped")
	return nil
}

// content picks what to serve: the first filesystem found on the VM's
// disks, preferring a partition labelled or typed as gohv's data
// partition; without one, a page saying so.
func content(ctx context.Context, k *kernel.Kernel) (fs.FS, string) {
	if k != nil {
		for _, d := range k.Disks.Devices() {
			vols, _, err := mount.Mount(ctx, d, mount.Options{ReadOnly: true})
			if err != nil {
				continue
			}
			for _, v := range vols {
				if v.FS != nil {
					return v.FS, fmt.Sprintf("%s filesystem on %s", v.Type, v.Device.Info().Name)
				}
			}
		}
	}
	return fallback(), "a built-in page (no filesystem on the VM's disks)"
}

// builtin is served when no disk has a filesystem.
//
//go:embed static
var builtin embed.FS

func fallback() fs.FS {
	sub, err := fs.Sub(builtin, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}
