// Package refcount owns the reference count btree of an allocation group,
// as the kernel's libxfs/xfs_refcount.c and xfs_refcount_btree.c do: the
// records of shared extents (how many files map each block, 2 or more)
// and of CoW staging extents (refcount 1, in the CoW domain: the CoW flag
// in rc_startblock, so all of them sort after the shared ones); raising
// and lowering the count of a range with the kernel's splits, merges and
// gap rule (xfs_refcount_adjust: a block without a record is mapped once,
// so a decrease frees it); recording and forgetting CoW staging extents
// (__xfs_refcount_cow_alloc, __xfs_refcount_cow_free) and listing the ones
// left after a crash (xfs_refcount_recover_cow_leftovers); the AGF's
// agf_refcount_root, _level and _blocks; and the btree's own blocks, taken
// from free space near xfs_refc_block and given back with owner OWN_REFC
// (xfs_refcountbt_alloc_block, xfs_refcountbt_free_block).
//
// Every record change goes through the generic btree engine in the
// caller's transaction; this package never edits a block itself.
//
// Not done: realtime refcount btrees (rtgroups), per-AG reservations.
package refcount

import (
	"cmp"
	"fmt"

	"github.com/xfsfree/xfsfree/alloc"
	"github.com/xfsfree/xfsfree/btree"
	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Tx is what refcount changes need of a transaction: exactly what the
// btree engine they go through needs (btree.Tx).
type Tx = btree.Tx

// The key of a refcount record is its raw rc_startblock, CoW flag included
// (xfs_refcountbt_init_key_from_rec), compared as an unsigned number.
func recKey(rec []byte) []byte { return rec[:ondisk.RefcKeyLen] }

func keyCmp(a, b []byte) int {
	return cmp.Compare(ondisk.DecodeRefcountKey(a).StartBlock, ondisk.DecodeRefcountKey(b).StartBlock)
}

// Tree describes AG agno's refcount btree with the given root and height,
// for walking and lookups (its records' keys, key order and block kind).
// It has no SetRoot or Blocks: changes go through an AG.
func Tree(c *cache.Cache, g *ondisk.Geometry, agno, root uint32, levels int) *btree.Tree {
	return &btree.Tree{Type: ondisk.BtRefcbt, Kind: ondisk.KindRefcbt, Cache: c, G: g, AG: agno, Root: root, Levels: levels,
		RecKey: recKey, Cmp: keyCmp}
}

// Rec is a refcount record in its incore form (struct xfs_refcount_irec):
// the start without the CoW flag, and the domain. This struct does not
// represent an on-disk struct.
type Rec struct {
	Start    uint32 // rc_startblock without XFS_REFC_COWFLAG
	Len      uint32 // rc_blockcount
	Refcount uint32 // rc_refcount
	Cow      bool   // XFS_REFC_DOMAIN_COW
}

// next is the block after the record (xfs_refc_next).
func (r Rec) next() uint32 { return r.Start + r.Len }

// encodeStart is xfs_refcount_encode_startblock.
func encodeStart(bno uint32, cow bool) uint32 {
	if cow {
		return bno | ondisk.RefcCowFlag
	}
	return bno
}

func (r Rec) ondisk() ondisk.RefcountRec {
	return ondisk.RefcountRec{StartBlock: encodeStart(r.Start, r.Cow), BlockCount: r.Len, RefCount: r.Refcount}
}

func (r Rec) bytes() []byte {
	b := make([]byte, ondisk.RefcRecLen)
	r.ondisk().Encode(b)
	return b
}

func (r Rec) String() string {
	d := "shared"
	if r.Cow {
		d = "cow"
	}
	return fmt.Sprintf("[%d+%d refcount %d %s]", r.Start, r.Len, r.Refcount, d)
}

// fromOndisk is xfs_refcount_btrec_to_irec.
func fromOndisk(o ondisk.RefcountRec) Rec {
	return Rec{Start: o.Agbno(), Len: o.BlockCount, Refcount: o.RefCount, Cow: o.Cow()}
}

// Extent is a range of AG blocks. This struct does not represent an
// on-disk struct.
type Extent struct{ Start, Len uint32 }

// AG is the refcount btree of one allocation group inside one transaction:
// its root, height and block count live in the AGF that A joined to the
// transaction, and its new blocks come from A's free space. This struct
// does not represent an on-disk struct.
type AG struct {
	A *alloc.AG
	// LogRes is the log reservation of the transaction, in bytes, that
	// xfs_refcount_still_have_space weighs the work done against: an
	// increase or decrease stops early (its remainder returned) when the
	// estimate of what it logged leaves too little. 0: no limit.
	LogRes int
	// NrOps and ShapeChanges are the counters of the kernel's refcount
	// cursor (bc_refc.nr_ops, bc_refc.shape_changes), kept across the
	// operations of one transaction.
	NrOps, ShapeChanges int
	// Free frees blocks the refcount changes give back: the blocks of an
	// extent whose count drops to 0 (owner alloc.OwnerNull: the caller's
	// rmap update removes their owner, as the kernel's RUI does) and the
	// btree's own freed blocks (alloc.OwnerRefc). nil: alloc.FreeExtent.
	Free func(tx Tx, agbno, n uint32, o alloc.Owner) error

	deferred []deferredFree
}

type deferredFree struct {
	bno, n uint32
	o      alloc.Owner
}

// New returns the refcount btree of the AG whose AGF a holds.
func New(a *alloc.AG) *AG { return &AG{A: a} }

// tree opens the btree as the AGF holds it now, for changes (the root
// moves with splits and joins: callers open it again for each step).
func (r *AG) tree() *btree.Tree {
	t := Tree(nil, r.A.G, r.A.Agno, r.A.RefcountRoot(), r.A.RefcountLevel())
	t.SetRoot = func(tx Tx, root uint32, levels int) error {
		r.A.SetRefcountRoot(tx, root, levels)
		return nil
	}
	t.Blocks = &blocks{r: r}
	return t
}

func (r *AG) corrupt(field string, found any, msg string) error {
	return &ondisk.CorruptError{AG: r.A.Agno, Daddr: -1, Struct: "refcountbt", Field: field, Found: found, Msg: msg}
}

func (r *AG) mustFind(found bool, what string, bno uint32, cow bool) error {
	if found {
		return nil
	}
	dom := "shared"
	if cow {
		dom = "CoW"
	}
	return r.corrupt(fmt.Sprintf("%s record at block %d (%s)", what, bno, dom), nil, "is missing")
}

// lookup positions a cursor at the record dir gives for (domain, bno)
// (xfs_refcount_lookup_le, _ge, _eq).
func (r *AG) lookup(tx Tx, cow bool, bno uint32, dir btree.LookupDir) (*btree.Cursor, bool, error) {
	k := make([]byte, ondisk.RefcKeyLen)
	ondisk.RefcountKey{StartBlock: encodeStart(bno, cow)}.Encode(k)
	return r.tree().Lookup(tx, k, dir)
}

// get returns the record at the cursor, checked (xfs_refcount_get_rec);
// found is false when the cursor is at no record.
func (r *AG) get(c *btree.Cursor) (Rec, bool, error) {
	b := c.Rec()
	if b == nil {
		return Rec{}, false, nil
	}
	o := ondisk.DecodeRefcountRec(b)
	if err := o.Check(r.A.G, r.A.Agno); err != nil {
		return Rec{}, false, err
	}
	return fromOndisk(o), true, nil
}

// update replaces the record at the cursor (xfs_refcount_update).
func (r *AG) update(c *btree.Cursor, rec Rec) error { return c.Update(rec.bytes()) }

// insert adds a record (xfs_refcount_insert).
func (r *AG) insert(tx Tx, rec Rec) error {
	if err := r.tree().Insert(tx, rec.bytes()); err != nil {
		return fmt.Errorf("refcountbt AG %d: inserting %v: %w", r.A.Agno, rec, err)
	}
	return nil
}

// delete removes the record at the cursor, which is left at the first
// record at or after its key (xfs_refcount_delete).
func (r *AG) delete(c *btree.Cursor) error {
	if _, ok, err := r.get(c); err != nil || !ok {
		if err == nil {
			err = r.corrupt("cursor", nil, "delete at no record")
		}
		return err
	}
	return c.Delete()
}

// deferFree queues a free for the end of the operation (the kernel's
// xfs_free_extent_later: freed blocks are not reused by the operation
// that freed them).
func (r *AG) deferFree(bno, n uint32, o alloc.Owner) {
	r.deferred = append(r.deferred, deferredFree{bno, n, o})
}

// finish frees what the operation queued, in order.
func (r *AG) finish(tx Tx) error {
	for len(r.deferred) > 0 {
		d := r.deferred[0]
		r.deferred = r.deferred[1:]
		var err error
		if r.Free != nil {
			err = r.Free(tx, d.bno, d.n, d.o)
		} else {
			err = alloc.FreeExtent(tx, r.A, d.bno, d.n, d.o)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Lookup returns the record dir gives for block bno of the domain (cow:
// the CoW staging extents): the last record at or before it (btree.LE),
// the first at or after it (btree.GE), or the one starting at it
// (btree.EQ), as the kernel's xfs_refcount_lookup_le/_ge/_eq position
// their cursor. The record may be of the other domain when none of this
// one is there, as with the kernel's. found is false when there is none.
func (r *AG) Lookup(tx Tx, cow bool, bno uint32, dir btree.LookupDir) (rec Rec, found bool, err error) {
	c, ok, err := r.lookup(tx, cow, bno, dir)
	if err != nil || !ok {
		return Rec{}, false, err
	}
	return r.get(c)
}

// Records returns every record in key order (shared extents, then CoW
// staging extents), each checked.
func (r *AG) Records(tx Tx) ([]Rec, error) {
	c, ok, err := r.lookup(tx, false, 0, btree.GE)
	if err != nil {
		return nil, err
	}
	var out []Rec
	for ok {
		rec, found, err := r.get(c)
		if err != nil || !found {
			return out, err
		}
		out = append(out, rec)
		if ok, err = c.Increment(); err != nil {
			return out, err
		}
	}
	return out, nil
}

// blocks gives the refcount btree its blocks: one block from free space
// near xfs_refc_block, owned by OWN_REFC in the rmapbt, counted in
// agf_refcount_blocks (xfs_refcountbt_alloc_block); a freed block leaves
// the count at once and goes back to free space at the end of the
// operation (xfs_refcountbt_free_block: xfs_free_extent_later).
type blocks struct{ r *AG }

// Alloc ignores near: the kernel allocates near the btree's fixed root
// block.
func (b *blocks) Alloc(tx Tx, near uint32) (uint32, error) {
	r := b.r
	bno, err := alloc.AllocNear(tx, r.A, r.A.G.RefcBlock(), 1, alloc.OwnerRefc)
	if err != nil {
		return 0, err
	}
	if err := r.A.AddRefcountBlocks(tx, 1); err != nil {
		return 0, err
	}
	return bno, nil
}

func (b *blocks) Free(tx Tx, agbno uint32) error {
	if err := b.r.A.AddRefcountBlocks(tx, -1); err != nil {
		return err
	}
	b.r.deferFree(agbno, 1, alloc.OwnerRefc)
	return nil
}
