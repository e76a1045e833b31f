package kimage

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Xen ELF note identifying the PVH 32-bit entry point (Xen public
// elfnote.h, XEN_ELFNOTE_PHYS32_ENTRY; docs/boot.md, "One hand-off
// protocol: PVH").
const (
	xenNoteName      = "Xen"
	xenNotePhys32Ent = 18
)

// Build flattens a kernel ELF (ELF64 or ELF32, x86) into a GKI: its PT_LOAD
// segments at their physical addresses and the PVH entry from its Xen note.
func Build(elfFile []byte) ([]byte, error) {
	f, err := elf.NewFile(bytes.NewReader(elfFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotELF, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 && f.Machine != elf.EM_386 {
		return nil, fmt.Errorf("%w: machine %v", ErrNotELF, f.Machine)
	}
	entry, err := pvhEntry(f)
	if err != nil {
		return nil, err
	}
	var segs []Segment
	var progs []*elf.Prog
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Memsz == 0 {
			continue
		}
		if p.Filesz > p.Memsz {
			return nil, fmt.Errorf("%w: segment at %#x has file size %#x above memory size %#x", ErrFormat, p.Paddr, p.Filesz, p.Memsz)
		}
		if p.Filesz >= MaxPaddr {
			return nil, fmt.Errorf("%w: segment at %#x size %#x", ErrSegmentHigh, p.Paddr, p.Filesz)
		}
		// Checked before the output is allocated: a corrupt header must
		// not make Build ask for gigabytes.
		if p.Off > uint64(len(elfFile)) || p.Filesz > uint64(len(elfFile))-p.Off {
			return nil, fmt.Errorf("%w: segment at %#x extends past the end of the file", ErrNotELF, p.Paddr)
		}
		segs = append(segs, Segment{Paddr: p.Paddr, FileSize: uint32(p.Filesz), MemSize: p.Memsz})
		progs = append(progs, p)
	}
	if len(segs) == 0 {
		return nil, ErrNoSegments
	}
	if err := checkLayout(segs, entry); err != nil {
		return nil, err
	}
	hs := uint64(headerSizeFor(len(segs)))
	off := hs
	for i := range segs {
		segs[i].FileOffset = uint32(off)
		off = alignUp(off+uint64(segs[i].FileSize), SectorSize)
		if off >= MaxPaddr {
			return nil, fmt.Errorf("%w: image would exceed 4 GiB", ErrFormat)
		}
	}
	out := make([]byte, off)
	for i, p := range progs {
		s := segs[i]
		if _, err := io.ReadFull(p.Open(), out[s.FileOffset:s.FileOffset+s.FileSize]); err != nil {
			return nil, fmt.Errorf("%w: reading segment at %#x: %w", ErrNotELF, s.Paddr, err)
		}
	}
	le := binary.LittleEndian
	copy(out[offMagic:], Magic)
	le.PutUint32(out[offVersion:], Version)
	le.PutUint32(out[offHeaderSize:], uint32(hs))
	le.PutUint32(out[offEntry:], entry)
	le.PutUint32(out[offCount:], uint32(len(segs)))
	le.PutUint32(out[offTotalSize:], uint32(off))
	for i, s := range segs {
		putSegment(out[offSegments+segEntrySize*i:], s)
	}
	le.PutUint32(out[offCRC:], checksum(out[hs:]))
	return out, nil
}

// pvhEntry finds the XEN_ELFNOTE_PHYS32_ENTRY note in PT_NOTE segments or,
// failing that, in SHT_NOTE sections (some linkers emit no PT_NOTE).
func pvhEntry(f *elf.File) (uint32, error) {
	var errs []error
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		e, ok, err := scanNotes(p.Open(), p.Filesz, p.Align, f.ByteOrder)
		if ok {
			return e, nil
		}
		errs = append(errs, err)
	}
	for _, s := range f.Sections {
		if s.Type != elf.SHT_NOTE {
			continue
		}
		e, ok, err := scanNotes(s.Open(), s.Size, s.Addralign, f.ByteOrder)
		if ok {
			return e, nil
		}
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return 0, fmt.Errorf("%w (%w)", ErrNoPVHEntry, err)
	}
	return 0, ErrNoPVHEntry
}

// scanNotes walks one note area. A malformed area yields an error but does
// not stop the search in other areas.
func scanNotes(r io.Reader, size, align uint64, bo binary.ByteOrder) (uint32, bool, error) {
	if size > 1<<20 {
		return 0, false, fmt.Errorf("note area of %d bytes is implausibly large", size)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, false, fmt.Errorf("reading notes: %w", err)
	}
	if align != 8 {
		align = 4
	}
	for len(buf) >= 12 {
		namesz, descsz, typ := uint64(bo.Uint32(buf)), uint64(bo.Uint32(buf[4:])), bo.Uint32(buf[8:])
		nameEnd := 12 + alignUp(namesz, align)
		descEnd := nameEnd + alignUp(descsz, align)
		if namesz > uint64(len(buf)) || descsz > uint64(len(buf)) || descEnd > uint64(len(buf))+align-1 || nameEnd+descsz > uint64(len(buf)) {
			return 0, false, errors.New("truncated note")
		}
		name := string(bytes.TrimRight(buf[12:12+namesz], "\x00"))
		desc := buf[nameEnd : nameEnd+descsz]
		if name == xenNoteName && typ == xenNotePhys32Ent {
			switch descsz {
			case 4:
				return bo.Uint32(desc), true, nil
			case 8:
				v := bo.Uint64(desc)
				if v >= MaxPaddr {
					return 0, false, fmt.Errorf("PVH entry %#x above 4 GiB", v)
				}
				return uint32(v), true, nil
			default:
				return 0, false, fmt.Errorf("PVH entry note has %d-byte value", descsz)
			}
		}
		if descEnd >= uint64(len(buf)) {
			break
		}
		buf = buf[descEnd:]
	}
	return 0, false, nil
}
