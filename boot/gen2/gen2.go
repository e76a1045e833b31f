package gen2

import (
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
)

//go:generate nasm -f bin -o loader.efi loader.asm
//go:generate nasm -f bin -o testdata/payload.bin testdata/payload.asm

//go:embed loader.efi
var loaderEFI []byte

// GKI header facts the host-side checks need (docs/boot.md, "The gohv
// kernel image"); the loader validates the rest at boot.
const (
	gkiMagic      = "GOHVKIMG"
	gkiHeaderMin  = 32
	gkiTotalOff   = 24
	gkiSectorSize = 512
)

// ErrBadKernelImage reports a GKI that BuildEFI refuses to embed.
var ErrBadKernelImage = errors.New("gen2: bad kernel image")

// Loader returns a copy of the bare UEFI loader (no kernel section). It
// refuses to boot as it is: it reports "no kernel section" and returns.
func Loader() []byte { return append([]byte(nil), loaderEFI...) }

// KernelSectionName is the PE section the loader looks for.
const KernelSectionName = kernelSectName

// BuildEFI returns the gohv UEFI loader with gki (a kernel image built by
// boot/kimage) appended as its last PE section, ".gohvkrn". The result is
// meant to be \EFI\BOOT\BOOTX64.EFI. Only the outline of the GKI is checked
// here (magic, declared size); the loader checks everything, CRC included,
// before it touches memory.
func BuildEFI(gki []byte) ([]byte, error) {
	if len(gki) < gkiHeaderMin || string(gki[:len(gkiMagic)]) != gkiMagic {
		return nil, fmt.Errorf("%w: no GOHVKIMG header", ErrBadKernelImage)
	}
	total := uint64(binary.LittleEndian.Uint32(gki[gkiTotalOff:]))
	if total != uint64(len(gki)) || total%gkiSectorSize != 0 {
		return nil, fmt.Errorf("%w: declared size %d, have %d bytes", ErrBadKernelImage, total, len(gki))
	}
	efi, err := appendSection(loaderEFI, kernelSectName, gki, scnInitData|scnMemRead)
	if err != nil {
		return nil, fmt.Errorf("gen2: embedding the kernel: %w", err)
	}
	return efi, nil
}

// KernelImage returns the GKI embedded in efi (a BuildEFI result), for tools
// that inspect or verify a built image. The bytes alias efi.
func KernelImage(efi []byte) ([]byte, error) {
	gki, err := sectionData(efi, kernelSectName)
	if err != nil {
		return nil, err
	}
	if len(gki) < gkiHeaderMin || string(gki[:len(gkiMagic)]) != gkiMagic {
		return nil, fmt.Errorf("%w: section %s holds no GOHVKIMG header", ErrBadKernelImage, kernelSectName)
	}
	return gki, nil
}
