package fat

import (
	"strconv"
	"strings"
	"unicode/utf16"
)

// shortChars are the characters allowed in a short name besides A-Z and
// 0-9 (spec "Directory Structure", DIR_Name).
const shortChars = "$%'-_@~`!(){}^#&"

func shortOK(r rune) bool {
	return r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(shortChars, r)
}

// exactShort returns the 8.3 form of name when name is already a valid
// upper-case short name (so no long name entry is needed).
func exactShort(name string) ([11]byte, bool) {
	var s [11]byte
	base, ext, _ := strings.Cut(name, ".")
	if base == "" || len(base) > 8 || len(ext) > 3 || strings.Contains(ext, ".") {
		return s, false
	}
	for _, r := range base + ext {
		if !shortOK(r) {
			return s, false
		}
	}
	copy(s[:], strings.Repeat(" ", 11))
	copy(s[:8], base)
	copy(s[8:], ext)
	return s, true
}

// basis derives the upper-case base and extension a generated short name
// starts from (the "basis-name generation" of the spec, simplified: any
// character not allowed becomes '_').
func basis(name string) (base, ext string) {
	conv := func(s string, n int) string {
		var b strings.Builder
		for _, r := range strings.ToUpper(s) {
			switch {
			case r == ' ' || r == '.':
				continue
			case shortOK(r):
				b.WriteRune(r)
			default:
				b.WriteByte('_')
			}
			if b.Len() == n {
				break
			}
		}
		return b.String()
	}
	b, e := name, ""
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		b, e = name[:i], name[i+1:]
	}
	base, ext = conv(b, 8), conv(e, 3)
	if base == "" {
		base = "_"
	}
	return base, ext
}

// assignShortNames gives every child of dir a unique short name: the
// name itself when it is a valid upper-case 8.3 name, else a generated
// one with a long name alongside.
func assignShortNames(dir *node) {
	used := map[[11]byte]bool{}
	var rest []*node
	for _, c := range dir.children {
		if s, ok := exactShort(c.name); ok && !used[s] {
			c.short, c.lfn = s, false
			used[s] = true
			continue
		}
		rest = append(rest, c)
	}
	for _, c := range rest {
		c.lfn = true
		base, ext := basis(c.name)
		mk := func(b string) [11]byte {
			var s [11]byte
			copy(s[:], strings.Repeat(" ", 11))
			copy(s[:8], b)
			copy(s[8:], ext)
			return s
		}
		// A name that differs only in case keeps its basis; others get a
		// numeric tail, as Windows does.
		if s := mk(base); strings.EqualFold(c.name, strings.TrimSpace(string(s[:8]))+dotExt(ext)) && !used[s] {
			c.short = s
			used[s] = true
			continue
		}
		for i := 1; ; i++ {
			tail := "~" + strconv.Itoa(i)
			s := mk(base[:min(len(base), 8-len(tail))] + tail)
			if !used[s] {
				c.short = s
				used[s] = true
				break
			}
		}
	}
}

func dotExt(ext string) string {
	if ext == "" {
		return ""
	}
	return "." + ext
}

// lfnEntries returns the number of long-name entries name needs.
func lfnEntries(name string) int {
	return (len(utf16.Encode([]rune(name))) + lfnChars - 1) / lfnChars
}
