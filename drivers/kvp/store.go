package kvp

import (
	"bytes"
	"encoding/binary"
	"strconv"
)

// entry is one stored pair, kept in fixed arrays so that replacing a value
// allocates nothing.
type entry struct {
	typ    ValueType
	keyLen int // bytes of UTF-16LE, no NUL
	valLen int
	key    [KeyMax]byte
	val    [ValueMax]byte
}

func (e *entry) keyBytes() []byte { return e.key[:e.keyLen] }
func (e *entry) valBytes() []byte { return e.val[:e.valLen] }

// set replaces the value and reports whether it changed.
func (e *entry) set(typ ValueType, v []byte) bool {
	changed := typ != e.typ || !bytes.Equal(v, e.valBytes())
	e.typ = typ
	e.valLen = copy(e.val[:], v)
	return changed
}

// value decodes the stored value for the application.
func (e *entry) value() Value {
	v := e.valBytes()
	switch e.typ {
	case TypeDWORD:
		return Value{Type: e.typ, Int: uint64(binary.LittleEndian.Uint32(v))}
	case TypeQWORD, TypeQWORDLinux:
		return Value{Type: e.typ, Int: binary.LittleEndian.Uint64(v)}
	}
	return Value{Type: e.typ, Str: decodeUTF16(trimNUL(v))}
}

// store is one pool's pairs in insertion order, which is the enumeration
// order. Deleted entries are kept on a free list for reuse.
type store struct {
	entries []*entry
}

func (s *store) find(k []byte) int {
	for i, e := range s.entries {
		if bytes.Equal(e.keyBytes(), k) {
			return i
		}
	}
	return -1
}

// put sets k to v. It reports whether the pool changed, or ok false when
// the pool is full.
func (s *store) put(free *[]*entry, limit int, k []byte, typ ValueType, v []byte) (changed, ok bool) {
	if i := s.find(k); i >= 0 {
		return s.entries[i].set(typ, v), true
	}
	if len(s.entries) >= limit {
		return false, false
	}
	var e *entry
	if n := len(*free); n > 0 {
		e, *free = (*free)[n-1], (*free)[:n-1]
	} else {
		e = new(entry)
	}
	e.keyLen = copy(e.key[:], k)
	e.set(typ, v)
	s.entries = append(s.entries, e)
	return true, true
}

// remove deletes k and reports whether it was there.
func (s *store) remove(free *[]*entry, k []byte) bool {
	i := s.find(k)
	if i < 0 {
		return false
	}
	*free = append(*free, s.entries[i])
	copy(s.entries[i:], s.entries[i+1:])
	s.entries[len(s.entries)-1] = nil
	s.entries = s.entries[:len(s.entries)-1]
	return true
}

// Value is a KVP value as the application sees it.
type Value struct {
	Type ValueType
	// Str is the text of a string value (TypeString, TypeExpandString),
	// without its NUL.
	Str string
	// Int is the number of a TypeDWORD or TypeQWORD value.
	Int uint64
}

// String returns the text, or the number in decimal.
func (v Value) String() string {
	switch v.Type {
	case TypeDWORD, TypeQWORD, TypeQWORDLinux:
		return strconv.FormatUint(v.Int, 10)
	}
	return v.Str
}

// Entry is one key and value of a pool.
type Entry struct {
	Key   string
	Value Value
}
