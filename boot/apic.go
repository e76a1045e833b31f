package boot

// Local APIC mode (Intel SDM Vol. 3A §11.4.4 and §11.12). tamago drives the
// local APIC through its xAPIC MMIO window at 0xFEE00000 (EOI, SVR, ICR);
// in x2APIC mode that window is dead and every EOI would be lost, so a
// firmware that hands over in x2APIC mode must be undone before tamago
// touches the APIC.
const (
	// apicBaseEXTD selects x2APIC mode; apicBaseEN enables the APIC.
	apicBaseEXTD = 1 << 10
	apicBaseEN   = 1 << 11
)

// maxXAPICID is the largest APIC ID xAPIC mode can address.
const maxXAPICID = 254

// xapicCheck says whether the local APIC may be taken back to xAPIC mode:
// a firmware lock forbids it, and an x2APIC ID above 254 has no xAPIC
// equivalent. cur is IA32_APIC_BASE, id the x2APIC ID (read only in
// x2APIC mode), locked the IA32_XAPIC_DISABLE_STATUS lock bit.
func xapicCheck(cur uint64, id uint32, locked bool) bootError {
	if cur&apicBaseEXTD == 0 {
		return bootOK
	}
	if locked {
		return errX2APICLocked
	}
	if id > maxXAPICID {
		return errX2APICID
	}
	return bootOK
}

// xapicWrites returns the IA32_APIC_BASE values to write, in order, to put
// the local APIC in enabled xAPIC mode from its current value cur (the
// base address and the other bits are kept). x2APIC → xAPIC is not a legal
// transition (SDM §11.12.5): it goes through the disabled state first.
func xapicWrites(cur uint64) (w [2]uint64, n int) {
	switch {
	case cur&apicBaseEXTD != 0:
		w[0] = cur &^ (apicBaseEXTD | apicBaseEN)
		w[1] = w[0] | apicBaseEN
		return w, 2
	case cur&apicBaseEN == 0:
		w[0] = cur | apicBaseEN
		return w, 1
	}
	return w, 0
}
