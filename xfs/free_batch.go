package xfs

// Batching the frees of an AG into transactions: several frees to a
// transaction (up to BatchInodes, within the log space, AGF locks kept in
// ascending AG order), a transaction that cannot commit retried one free
// at a time, a failing free cancelled alone and named, orphans too big for
// one transaction truncated in steps first, and the chain neighbours of
// the orphans kept up to date (and put back when a transaction is
// cancelled).

import (
	"errors"
	"fmt"
	"slices"

	"github.com/xfsfree/xfsfree/icluster"
	"github.com/xfsfree/xfsfree/journal"
	"github.com/xfsfree/xfsfree/ondisk"
)

// item is one free of a batch: an inode or an empty chunk.
type item struct {
	v          *icluster.Victim
	chunk      *ondisk.InobtRec
	stepBlocks uint64 // fork blocks freed by truncation steps before
}

func (it item) ino(g *ondisk.Geometry, agno uint32) uint64 {
	if it.v != nil {
		return it.v.Ino
	}
	return g.Ino(agno, it.chunk.StartIno)
}

func (it item) ags(agno uint32) []uint32 {
	if it.v != nil {
		return it.v.AGs
	}
	return []uint32{agno}
}

// batch is an open transaction and the frees in it.
type batch struct {
	tx      *journal.Transaction
	env     *icluster.AG // the AG's free environment in tx
	items   []item
	results []*icluster.Freed
	undo    []func() // restores the chain neighbours if the batch is cancelled
	maxAG   int64    // highest AG whose AGF the transaction holds (-1: none)
}

// batcher runs an AG's frees in batches.
type batcher struct {
	w *agWorker
}

func (bt *batcher) begin() *batch {
	tx := bt.w.fs.Begin()
	return &batch{tx: tx, env: bt.agEnv(tx), maxAG: -1}
}

// agEnv is the environment of the AG's frees in transaction tx: its
// busy extents are tx's.
func (bt *batcher) agEnv(tx *journal.Transaction) *icluster.AG {
	w := bt.w
	fs := w.fs
	busy := txBusy{set: w.run.busy, tx: tx}
	return &icluster.AG{Agno: w.agno, G: fs.G, Cache: fs.Cache, Inodes: fs.Inodes,
		Btrees: &inodeBtrees{g: fs.G, c: fs, agno: w.agno, busy: busy}, Space: &space{g: fs.G, busy: busy}, KeepChunks: w.o.KeepChunks}
}

// run frees items in batches. With retry, a batch whose commit fails (log
// space) or one of whose frees fails is cancelled and its items are done
// again one transaction each, the failing one reported.
func (bt *batcher) run(items []item, retry bool) {
	w := bt.w
	maxInodes := w.o.BatchInodes
	if maxInodes <= 0 {
		maxInodes = 64
	}
	var b *batch
	flush := func() {
		if b == nil {
			return
		}
		cur := b
		b = nil
		if len(cur.items) == 0 {
			cur.tx.Cancel()
			return
		}
		if _, err := cur.tx.Commit(); err != nil {
			cur.tx.Cancel()
			bt.undoBatch(cur)
			if retry && errors.Is(err, journal.ErrTransTooBig) {
				// The log is full of checkpoints not yet written in
				// place: write them (holding nothing) and redo.
				if cerr := w.fs.log.Checkpoint(); cerr == nil {
					bt.run(cur.items, false)
					return
				}
			}
			if retry && len(cur.items) > 1 {
				bt.run(cur.items, false)
				return
			}
			for _, it := range cur.items {
				w.fail(it.ino(w.fs.G, w.agno), fmt.Errorf("committing its transaction: %w", err))
			}
			w.run.tick(len(cur.items))
			return
		}
		bt.committed(cur)
	}
	for _, it := range items {
		if stopped(w.o.Stop) {
			break
		}
		if it.v != nil && it.v.NeedsSteps(bt.stepExtents()) {
			// Too big for one transaction: truncate it in steps of its
			// own first (the batch so far is committed before).
			flush()
			v, blocks, err := bt.truncateSteps(it.v)
			it.stepBlocks += blocks
			if errors.Is(err, errStopped) {
				break // still an orphan, with fewer extents: a later run finishes it
			}
			if err != nil {
				var re *icluster.RefusedError
				if errors.As(err, &re) && blocks == 0 {
					w.refuse(it.v.Ino, err)
				} else {
					w.fail(it.v.Ino, err)
				}
				w.run.tick(1)
				continue
			}
			it.v = v
		}
		if b != nil && !bt.fits(b, it, maxInodes) {
			flush()
		}
		if b == nil {
			b = bt.begin()
		}
		res, err := bt.apply(b, it)
		if errors.Is(err, icluster.ErrILockBusy) {
			// Someone holds an inode this free needs, and waiting for
			// it while the batch holds buffers would invert the lock
			// order: commit the batch, then wait in a new one.
			flush()
			b = bt.begin()
			res, err = bt.apply(b, it)
		}
		var re *icluster.RefusedError
		switch {
		case err == nil:
			b.items = append(b.items, it)
			b.results = append(b.results, res)
			for _, ag := range it.ags(w.agno) {
				b.maxAG = max(b.maxAG, int64(ag))
			}
			if res.ChunkFreed && w.o.chunkFreed != nil {
				agno, start := w.agno, res.ChunkStart
				b.tx.OnCommit(func() { w.o.chunkFreed(agno, start) })
			}
		case errors.As(err, &re):
			// Nothing changed for it: the batch goes on.
			w.refuse(it.ino(w.fs.G, w.agno), err)
			w.run.tick(1)
		default:
			// The transaction is half changed: cancel it and redo the
			// others without this one.
			cur := b
			b = nil
			cur.tx.Cancel()
			bt.undoBatch(cur)
			w.fail(it.ino(w.fs.G, w.agno), err)
			w.run.tick(1)
			if len(cur.items) > 0 {
				bt.run(cur.items, false)
			}
		}
	}
	flush()
}

func (bt *batcher) stepExtents() int {
	if bt.w.o.TruncateExtents > 0 {
		return bt.w.o.TruncateExtents
	}
	return 16384
}

// truncateSteps truncates v in transactions of their own
// (icluster.TruncateStep) until its data fork holds at most stepExtents
// extents or no step applies, and returns it inspected again, with the
// blocks freed. A transaction too big for the log is retried after a
// checkpoint with half the extents.
func (bt *batcher) truncateSteps(v *icluster.Victim) (*icluster.Victim, uint64, error) {
	w := bt.w
	per := bt.stepExtents()
	var blocks uint64
	for {
		if stopped(w.o.Stop) {
			return nil, blocks, errStopped
		}
		tx := w.fs.Begin()
		n, bl, left, err := bt.agEnv(tx).TruncateStep(tx, v, per)
		if err != nil || n == 0 {
			tx.Cancel()
			if err != nil {
				return nil, blocks, err
			}
			break
		}
		if _, err := tx.Commit(); err != nil {
			tx.Cancel()
			if errors.Is(err, journal.ErrTransTooBig) && per > 1 {
				if cerr := w.fs.log.Checkpoint(); cerr != nil {
					return nil, blocks, cerr
				}
				per /= 2
				continue
			}
			return nil, blocks, fmt.Errorf("committing a truncation step: %w", err)
		}
		blocks += bl
		v.Nblocks -= bl
		w.run.report(func(r *FreeReport) { r.Transactions++; r.TruncateSteps++ })
		if left <= uint64(bt.stepExtents()) {
			break
		}
	}
	nv, err := icluster.Inspect(w.fs.Cache, w.fs.G, w.agno, v.Agino, v.Loc)
	return nv, blocks, err
}

// fits says whether it can join batch b: the batch is not full, its log
// size leaves room, and the AGFs it needs keep the transaction's AGF locks
// ascending (or are held already).
func (bt *batcher) fits(b *batch, it item, maxInodes int) bool {
	w := bt.w
	if len(b.items) >= maxInodes {
		return false
	}
	if b.tx.Size() > w.fs.log.MaxTransBytes()/int64(2*w.workers) {
		return false
	}
	for _, ag := range it.ags(w.agno) {
		if int64(ag) < b.maxAG && !slices.ContainsFunc(b.items, func(x item) bool { return slices.Contains(x.ags(w.agno), ag) }) {
			return false
		}
	}
	return true
}

// apply does one free in b's transaction: the orphan is taken off its
// chain through its predecessor, which the neighbour list gives.
func (bt *batcher) apply(b *batch, it item) (*icluster.Freed, error) {
	w := bt.w
	ag := b.env
	if it.chunk != nil {
		return ag.FreeEmptyChunk(b.tx, it.chunk.StartIno)
	}
	v := it.v
	o := w.ref(v.Agino)
	if o == nil || o.gone {
		return nil, &icluster.RefusedError{Ino: v.Ino, Reason: fmt.Sprintf("is no longer on its unlinked list (bucket %d)", v.Agino%ondisk.AGIUnlinkedBuckets)}
	}
	u := icluster.Unlink{Prev: o.prev}
	if o.prev != ondisk.NullAgino {
		loc, err := w.fs.Locate(w.agno, w.recs, o.prev)
		if err != nil {
			return nil, &icluster.RefusedError{Ino: v.Ino, Reason: err.Error(), Err: err}
		}
		u.PrevLoc = loc
	}
	res, err := ag.Ifree(b.tx, v, u)
	if err != nil {
		return nil, err
	}
	// Off the chain: its neighbours now point at each other.
	prev, next := o.prev, o.next
	po, no := w.ref(prev), w.ref(next)
	if po != nil {
		po.next = next
	}
	if no != nil {
		no.prev = prev
	}
	o.gone = true
	b.undo = append(b.undo, func() {
		o.gone = false
		if po != nil {
			po.next = v.Agino
		}
		if no != nil {
			no.prev = v.Agino
		}
	})
	return res, nil
}

func (bt *batcher) undoBatch(b *batch) {
	for i := len(b.undo) - 1; i >= 0; i-- {
		b.undo[i]()
	}
}

// committed reports a committed batch.
func (bt *batcher) committed(b *batch) {
	w := bt.w
	if w.o.committed != nil {
		defer w.o.committed()
	}
	g, agno := w.fs.G, w.agno
	w.run.report(func(rep *FreeReport) {
		rep.Transactions++
		for i, it := range b.items {
			res := b.results[i]
			if it.v != nil {
				w.run.freed(FreedInode{Ino: it.v.Ino, AG: agno, Mode: Mode(it.v.Mode), Size: it.v.Size,
					Blocks: res.ForkBlocks + it.stepBlocks, ChunkFreed: res.ChunkFreed})
			}
			if res.ChunkFreed {
				rep.Chunks = append(rep.Chunks, FreedChunk{AG: agno, StartIno: g.Ino(agno, res.ChunkStart), StartAgino: res.ChunkStart,
					Inodes: res.ChunkInodes, Blocks: res.ChunkBlocks, WasEmpty: it.v == nil})
			}
		}
	})
	w.run.tick(len(b.items))
}
