module github.com/gohv/gohv

go 1.26.0

tool github.com/usbarmory/tamago/cmd/tamago

require (
	github.com/diskfs/go-diskfs v1.9.4
	github.com/usbarmory/tamago v1.26.0
)

require github.com/google/uuid v1.6.0 // indirect
