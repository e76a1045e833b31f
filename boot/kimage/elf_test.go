package kimage

import (
	"debug/elf"
	"encoding/binary"
)

// testSeg is one PT_LOAD segment of a synthetic ELF.
type testSeg struct {
	paddr uint64
	data  []byte
	memsz uint64
}

// testELF describes a synthetic kernel ELF for the tests. It is written
// here rather than taken from a toolchain so that the tests pin exactly
// which ELF shapes are accepted.
type testELF struct {
	class     elf.Class
	machine   elf.Machine
	segs      []testSeg
	notes     [][]byte // raw note records
	noteAsSec bool     // notes in a SHT_NOTE section only, no PT_NOTE
}

// xenNote encodes a Xen note record with the given type and value width.
func xenNote(typ uint32, value uint64, width int) []byte {
	return note("Xen", typ, value, width)
}

func note(name string, typ uint32, value uint64, width int) []byte {
	le := binary.LittleEndian
	nameb := append([]byte(name), 0)
	b := make([]byte, 12)
	le.PutUint32(b, uint32(len(nameb)))
	le.PutUint32(b[4:], uint32(width))
	le.PutUint32(b[8:], typ)
	b = append(b, nameb...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	d := make([]byte, width)
	switch width {
	case 4:
		le.PutUint32(d, uint32(value))
	case 8:
		le.PutUint64(d, value)
	}
	b = append(b, d...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func (t testELF) bytes() []byte {
	le := binary.LittleEndian
	is64 := t.class != elf.ELFCLASS32
	ehsz, phsz, shsz := 52, 32, 40
	if is64 {
		ehsz, phsz, shsz = 64, 56, 64
	}
	var noteData []byte
	for _, n := range t.notes {
		noteData = append(noteData, n...)
	}
	nph := len(t.segs)
	if len(noteData) > 0 && !t.noteAsSec {
		nph++
	}
	off := ehsz + phsz*nph
	noteOff := off
	off += len(noteData)
	segOff := make([]int, len(t.segs))
	for i, s := range t.segs {
		segOff[i] = off
		off += len(s.data)
	}
	shstr := []byte("\x00.note.Xen\x00.shstrtab\x00")
	shstrOff := off
	off += len(shstr)
	for off%8 != 0 {
		off++
	}
	shOff, nsh := 0, 0
	if t.noteAsSec {
		shOff, nsh = off, 3
		off += shsz * nsh
	}
	b := make([]byte, off)
	copy(b, "\x7fELF")
	b[4] = byte(t.class)
	b[5] = byte(elf.ELFDATA2LSB)
	b[6] = byte(elf.EV_CURRENT)
	machine := t.machine
	if machine == 0 {
		machine = elf.EM_X86_64
		if !is64 {
			machine = elf.EM_386
		}
	}
	le.PutUint16(b[16:], uint16(elf.ET_EXEC))
	le.PutUint16(b[18:], uint16(machine))
	le.PutUint32(b[20:], uint32(elf.EV_CURRENT))
	// e_entry, e_phoff, e_shoff, e_flags, e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
	if is64 {
		le.PutUint64(b[24:], 0x1234)
		le.PutUint64(b[32:], uint64(ehsz))
		le.PutUint64(b[40:], uint64(shOff))
		le.PutUint16(b[52:], uint16(ehsz))
		le.PutUint16(b[54:], uint16(phsz))
		le.PutUint16(b[56:], uint16(nph))
		le.PutUint16(b[58:], uint16(shsz))
		le.PutUint16(b[60:], uint16(nsh))
		if nsh > 0 {
			le.PutUint16(b[62:], 2)
		}
	} else {
		le.PutUint32(b[24:], 0x1234)
		le.PutUint32(b[28:], uint32(ehsz))
		le.PutUint32(b[32:], uint32(shOff))
		le.PutUint16(b[40:], uint16(ehsz))
		le.PutUint16(b[42:], uint16(phsz))
		le.PutUint16(b[44:], uint16(nph))
		le.PutUint16(b[46:], uint16(shsz))
		le.PutUint16(b[48:], uint16(nsh))
		if nsh > 0 {
			le.PutUint16(b[50:], 2)
		}
	}
	ph := b[ehsz:]
	putPh := func(typ elf.ProgType, off int, paddr uint64, filesz int, memsz uint64, align uint64) {
		if is64 {
			le.PutUint32(ph[0:], uint32(typ))
			le.PutUint32(ph[4:], uint32(elf.PF_R|elf.PF_X))
			le.PutUint64(ph[8:], uint64(off))
			le.PutUint64(ph[16:], paddr) // vaddr
			le.PutUint64(ph[24:], paddr)
			le.PutUint64(ph[32:], uint64(filesz))
			le.PutUint64(ph[40:], memsz)
			le.PutUint64(ph[48:], align)
		} else {
			le.PutUint32(ph[0:], uint32(typ))
			le.PutUint32(ph[4:], uint32(off))
			le.PutUint32(ph[8:], uint32(paddr))
			le.PutUint32(ph[12:], uint32(paddr))
			le.PutUint32(ph[16:], uint32(filesz))
			le.PutUint32(ph[20:], uint32(memsz))
			le.PutUint32(ph[24:], uint32(elf.PF_R|elf.PF_X))
			le.PutUint32(ph[28:], uint32(align))
		}
		ph = ph[phsz:]
	}
	if len(noteData) > 0 && !t.noteAsSec {
		putPh(elf.PT_NOTE, noteOff, 0, len(noteData), uint64(len(noteData)), 4)
	}
	for i, s := range t.segs {
		putPh(elf.PT_LOAD, segOff[i], s.paddr, len(s.data), s.memsz, 0x1000)
		copy(b[segOff[i]:], s.data)
	}
	copy(b[noteOff:], noteData)
	copy(b[shstrOff:], shstr)
	if t.noteAsSec {
		sh := b[shOff+shsz:] // section 0 stays null
		putSh := func(name uint32, typ elf.SectionType, off, size int) {
			le.PutUint32(sh[0:], name)
			le.PutUint32(sh[4:], uint32(typ))
			if is64 {
				le.PutUint64(sh[24:], uint64(off))
				le.PutUint64(sh[32:], uint64(size))
				le.PutUint64(sh[48:], 4)
			} else {
				le.PutUint32(sh[16:], uint32(off))
				le.PutUint32(sh[20:], uint32(size))
				le.PutUint32(sh[32:], 4)
			}
			sh = sh[shsz:]
		}
		putSh(1, elf.SHT_NOTE, noteOff, len(noteData))
		putSh(11, elf.SHT_STRTAB, shstrOff, len(shstr))
	}
	return b
}
