package ext4_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/gohv/gohv/drivers/block"
	"github.com/gohv/gohv/drivers/block/ext4"
)

// ExampleMountRW writes a file to an ext4 volume and makes it durable. A
// volume the writer cannot change safely is still readable.
func ExampleMountRW() {
	var dev block.Device // a disk or partition holding an ext4 volume
	ctx := context.Background()
	vol, err := ext4.MountRW(ctx, dev, ext4.WriteOptions{})
	var fe *ext4.FeatureError
	switch {
	case errors.As(err, &fe), errors.Is(err, ext4.ErrNeedsCheck):
		ro, err := ext4.Mount(ctx, dev)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("read-only:", fe, ro.NeedsRecovery())
		return
	case err != nil:
		log.Fatal(err)
	}
	if err := vol.Mkdir("logs"); err != nil {
		log.Fatal(err)
	}
	f, err := vol.Create("logs/boot.txt")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintln(f, "booted")
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	// Until Sync, a crash loses the new file but leaves the volume clean.
	if err := vol.Sync(); err != nil {
		log.Fatal(err)
	}
}
