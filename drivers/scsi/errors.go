package scsi

import (
	"errors"
	"fmt"
)

// ErrMalformed is matched (errors.Is) by every parse error: the bytes are
// too short or inconsistent with their own length fields.
var ErrMalformed = errors.New("scsi: malformed response")

// ParseError says which structure failed to parse and why.
type ParseError struct {
	What   string // e.g. "INQUIRY", "sense"
	Reason string
	Len    int // bytes given
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("scsi: malformed %s (%d bytes): %s", e.What, e.Len, e.Reason)
}

// Unwrap makes errors.Is(err, ErrMalformed) true.
func (e *ParseError) Unwrap() error { return ErrMalformed }

func malformed(what string, b []byte, reason string) error {
	return &ParseError{What: what, Reason: reason, Len: len(b)}
}
