package ondisk

import (
	"fmt"
	"math/bits"
	"strconv"
)

// Field tables: the byte offset and size of every named field of the
// headers other packages change in place (AGI, AGF, AGFL, superblock,
// dinode core, btree block headers), as the kernel's xfs_ialloc_log_agi,
// xfs_alloc_log_agf and xfs_btree_log_block keep an offsets[] table per
// header and name fields by bit. Other packages name a field by its bit
// (ondisk.AGICount), read and write it with Get and Set, and log it with
// LogFields; they never know a byte offset.
//
// The tables are checked against real blocks written by xfs_db
// (layout_test.go).

// Field is one field of an on-disk structure: the kernel's name for it, its
// byte offset (offsetof) and size (sizeof). An array field has Elem set to
// the size of one element. Fields are big-endian but CRCs, which are
// stored little-endian (LE). This struct does not represent an on-disk
// struct.
type Field struct {
	Name string
	Off  int
	Size int
	Elem int  // size of one element of an array field; 0 for a scalar
	LE   bool // little-endian on disk (the CRCs)
}

// Last is the offset of the field's last byte (the inclusive end
// LogRange takes).
func (f Field) Last() int { return f.Off + f.Size - 1 }

// End is the offset just past the field.
func (f Field) End() int { return f.Off + f.Size }

// Bytes returns the field's bytes in b.
func (f Field) Bytes(b []byte) []byte { return b[f.Off:f.End():f.End()] }

// Uint returns the value of a scalar field of 1, 2, 4 or 8 bytes in b.
func (f Field) Uint(b []byte) uint64 {
	if f.LE && f.Size == 4 {
		return uint64(le.Uint32(b[f.Off:]))
	}
	switch f.Size {
	case 1:
		return uint64(b[f.Off])
	case 2:
		return uint64(be.Uint16(b[f.Off:]))
	case 4:
		return uint64(be.Uint32(b[f.Off:]))
	case 8:
		return be.Uint64(b[f.Off:])
	}
	panic("ondisk: " + f.Name + " is not a scalar field")
}

// PutUint stores v in a scalar field of 1, 2, 4 or 8 bytes of b
// (truncated to the field's size).
func (f Field) PutUint(b []byte, v uint64) {
	if f.LE && f.Size == 4 {
		le.PutUint32(b[f.Off:], uint32(v))
		return
	}
	switch f.Size {
	case 1:
		b[f.Off] = byte(v)
	case 2:
		be.PutUint16(b[f.Off:], uint16(v))
	case 4:
		be.PutUint32(b[f.Off:], uint32(v))
	case 8:
		be.PutUint64(b[f.Off:], v)
	default:
		panic("ondisk: " + f.Name + " is not a scalar field")
	}
}

// Index returns element i of an array field as a field of its own
// ("agi_unlinked[5]").
func (f Field) Index(i int) Field {
	if f.Elem == 0 || i < 0 || (i+1)*f.Elem > f.Size {
		panic(fmt.Sprintf("ondisk: %s has no element %d", f.Name, i))
	}
	return Field{Name: f.Name + "[" + strconv.Itoa(i) + "]", Off: f.Off + i*f.Elem, Size: f.Elem}
}

// elements is f.Index(i) for i in [0, n).
func elements(f Field, n int) []Field {
	out := make([]Field, n)
	for i := range out {
		out[i] = f.Index(i)
	}
	return out
}

// Layout is the field table of one structure: its name, its size, and its
// fields in on-disk order. Bit i of the structure's field mask names
// Fields[i]. This struct does not represent an on-disk struct.
type Layout struct {
	Struct string
	Size   int
	Fields []Field
}

// field returns the field of the single bit set in mask.
func (l *Layout) field(mask uint64) Field {
	if bits.OnesCount64(mask) != 1 || bits.TrailingZeros64(mask) >= len(l.Fields) {
		panic(fmt.Sprintf("ondisk: %#x does not name one field of %s", mask, l.Struct))
	}
	return l.Fields[bits.TrailingZeros64(mask)]
}

// ByteRange is bytes First..Last (inclusive) of a structure.
type ByteRange struct{ First, Last int }

// Ranges returns the byte ranges covering the fields of mask, in on-disk
// order, fields that touch merged into one range. (The kernel logs from
// the first field to the end of the last, xfs_btree_offsets; at the log's
// 128-byte granularity both mark the same chunks for the fields xfsfree
// logs together.)
func (l *Layout) Ranges(mask uint64) []ByteRange {
	var out []ByteRange
	for mask != 0 {
		i := bits.TrailingZeros64(mask)
		mask &^= 1 << i
		if i >= len(l.Fields) {
			panic(fmt.Sprintf("ondisk: bit %d names no field of %s", i, l.Struct))
		}
		f := l.Fields[i]
		if n := len(out); n > 0 && out[n-1].Last+1 >= f.Off {
			out[n-1].Last = max(out[n-1].Last, f.Last())
			continue
		}
		out = append(out, ByteRange{f.Off, f.Last()})
	}
	return out
}

// Lookup returns the field named name (the kernel's name, "agi_count").
func (l *Layout) Lookup(name string) (Field, bool) {
	for _, f := range l.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// RangeLogger is what logging fields needs of a transaction: that bytes
// first..last (inclusive) of a joined buffer b changed
// (journal.Transaction.LogRange, xfs_trans_log_buf).
type RangeLogger[B any] interface {
	LogRange(b B, first, last int)
}

// FieldMask is a set of fields of one structure, one bit per field of its
// Layout: AGIFields, AGFFields, SBFields, DinodeFields, ShortBlockFields,
// LongBlockFields, AGFLFields.
type FieldMask interface {
	~uint32 | ~uint64
	Layout() *Layout
}

// LogFields logs the fields of mask of the structure at the start of the
// joined buffer b (xfs_ialloc_log_agi, xfs_alloc_log_agf,
// xfs_btree_log_block): one LogRange per run of adjacent fields.
func LogFields[B any, M FieldMask](tx RangeLogger[B], b B, mask M) {
	LogFieldsAt(tx, b, 0, mask)
}

// LogFieldsAt is LogFields for a structure at byte offset off of b (an
// inode in its cluster buffer).
func LogFieldsAt[B any, M FieldMask](tx RangeLogger[B], b B, off int, mask M) {
	for _, r := range mask.Layout().Ranges(uint64(mask)) {
		tx.LogRange(b, off+r.First, off+r.Last)
	}
}

// LogField logs one field (an element of an array field, as
// AGIBucket(i)) of the structure at the start of b.
func LogField[B any](tx RangeLogger[B], b B, f Field) {
	tx.LogRange(b, f.Off, f.Last())
}
