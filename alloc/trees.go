package alloc

import (
	"cmp"
	"encoding/binary"

	"github.com/xfsfree/xfsfree/ondisk"
)

// The three AGF-rooted btrees as the btree engine sees them: record keys,
// key order, where their root lives and where their blocks come from.

var be = binary.BigEndian

// dir is a lookup direction (XFS_LOOKUP_LE, EQ, GE).
type dir int

const (
	lookLE dir = iota
	lookEQ
	lookGE
)

// cursor is a position at one record of a btree, as the engine's Cursor.
type cursor interface {
	Rec() []byte
	Update(rec []byte) error
	Delete() error
}

// tree is the part of the btree engine this package uses.
type tree interface {
	Lookup(tx Tx, key []byte, d dir) (cursor, bool, error)
	Insert(tx Tx, rec []byte) error
	// Last returns a copy of the last record, ok false if the btree is empty.
	Last(tx Tx) (rec []byte, ok bool, err error)
}

// treeSpec describes one AG btree for the engine. This struct does not
// represent an on-disk struct.
type treeSpec struct {
	Type   *ondisk.BtreeType
	Kind   *ondisk.BlockKind
	G      *ondisk.Geometry
	AG     uint32
	Root   uint32
	Levels int
	RecKey func(rec []byte) []byte
	// RecHighKey is the high key of a record (overlapping btrees only).
	RecHighKey func(rec []byte) []byte
	Cmp        func(a, b []byte) int
	SetRoot    func(tx Tx, root uint32, levels int) error
	Blocks     Blocks
}

// openTree makes the engine's btree for a spec. It is nil until the btree
// engine's write side exists (engine.go); every operation that changes a
// btree then fails with errNoEngine.
var openTree func(s *treeSpec) tree

// Blocks is where a btree gets new blocks and puts freed ones (the
// method set of btree.Blocks).
type Blocks interface {
	Alloc(tx Tx, near uint32) (agbno uint32, err error)
	Free(tx Tx, agbno uint32) error
}

// Alloc records and keys: [startblock, blockcount]; the bnobt orders by
// startblock only (xfs_bnobt_cmp_key_with_cur), the cntbt by blockcount
// then startblock.

func allocRecKey(rec []byte) []byte { return rec[:8] }

func bnoCmp(a, b []byte) int { return cmp.Compare(be.Uint32(a), be.Uint32(b)) }

func cntCmp(a, b []byte) int {
	if c := cmp.Compare(be.Uint32(a[4:]), be.Uint32(b[4:])); c != 0 {
		return c
	}
	return cmp.Compare(be.Uint32(a), be.Uint32(b))
}

func allocRec(bno, n uint32) []byte {
	r := make([]byte, ondisk.AllocRecLen)
	ondisk.AllocRec{StartBlock: bno, BlockCount: n}.Encode(r)
	return r
}

// Rmap keys: [startblock, owner, offset with the attr-fork and bmbt flags
// but not the unwritten flag] (ondisk_rec_offset_to_key), compared in
// that order with the unwritten bit masked (offset_keymask).

func rmapRecKey(rec []byte) []byte {
	r := ondisk.DecodeRmapRec(rec)
	k := make([]byte, ondisk.RmapKeyLen)
	ondisk.RmapKey{StartBlock: r.StartBlock, Owner: r.Owner, Offset: r.Offset &^ ondisk.RmapOffUnwritten}.Encode(k)
	return k
}

// rmapRecHighKey is xfs_rmapbt_init_high_key_from_rec: the last block, and
// for file data the last file offset.
func rmapRecHighKey(rec []byte) []byte {
	r := ondisk.DecodeRmapRec(rec)
	adj := r.BlockCount - 1
	off := r.Offset &^ ondisk.RmapOffUnwritten
	if ondisk.IsInodeOwner(r.Owner) && off&ondisk.RmapOffBmbtBlock == 0 {
		off = ((off & ondisk.RmapOffMask) + uint64(adj)) | (off &^ ondisk.RmapOffMask)
	}
	k := make([]byte, ondisk.RmapKeyLen)
	ondisk.RmapKey{StartBlock: r.StartBlock + adj, Owner: r.Owner, Offset: off}.Encode(k)
	return k
}

func rmapCmp(a, b []byte) int {
	x, y := ondisk.DecodeRmapKey(a), ondisk.DecodeRmapKey(b)
	if c := cmp.Compare(x.StartBlock, y.StartBlock); c != 0 {
		return c
	}
	if c := cmp.Compare(x.Owner, y.Owner); c != 0 {
		return c
	}
	return cmp.Compare(x.Offset&^ondisk.RmapOffUnwritten, y.Offset&^ondisk.RmapOffUnwritten)
}

func rmapKey(bno uint32, o Owner) []byte {
	k := make([]byte, ondisk.RmapKeyLen)
	ondisk.RmapKey{StartBlock: bno, Owner: o.Owner, Offset: o.offsetField()}.Encode(k)
	return k
}

// spec returns the engine's description of btree i (ondisk.AGFBno, AGFCnt,
// AGFRmap) as the AGF holds it now.
func (ag *AG) spec(i int) *treeSpec {
	s := &treeSpec{G: ag.G, AG: ag.Agno, Root: ag.Root(i), Levels: ag.Levels(i),
		SetRoot: func(tx Tx, root uint32, levels int) error { return ag.setRoot(tx, i, root, levels) }}
	switch i {
	case ondisk.AGFBno:
		s.Type, s.Kind, s.RecKey, s.Cmp = ondisk.BtBnobt, ondisk.KindBnobt, allocRecKey, bnoCmp
		s.Blocks = &AGFLBlocks{AG: ag}
	case ondisk.AGFCnt:
		s.Type, s.Kind, s.RecKey, s.Cmp = ondisk.BtCntbt, ondisk.KindCntbt, allocRecKey, cntCmp
		s.Blocks = &AGFLBlocks{AG: ag}
	case ondisk.AGFRmap:
		s.Type, s.Kind, s.RecKey, s.RecHighKey, s.Cmp = ondisk.BtRmapbt, ondisk.KindRmapbt, rmapRecKey, rmapRecHighKey, rmapCmp
		s.Blocks = &AGFLBlocks{AG: ag, Rmap: true}
	}
	return s
}

// tree opens btree i for one step of an operation. The root can move
// between steps (SetRoot), so callers open it again for each.
func (ag *AG) tree(i int) (tree, error) {
	if openTree == nil {
		return nil, errNoEngine
	}
	return openTree(ag.spec(i)), nil
}
