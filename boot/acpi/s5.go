package acpi

import (
	"bytes"
	"fmt"
)

// AML opcodes needed to read a Name(_S5, Package(){...}) definition (ACPI
// 20.2): the only AML a kernel without an interpreter must understand to
// power off.
const (
	amlNameOp     = 0x08
	amlPackageOp  = 0x12
	amlZeroOp     = 0x00
	amlOneOp      = 0x01
	amlBytePrefix = 0x0A
	amlWordPrefix = 0x0B
	amlDWordPfx   = 0x0C
	amlOnesOp     = 0xFF
	amlRootChar   = '\\'
)

// SleepType is the pair of SLP_TYP values of a sleep state.
type SleepType struct{ A, B uint8 }

// FindS5 finds the \_S5 package in a DSDT (or SSDT) body and returns its
// SLP_TYPa and SLP_TYPb values.
func FindS5(table []byte) (SleepType, error) {
	h, t, err := ParseHeader(table)
	if err != nil {
		return SleepType{}, err
	}
	if st, ok := ScanS5(t[HeaderSize:]); ok {
		return st, nil
	}
	return SleepType{}, fmt.Errorf("%w: no \\_S5 package in %s", ErrNotFound, h.Signature)
}

// ScanS5 is FindS5 over an AML body that the caller has already validated
// (header, checksum). It allocates nothing, so that the pre-runtime boot
// path can use it to power off. Malformed candidates are skipped, as
// FindS5 does.
func ScanS5(aml []byte) (SleepType, bool) {
	for i := 0; ; {
		j := bytes.Index(aml[i:], []byte("_S5_"))
		if j < 0 {
			return SleepType{}, false
		}
		at := i + j
		i = at + 4
		// The name must be the object of a NameOp, possibly rooted.
		k := at - 1
		if k >= 0 && aml[k] == amlRootChar {
			k--
		}
		if k < 0 || aml[k] != amlNameOp {
			continue
		}
		if st, fault := parseS5Package(aml[at+4:]); fault == "" {
			return st, true
		}
	}
}

// parseS5Package decodes Package(){SLP_TYPa, SLP_TYPb, ...}; fault is a
// constant description of what is wrong ("" when nothing is).
func parseS5Package(b []byte) (SleepType, string) {
	if len(b) < 3 || b[0] != amlPackageOp {
		return SleepType{}, "_S5 is not a package"
	}
	lead := b[1]
	n := int(lead >> 6) // bytes following the lead byte of PkgLength
	p := 2 + n
	if p+1 > len(b) {
		return SleepType{}, "_S5 package truncated"
	}
	count := b[p]
	p++
	if count < 1 {
		return SleepType{}, "empty _S5 package"
	}
	var vals [2]uint8
	for k := 0; k < 2 && k < int(count); k++ {
		if p >= len(b) {
			return SleepType{}, "_S5 package truncated"
		}
		switch op := b[p]; op {
		case amlZeroOp:
			vals[k], p = 0, p+1
		case amlOneOp:
			vals[k], p = 1, p+1
		case amlOnesOp:
			vals[k], p = 0xFF, p+1
		case amlBytePrefix, amlWordPrefix, amlDWordPfx:
			w := 1
			switch op {
			case amlWordPrefix:
				w = 2
			case amlDWordPfx:
				w = 4
			}
			if p+1+w > len(b) {
				return SleepType{}, "_S5 package truncated"
			}
			vals[k], p = b[p+1], p+1+w
		default:
			return SleepType{}, "_S5 element opcode is not an integer"
		}
	}
	if count == 1 {
		vals[1] = vals[0]
	}
	return SleepType{A: vals[0] & 7, B: vals[1] & 7}, ""
}
