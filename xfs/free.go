package xfs

// The free engine's orchestration (`xfsfree free`): a plan from a scan,
// per-AG workers that free orphans in the order the kernel's mount does
// (xlog_recover_process_iunlinks: AG, bucket, chain order) and release
// chunks that are already entirely free, several frees to a transaction
// within the log's space, and Finish at the end.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/xfsfree/xfsfree/agi"
	"github.com/xfsfree/xfsfree/alloc"
	"github.com/xfsfree/xfsfree/btree"
	"github.com/xfsfree/xfsfree/icluster"
	"github.com/xfsfree/xfsfree/inobt"
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
	// CheckpointEvery wakes the background writeback after this many
	// commits (0: 256); it also wakes when the log is a quarter full.
	CheckpointEvery int
	// MaxCachedInodes is the inode cache's bound: after each checkpoint
	// the writeback reclaims clean, unreferenced inodes past it (0: 65536).
	MaxCachedInodes int
	// Keep lists orphans not to free, each with the reason it is refused
	// with (rescue.Manifest.NotSaved: orphans whose bytes could not be
	// saved first).
	Keep map[uint64]string
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
	// workersDone, if set (tests), is called when every worker is done,
	// before the writeback stops and Finish runs.
	workersDone func()
}

// FreeReport is what Free did (or, for a dry run, would do).
type FreeReport struct {
	Device  string        `json:"device"`
	DryRun  bool          `json:"dry_run"`
	Inodes  []FreedInode  `json:"inodes"`
	Chunks  []FreedChunk  `json:"chunks"`
	Refused []Refusal     `json:"refused,omitempty"`
	Errors  []FreeFailure `json:"errors,omitempty"`
	// Planned is the number of inodes and chunks the plan held; an
	// interrupted run did fewer.
	Planned      int    `json:"planned"`
	Interrupted  bool   `json:"interrupted,omitempty"`
	InodesFreed  int    `json:"inodes_freed"`
	ForkBlocks   uint64 `json:"fork_blocks_freed"`
	ChunksFreed  int    `json:"chunks_freed"`
	ChunkInodes  uint64 `json:"chunk_inodes_released"`
	ChunkBlocks  uint64 `json:"chunk_blocks_freed"`
	Transactions int    `json:"transactions"`
	// TruncateSteps counts the transactions that truncated big orphans
	// before the ones that freed them (included in Transactions).
	TruncateSteps int `json:"truncate_steps,omitempty"`
	// LogBytes is the log written from the first transaction to the
	// unmount record.
	LogBytes int64    `json:"log_bytes_written"`
	Before   Counters `json:"before"`
	After    Counters `json:"after"`
	Note     string   `json:"note,omitempty"`
	// QuotaNote says that the quota "checked" flags were cleared.
	QuotaNote string `json:"quota_note,omitempty"`
	// Writeback is what the background writeback did.
	Writeback WritebackStats `json:"writeback"`
}

// WritebackStats count the background writeback's work during a free.
type WritebackStats struct {
	Checkpoints     int64 `json:"checkpoints"`
	InodesReclaimed int64 `json:"inodes_reclaimed"`
}

// FreedInode is an orphan freed (or planned).
type FreedInode struct {
	Ino        uint64 `json:"ino"`
	AG         uint32 `json:"ag"`
	Mode       uint16 `json:"mode"`
	Size       uint64 `json:"size"`
	Blocks     uint64 `json:"blocks"`
	ChunkFreed bool   `json:"chunk_freed"`
}

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
// have no inode.
type FreeFailure struct {
	AG  uint32 `json:"ag"`
	Ino uint64 `json:"ino,omitempty"`
	Err string `json:"error"`
}

// Failed reports whether anything was refused or failed.
func (r *FreeReport) Failed() bool { return len(r.Refused) > 0 || len(r.Errors) > 0 }

// Quota flags (xfs_format.h): the "quotacheck done" bits that xfs_repair
// clears when it changes usage behind the quota files' back.
const (
	qUquotaChkd = 0x0004
	qOquotaChkd = 0x0020
	qGquotaChkd = 0x0100
	qPquotaChkd = 0x0400
	qAllChkd    = qUquotaChkd | qOquotaChkd | qGquotaChkd | qPquotaChkd
	sbQFlagsOff = 176
)

// ErrNothingToFree is returned for options that select nothing.
var ErrNothingToFree = errors.New("nothing selected: give --orphans, --empty-chunks or --ino")

// agPlan is one AG's work.
type agPlan struct {
	agno    uint32
	st      *AGState
	victims []*icluster.Victim
	chunks  []ondisk.InobtRec // entirely free already
	err     error
}

// Free frees what o selects. A dry run needs only a read-only open; a real
// run needs OpenWrite, and ends with Finish (the filesystem is clean
// afterwards; close it), unless it committed nothing: then nothing at all
// is written. Refusals and failures of single inodes or AGs are
// in the report (FreeReport.Failed); the error is for what stops the whole
// run.
func (fs *FS) Free(o FreeOptions) (*FreeReport, error) {
	if !o.Orphans && !o.EmptyChunks && len(o.Inos) == 0 {
		return nil, ErrNothingToFree
	}
	if !o.DryRun && fs.log == nil {
		return nil, ErrNotWritable
	}
	rep := &FreeReport{Device: fs.Path, DryRun: o.DryRun}
	var w *journal.Writer
	var startBlock int64
	var startCycle uint32
	if !o.DryRun {
		w = fs.log.Writer()
		startBlock, startCycle = w.Head()
	}
	if before, err := fs.SummaryCounters(); err == nil {
		rep.Before = Counters(before)
	}
	if o.DryRun {
		if st, err := fs.LogState(); err == nil && st != nil && !st.Clean {
			rep.Note = DirtyLogNote
		}
	}
	plans, refused := fs.planFree(o)
	rep.Refused = append(rep.Refused, refused...)
	if len(o.Inos) > 0 && len(refused) > 0 {
		// Inodes asked for by number are all freed or none: nothing is
		// written before every one of them was found freeable.
		slices.SortFunc(rep.Refused, func(a, b Refusal) int { return cmpU64(a.Ino, b.Ino) })
		fs.log = nil
		return rep, &InoRefusedError{Refused: rep.Refused}
	}
	// Everything the run relies on is checked before the first write
	// (and by a dry run as by the real one).
	if err := fs.Preflight(); err != nil {
		fs.log = nil
		return rep, err
	}
	if o.afterPreflight != nil {
		o.afterPreflight(fs)
	}
	total := 0
	for _, p := range plans {
		if p.err != nil {
			rep.Errors = append(rep.Errors, FreeFailure{AG: p.agno, Err: p.err.Error()})
		}
		total += len(p.victims) + len(p.chunks)
	}
	rep.Planned = total
	var mu sync.Mutex // guards rep and done
	done := 0
	tick := func() {
		done++
		if o.Progress != nil {
			o.Progress(done, total)
		}
	}
	var wg sync.WaitGroup
	workers := fs.opts.Workers
	if workers <= 0 {
		workers = 8
	}
	sem := make(chan struct{}, workers)
	var wb *writeback
	if !o.DryRun {
		wb = fs.startWriteback(o)
	}
	for _, p := range plans {
		if p.err != nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			w := &freeWorker{fs: fs, o: o, p: p, mu: &mu, rep: rep, tick: tick, workers: workers}
			if o.DryRun {
				w.dryRun()
			} else {
				w.run()
			}
		}()
	}
	wg.Wait()
	if o.workersDone != nil {
		o.workersDone()
	}
	var wbErr error
	if wb != nil {
		wbErr = wb.stop()
		rep.Writeback = WritebackStats{Checkpoints: wb.checkpoints.Load(), InodesReclaimed: wb.reclaimed.Load()}
		if wbErr != nil {
			wbErr = fmt.Errorf("background writeback: %w", wbErr)
		}
	}
	rep.Interrupted = stopped(o.Stop)
	slices.SortFunc(rep.Inodes, func(a, b FreedInode) int { return cmpU64(a.Ino, b.Ino) })
	slices.SortFunc(rep.Chunks, func(a, b FreedChunk) int { return cmpU64(a.StartIno, b.StartIno) })
	slices.SortFunc(rep.Refused, func(a, b Refusal) int { return cmpU64(a.Ino, b.Ino) })
	for _, in := range rep.Inodes {
		rep.InodesFreed++
		rep.ForkBlocks += in.Blocks
	}
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
		if fs.SB.QFlags&qAllChkd != 0 && (rep.InodesFreed > 0 || rep.ChunksFreed > 0) {
			rep.QuotaNote = "quota accounting is on: the quota 'checked' flags would be cleared so that the next mount re-counts usage"
		}
		return rep, nil
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
	if fs.SB.QFlags&qAllChkd != 0 && rep.InodesFreed > 0 && fs.log.Err() == nil {
		if quotaErr = fs.clearQuotaChecked(); quotaErr != nil {
			quotaErr = fmt.Errorf("clearing the quota checked flags: %w", quotaErr)
		} else {
			rep.Transactions++
			rep.QuotaNote = "quota accounting is on: the quota 'checked' flags were cleared (as xfs_repair does), so the next mount re-counts usage"
		}
	}
	finErr := fs.Finish()
	endBlock, endCycle := w.Head()
	rep.LogBytes = (int64(endCycle-startCycle)*fs.G.LogBBs + endBlock - startBlock) * ondisk.BBSize
	rep.After = Counters{ICount: fs.SB.ICount, IFree: fs.SB.IFree, FDBlocks: fs.SB.FDBlocks}
	return rep, errors.Join(wbErr, quotaErr, finErr)
}

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

// writeback is the background writeback of a free run (the kernel's AIL
// push and inode reclaim workers): woken by commits when the log is a
// quarter full or every CheckpointEvery commits, it checkpoints (dirty
// buffers written in place, adjacent ones coalesced; the inodes attached to
// them flushed: FlushDone once written; a cancelled buffer is never
// written, its STALE inodes' flushes were aborted at the commit that
// cancelled it) and then reclaims clean, unreferenced inodes past the
// inode cache's bound. It holds no buffer or inode while it waits for one:
// Checkpoint takes buffers one at a time and tries the ILOCKs (buffer →
// ILOCK → flush lock).
type writeback struct {
	fs          *FS
	kick, quit  chan struct{}
	done        chan struct{}
	at          int64
	every       uint64
	next        atomic.Uint64 // commit count at which to wake next
	maxInodes   int
	err         error // set by the loop before done closes
	checkpoints atomic.Int64
	reclaimed   atomic.Int64
}

func (fs *FS) startWriteback(o FreeOptions) *writeback {
	wb := &writeback{fs: fs, kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		at: fs.G.LogBBs / 4, every: uint64(o.CheckpointEvery), maxInodes: o.MaxCachedInodes}
	if wb.every == 0 {
		wb.every = 256
	}
	if wb.maxInodes <= 0 {
		wb.maxInodes = 1 << 16
	}
	wb.next.Store(wb.every)
	fs.log.SetCommitHook(func(used int64, commits uint64) {
		if used > wb.at || commits >= wb.next.Load() {
			wb.next.Store(commits + wb.every)
			select {
			case wb.kick <- struct{}{}:
			default:
			}
		}
	})
	go wb.loop()
	return wb
}

func (wb *writeback) loop() {
	defer close(wb.done)
	for {
		select {
		case <-wb.quit:
			return
		case <-wb.kick:
		}
		if err := wb.fs.log.Checkpoint(); err != nil {
			wb.err = err
			return
		}
		wb.checkpoints.Add(1)
		wb.reclaimed.Add(int64(wb.fs.Inodes.Reclaim(wb.maxInodes)))
	}
}

// stop ends the writeback (the commits' hook first) and returns the
// error that stopped it, if any.
func (wb *writeback) stop() error {
	wb.fs.log.SetCommitHook(nil)
	close(wb.quit)
	<-wb.done
	return wb.err
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

// clearQuotaChecked clears the quota "checked" flags in the superblock, in
// one transaction.
func (fs *FS) clearQuotaChecked() error {
	tx := fs.Begin()
	b, err := fs.readSB(tx)
	if err != nil {
		tx.Cancel()
		return err
	}
	q := binary.BigEndian.Uint16(b.Data[sbQFlagsOff:]) &^ qAllChkd
	binary.BigEndian.PutUint16(b.Data[sbQFlagsOff:], q)
	tx.LogRange(b, sbQFlagsOff, sbQFlagsOff+1)
	if _, err := tx.Commit(); err != nil {
		tx.Cancel()
		return err
	}
	fs.SB.QFlags = q
	return nil
}

// planFree scans every AG and lists, per AG, the orphans to free in the
// kernel's order (bucket, then chain) and the entirely free chunks to
// release. Inodes asked for by number that cannot be freed are refused.
func (fs *FS) planFree(o FreeOptions) ([]*agPlan, []Refusal) {
	g := fs.G
	plans := make([]*agPlan, g.AGCount)
	var refused []Refusal
	want := map[uint64]bool{}
	for _, ino := range o.Inos {
		if !g.ValidIno(ino) {
			refused = append(refused, Refusal{Ino: ino, Reason: "not an inode number of this filesystem"})
			continue
		}
		want[ino] = true
	}
	var mu sync.Mutex
	fs.forEachAG(func(agno uint32) error {
		p := &agPlan{agno: agno}
		plans[agno] = p
		st, err := fs.ScanAG(agno)
		if err != nil {
			p.err = fmt.Errorf("AG %d: %w", agno, err)
			return nil
		}
		p.st = st
		onChain := map[uint64]bool{}
		var ref []Refusal
		for _, c := range st.Chains {
			for _, orph := range c.Inodes {
				onChain[orph.Ino] = true
				if !o.Orphans && !want[orph.Ino] {
					continue
				}
				if why, ok := o.Keep[orph.Ino]; ok {
					ref = append(ref, Refusal{Ino: orph.Ino, Reason: why})
					continue
				}
				loc, err := fs.Locate(agno, st.Inobt, orph.Agino)
				if err == nil {
					var v *icluster.Victim
					if v, err = icluster.Inspect(fs.Cache, g, agno, orph.Agino, loc); err == nil {
						p.victims = append(p.victims, v)
						continue
					}
				}
				ref = append(ref, refusal(orph.Ino, err))
			}
		}
		for ino := range want {
			if g.InoToAgno(ino) == agno && !onChain[ino] {
				ref = append(ref, Refusal{Ino: ino, Reason: fs.whyNotOrphan(agno, st, g.InoToAgino(ino))})
			}
		}
		if o.EmptyChunks && g.InoPBlock <= ondisk.InodesPerChunk {
			for _, r := range st.Inobt {
				if r.Free == ondisk.InobtAllFree {
					p.chunks = append(p.chunks, r)
				}
			}
		}
		mu.Lock()
		refused = append(refused, ref...)
		mu.Unlock()
		return nil
	}, nil)
	return plans, refused
}

func refusal(ino uint64, err error) Refusal {
	var re *icluster.RefusedError
	if errors.As(err, &re) {
		return Refusal{Ino: ino, Reason: re.Reason}
	}
	return Refusal{Ino: ino, Reason: err.Error()}
}

// whyNotOrphan says why an inode asked for by number is not on an unlinked
// list.
func (fs *FS) whyNotOrphan(agno uint32, st *AGState, agino uint32) string {
	loc, err := fs.Locate(agno, st.Inobt, agino)
	if err != nil {
		return err.Error()
	}
	d, err := agi.ReadInode(fs.Cache, fs.G, loc)
	if err != nil {
		return err.Error()
	}
	switch {
	case d.Mode == 0:
		return "is already free (mode 0)"
	case d.Nlink != 0:
		return fmt.Sprintf("has %d link(s): only unlinked inodes (nlink 0) are freed", d.Nlink)
	}
	return fmt.Sprintf("has nlink 0 but is not on its AGI unlinked list (bucket %d): refusing to free an inode the filesystem does not list as an orphan",
		agino%ondisk.AGIUnlinkedBuckets)
}

// freeWorker frees one AG's plan.
type freeWorker struct {
	fs      *FS
	o       FreeOptions
	p       *agPlan
	mu      *sync.Mutex
	rep     *FreeReport
	tick    func()
	workers int

	chains map[int][]uint32 // bucket -> the chain as on disk (committed), head first
}

func (w *freeWorker) report(fn func(r *FreeReport)) {
	w.mu.Lock()
	fn(w.rep)
	w.mu.Unlock()
}

func (w *freeWorker) refuse(ino uint64, err error) {
	w.report(func(r *FreeReport) { r.Refused = append(r.Refused, refusal(ino, err)) })
}

func (w *freeWorker) fail(ino uint64, err error) {
	w.report(func(r *FreeReport) {
		r.Errors = append(r.Errors, FreeFailure{AG: w.p.agno, Ino: ino, Err: err.Error()})
	})
}

func (w *freeWorker) progress() {
	w.mu.Lock()
	w.tick()
	w.mu.Unlock()
}

// dryRun reports what run would free: the records' free bits are set in
// memory to find the chunks the frees empty.
func (w *freeWorker) dryRun() {
	g, agno := w.fs.G, w.p.agno
	recs := slices.Clone(w.p.st.Inobt)
	for _, v := range w.p.victims {
		in := FreedInode{Ino: v.Ino, AG: agno, Mode: v.Mode, Size: v.Size, Blocks: v.Blocks()}
		i := sort.Search(len(recs), func(i int) bool { return recs[i].StartIno+ondisk.InodesPerChunk > v.Agino })
		if i < len(recs) && recs[i].StartIno <= v.Agino {
			r := &recs[i]
			r.Free |= 1 << (v.Agino - r.StartIno)
			r.FreeCount++
			if r.Free == ondisk.InobtAllFree && !w.o.KeepChunks && g.InoPBlock <= ondisk.InodesPerChunk {
				in.ChunkFreed = true
				w.addChunk(*r, false)
			}
		}
		w.report(func(rep *FreeReport) { rep.Inodes = append(rep.Inodes, in) })
		w.progress()
	}
	for _, r := range w.p.chunks {
		w.addChunk(r, true)
		w.progress()
	}
}

func (w *freeWorker) addChunk(r ondisk.InobtRec, wasEmpty bool) {
	g := w.fs.G
	var blocks uint32
	for _, e := range g.ChunkExtents(r.StartIno, r.HoleMask) {
		blocks += e.Len
	}
	c := FreedChunk{AG: w.p.agno, StartIno: g.Ino(w.p.agno, r.StartIno), StartAgino: r.StartIno, Inodes: uint32(r.Count), Blocks: blocks, WasEmpty: wasEmpty}
	w.report(func(rep *FreeReport) { rep.Chunks = append(rep.Chunks, c) })
}

// agEnv builds the per-transaction environment of the AG's frees.
func (w *freeWorker) agEnv() *icluster.AG {
	fs := w.fs
	return &icluster.AG{Agno: w.p.agno, G: fs.G, Cache: fs.Cache, Inodes: fs.Inodes,
		Btrees: &inodeBtrees{g: fs.G, c: fs, agno: w.p.agno}, Space: &space{g: fs.G}, KeepChunks: w.o.KeepChunks}
}

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
	items   []item
	results []*icluster.Freed
	undo    []func() // restores the in-memory chains if the batch is cancelled
	maxAG   int64    // highest AG whose AGF the transaction holds (-1: none)
}

// run frees the AG's plan: inodes in chain order, then the chunks that
// were empty already, several to a transaction.
func (w *freeWorker) run() {
	w.chains = map[int][]uint32{}
	for _, c := range w.p.st.Chains {
		for _, o := range c.Inodes {
			w.chains[c.Bucket] = append(w.chains[c.Bucket], o.Agino)
		}
	}
	var items []item
	for _, v := range w.p.victims {
		items = append(items, item{v: v})
	}
	for i := range w.p.chunks {
		items = append(items, item{chunk: &w.p.chunks[i]})
	}
	w.runItems(items, true)
}

// runItems frees items in batches. With retry, a batch whose commit fails
// (log space) or one of whose frees fails is cancelled and its items are
// done again one transaction each, the failing one reported.
func (w *freeWorker) runItems(items []item, retry bool) {
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
			w.undoBatch(cur)
			if retry && errors.Is(err, journal.ErrTransTooBig) {
				// The log is full of commits the writeback has not
				// checkpointed yet: checkpoint (holding nothing) and redo.
				if cerr := w.fs.log.Checkpoint(); cerr == nil {
					w.runItems(cur.items, false)
					return
				}
			}
			if retry && len(cur.items) > 1 {
				w.runItems(cur.items, false)
				return
			}
			for _, it := range cur.items {
				w.fail(it.ino(w.fs.G, w.p.agno), fmt.Errorf("committing its transaction: %w", err))
				w.progress()
			}
			return
		}
		w.committed(cur)
	}
	for _, it := range items {
		if stopped(w.o.Stop) {
			break
		}
		if it.v != nil && it.v.NeedsSteps(w.stepExtents()) {
			// Too big for one transaction: truncate it in steps of its
			// own first (the batch so far is committed before).
			flush()
			v, blocks, err := w.truncateSteps(it.v)
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
				w.progress()
				continue
			}
			it.v = v
		}
		if b != nil && !w.fits(b, it, maxInodes) {
			flush()
		}
		if b == nil {
			b = &batch{tx: w.fs.Begin(), maxAG: -1}
		}
		res, err := w.apply(b, it)
		if errors.Is(err, icluster.ErrILockBusy) {
			// Someone holds an inode this free needs, and waiting for
			// it while the batch holds buffers would invert the lock
			// order: commit the batch, then wait in a new one.
			flush()
			b = &batch{tx: w.fs.Begin(), maxAG: -1}
			res, err = w.apply(b, it)
		}
		var re *icluster.RefusedError
		switch {
		case err == nil:
			b.items = append(b.items, it)
			b.results = append(b.results, res)
			for _, ag := range it.ags(w.p.agno) {
				b.maxAG = max(b.maxAG, int64(ag))
			}
			if res.ChunkFreed && w.o.chunkFreed != nil {
				agno, start := w.p.agno, res.ChunkStart
				b.tx.OnCommit(func() { w.o.chunkFreed(agno, start) })
			}
			if res.ChunkFreed {
				// The chunk's cluster buffers are cancelled in this
				// transaction and its blocks are free: commit before
				// anything could allocate them again (the kernel's busy
				// extents keep freed blocks from reuse until the free
				// commits).
				flush()
			}
		case errors.As(err, &re):
			// Nothing changed for it: the batch goes on.
			w.refuse(it.ino(w.fs.G, w.p.agno), err)
			w.progress()
		default:
			// The transaction is half changed: cancel it and redo the
			// others without this one.
			cur := b
			b = nil
			cur.tx.Cancel()
			w.undoBatch(cur)
			w.fail(it.ino(w.fs.G, w.p.agno), err)
			w.progress()
			if len(cur.items) > 0 {
				w.runItems(cur.items, false)
			}
		}
	}
	flush()
}

func (w *freeWorker) stepExtents() int {
	if w.o.TruncateExtents > 0 {
		return w.o.TruncateExtents
	}
	return 16384
}

// truncateSteps truncates v in transactions of their own
// (icluster.TruncateStep) until its data fork holds at most stepExtents
// extents or no step applies, and returns it inspected again, with the
// blocks freed. A transaction too big for the log is retried after a
// checkpoint with half the extents.
func (w *freeWorker) truncateSteps(v *icluster.Victim) (*icluster.Victim, uint64, error) {
	per := w.stepExtents()
	var blocks uint64
	for {
		if stopped(w.o.Stop) {
			return nil, blocks, errStopped
		}
		tx := w.fs.Begin()
		n, bl, left, err := w.agEnv().TruncateStep(tx, v, per)
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
		w.report(func(r *FreeReport) { r.Transactions++; r.TruncateSteps++ })
		if left <= uint64(w.stepExtents()) {
			break
		}
	}
	nv, err := icluster.Inspect(w.fs.Cache, w.fs.G, w.p.agno, v.Agino, v.Loc)
	return nv, blocks, err
}

// fits says whether it can join batch b: the batch is not full, its log
// size leaves room, and the AGFs it needs keep the transaction's AGF locks
// ascending (or are held already).
func (w *freeWorker) fits(b *batch, it item, maxInodes int) bool {
	if len(b.items) >= maxInodes {
		return false
	}
	if b.tx.Size() > w.fs.log.MaxTransBytes()/int64(2*w.workers) {
		return false
	}
	for _, ag := range it.ags(w.p.agno) {
		if int64(ag) < b.maxAG && !slices.ContainsFunc(b.items, func(x item) bool { return slices.Contains(x.ags(w.p.agno), ag) }) {
			return false
		}
	}
	return true
}

// apply does one free in b's transaction.
func (w *freeWorker) apply(b *batch, it item) (*icluster.Freed, error) {
	ag := w.agEnv()
	if it.chunk != nil {
		return ag.FreeEmptyChunk(b.tx, it.chunk.StartIno)
	}
	v := it.v
	bucket := int(v.Agino % ondisk.AGIUnlinkedBuckets)
	chain := w.chains[bucket]
	i := slices.Index(chain, v.Agino)
	if i < 0 {
		return nil, &icluster.RefusedError{Ino: v.Ino, Reason: fmt.Sprintf("is no longer on its unlinked list (bucket %d)", bucket)}
	}
	u := icluster.Unlink{Prev: ondisk.NullAgino}
	if i > 0 {
		loc, err := w.fs.Locate(w.p.agno, w.p.st.Inobt, chain[i-1])
		if err != nil {
			return nil, &icluster.RefusedError{Ino: v.Ino, Reason: err.Error(), Err: err}
		}
		u = icluster.Unlink{Prev: chain[i-1], PrevLoc: loc}
	}
	res, err := ag.Ifree(b.tx, v, u)
	if err != nil {
		return nil, err
	}
	w.chains[bucket] = slices.Delete(slices.Clone(chain), i, i+1)
	b.undo = append(b.undo, func() { w.chains[bucket] = chain })
	return res, nil
}

func (w *freeWorker) undoBatch(b *batch) {
	for i := len(b.undo) - 1; i >= 0; i-- {
		b.undo[i]()
	}
}

// committed reports a committed batch.
func (w *freeWorker) committed(b *batch) {
	g, agno := w.fs.G, w.p.agno
	w.report(func(rep *FreeReport) {
		rep.Transactions++
		for i, it := range b.items {
			res := b.results[i]
			if it.v != nil {
				rep.Inodes = append(rep.Inodes, FreedInode{Ino: it.v.Ino, AG: agno, Mode: it.v.Mode, Size: it.v.Size,
					Blocks: res.ForkBlocks + it.stepBlocks, ChunkFreed: res.ChunkFreed})
			}
			if res.ChunkFreed {
				rep.Chunks = append(rep.Chunks, FreedChunk{AG: agno, StartIno: g.Ino(agno, res.ChunkStart), StartAgino: res.ChunkStart,
					Inodes: res.ChunkInodes, Blocks: res.ChunkBlocks, WasEmpty: it.v == nil})
			}
		}
	})
	for range b.items {
		w.progress()
	}
}

// inodeBtrees is icluster.InodeBtrees over the btree engine: the AG's
// inobt and finobt as the AGI in the transaction says, their root changes
// and block counts logged in the AGI, their blocks from and to free space.
type inodeBtrees struct {
	g    *ondisk.Geometry
	c    *FS
	agno uint32
}

// AGI field offsets (struct xfs_agi).
const (
	agiRootOff      = 20
	agiLevelOff     = 24
	agiFreeRootOff  = 328
	agiFreeLevelOff = 332
	agiIBlocksOff   = 336
	agiFBlocksOff   = 340
)

func (t *inodeBtrees) tree(tx icluster.FreeTx, fin bool) (*btree.Tree, error) {
	agiBuf, err := icluster.LockAGI(tx, t.g, t.agno)
	if err != nil {
		return nil, err
	}
	a, err := ondisk.DecodeAGI(agiBuf.Data)
	if err != nil {
		return nil, ondisk.SetLocation(err, t.agno, agiBuf.Daddr)
	}
	tr := inobt.Tree(t.c.Cache, t.g, a, fin)
	rootOff, levelOff, countOff := agiRootOff, agiLevelOff, agiIBlocksOff
	if fin {
		rootOff, levelOff, countOff = agiFreeRootOff, agiFreeLevelOff, agiFBlocksOff
	}
	tr.SetRoot = func(tx btree.Tx, root uint32, levels int) error {
		binary.BigEndian.PutUint32(agiBuf.Data[rootOff:], root)
		binary.BigEndian.PutUint32(agiBuf.Data[levelOff:], uint32(levels))
		tx.LogRange(agiBuf, rootOff, levelOff+3)
		return nil
	}
	ag, err := alloc.ReadAG(tx, t.g, t.agno)
	if err != nil {
		return nil, err
	}
	tr.Blocks = &alloc.InobtBlocks{AG: ag, Count: func(tx alloc.Tx, delta int) error {
		n := int64(binary.BigEndian.Uint32(agiBuf.Data[countOff:])) + int64(delta)
		if n < 0 {
			return (ondisk.Where{AG: t.agno, Daddr: agiBuf.Daddr}).Corrupt("AGI", "agi_iblocks/agi_fblocks", n-int64(delta), nil, "would go below 0")
		}
		binary.BigEndian.PutUint32(agiBuf.Data[countOff:], uint32(n))
		tx.LogRange(agiBuf, countOff, countOff+3)
		return nil
	}}
	return tr, nil
}

func (t *inodeBtrees) LookupLE(tx icluster.FreeTx, fin bool, agino uint32) (ondisk.InobtRec, bool, error) {
	tr, err := t.tree(tx, fin)
	if err != nil {
		return ondisk.InobtRec{}, false, err
	}
	cur, found, err := tr.Lookup(tx, inobt.Key(agino), btree.LE)
	if err != nil || !found {
		return ondisk.InobtRec{}, false, err
	}
	r := ondisk.DecodeInobtRec(cur.Rec(), t.g.HasSparse)
	if err := inobt.CheckRec(t.g, t.agno, r, tr.Type.Name); err != nil {
		return r, false, err
	}
	return r, true, nil
}

func (t *inodeBtrees) exact(tx icluster.FreeTx, fin bool, startino uint32) (*btree.Cursor, *btree.Tree, error) {
	tr, err := t.tree(tx, fin)
	if err != nil {
		return nil, nil, err
	}
	cur, found, err := tr.Lookup(tx, inobt.Key(startino), btree.EQ)
	if err != nil {
		return nil, nil, err
	}
	if !found {
		return nil, nil, (ondisk.Where{AG: t.agno, Daddr: -1}).Corrupt(tr.Type.Name, "record", nil, startino, "no record for the chunk")
	}
	return cur, tr, nil
}

func (t *inodeBtrees) Update(tx icluster.FreeTx, fin bool, r ondisk.InobtRec) error {
	cur, _, err := t.exact(tx, fin, r.StartIno)
	if err != nil {
		return err
	}
	rec := make([]byte, ondisk.InobtRecLen)
	r.Encode(rec, t.g.HasSparse)
	return cur.Update(rec)
}

func (t *inodeBtrees) Insert(tx icluster.FreeTx, fin bool, r ondisk.InobtRec) error {
	tr, err := t.tree(tx, fin)
	if err != nil {
		return err
	}
	rec := make([]byte, ondisk.InobtRecLen)
	r.Encode(rec, t.g.HasSparse)
	return tr.Insert(tx, rec)
}

func (t *inodeBtrees) Delete(tx icluster.FreeTx, fin bool, startino uint32) error {
	cur, _, err := t.exact(tx, fin, startino)
	if err != nil {
		return err
	}
	return cur.Delete()
}

// space is icluster.Space over package alloc.
type space struct{ g *ondisk.Geometry }

func (s *space) FreeExtent(tx icluster.FreeTx, agno, agbno, n uint32, o icluster.Owner) error {
	ag, err := alloc.ReadAG(tx, s.g, agno)
	if err != nil {
		return err
	}
	return alloc.FreeExtent(tx, ag, agbno, n, allocOwner(o))
}

// allocOwner converts an rmap owner and offset field with flags.
func allocOwner(o icluster.Owner) alloc.Owner {
	a := alloc.Owner{Owner: o.Owner}
	if ondisk.IsInodeOwner(o.Owner) {
		a.Offset = o.Offset & ondisk.RmapOffMask
		a.Attr = o.Offset&ondisk.RmapOffAttrFork != 0
		a.Bmbt = o.Offset&ondisk.RmapOffBmbtBlock != 0
		a.Unwritten = o.Offset&ondisk.RmapOffUnwritten != 0
	}
	return a
}
