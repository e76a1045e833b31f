module github.com/gohv/gohv

go 1.26.0

tool github.com/usbarmory/tamago/cmd/tamago

require (
	github.com/diskfs/go-diskfs v1.9.4
	github.com/spf13/cobra v1.10.2
	github.com/spf13/pflag v1.0.9
	github.com/usbarmory/tamago v1.26.0
	golang.org/x/sys v0.43.0
	gvisor.dev/gvisor v0.0.0-20260518063529-209a0ce076a1
)

require (
	github.com/google/btree v1.1.2 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	golang.org/x/exp v0.0.0-20250711185948-6ae5c78190dc // indirect
	golang.org/x/time v0.15.0 // indirect
)
