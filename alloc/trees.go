package alloc

import (
	"cmp"

	"github.com/xfsfree/xfsfree/btree"
	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// The three AGF-rooted btrees as the btree engine sees them: record keys,
// key order, where their root lives and where their blocks come from.

// Lookup directions, and the engine's cursor.
const (
	lookLE = btree.LE
	lookEQ = btree.EQ
	lookGE = btree.GE
)

type cursor = *btree.Cursor

// Blocks is where a btree gets new blocks and puts freed ones.
type Blocks = btree.Blocks

// Alloc records and keys: [startblock, blockcount]; the bnobt orders by
// startblock only (xfs_bnobt_cmp_key_with_cur), the cntbt by blockcount
// then startblock.

func allocRecKey(rec []byte) []byte { return rec[:8] }

func bnoCmp(a, b []byte) int {
	return cmp.Compare(ondisk.DecodeAllocRec(a).StartBlock, ondisk.DecodeAllocRec(b).StartBlock)
}

func cntCmp(a, b []byte) int {
	ka, kb := ondisk.DecodeAllocRec(a), ondisk.DecodeAllocRec(b)
	if c := cmp.Compare(ka.BlockCount, kb.BlockCount); c != 0 {
		return c
	}
	return cmp.Compare(ka.StartBlock, kb.StartBlock)
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
func rmapRecHighKey(dst, rec []byte) []byte {
	r := ondisk.DecodeRmapRec(rec)
	adj := r.BlockCount - 1
	off := r.Offset &^ ondisk.RmapOffUnwritten
	if ondisk.IsInodeOwner(r.Owner) && off&ondisk.RmapOffBmbtBlock == 0 {
		off = ((off & ondisk.RmapOffMask) + uint64(adj)) | (off &^ ondisk.RmapOffMask)
	}
	n := len(dst)
	dst = append(dst, make([]byte, ondisk.RmapKeyLen)...)
	ondisk.RmapKey{StartBlock: r.StartBlock + adj, Owner: r.Owner, Offset: off}.Encode(dst[n:])
	return dst
}

// rmapLeafHighKey is the greatest rmapRecHighKey of a leaf's records,
// compared as numbers rather than encoded and decoded per record.
func rmapLeafHighKey(dst []byte, leaf *ondisk.BtreeBlock) []byte {
	var best ondisk.RmapKey
	for j := 0; j < leaf.NumRecs; j++ {
		r := ondisk.DecodeRmapRec(leaf.Rec(j))
		adj := r.BlockCount - 1
		off := r.Offset &^ ondisk.RmapOffUnwritten
		if ondisk.IsInodeOwner(r.Owner) && off&ondisk.RmapOffBmbtBlock == 0 {
			off = ((off & ondisk.RmapOffMask) + uint64(adj)) | (off &^ ondisk.RmapOffMask)
		}
		k := ondisk.RmapKey{StartBlock: r.StartBlock + adj, Owner: r.Owner, Offset: off}
		if j == 0 || rmapKeyCmp(k, best) > 0 {
			best = k
		}
	}
	n := len(dst)
	dst = append(dst, make([]byte, ondisk.RmapKeyLen)...)
	best.Encode(dst[n:])
	return dst
}

func rmapCmp(a, b []byte) int { return rmapKeyCmp(ondisk.DecodeRmapKey(a), ondisk.DecodeRmapKey(b)) }

func rmapKeyCmp(x, y ondisk.RmapKey) int {
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

// Tree describes AGF btree i (ondisk.AGFBno, AGFCnt, AGFRmap) of AG agno
// with the given root and height, for walking and lookups: its record
// keys, key order and block kind. It has no SetRoot or Blocks: changes go
// through an AG (ag.tree).
func Tree(c *cache.Cache, g *ondisk.Geometry, agno uint32, i int, root uint32, levels int) *btree.Tree {
	t := &btree.Tree{Cache: c, G: g, AG: agno, Root: root, Levels: levels}
	switch i {
	case ondisk.AGFBno:
		t.Type, t.Kind, t.RecKey, t.Cmp = ondisk.BtBnobt, ondisk.KindBnobt, allocRecKey, bnoCmp
	case ondisk.AGFCnt:
		t.Type, t.Kind, t.RecKey, t.Cmp = ondisk.BtCntbt, ondisk.KindCntbt, allocRecKey, cntCmp
	case ondisk.AGFRmap:
		t.Type, t.Kind, t.RecKey, t.RecHighKey, t.Cmp = ondisk.BtRmapbt, ondisk.KindRmapbt, rmapRecKey, rmapRecHighKey, rmapCmp
		t.LeafHighKey = rmapLeafHighKey
	}
	return t
}

// tree opens btree i (ondisk.AGFBno, AGFCnt, AGFRmap) as the AGF holds it
// now, for changes. The root can move during a change (SetRoot), so
// callers open it again for each step.
func (ag *AG) tree(i int) *btree.Tree {
	if t := ag.trees[i]; t != nil {
		// Made once per AG value: only the root moves (and the btree
		// code sets it in the Tree as it calls SetRoot).
		t.Root, t.Levels = ag.Root(i), ag.Levels(i)
		return t
	}
	t := Tree(nil, ag.G, ag.Agno, i, ag.Root(i), ag.Levels(i))
	t.SetRoot = func(tx btree.Tx, root uint32, levels int) error { return ag.setRoot(tx, i, root, levels) }
	t.Blocks = &AGFLBlocks{AG: ag, Rmap: i == ondisk.AGFRmap}
	ag.trees[i] = t
	return t
}

// lastRec returns a copy of the last record of t, ok false if t is empty.
func lastRec(tx Tx, t *btree.Tree) ([]byte, bool, error) {
	key := make([]byte, t.Type.KeyLen)
	for i := range key {
		key[i] = 0xff
	}
	c, ok, err := t.Lookup(tx, key, btree.LE)
	if err != nil || !ok {
		return nil, false, err
	}
	return c.Rec(), true, nil
}
