package btree

import (
	"errors"

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

// ReadTx is a read-only Tx over a buffer cache, for walks and lookups
// that take a transaction outside one: reads are verified and held until
// End; GetBuf fails, and a change (LogRange, Binval) panics.
type ReadTx struct {
	c    *cache.Cache
	bufs map[int64]*cache.Buf
}

// NewReadTx returns a read-only transaction over c.
func NewReadTx(c *cache.Cache) *ReadTx { return &ReadTx{c: c, bufs: map[int64]*cache.Buf{}} }

// ErrReadOnlyTx is what a change in a ReadTx fails or panics with.
var ErrReadOnlyTx = errors.New("btree: a change in a read-only transaction")

func (tx *ReadTx) ReadBuf(daddr int64, nBB int, kind *ondisk.BlockKind, ctx ondisk.VerifyCtx) (*cache.Buf, error) {
	if b := tx.bufs[daddr]; b != nil {
		return b, nil
	}
	b, err := tx.c.Get(daddr, nBB, kind, ctx)
	if err != nil {
		return nil, err
	}
	tx.bufs[daddr] = b
	return b, nil
}

func (tx *ReadTx) GetBuf(int64, int, *ondisk.BlockKind) (*cache.Buf, error) {
	return nil, ErrReadOnlyTx
}
func (tx *ReadTx) LogRange(*cache.Buf, int, int) { panic(ErrReadOnlyTx) }
func (tx *ReadTx) Binval(*cache.Buf)             { panic(ErrReadOnlyTx) }

// End releases the buffers read.
func (tx *ReadTx) End() {
	for _, b := range tx.bufs {
		b.Release()
	}
	tx.bufs = nil
}
