package alloc

import (
	"errors"
	"strconv"

	"github.com/xfsfree/xfsfree/btree"
	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// ErrNoSpace is returned when an AG has no free block for an allocation
// (the kernel's ENOSPC), or its AGFL is empty when a btree needs a block.
var ErrNoSpace = errors.New("no free space in the AG")

// Tx is what free-space changes need of a transaction: exactly what the
// btree engine they go through needs (btree.Tx: read, get, log and cancel
// joined buffers), so it is that interface, not one of its own.
type Tx = btree.Tx

// AG is the free space of one allocation group inside one transaction: the
// AGF buffer joined to it, which the fields below are read from and written
// to in place (so two AG values over the same transaction agree), and the
// AGFL blocks whose free is deferred to the end of the current operation.
// This struct does not represent an on-disk struct.
type AG struct {
	G    *ondisk.Geometry
	Agno uint32

	// Busy, if set, records the extents FreeExtent frees as busy and
	// keeps allocations from free space off busy extents while it can.
	Busy BusyTracker

	agf *cache.Buf
	// deferred holds AGFL blocks taken off the list by a shrink, to be
	// freed into free space when the operation ends (the kernel's
	// xfs_defer_agfl_block).
	deferred []uint32
	// trees are the AG's btrees (by AGFBno, AGFCnt, AGFRmap), made on
	// first use.
	trees [3]*btree.Tree
}

// ReadAG reads AG agno's AGF through tx (verified, joined, locked until tx
// ends) and checks its AGFL indexes as xfs_agfl_needs_reset does: a
// mismatched ring is reported as corruption rather than reset.
func ReadAG(tx Tx, g *ondisk.Geometry, agno uint32) (*AG, error) {
	d := g.AGFDaddr(agno)
	b, err := tx.ReadBuf(d, g.SectBBs(), ondisk.KindAGF, ondisk.VerifyCtx{G: g, AG: agno, Daddr: d})
	if err != nil {
		return nil, err
	}
	ag := &AG{G: g, Agno: agno, agf: b}
	if err := ag.checkRing(); err != nil {
		return nil, err
	}
	return ag, nil
}

// ReadAGF returns the decoded, verified AGF of AG agno, read through the
// buffer cache outside any transaction (for reports and checks; changes
// read it with ReadAG).
func ReadAGF(c *cache.Cache, g *ondisk.Geometry, agno uint32) (*ondisk.AGF, error) {
	d := g.AGFDaddr(agno)
	b, err := c.Get(d, g.SectBBs(), ondisk.KindAGF, ondisk.VerifyCtx{G: g, AG: agno, Daddr: d})
	if err != nil {
		return nil, err
	}
	defer b.Release()
	a, err := ondisk.DecodeAGF(b.Data)
	return a, ondisk.SetLocation(err, agno, d)
}

// AGF decodes the AGF as it is now in the transaction.
func (ag *AG) AGF() *ondisk.AGF {
	a, _ := ondisk.DecodeAGF(ag.agf.Data) // a sector always holds an AGF
	return a
}

// Buf is the joined AGF buffer.
func (ag *AG) Buf() *cache.Buf { return ag.agf }

// get and set read and write one 32-bit field of the AGF in place.
func (ag *AG) get(f ondisk.AGFFields) uint32    { return uint32(f.Get(ag.agf.Data)) }
func (ag *AG) set(f ondisk.AGFFields, v uint32) { f.Set(ag.agf.Data, uint64(v)) }

// FreeBlks, Longest, FLCount, BtreeBlks and RmapBlocks are the AGF counters.
func (ag *AG) FreeBlks() uint32   { return ag.get(ondisk.AGFFreeBlks) }
func (ag *AG) Longest() uint32    { return ag.get(ondisk.AGFLongest) }
func (ag *AG) FLCount() uint32    { return ag.get(ondisk.AGFFLCount) }
func (ag *AG) BtreeBlks() uint32  { return ag.get(ondisk.AGFBtreeBlks) }
func (ag *AG) RmapBlocks() uint32 { return ag.get(ondisk.AGFRmapBlocks) }
func (ag *AG) length() uint32     { return ag.get(ondisk.AGFLength) }

// Root and Levels are agf_roots[i] and agf_levels[i] (i: ondisk.AGFBno,
// AGFCnt, AGFRmap).
func (ag *AG) Root(i int) uint32 { return uint32(ondisk.AGFRoot(i).Uint(ag.agf.Data)) }
func (ag *AG) Levels(i int) int  { return int(ondisk.AGFLevel(i).Uint(ag.agf.Data)) }

// RefcountRoot, RefcountLevel and RefcountBlocks are agf_refcount_root,
// agf_refcount_level and agf_refcount_blocks.
func (ag *AG) RefcountRoot() uint32   { return ag.AGF().RefcountRoot }
func (ag *AG) RefcountLevel() int     { return int(ag.AGF().RefcountLevel) }
func (ag *AG) RefcountBlocks() uint32 { return ag.AGF().RefcountBlocks }

// changeAGF decodes the AGF, lets fn change it, encodes it back in place
// and logs fields.
func (ag *AG) changeAGF(tx Tx, fields ondisk.AGFFields, fn func(a *ondisk.AGF)) {
	a := ag.AGF()
	fn(a)
	a.Encode(ag.agf.Data)
	ag.log(tx, fields)
}

// SetRefcountRoot records a new refcount btree root and height
// (xfs_refcountbt_set_root).
func (ag *AG) SetRefcountRoot(tx Tx, root uint32, levels int) {
	ag.changeAGF(tx, ondisk.AGFRefcountRoot|ondisk.AGFRefcountLevel, func(a *ondisk.AGF) {
		a.RefcountRoot, a.RefcountLevel = root, uint32(levels)
	})
}

// AddRefcountBlocks adds delta to agf_refcount_blocks, refusing to leave
// 0..agf_length (xfs_refcountbt_alloc_block, xfs_refcountbt_free_block).
func (ag *AG) AddRefcountBlocks(tx Tx, delta int) error {
	v := int64(ag.RefcountBlocks()) + int64(delta)
	if v < 0 || v > int64(ag.length()) {
		return ag.corrupt("agf_refcount_blocks", ag.RefcountBlocks(), nil, "would leave 0..agf_length adding "+strconv.Itoa(delta))
	}
	ag.changeAGF(tx, ondisk.AGFRefcountBlocks, func(a *ondisk.AGF) { a.RefcountBlocks = uint32(v) })
	return nil
}

// log logs fields of the AGF (xfs_alloc_log_agf).
func (ag *AG) log(tx Tx, fields ondisk.AGFFields) { ondisk.LogFields(tx, ag.agf, fields) }

// setRoot is the btree SetRoot of the AGF-rooted btrees
// (xfs_allocbt_set_root, xfs_rmapbt_set_root).
func (ag *AG) setRoot(tx Tx, i int, root uint32, levels int) error {
	ondisk.AGFRoot(i).PutUint(ag.agf.Data, uint64(root))
	ondisk.AGFLevel(i).PutUint(ag.agf.Data, uint64(levels))
	ag.log(tx, ondisk.AGFRoots|ondisk.AGFLevels)
	return nil
}

func (ag *AG) corrupt(field string, found, want any, msg string) error {
	return &ondisk.CorruptError{AG: ag.Agno, Daddr: ag.agf.Daddr, Struct: "AGF", Field: field, Found: found, Want: want, Msg: msg}
}

// addCounter adds delta to the 32-bit counter f, refusing to wrap below
// zero or to pass agf_length, and logs it.
func (ag *AG) addCounter(tx Tx, f ondisk.AGFFields, delta int64) error {
	v := int64(ag.get(f)) + delta
	if v < 0 || v > int64(ag.length()) {
		return ag.corrupt(f.Field().Name, ag.get(f), nil, "would leave 0..agf_length adding "+strconv.FormatInt(delta, 10))
	}
	ag.set(f, uint32(v))
	ag.log(tx, f)
	return nil
}

// updateFreeBlks is xfs_alloc_update_counters: agf_freeblks += delta.
func (ag *AG) updateFreeBlks(tx Tx, delta int64) error {
	return ag.addCounter(tx, ondisk.AGFFreeBlks, delta)
}

// setLongest sets agf_longest, logging it only when it changes.
func (ag *AG) setLongest(tx Tx, v uint32) {
	if ag.Longest() != v {
		ag.set(ondisk.AGFLongest, v)
		ag.log(tx, ondisk.AGFLongest)
	}
}

// blockCount bounds the AG's blocks: the size the geometry gives it (the
// kernel's pag block count, which xfs_verify_agbno uses) and agf_length
// (which __xfs_free_extent checks). They are equal in a sane AGF; the AGF
// verifier lets a last AG's agf_length reach sb_agblocks, past the device.
func (ag *AG) blockCount() uint32 { return min(ag.length(), ag.G.AGSize(ag.Agno)) }

// validAgbno reports a block past the AG headers and inside the AG
// (xfs_verify_agbno).
func (ag *AG) validAgbno(agbno uint32) bool {
	agflBlock := uint32((uint64(3) << ag.G.SectBBLog) >> ag.G.BlkBBLog) // XFS_AGFL_BLOCK
	return agbno > agflBlock && agbno < ag.blockCount()
}

// validExtent reports an extent of valid blocks that does not wrap
// (xfs_verify_agbext).
func (ag *AG) validExtent(agbno, n uint32) bool {
	return n > 0 && uint64(agbno)+uint64(n) <= uint64(ag.blockCount()) && ag.validAgbno(agbno)
}
