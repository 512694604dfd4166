package btree

import (
	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Tx is what btree changes need of a transaction (journal.Transaction
// provides it; packages alloc and refcount, whose changes go through the
// engine, need exactly this too). Every block a change touches is joined
// to it.
type Tx interface {
	// ReadBuf returns the buffer joined to the transaction and locked
	// until the transaction ends; asking again for a joined buffer
	// returns the same *cache.Buf without locking again.
	ReadBuf(daddr int64, nBB int, kind *ondisk.BlockKind, ctx ondisk.VerifyCtx) (*cache.Buf, error)
	// GetBuf is ReadBuf without the read, for a block being initialised.
	GetBuf(daddr int64, nBB int, kind *ondisk.BlockKind) (*cache.Buf, error)
	// LogRange records that bytes [first, last] of b changed.
	LogRange(b *cache.Buf, first, last int)
	// Binval cancels a joined buffer whose block was freed: it is never
	// written (XFS_BLF_CANCEL).
	Binval(b *cache.Buf)
}

// Blocks allocates and frees one btree's blocks: from the AGFL for the
// bnobt, cntbt and rmapbt, from free space for the inobt and finobt (the
// caller decides, and keeps the AG header's block counters).
type Blocks interface {
	// Alloc returns a block for the btree, preferably near agbno near.
	Alloc(tx Tx, near uint32) (agbno uint32, err error)
	// Free gives back a block the btree no longer uses.
	Free(tx Tx, agbno uint32) error
}
