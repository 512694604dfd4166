package xfs

// CoW leftovers: the staging extents a crash during copy-on-write leaves
// in the refcount btree (CoW-domain records of refcount 1, rmap owner
// OWN_COW), which the kernel frees after replaying a dirty log
// (xlog_recover_finish → xfs_reflink_recover_cow →
// xfs_refcount_recover_cow_leftovers): all of an AG's CoW records are
// collected first (a count other than 1 is corruption and fails the
// mount), then each is freed in a transaction of its own — the OWN_COW
// reverse mapping removed (RUI FREE), the CoW record deleted (CUI
// FREE_COW), the blocks freed to the bnobt and cntbt (EFI, owner NULL).
// Nothing else the kernel's mount does touches them, and a clean mount
// does not free them: a tool that leaves the log clean after replaying a
// dirty one must free them itself, or they leak.

import (
	"errors"
	"fmt"
	"strings"

	"github.com/xfsfree/xfsfree/alloc"
	"github.com/xfsfree/xfsfree/btree"
	"github.com/xfsfree/xfsfree/journal"
	"github.com/xfsfree/xfsfree/refcount"
)

// CowOptions configure FreeCowLeftovers.
type CowOptions struct {
	// DryRun lists the leftovers and writes nothing (the filesystem may
	// be open read-only).
	DryRun bool
	// BatchExtents caps the staging extents freed in one transaction
	// (0: 16, XFS_CUI_MAX_FAST_EXTENTS; 1 is the kernel's one a
	// transaction).
	BatchExtents int
	// Progress, if set, is called after each extent.
	Progress func(done, total int)
	// Stop, if set, ends the run at the next transaction boundary once it
	// is closed: what committed is kept, the rest is left, and the run
	// ends cleanly (Finish). The report says Interrupted.
	Stop <-chan struct{}

	// noFinish leaves the session open at the end (clean ends it).
	noFinish bool
}

// CowExtent is a CoW staging extent freed (or, in a dry run, to free).
type CowExtent struct {
	AG     uint32 `json:"ag"`
	Agbno  uint32 `json:"agbno"`
	Blocks uint32 `json:"blocks"`
}

// CowReport is what FreeCowLeftovers did (or would do).
type CowReport struct {
	Device  string      `json:"device"`
	DryRun  bool        `json:"dry_run"`
	Extents []CowExtent `json:"extents"`
	// Planned is the number of staging extents found; Freed and Blocks
	// what was freed (in a dry run: what would be).
	Planned      int           `json:"planned"`
	Freed        int           `json:"freed"`
	Blocks       uint64        `json:"blocks_freed"`
	Transactions int           `json:"transactions"`
	Interrupted  bool          `json:"interrupted,omitempty"`
	Errors       []FreeFailure `json:"errors"`
	Before       Counters      `json:"counters_before"`
	After        Counters      `json:"counters_after"`
}

// Failed reports whether a free failed.
func (r *CowReport) Failed() bool { return len(r.Errors) > 0 }

// CowRecordError refuses a run because a CoW-domain record of the
// refcount btree cannot be a staging extent (a count other than 1, a bad
// extent): the kernel's mount fails on it the same way. Nothing was
// written. This struct does not represent an on-disk struct.
type CowRecordError struct {
	AG  uint32
	Err error
}

func (e *CowRecordError) Error() string {
	msg := e.Err.Error()
	if ag := fmt.Sprintf("AG %d", e.AG); !strings.Contains(msg, ag) {
		msg = ag + ": " + msg
	}
	return "refusing to free CoW leftovers: " + msg + "; nothing was written: repair the filesystem first (xfs_repair)"
}

func (e *CowRecordError) Unwrap() error { return e.Err }

// FreeCowLeftovers frees every CoW staging extent of the refcount btrees,
// AG by AG in ascending order and each AG's in block order, as the
// kernel's xfs_reflink_recover_cow does after replaying a dirty log (call
// it where the kernel would: after recovery of a dirty log, after the
// orphans are freed). Every AG's staging records are collected and
// checked first, and the filesystem is checked as Free checks it
// (Preflight): a record with a count other than 1, or any other problem,
// refuses the run with nothing written. Then the extents are freed, up to
// BatchExtents a transaction: the OWN_COW reverse mapping removed where
// the rmapbt is enabled, the CoW record deleted, the blocks freed. A real
// run needs OpenWrite and ends with Finish (the filesystem is clean
// afterwards; close it) — unless there was nothing to free: then nothing
// at all is written. A filesystem without reflink has no leftovers.
func (fs *FS) FreeCowLeftovers(o CowOptions) (*CowReport, error) {
	if !o.DryRun && fs.log == nil {
		return nil, ErrNotWritable
	}
	rep := &CowReport{Device: fs.Path, DryRun: o.DryRun, Extents: []CowExtent{}, Errors: []FreeFailure{}}
	if before, err := fs.SummaryCounters(); err == nil {
		rep.Before = Counters(before)
	}
	rep.After = rep.Before
	var exts []CowExtent
	if fs.G.HasReflink {
		var err error
		if exts, err = fs.cowLeftovers(); err != nil {
			if !o.noFinish {
				fs.log = nil
			}
			return rep, err
		}
	}
	rep.Planned = len(exts)
	if o.DryRun {
		rep.Extents = exts
		rep.Freed = len(exts)
		for _, e := range exts {
			rep.Blocks += uint64(e.Blocks)
		}
		rep.After.FDBlocks += rep.Blocks
		return rep, nil
	}
	if len(exts) == 0 {
		if !o.noFinish {
			fs.log = nil // nothing to write
		}
		return rep, nil
	}
	if err := fs.Preflight(); err != nil {
		if !o.noFinish {
			fs.log = nil
		}
		return rep, err
	}
	batch := o.BatchExtents
	if batch <= 0 {
		batch = 16
	}
	busy := alloc.NewBusy()
	done := 0
	progress := func(n int) {
		done += n
		if o.Progress != nil {
			o.Progress(done, len(exts))
		}
	}
	for i := 0; i < len(exts) && fs.log.Err() == nil; {
		if stopped(o.Stop) {
			rep.Interrupted = true
			break
		}
		// A batch: extents of one AG, within the log's space.
		j := i + 1
		for j < len(exts) && j-i < batch && exts[j].AG == exts[i].AG {
			j++
		}
		n, err := fs.freeCowBatch(exts[i:j], busy)
		if errors.Is(err, journal.ErrTransTooBig) {
			// The log is full of commits not checkpointed yet.
			if cerr := fs.log.Checkpoint(); cerr != nil {
				err = cerr
			} else {
				n, err = fs.freeCowBatch(exts[i:i+1], busy)
			}
		}
		if err != nil {
			// Its transaction was cancelled: nothing of it is written.
			e := exts[i]
			rep.Errors = append(rep.Errors, ProblemOf(e.AG, -1, 0, fmt.Errorf("CoW staging extent at agbno %d (%d blocks): %w", e.Agbno, e.Blocks, err)))
			n = 1
		} else {
			rep.Transactions++
			for _, e := range exts[i : i+n] {
				rep.Extents = append(rep.Extents, e)
				rep.Freed++
				rep.Blocks += uint64(e.Blocks)
			}
		}
		progress(n)
		i += n
	}
	if o.noFinish {
		return rep, nil
	}
	if rep.Transactions == 0 && fs.log.Err() == nil {
		fs.log = nil
		return rep, nil
	}
	err := fs.Finish()
	rep.After = Counters{ICount: fs.SB.ICount, IFree: fs.SB.IFree, FDBlocks: fs.SB.FDBlocks}
	return rep, err
}

// freeCowBatch frees the staging extents of one AG in one transaction and
// returns how many it freed: all of them, or, when a change fails, none
// (the transaction is cancelled) with the error. The blocks it frees are
// busy (kept from the run's allocations) until it is durable, as the
// free engine's are.
func (fs *FS) freeCowBatch(exts []CowExtent, busy *alloc.Busy) (int, error) {
	tx := fs.Begin()
	ag, err := alloc.ReadAG(tx, fs.G, exts[0].AG)
	if err != nil {
		tx.Cancel()
		return 0, err
	}
	ag.Busy = txBusy{set: busy, tx: tx}
	max := fs.log.MaxTransBytes() / 2
	n := 0
	for _, e := range exts {
		if n > 0 && tx.Size() > max {
			break
		}
		if err := freeCowExtent(tx, ag, e); err != nil {
			tx.Cancel()
			return 0, err
		}
		n++
	}
	if _, err := tx.Commit(); err != nil {
		tx.Cancel()
		return 0, err
	}
	return n, nil
}

// freeCowExtent is one iteration of xfs_refcount_recover_cow_leftovers:
// xfs_refcount_free_cow_extent (rmap FREE of owner COW, refcount
// FREE_COW) and xfs_free_extent_later with owner NULL, finished in that
// order as the kernel's deferred work runs them.
func freeCowExtent(tx *journal.Transaction, ag *alloc.AG, e CowExtent) error {
	if err := alloc.Unmap(tx, ag, e.Agbno, e.Blocks, alloc.OwnerCow); err != nil {
		return err
	}
	if err := refcount.New(ag).CowFree(tx, e.Agbno, e.Blocks); err != nil {
		return err
	}
	return alloc.FreeExtent(tx, ag, e.Agbno, e.Blocks, alloc.OwnerNull)
}

// cowLeftovers collects every AG's CoW staging records, read-only
// (refcount.AG.CowRecords: a record whose count is not 1 is corruption).
func (fs *FS) cowLeftovers() ([]CowExtent, error) {
	var out []CowExtent
	for agno := range fs.G.AGCount {
		tx := btree.NewReadTx(fs.Cache)
		recs, err := func() ([]refcount.Rec, error) {
			defer tx.End()
			a, err := alloc.ReadAG(tx, fs.G, agno)
			if err != nil {
				return nil, err
			}
			return refcount.New(a).CowRecords(tx)
		}()
		if err != nil {
			return nil, &CowRecordError{AG: agno, Err: err}
		}
		for _, r := range recs {
			out = append(out, CowExtent{AG: agno, Agbno: r.Start, Blocks: r.Len})
		}
	}
	return out, nil
}
