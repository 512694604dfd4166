package xfs

// The free engine (`xfsfree free`): what Free frees, what it reports, and
// the run: the inodes asked for by number resolved first (all or nothing),
// the check before the first write (Preflight), per-AG workers that plan
// and free their AG as a stream (free_ag.go: orphans in inode number
// order, a window at a time; free_batch.go: several frees to a transaction),
// the background writeback (free_writeback.go), and Finish. Commits go into
// the journal's open checkpoint, shared by every worker; the checkpoint is
// written when it is full, and at Finish.

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/xfsfree/xfsfree/alloc"
	"github.com/xfsfree/xfsfree/journal"
	"github.com/xfsfree/xfsfree/ondisk"
)

// FreeOptions say what Free frees.
type FreeOptions struct {
	// Orphans frees every inode on the AGI unlinked lists.
	Orphans bool
	// EmptyChunks releases the chunks whose inodes are all free already.
	EmptyChunks bool
	// Inos frees these inodes, which must be orphans (nlink 0, on their
	// bucket chain); others are refused by number.
	Inos []uint64
	// KeepChunks keeps chunks that frees leave entirely free, as the old
	// ikeep mount option did.
	KeepChunks bool
	// DryRun plans and writes nothing (the filesystem may be open
	// read-only).
	DryRun bool
	// Progress, if set, is called after each inode or chunk.
	Progress func(done, total int)
	// Stop, if set, ends the run at the next transaction boundary once
	// it is closed (an interrupt): what committed is kept, the rest is
	// left as it was, and the run ends as any other (Finish: the log is
	// clean). The report says Interrupted.
	Stop <-chan struct{}
	// BatchInodes caps the frees in one transaction (0: 64).
	BatchInodes int
	// Window is how many orphans of an AG are read and inspected ahead
	// of their frees (0: 4096): the memory the plan takes is bounded by
	// it, whatever the number of orphans.
	Window int
	// CheckpointBytes is the size of the checkpoints the commits are
	// gathered in before they are written to the log (0: the journal's
	// default, a quarter of the log up to 32 MiB).
	CheckpointBytes int64
	// DirtyBuffers wakes the background writeback when this many buffers
	// hold changes not written in place (0: 4096); it also wakes when
	// half the log is in use.
	DirtyBuffers int
	// MaxCachedInodes is the inode cache's bound: after each writeback
	// the clean, unreferenced inodes past it are reclaimed (0: 65536).
	MaxCachedInodes int
	// Keep lists orphans not to free, each with the reason it is refused
	// with (rescue.Manifest.NotSaved: orphans whose bytes could not be
	// saved first).
	Keep map[uint64]string
	// ListInodes bounds the freed inodes the report lists (0: every
	// one; negative: none; n: the first n freed): a caller that shows
	// none, or a few, need not keep 40 bytes per orphan. The counts
	// cover them all.
	ListInodes int
	// TruncateExtents: an orphan with more extents than this is truncated
	// in several transactions first, about this many extents each, from
	// its highest offset (0: 16384), as the kernel's
	// xfs_itruncate_extents does; the last transaction frees it.
	TruncateExtents int

	// chunkFreed, if set (tests), is called when the transaction that
	// freed a chunk is durable, before it releases the chunk's cancelled
	// cluster buffers.
	chunkFreed func(agno, startino uint32)
	// afterPreflight, if set (tests), is called after the check before
	// the first write, before any worker starts.
	afterPreflight func(fs *FS)
	// committed, if set (tests), is called after each commit of a batch
	// (not yet durable), from the worker that committed it.
	committed func()
	// noFinish leaves the session open at the end (clean's next phase
	// ends it); the quota flags are the caller's too.
	noFinish bool
	// workersDone, if set (tests), is called when every worker is done,
	// before the writeback stops and Finish runs.
	workersDone func()
}

// FreeReport is what Free did (or, for a dry run, would do).
type FreeReport struct {
	Device  string        `json:"device"`
	DryRun  bool          `json:"dry_run"`
	Inodes  FreedInodes   `json:"inodes"`
	Chunks  []FreedChunk  `json:"chunks"`
	Refused []Refusal     `json:"refused"`
	Errors  []FreeFailure `json:"errors"`
	// Planned is the number of inodes and chunks the plan held; an
	// interrupted run did fewer.
	Planned      int    `json:"planned"`
	Interrupted  bool   `json:"interrupted,omitempty"`
	InodesFreed  int    `json:"orphans_freed"`
	ForkBlocks   uint64 `json:"orphan_blocks_freed"`
	ChunksFreed  int    `json:"chunks_freed"`
	ChunkInodes  uint64 `json:"chunk_inodes_freed"`
	ChunkBlocks  uint64 `json:"chunk_blocks_freed"`
	Transactions int    `json:"transactions"`
	// TruncateSteps counts the transactions that truncated big orphans
	// before the ones that freed them (included in Transactions).
	TruncateSteps int `json:"truncate_steps,omitempty"`
	// LogBytes is the log written from the first transaction to the
	// unmount record.
	LogBytes int64    `json:"log_bytes_written"`
	Before   Counters `json:"counters_before"`
	After    Counters `json:"counters_after"`
	Note     string   `json:"note,omitempty"`
	// QuotaNote says that the quota "checked" flags were cleared.
	QuotaNote string `json:"quota_note,omitempty"`
	// Writeback is what the background writeback did.
	Writeback WritebackStats `json:"writeback"`
	// Journal is what the log session did: commits, checkpoints written,
	// log bytes, writeback passes.
	Journal journal.SessionStats `json:"journal"`
	// BusyReused counts allocations that found only busy space (freed by
	// a checkpoint not yet durable) and took it.
	BusyReused int `json:"busy_reused"`
}

// WritebackStats count the background writeback's work during a free.
type WritebackStats struct {
	Writebacks      int64 `json:"writebacks"`
	InodesReclaimed int64 `json:"inodes_reclaimed"`
}

// FreedInode is an orphan freed (or planned). JSON gives its mode's type
// name beside the mode ("type").
type FreedInode struct {
	Ino        uint64 `json:"ino"`
	AG         uint32 `json:"ag"`
	Mode       Mode   `json:"mode"`
	Size       uint64 `json:"size"`
	Blocks     uint64 `json:"blocks"`
	ChunkFreed bool   `json:"chunk_freed"`
}

// FreedInodes is a run's freed inodes, by inode number.
type FreedInodes []FreedInode

// FreedChunk is an inode chunk released (or planned), by an inode free
// that emptied it or because it was entirely free already.
type FreedChunk struct {
	AG         uint32 `json:"ag"`
	StartIno   uint64 `json:"start_ino"`
	StartAgino uint32 `json:"start_agino"`
	Inodes     uint32 `json:"inodes"`
	Blocks     uint32 `json:"blocks"`
	WasEmpty   bool   `json:"was_empty"`
}

// Refusal is an inode (or a chunk, by its first inode) not freed, with the
// reason; nothing was written for it.
type Refusal struct {
	Ino    uint64 `json:"ino"`
	Reason string `json:"reason"`
}

// FreeFailure is a free that failed while changing the filesystem: its
// transaction was cancelled (nothing of it written). AG-wide failures
// have no inode (Ino 0).
type FreeFailure = Problem

// Failed reports whether anything was refused or failed.
func (r *FreeReport) Failed() bool { return len(r.Refused) > 0 || len(r.Errors) > 0 }

// ErrNothingToFree is returned for options that select nothing.
var ErrNothingToFree = errors.New("nothing selected: give --orphans, --empty-chunks or --ino")

// InoRefusedError refuses a run given inodes by number when any of them
// cannot be freed: nothing is written. This struct does not represent an
// on-disk struct.
type InoRefusedError struct{ Refused []Refusal }

func (e *InoRefusedError) Error() string {
	parts := make([]string, len(e.Refused))
	for i, r := range e.Refused {
		parts[i] = fmt.Sprintf("inode %d %s", r.Ino, r.Reason)
	}
	return fmt.Sprintf("refusing every --ino: %s; nothing was written", strings.Join(parts, "; "))
}

// freeRun is the state shared by a run's workers: the report (under mu),
// the progress count, and the busy extents.
type freeRun struct {
	fs      *FS
	o       FreeOptions
	mu      sync.Mutex
	rep     *FreeReport
	done    int
	planned int
	busy    *alloc.Busy
}

// freed reports one inode freed (under mu): counted, and listed unless
// the report has as many as it lists.
func (r *freeRun) freed(in FreedInode) {
	r.rep.InodesFreed++
	r.rep.ForkBlocks += in.Blocks
	if n := r.o.ListInodes; n == 0 || len(r.rep.Inodes) < n {
		r.rep.Inodes = append(r.rep.Inodes, in)
	}
}

func (r *freeRun) report(fn func(rep *FreeReport)) {
	r.mu.Lock()
	fn(r.rep)
	r.mu.Unlock()
}

// plan adds n items to the work planned (an AG's plan is known once its
// chains are walked).
func (r *freeRun) plan(n int) {
	r.mu.Lock()
	r.planned += n
	r.mu.Unlock()
}

// tick counts n items done.
func (r *freeRun) tick(n int) {
	r.mu.Lock()
	r.done += n
	done, total := r.done, r.planned
	r.mu.Unlock()
	if r.o.Progress != nil {
		r.o.Progress(done, total)
	}
}

// Free frees what o selects. A dry run needs only a read-only open; a real
// run needs OpenWrite, and ends with Finish (the filesystem is clean
// afterwards; close it), unless it committed nothing: then nothing at all
// is written. Before its first write it refuses the whole run if any
// inode asked for by number cannot be freed (InoRefusedError) or if the
// filesystem is inconsistent (PreflightError). Refusals and failures of
// single inodes or AGs met later are in the report (FreeReport.Failed);
// the error is for what stops the whole run.
func (fs *FS) Free(o FreeOptions) (*FreeReport, error) {
	if !o.Orphans && !o.EmptyChunks && len(o.Inos) == 0 {
		return nil, ErrNothingToFree
	}
	if !o.DryRun && fs.log == nil {
		return nil, ErrNotWritable
	}
	rep := &FreeReport{Device: fs.Path, DryRun: o.DryRun, Inodes: FreedInodes{}, Chunks: []FreedChunk{}}
	if before, err := fs.SummaryCounters(); err == nil {
		rep.Before = Counters(before)
	}
	if o.DryRun {
		if st, err := fs.LogState(); err == nil && st != nil && !st.Clean {
			rep.Note = DirtyLogNote
		}
	}
	run := &freeRun{fs: fs, o: o, rep: rep, busy: alloc.NewBusy()}
	// Inodes asked for by number are all freed or none: every one is
	// found and inspected before anything is written.
	var byAG map[uint32][]uint32
	if len(o.Inos) > 0 {
		var refused []Refusal
		byAG, refused = fs.resolveInos(o)
		if len(refused) > 0 {
			rep.Refused = refused
			if !o.noFinish {
				fs.log = nil
			}
			return rep, &InoRefusedError{Refused: refused}
		}
	}
	// Everything the run relies on is checked before the first write
	// (and by a dry run as by the real one).
	if err := fs.Preflight(); err != nil {
		if !o.noFinish {
			fs.log = nil
		}
		return rep, err
	}
	if o.afterPreflight != nil {
		o.afterPreflight(fs)
	}
	var wb *writeback
	var startBlock int64
	var startCycle uint32
	if !o.DryRun {
		startBlock, startCycle = fs.log.Head()
		fs.log.SetPushBytes(o.CheckpointBytes)
		wb = fs.startWriteback(o)
	}
	workers := fs.opts.Workers
	if workers <= 0 {
		workers = 8
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, workers)
	admit := newBudget(fs.Cache.MaxBytes() / 2) // free_admit.go
	for agno := range fs.G.AGCount {
		var inos []uint32
		var weight int64
		if byAG != nil {
			if inos = byAG[agno]; len(inos) == 0 && !o.EmptyChunks {
				continue
			}
			weight = int64(len(inos)) * int64(fs.G.InodeSize)
		} else {
			weight = fs.agWeight(agno)
		}
		wg.Add(1)
		sem <- struct{}{}
		weight = admit.acquire(weight)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			defer admit.release(weight)
			w := &agWorker{run: run, fs: fs, o: o, agno: agno, inos: inos, workers: workers}
			w.work()
		}()
	}
	wg.Wait()
	if o.workersDone != nil {
		o.workersDone()
	}
	var wbErr error
	if wb != nil {
		wbErr = wb.stop()
		rep.Writeback = WritebackStats{Writebacks: wb.writebacks.Load(), InodesReclaimed: wb.reclaimed.Load()}
		if wbErr != nil {
			wbErr = fmt.Errorf("background writeback: %w", wbErr)
		}
	}
	rep.Planned = run.planned
	rep.Interrupted = stopped(o.Stop)
	rep.BusyReused = run.busy.Reused
	slices.SortFunc(rep.Inodes, func(a, b FreedInode) int { return cmpU64(a.Ino, b.Ino) })
	slices.SortFunc(rep.Chunks, func(a, b FreedChunk) int { return cmpU64(a.StartIno, b.StartIno) })
	slices.SortFunc(rep.Refused, func(a, b Refusal) int { return cmpU64(a.Ino, b.Ino) })
	for _, c := range rep.Chunks {
		rep.ChunksFreed++
		rep.ChunkInodes += uint64(c.Inodes)
		rep.ChunkBlocks += uint64(c.Blocks)
	}
	if o.DryRun {
		rep.After = rep.Before
		rep.After.ICount -= rep.ChunkInodes
		rep.After.IFree = rep.After.IFree + uint64(rep.InodesFreed) - rep.ChunkInodes
		rep.After.FDBlocks += rep.ForkBlocks + rep.ChunkBlocks
		if fs.SB.QFlags&ondisk.QFlagAllChkd != 0 && (rep.InodesFreed > 0 || rep.ChunksFreed > 0) {
			rep.QuotaNote = "quota accounting is on: the quota 'checked' flags would be cleared so that the next mount re-counts usage"
		}
		return rep, nil
	}
	if o.noFinish {
		return rep, wbErr // the caller ends the session (clean)
	}
	if rep.Transactions == 0 && fs.log.Err() == nil {
		// Nothing committed, so nothing was written (the log writer
		// writes nothing before its first record): a run that freed
		// nothing, or refused everything, leaves the device untouched.
		fs.log = nil
		rep.After = rep.Before
		return rep, wbErr
	}
	// From here on the run always ends with Finish, whatever failed:
	// what committed is written in place and the log is left clean.
	var quotaErr error
	if fs.SB.QFlags&ondisk.QFlagAllChkd != 0 && rep.InodesFreed > 0 && fs.log.Err() == nil {
		if quotaErr = fs.clearQuotaChecked(); quotaErr != nil {
			quotaErr = fmt.Errorf("clearing the quota checked flags: %w", quotaErr)
		} else {
			rep.Transactions++
			rep.QuotaNote = quotaClearedNote
		}
	}
	session := fs.log
	finErr := fs.Finish()
	rep.Journal = session.Stats()
	endBlock, endCycle := session.Head()
	rep.LogBytes = (int64(endCycle-startCycle)*fs.G.LogBBs + endBlock - startBlock) * ondisk.BBSize
	rep.After = Counters{ICount: fs.SB.ICount, IFree: fs.SB.IFree, FDBlocks: fs.SB.FDBlocks}
	return rep, errors.Join(wbErr, quotaErr, finErr)
}

// quotaClearedNote says that the quota "checked" flags were cleared.
const quotaClearedNote = "quota accounting is on: the quota 'checked' flags were cleared (as xfs_repair does), so the next mount re-counts usage"

// errStopped ends a truncation in steps at an interrupt.
var errStopped = errors.New("stopped")

// stopped reports whether the stop channel is closed.
func stopped(stop <-chan struct{}) bool {
	if stop == nil {
		return false
	}
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
