package ondisk

import (
	"errors"
	"fmt"
)

// ErrCorrupt is wrapped by every *CorruptError, so callers can test
// errors.Is(err, ondisk.ErrCorrupt).
var ErrCorrupt = errors.New("corrupt metadata")

// ErrUnsupported is wrapped by errors for features xfsfree refuses.
var ErrUnsupported = errors.New("unsupported filesystem")

// NoAG marks a CorruptError whose structure is not tied to one AG.
const NoAG = ^uint32(0)

// CorruptError names where a verifier found bad metadata: the AG, the block
// (daddr), the structure and the field, with the value found and, where one
// exists, the value expected.
type CorruptError struct {
	AG     uint32 // NoAG if not AG-bound
	Daddr  int64  // -1 if unknown
	Struct string // "AGI", "inobt block", "dinode 133", ...
	Field  string // "agi_magicnum", "crc", ...
	Found  any
	Want   any // nil if there is no single expected value
	Msg    string
}

func (e *CorruptError) Error() string {
	s := ""
	if e.AG != NoAG {
		s += fmt.Sprintf("AG %d, ", e.AG)
	}
	if e.Daddr >= 0 {
		s += fmt.Sprintf("daddr %d, ", e.Daddr)
	}
	s += e.Struct + ": " + e.Field
	if e.Msg != "" {
		s += " " + e.Msg
	}
	if e.Found != nil {
		s += fmt.Sprintf(": found %v", fmtVal(e.Found))
		if e.Want != nil {
			s += fmt.Sprintf(", want %v", fmtVal(e.Want))
		}
	}
	return s
}

func (e *CorruptError) Unwrap() error { return ErrCorrupt }

func fmtVal(v any) string {
	switch x := v.(type) {
	case uint32:
		return fmt.Sprintf("%#x", x)
	case uint16:
		return fmt.Sprintf("%#x", x)
	case uint64:
		return fmt.Sprintf("%#x", x)
	default:
		return fmt.Sprint(v)
	}
}

// Where locates a block for verifier errors. Callers fill what they know.
type Where struct {
	AG    uint32 // NoAG if not AG-bound
	Daddr int64  // -1 if unknown
}

// Corrupt builds a *CorruptError at w.
func (w Where) Corrupt(st, field string, found, want any, msg string) *CorruptError {
	return &CorruptError{AG: w.AG, Daddr: w.Daddr, Struct: st, Field: field, Found: found, Want: want, Msg: msg}
}

// SetLocation fills in AG and Daddr of a *CorruptError inside err if they are
// unknown, and returns err. Used by callers that know the block's address
// when a pure decoder did not.
func SetLocation(err error, ag uint32, daddr int64) error {
	var ce *CorruptError
	if errors.As(err, &ce) {
		if ce.AG == NoAG {
			ce.AG = ag
		}
		if ce.Daddr < 0 {
			ce.Daddr = daddr
		}
	}
	return err
}
