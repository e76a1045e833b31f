package gen2

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// reassemble runs nasm on src and compares the result with want byte for
// byte: the committed binaries must be what the committed sources produce.
func reassemble(t *testing.T, src string, want []byte) {
	t.Helper()
	if _, err := exec.LookPath("nasm"); err != nil {
		t.Skip("nasm not installed")
	}
	out := filepath.Join(t.TempDir(), "out.bin")
	if b, err := exec.Command("nasm", "-f", "bin", "-o", out, src).CombinedOutput(); err != nil {
		t.Fatalf("nasm %s: %v\n%s", src, err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s assembles to %d bytes that differ from the committed %d bytes; run go generate", src, len(got), len(want))
	}
}

func TestLoaderMatchesSource(t *testing.T) { reassemble(t, "loader.asm", loaderEFI) }

func TestPayloadMatchesSource(t *testing.T) {
	reassemble(t, "testdata/payload.asm", testPayload)
}

// TestLoaderHeaders pins the loader's PE header to what UEFI firmware and
// BuildEFI rely on, read back with debug/pe.
func TestLoaderHeaders(t *testing.T) {
	f, err := pe.NewFile(bytes.NewReader(loaderEFI))
	if err != nil {
		t.Fatal(err)
	}
	if f.Machine != pe.IMAGE_FILE_MACHINE_AMD64 {
		t.Errorf("Machine %#x, want AMD64", f.Machine)
	}
	if f.Characteristics&pe.IMAGE_FILE_RELOCS_STRIPPED != 0 {
		t.Error("RELOCS_STRIPPED set: EDK2 would insist on loading at ImageBase")
	}
	oh, ok := f.OptionalHeader.(*pe.OptionalHeader64)
	if !ok {
		t.Fatalf("optional header %T, want PE32+", f.OptionalHeader)
	}
	if oh.Subsystem != pe.IMAGE_SUBSYSTEM_EFI_APPLICATION {
		t.Errorf("Subsystem %d, want %d", oh.Subsystem, pe.IMAGE_SUBSYSTEM_EFI_APPLICATION)
	}
	// EDK2 tries AllocateAddress at ImageBase only when it is >= 1 MiB; a
	// low base keeps the loader away from the kernel's physical range.
	if oh.ImageBase >= 1<<20 {
		t.Errorf("ImageBase %#x, want < 1 MiB", oh.ImageBase)
	}
	for i, d := range oh.DataDirectory {
		if d.Size != 0 {
			t.Errorf("data directory %d not empty: the loader has no imports or relocations", i)
		}
	}
	if len(f.Sections) != 2 {
		t.Fatalf("%d sections, want .text and .data", len(f.Sections))
	}
	for _, s := range f.Sections {
		w := s.Characteristics&pe.IMAGE_SCN_MEM_WRITE != 0
		x := s.Characteristics&pe.IMAGE_SCN_MEM_EXECUTE != 0
		if w && x {
			t.Errorf("section %s writable and executable", s.Name)
		}
		if s.Name == kernelSectName {
			t.Errorf("bare loader already has %s", s.Name)
		}
	}
	// Room for the kernel section header, zeroed.
	l, err := parsePE(loaderEFI)
	if err != nil {
		t.Fatal(err)
	}
	slot := l.sectTable + l.nsect*shSize
	if slot+shSize > int(oh.SizeOfHeaders) || !bytes.Equal(loaderEFI[slot:slot+shSize], make([]byte, shSize)) {
		t.Errorf("no free section header slot at %#x (headers %#x bytes)", slot, oh.SizeOfHeaders)
	}
	if oh.AddressOfEntryPoint != f.Sections[0].VirtualAddress {
		t.Errorf("entry %#x, want start of .text %#x", oh.AddressOfEntryPoint, f.Sections[0].VirtualAddress)
	}
}

// checkAppended validates a BuildEFI result with debug/pe: the kernel is the
// last section, aligned, sized, and the headers agree with it.
func checkAppended(t *testing.T, efi, gki []byte) {
	t.Helper()
	f, err := pe.NewFile(bytes.NewReader(efi))
	if err != nil {
		t.Fatal(err)
	}
	oh := f.OptionalHeader.(*pe.OptionalHeader64)
	if len(f.Sections) != 3 {
		t.Fatalf("%d sections, want 3", len(f.Sections))
	}
	prev, k := f.Sections[1], f.Sections[2]
	if k.Name != kernelSectName {
		t.Fatalf("last section %q, want %q", k.Name, kernelSectName)
	}
	if k.VirtualSize != uint32(len(gki)) {
		t.Errorf("VirtualSize %d, want %d", k.VirtualSize, len(gki))
	}
	if k.VirtualAddress%oh.SectionAlignment != 0 || k.VirtualAddress < prev.VirtualAddress+prev.VirtualSize {
		t.Errorf("VirtualAddress %#x unaligned or overlapping %s", k.VirtualAddress, prev.Name)
	}
	if k.Offset%oh.FileAlignment != 0 || k.Size%oh.FileAlignment != 0 || k.Size < k.VirtualSize {
		t.Errorf("raw data at %#x size %#x not aligned to %#x", k.Offset, k.Size, oh.FileAlignment)
	}
	if int(k.Offset+k.Size) != len(efi) {
		t.Errorf("raw data ends at %#x, file is %#x bytes", k.Offset+k.Size, len(efi))
	}
	want := (k.VirtualAddress + k.VirtualSize + oh.SectionAlignment - 1) &^ (oh.SectionAlignment - 1)
	if oh.SizeOfImage != want {
		t.Errorf("SizeOfImage %#x, want %#x", oh.SizeOfImage, want)
	}
	if k.Characteristics != pe.IMAGE_SCN_CNT_INITIALIZED_DATA|pe.IMAGE_SCN_MEM_READ {
		t.Errorf("characteristics %#x", k.Characteristics)
	}
	data, err := k.Data()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data[:len(gki)], gki) || !bytes.Equal(data[len(gki):], make([]byte, len(data)-len(gki))) {
		t.Error("section data is not the GKI followed by zero padding")
	}
	// The checksum must verify: recomputing over the file gives the stored value.
	if got := peChecksum(efi, l0opt(t, efi)+optCheckSumOff); got != oh.CheckSum || got == 0 {
		t.Errorf("CheckSum %#x, recomputed %#x", oh.CheckSum, got)
	}
	// The loader itself is untouched apart from the header fields.
	if !bytes.Equal(efi[0x200:len(loaderEFI)], loaderEFI[0x200:]) {
		t.Error("loader sections changed")
	}
}

func l0opt(t *testing.T, b []byte) int {
	l, err := parsePE(b)
	if err != nil {
		t.Fatal(err)
	}
	return l.opt
}

func TestBuildEFI(t *testing.T) {
	for _, c := range []struct {
		name string
		gki  []byte
	}{
		{"payload", payloadGKI()},
		{"two-segments", makeGKI(0x10010000,
			testSeg{paddr: 0x10010000, data: bytes.Repeat([]byte{0xc3}, 5000), memsz: 0x2000},
			testSeg{paddr: 0x10100000, data: bytes.Repeat([]byte{1}, 70000), memsz: 0x30000})},
		{"one-sector", makeGKI(0x200000, testSeg{paddr: 0x200000, memsz: 0x1000})},
	} {
		t.Run(c.name, func(t *testing.T) {
			efi, err := BuildEFI(c.gki)
			if err != nil {
				t.Fatal(err)
			}
			checkAppended(t, efi, c.gki)
			got, err := KernelImage(efi)
			if err != nil || !bytes.Equal(got, c.gki) {
				t.Errorf("KernelImage: %v, %d bytes, want the %d GKI bytes back", err, len(got), len(c.gki))
			}
			// BuildEFI must not modify the embedded loader.
			if !bytes.Equal(Loader()[:0x200], loaderEFI[:0x200]) || binary.LittleEndian.Uint16(loaderEFI[0x46:]) != 2 {
				t.Error("embedded loader modified")
			}
		})
	}
}

// TestChecksumKnown pins peChecksum to a hand-computed value: words
// 0x0201, 0x0403, [checksum field skipped], 0xffff, 0x0005 (odd tail).
func TestChecksumKnown(t *testing.T) {
	b := []byte{1, 2, 3, 4, 0xaa, 0xbb, 0xcc, 0xdd, 0xff, 0xff, 5}
	// 0x0201+0x0403 = 0x0604; +0xffff = 0x10603 -> fold 0x0604; +5 = 0x0609; + len 11.
	if got, want := peChecksum(b, 4), uint32(0x0609+11); got != want {
		t.Fatalf("peChecksum = %#x, want %#x", got, want)
	}
}

func TestBuildEFIErrors(t *testing.T) {
	good := payloadGKI()
	short := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(short[24:], uint32(len(good)+512))
	odd := append(append([]byte(nil), good...), 0)
	binary.LittleEndian.PutUint32(odd[24:], uint32(len(odd)))
	for _, c := range []struct {
		name string
		gki  []byte
	}{
		{"empty", nil},
		{"no-magic", make([]byte, 512)},
		{"size-mismatch", short},
		{"not-sectors", odd},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := BuildEFI(c.gki); !errors.Is(err, ErrBadKernelImage) {
				t.Fatalf("err = %v, want ErrBadKernelImage", err)
			}
		})
	}
}

func TestAppendSectionErrors(t *testing.T) {
	efi, err := BuildEFI(payloadGKI())
	if err != nil {
		t.Fatal(err)
	}
	// 0x200 bytes of headers hold four section headers after the 0x148
	// bytes before the table: one more append fits, the next does not.
	four, err := appendSection(efi, "x", []byte{1}, scnInitData)
	if err != nil {
		t.Fatalf("fourth section: %v", err)
	}
	if _, err := appendSection(four, "y", []byte{1}, scnInitData); !errors.Is(err, ErrBadPE) {
		t.Errorf("append to full headers: err = %v, want ErrBadPE", err)
	}
	l, err := parsePE(loaderEFI)
	if err != nil {
		t.Fatal(err)
	}
	dirty := append([]byte(nil), loaderEFI...)
	dirty[l.sectTable+l.nsect*shSize+39] = 1
	if _, err := appendSection(dirty, "x", []byte{1}, scnInitData); !errors.Is(err, ErrBadPE) {
		t.Errorf("append over a used slot: err = %v, want ErrBadPE", err)
	}
	if _, err := appendSection(loaderEFI, "123456789", nil, 0); err == nil {
		t.Error("9-byte name accepted")
	}
	mut := func(off int, v uint32) []byte {
		b := append([]byte(nil), loaderEFI...)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	opt := l0opt(t, loaderEFI)
	for _, c := range []struct {
		name string
		img  []byte
	}{
		{"truncated", loaderEFI[:0x40]},
		{"lfanew-out", mut(dosLfanewOff, 0xfffffff0)},
		{"pe32", mut(opt, 0x10b)},
		{"file-align", mut(opt+optFileAlignOff, 0x300)},
		{"sect-align", mut(opt+optSectAlignOff, 0x100)},
		{"headers-beyond-file", mut(opt+optSizeOfHeadersOff, 0x100000)},
		{"image-too-small", mut(opt+optSizeOfImageOff, 0x1000)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := appendSection(c.img, kernelSectName, []byte{1}, scnInitData); !errors.Is(err, ErrBadPE) {
				t.Fatalf("err = %v, want ErrBadPE", err)
			}
		})
	}
}

// FuzzAppendSection feeds arbitrary images to the PE parser: no panic, and
// any accepted result must be a PE that debug/pe reads with the new section
// last, holding the data.
func FuzzAppendSection(f *testing.F) {
	f.Add(loaderEFI, []byte("kernel"))
	f.Add(loaderEFI[:0x200], []byte{})
	f.Add([]byte("MZ"), []byte{1})
	f.Fuzz(func(t *testing.T, img, data []byte) {
		out, err := appendSection(img, kernelSectName, data, scnInitData|scnMemRead)
		if err != nil {
			return
		}
		pf, err := pe.NewFile(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("accepted image unreadable by debug/pe: %v", err)
		}
		s := pf.Sections[len(pf.Sections)-1]
		if s.Name != kernelSectName || s.VirtualSize != uint32(len(data)) {
			t.Fatalf("last section %q size %d", s.Name, s.VirtualSize)
		}
		got, err := s.Data()
		if err != nil || !bytes.Equal(got[:len(data)], data) {
			t.Fatalf("section data wrong: %v", err)
		}
	})
}

func TestKernelImageErrors(t *testing.T) {
	if _, err := KernelImage(loaderEFI); !errors.Is(err, ErrBadPE) {
		t.Errorf("bare loader: err = %v, want ErrBadPE (no section)", err)
	}
	notGKI, err := appendSection(loaderEFI, kernelSectName, make([]byte, 512), scnInitData)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := KernelImage(notGKI); !errors.Is(err, ErrBadKernelImage) {
		t.Errorf("section without GKI: err = %v, want ErrBadKernelImage", err)
	}
	// VirtualSize beyond the raw data: the tail would be zeros, not kernel.
	efi, err := BuildEFI(payloadGKI())
	if err != nil {
		t.Fatal(err)
	}
	l, err := parsePE(efi)
	if err != nil {
		t.Fatal(err)
	}
	sh := l.sectTable + (l.nsect-1)*shSize
	binary.LittleEndian.PutUint32(efi[sh+shVirtSizeOff:], binary.LittleEndian.Uint32(efi[sh+shRawSizeOff:])+1)
	if _, err := KernelImage(efi); !errors.Is(err, ErrBadPE) {
		t.Errorf("short raw data: err = %v, want ErrBadPE", err)
	}
	// No raw data at all, pointer beyond the file.
	binary.LittleEndian.PutUint32(efi[sh+shVirtSizeOff:], 0)
	binary.LittleEndian.PutUint32(efi[sh+shRawSizeOff:], 0)
	binary.LittleEndian.PutUint32(efi[sh+shRawPtrOff:], 0xffffff00)
	if _, err := KernelImage(efi); !errors.Is(err, ErrBadPE) {
		t.Errorf("empty section: err = %v, want ErrBadPE", err)
	}
}

// FuzzKernelImage: arbitrary files never panic KernelImage, and what it
// returns lies inside the file and starts with the GKI magic.
func FuzzKernelImage(f *testing.F) {
	efi, err := BuildEFI(payloadGKI())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(efi)
	f.Add(loaderEFI)
	f.Add(efi[:0x200])
	f.Fuzz(func(t *testing.T, b []byte) {
		gki, err := KernelImage(b)
		if err != nil {
			return
		}
		if len(gki) > len(b) || !bytes.HasPrefix(gki, []byte(gkiMagic)) {
			t.Fatalf("returned %d bytes from a %d-byte file", len(gki), len(b))
		}
	})
}
