package alloc

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"strconv"

	"github.com/xfsfree/xfsfree/btree"
	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// AGF fields, for logging, as the kernel's XFS_AGF_* bits: Log writes the
// byte range from the first field set to the end of the last.
type AGFField uint32

const (
	AGFMagicNum AGFField = 1 << iota
	AGFVersionNum
	AGFSeqNo
	AGFLength
	AGFRoots // agf_roots[3] (bno, cnt, rmap)
	AGFLevels
	AGFFLFirst
	AGFFLLast
	AGFFLCount
	AGFFreeBlks
	AGFLongest
	AGFBtreeBlks
	AGFUUID
	AGFRmapBlocks
	AGFRefcountBlocks
	AGFRefcountRoot
	AGFRefcountLevel
	AGFSpare64
	agfNumBits = iota
)

// agfOffsets are the byte offsets of the fields of AGFField, in bit order,
// and the size of struct xfs_agf (xfs_alloc_log_agf's offsets[]).
var agfOffsets = [agfNumBits + 1]int{0, 4, 8, 12, 16, 28, 40, 44, 48, 52, 56, 60, 64, 80, 84, 88, 92, 96, ondisk.AGFSize}

// Byte offsets of the fields this package changes.
const (
	offRoots      = 16
	offLevels     = 28
	offFLFirst    = 40
	offFLLast     = 44
	offFLCount    = 48
	offFreeBlks   = 52
	offLongest    = 56
	offBtreeBlks  = 60
	offRmapBlocks = 80
)

// ErrNoSpace is returned when an AG has no free block for an allocation
// (the kernel's ENOSPC), or its AGFL is empty when a btree needs a block.
var ErrNoSpace = errors.New("no free space in the AG")

// Tx is the transaction the free-space changes are made in.
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

// AGF decodes the AGF as it is now in the transaction.
func (ag *AG) AGF() *ondisk.AGF {
	a, _ := ondisk.DecodeAGF(ag.agf.Data) // a sector always holds an AGF
	return a
}

// Buf is the joined AGF buffer.
func (ag *AG) Buf() *cache.Buf { return ag.agf }

func (ag *AG) u32(off int) uint32 { return binary.BigEndian.Uint32(ag.agf.Data[off:]) }

func (ag *AG) set32(off int, v uint32) { binary.BigEndian.PutUint32(ag.agf.Data[off:], v) }

// FreeBlks, Longest, FLCount, BtreeBlks and RmapBlocks are the AGF counters.
func (ag *AG) FreeBlks() uint32   { return ag.u32(offFreeBlks) }
func (ag *AG) Longest() uint32    { return ag.u32(offLongest) }
func (ag *AG) FLCount() uint32    { return ag.u32(offFLCount) }
func (ag *AG) BtreeBlks() uint32  { return ag.u32(offBtreeBlks) }
func (ag *AG) RmapBlocks() uint32 { return ag.u32(offRmapBlocks) }
func (ag *AG) length() uint32     { return ag.u32(12) }

// Root and Levels are agf_roots[i] and agf_levels[i] (i: ondisk.AGFBno,
// AGFCnt, AGFRmap).
func (ag *AG) Root(i int) uint32 { return ag.u32(offRoots + 4*i) }
func (ag *AG) Levels(i int) int  { return int(ag.u32(offLevels + 4*i)) }

// RefcountRoot, RefcountLevel and RefcountBlocks are agf_refcount_root,
// agf_refcount_level and agf_refcount_blocks.
func (ag *AG) RefcountRoot() uint32   { return ag.AGF().RefcountRoot }
func (ag *AG) RefcountLevel() int     { return int(ag.AGF().RefcountLevel) }
func (ag *AG) RefcountBlocks() uint32 { return ag.AGF().RefcountBlocks }

// changeAGF decodes the AGF, lets fn change it, encodes it back in place
// and logs fields.
func (ag *AG) changeAGF(tx Tx, fields AGFField, fn func(a *ondisk.AGF)) {
	a := ag.AGF()
	fn(a)
	a.Encode(ag.agf.Data)
	ag.Log(tx, fields)
}

// SetRefcountRoot records a new refcount btree root and height
// (xfs_refcountbt_set_root).
func (ag *AG) SetRefcountRoot(tx Tx, root uint32, levels int) {
	ag.changeAGF(tx, AGFRefcountRoot|AGFRefcountLevel, func(a *ondisk.AGF) {
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
	ag.changeAGF(tx, AGFRefcountBlocks, func(a *ondisk.AGF) { a.RefcountBlocks = uint32(v) })
	return nil
}

// Log logs the byte range of the AGF covering fields (xfs_alloc_log_agf).
func (ag *AG) Log(tx Tx, fields AGFField) {
	if fields == 0 {
		return
	}
	lo := bits.TrailingZeros32(uint32(fields))
	hi := 31 - bits.LeadingZeros32(uint32(fields))
	tx.LogRange(ag.agf, agfOffsets[lo], agfOffsets[hi+1]-1)
}

// setRoot is the btree SetRoot of the AGF-rooted btrees
// (xfs_allocbt_set_root, xfs_rmapbt_set_root).
func (ag *AG) setRoot(tx Tx, i int, root uint32, levels int) error {
	ag.set32(offRoots+4*i, root)
	ag.set32(offLevels+4*i, uint32(levels))
	ag.Log(tx, AGFRoots|AGFLevels)
	return nil
}

func (ag *AG) corrupt(field string, found, want any, msg string) error {
	return &ondisk.CorruptError{AG: ag.Agno, Daddr: ag.agf.Daddr, Struct: "AGF", Field: field, Found: found, Want: want, Msg: msg}
}

// addCounter adds delta to the 32-bit counter at off, refusing to wrap
// below zero or to pass agf_length, and logs it.
func (ag *AG) addCounter(tx Tx, off int, field AGFField, name string, delta int64) error {
	v := int64(ag.u32(off)) + delta
	if v < 0 || v > int64(ag.length()) {
		return ag.corrupt(name, ag.u32(off), nil, "would leave 0..agf_length adding "+strconv.FormatInt(delta, 10))
	}
	ag.set32(off, uint32(v))
	ag.Log(tx, field)
	return nil
}

// updateFreeBlks is xfs_alloc_update_counters: agf_freeblks += delta.
func (ag *AG) updateFreeBlks(tx Tx, delta int64) error {
	return ag.addCounter(tx, offFreeBlks, AGFFreeBlks, "agf_freeblks", delta)
}

// setLongest sets agf_longest, logging it only when it changes.
func (ag *AG) setLongest(tx Tx, v uint32) {
	if ag.Longest() != v {
		ag.set32(offLongest, v)
		ag.Log(tx, AGFLongest)
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
