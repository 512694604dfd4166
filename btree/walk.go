// Package btree is the generic engine of the AG-rooted (short-form) btrees:
// inobt, finobt, bnobt, cntbt, rmapbt and refcountbt. It owns walking a
// btree level by level with read-ahead, checking its shape as it goes (block
// levels, key order, parent keys, sibling links, no block visited twice),
// looking records up, and changing them in a transaction (cursor.go,
// insert.go, delete.go, update.go mirror the kernel's xfs_btree.c). What is special to one btree (its record's key, how
// keys compare) is given by the caller in a Tree.
package btree

import (
	"fmt"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Tree is one AG's btree of one type, as found in its AG header. This
// struct does not represent an on-disk struct.
type Tree struct {
	Type   *ondisk.BtreeType
	Kind   *ondisk.BlockKind
	Cache  *cache.Cache
	G      *ondisk.Geometry
	AG     uint32
	Root   uint32 // agbno of the root block
	Levels int    // number of levels (the header's level field)
	// RecKey returns the key of a leaf record, laid out as a node key.
	RecKey func(rec []byte) []byte
	// Cmp orders two keys.
	Cmp func(a, b []byte) int
	// RecHighKey returns the high key of a leaf record of an overlapping
	// btree (rmapbt: the last block, owner and last offset the record
	// covers), laid out as a node key, appended to dst. Unused for other
	// btrees.
	RecHighKey func(dst, rec []byte) []byte
	// LeafHighKey, optional, appends to dst the greatest RecHighKey of
	// a leaf's records (a leaf has at least one), as the generic loop
	// over RecHighKey and Cmp finds it but faster: every delete of an
	// overlapping btree's record recomputes its leaf's high key.
	LeafHighKey func(dst []byte, leaf *ondisk.BtreeBlock) []byte

	// What changes need (Insert, Cursor.Update, Cursor.Delete).

	// SetRoot is called when the root block or the height changes, after
	// Root and Levels are set: the caller logs the AG header's fields.
	SetRoot func(tx Tx, root uint32, levels int) error
	// Blocks allocates and frees the btree's blocks.
	Blocks Blocks
}

func (t *Tree) corrupt(agbno uint32, field string, found, want any, msg string) error {
	return &ondisk.CorruptError{AG: t.AG, Daddr: t.G.AgbToDaddr(t.AG, agbno), Struct: t.Type.Name + " block",
		Field: field, Found: found, Want: want, Msg: msg}
}

func (t *Tree) validPtr(p uint64) bool {
	return p != 0 && p < uint64(t.G.AGSize(t.AG)) && p != ondisk.NullAgbno
}

// get reads and verifies one block; the caller releases the buffer.
func (t *Tree) get(agbno uint32) (*cache.Buf, *ondisk.BtreeBlock, error) {
	d := t.G.AgbToDaddr(t.AG, agbno)
	b, err := t.Cache.Get(d, t.G.BlockBBs(), t.Kind, ondisk.VerifyCtx{G: t.G, AG: t.AG, Daddr: d})
	if err != nil {
		return nil, nil, err
	}
	v, err := t.Type.View(b.Data)
	if err != nil {
		b.Release()
		return nil, nil, ondisk.SetLocation(err, t.AG, d)
	}
	return b, v, nil
}

// Walk calls fn with every leaf record, in key order. It reads the btree a
// level at a time, reading each level's blocks ahead, and checks on the
// way: every block has the level its parent implies; a node's keys ascend
// and each equals the first key of its child (the low key, for overlapping
// btrees, whose high keys must equal the greatest high key of the child's
// records or slots when RecHighKey is set); record keys ascend strictly
// across the whole leaf level; each
// level's blocks are linked left to right by their sibling pointers, with
// NULL at both ends; and no block is reached twice. A *CorruptError from fn
// that names no block is given the leaf's daddr. rec is valid only
// during the call, and fn must not read this btree's blocks.
func (t *Tree) Walk(fn func(rec []byte) error) error {
	if t.Levels < 1 || t.Levels > t.Type.MaxLevels(t.G) {
		return &ondisk.CorruptError{AG: t.AG, Daddr: -1, Struct: t.Type.Name, Field: "levels", Found: t.Levels,
			Msg: fmt.Sprintf("outside 1..%d", t.Type.MaxLevels(t.G))}
	}
	if !t.validPtr(uint64(t.Root)) {
		return &ondisk.CorruptError{AG: t.AG, Daddr: -1, Struct: t.Type.Name, Field: "root", Found: t.Root, Msg: "is not a block of the AG"}
	}
	seen := map[uint32]bool{}
	level := []uint32{t.Root}
	var want [][]byte     // the key each block's first entry must have (nil: root)
	var wantHigh [][]byte // overlapping: each block's high key
	checkHigh := t.Type.Overlapping && t.RecHighKey != nil
	var lastKey []byte
	for lvl := t.Levels - 1; lvl >= 0; lvl-- {
		if len(level) > 1 {
			ra := make([]cache.Extent, len(level))
			for i, a := range level {
				ra[i] = cache.Extent{Daddr: t.G.AgbToDaddr(t.AG, a), Len: t.G.BlockBBs()}
			}
			t.Cache.ReadAhead(ra)
		}
		var next []uint32
		var nextWant, nextWantHigh [][]byte
		for i, agbno := range level {
			if seen[agbno] {
				return t.corrupt(agbno, "block pointer", agbno, nil, "reached twice")
			}
			seen[agbno] = true
			err := func() error {
				b, v, err := t.get(agbno)
				if err != nil {
					return err
				}
				defer b.Release()
				h, err := ondisk.DecodeShortBlockHdr(b.Data)
				if err != nil {
					return ondisk.SetLocation(err, t.AG, b.Daddr)
				}
				if v.Level != lvl {
					return t.corrupt(agbno, "bb_level", v.Level, lvl, "")
				}
				left, right := ondisk.NullAgbno, ondisk.NullAgbno
				if i > 0 {
					left = int(level[i-1])
				}
				if i+1 < len(level) {
					right = int(level[i+1])
				}
				if int(h.LeftSib) != left {
					return t.corrupt(agbno, "bb_leftsib", h.LeftSib, uint32(left), "")
				}
				if int(h.RightSib) != right {
					return t.corrupt(agbno, "bb_rightsib", h.RightSib, uint32(right), "")
				}
				if v.NumRecs == 0 && !(lvl == t.Levels-1 && lvl == 0) {
					return t.corrupt(agbno, "bb_numrecs", 0, nil, "empty block below the root")
				}
				for j := 0; j < v.NumRecs; j++ {
					var k []byte
					if lvl == 0 {
						k = t.RecKey(v.Rec(j))
					} else {
						k = v.Key(j)
					}
					if j == 0 && want != nil && t.Cmp(k, want[i]) != 0 {
						return t.corrupt(agbno, "first key", fmt.Sprintf("%x", k), fmt.Sprintf("%x", want[i]), "differs from the parent's key")
					}
					if lvl == 0 {
						if lastKey != nil && t.Cmp(k, lastKey) <= 0 {
							return t.corrupt(agbno, fmt.Sprintf("record %d", j), fmt.Sprintf("%x", k), nil,
								fmt.Sprintf("is not above the previous record's key %x", lastKey))
						}
						lastKey = append(lastKey[:0], k...)
						if err := fn(v.Rec(j)); err != nil {
							// A record check that knew no block: name the leaf.
							return ondisk.SetLocation(err, t.AG, b.Daddr)
						}
						continue
					}
					if j > 0 && t.Cmp(k, v.Key(j-1)) <= 0 {
						return t.corrupt(agbno, fmt.Sprintf("key %d", j), fmt.Sprintf("%x", k), nil, "keys are not ascending")
					}
					p := v.Ptr(j)
					if !t.validPtr(p) {
						return t.corrupt(agbno, fmt.Sprintf("ptr %d", j), p, nil, "is not a block of the AG")
					}
					next = append(next, uint32(p))
					nextWant = append(nextWant, append([]byte(nil), k...))
					if checkHigh {
						nextWantHigh = append(nextWantHigh, append([]byte(nil), v.HighKey(j)...))
					}
				}
				if checkHigh && wantHigh != nil && v.NumRecs > 0 {
					if h := t.blockHighKey(v); t.Cmp(h, wantHigh[i]) != 0 {
						return t.corrupt(agbno, "high key", fmt.Sprintf("%x", h), fmt.Sprintf("%x", wantHigh[i]),
							"the parent's high key differs from the block's greatest high key")
					}
				}
				return nil
			}()
			if err != nil {
				return err
			}
		}
		level, want, wantHigh = next, nextWant, nextWantHigh
	}
	return nil
}

// blockHighKey is the greatest high key of a block's records (leaf) or
// slots (node) of an overlapping btree; the block is not empty.
func (t *Tree) blockHighKey(v *ondisk.BtreeBlock) []byte {
	if v.IsLeaf() && v.NumRecs > 0 && t.LeafHighKey != nil {
		return t.LeafHighKey(nil, v)
	}
	var max []byte
	for j := 0; j < v.NumRecs; j++ {
		var h []byte
		if v.IsLeaf() {
			h = t.RecHighKey(nil, v.Rec(j))
		} else {
			h = v.HighKey(j)
		}
		if max == nil || t.Cmp(h, max) > 0 {
			max = h
		}
	}
	return append([]byte(nil), max...)
}

// LookupLE returns a copy of the record with the greatest key <= key, as
// the kernel's xfs_btree_lookup(XFS_LOOKUP_LE); ok is false if every
// record's key is greater (or the btree is empty).
func (t *Tree) LookupLE(key []byte) (rec []byte, ok bool, err error) {
	agbno := t.Root
	for lvl := t.Levels - 1; ; lvl-- {
		b, v, err := t.get(agbno)
		if err != nil {
			return nil, false, err
		}
		if v.Level != lvl {
			b.Release()
			return nil, false, t.corrupt(agbno, "bb_level", v.Level, lvl, "")
		}
		// Binary search for the last entry whose key is <= key.
		lo, hi := 0, v.NumRecs // invariant: entries < lo are <= key, entries >= hi are > key
		for lo < hi {
			m := (lo + hi) / 2
			var k []byte
			if lvl == 0 {
				k = t.RecKey(v.Rec(m))
			} else {
				k = v.Key(m)
			}
			if t.Cmp(k, key) <= 0 {
				lo = m + 1
			} else {
				hi = m
			}
		}
		if lo == 0 {
			b.Release()
			return nil, false, nil
		}
		if lvl == 0 {
			rec = append([]byte(nil), v.Rec(lo-1)...)
			b.Release()
			return rec, true, nil
		}
		p := v.Ptr(lo - 1)
		b.Release()
		if !t.validPtr(p) {
			return nil, false, t.corrupt(agbno, fmt.Sprintf("ptr %d", lo-1), p, nil, "is not a block of the AG")
		}
		agbno = uint32(p)
	}
}
