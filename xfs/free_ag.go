package xfs

// One AG's part of a free run: its plan, made as a stream — the unlinked
// chains walked once into a compact list of the AG's orphans in inode
// number order, each with its neighbours on its chain (so taking one off
// its chain is O(1): the kernel's i_prev_unlinked), then the orphans read
// and inspected a window at a time, with the next window's inode clusters
// read ahead, and freed in batches (free_batch.go). Inode number order
// empties each chunk within a few neighbouring frees, so its clusters are
// cancelled in the same checkpoint as the frees that emptied it, and never
// written.

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/xfsfree/xfsfree/agi"
	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/icluster"
	"github.com/xfsfree/xfsfree/inobt"
	"github.com/xfsfree/xfsfree/ondisk"
)

// orphanRef is one orphan of the AG and its neighbours on its bucket
// chain, as they are on disk after the frees committed so far (NullAgino:
// none; a NullAgino prev means the AGI bucket points at it).
type orphanRef struct {
	agino, prev, next uint32
	gone              bool // freed (or being freed in the open batch)
}

// agWorker plans and frees one AG.
type agWorker struct {
	run     *freeRun
	fs      *FS
	o       FreeOptions
	agno    uint32
	inos    []uint32 // --ino: the AG's orphans asked for (aginos); nil: every orphan
	workers int

	agi     *ondisk.AGI
	recs    []ondisk.InobtRec // the inobt records, for locating inodes
	orphans []orphanRef       // every orphan of the AG, by agino
}

func (w *agWorker) fail(ino uint64, err error) {
	w.run.report(func(r *FreeReport) {
		r.Errors = append(r.Errors, ProblemOf(w.agno, -1, ino, err))
	})
}

func (w *agWorker) refuse(ino uint64, err error) {
	w.run.report(func(r *FreeReport) { r.Refused = append(r.Refused, refusal(ino, err)) })
}

func refusal(ino uint64, err error) Refusal {
	var re *icluster.RefusedError
	if errors.As(err, &re) {
		return Refusal{Ino: ino, Reason: re.Reason}
	}
	return Refusal{Ino: ino, Reason: err.Error()}
}

// work plans the AG and frees it (or, in a dry run, reports the plan).
func (w *agWorker) work() {
	if err := w.walk(); err != nil {
		w.fail(0, fmt.Errorf("AG %d: %w", w.agno, err))
		return
	}
	sel := w.inos
	if sel == nil && w.o.Orphans {
		sel = make([]uint32, len(w.orphans))
		for i, o := range w.orphans {
			sel[i] = o.agino
		}
	}
	var chunks []ondisk.InobtRec
	if w.o.EmptyChunks && w.fs.G.InoPBlock <= ondisk.InodesPerChunk {
		for _, r := range w.recs {
			if r.Free == ondisk.InobtAllFree {
				chunks = append(chunks, r)
			}
		}
	}
	w.run.plan(len(sel) + len(chunks))
	var dry *dryRun
	if w.o.DryRun {
		dry = &dryRun{w: w, recs: slices.Clone(w.recs)}
	}
	b := &batcher{w: w}
	window := w.o.Window
	if window <= 0 {
		window = 4096
	}
	for start := 0; start < len(sel) && !stopped(w.o.Stop); start += window {
		end := min(start+window, len(sel))
		if end < len(sel) {
			w.readAhead(sel[end:min(end+window, len(sel))])
		}
		victims := w.inspect(sel[start:end])
		if dry != nil {
			dry.victims(victims)
			continue
		}
		items := make([]item, len(victims))
		for i, v := range victims {
			items[i] = item{v: v}
		}
		b.run(items, true)
	}
	for i := range chunks {
		if dry != nil {
			dry.chunk(chunks[i])
		}
	}
	if dry == nil && len(chunks) > 0 && !stopped(w.o.Stop) {
		items := make([]item, len(chunks))
		for i := range chunks {
			items[i] = item{chunk: &chunks[i]}
		}
		b.run(items, true)
	}
}

// walk reads the AGI and the inobt and follows every unlinked chain,
// recording each orphan with its neighbours.
func (w *agWorker) walk() error {
	fs := w.fs
	a, err := agi.Read(fs.Cache, fs.G, w.agno)
	if err != nil {
		return err
	}
	recs, err := inobt.Records(inobt.Tree(fs.Cache, fs.G, a, false))
	if err != nil {
		return err
	}
	w.agi, w.recs = a, recs
	locate := func(agino uint32) (ondisk.InodeLoc, error) { return fs.Locate(w.agno, recs, agino) }
	// The 64 chains at once: each is a walk of dependent reads (the next
	// inode is known only once this one is read), so walking them side by
	// side keeps up to 64 reads in flight.
	chains := make([][]orphanRef, ondisk.AGIUnlinkedBuckets)
	errs := make([]error, ondisk.AGIUnlinkedBuckets)
	var wg sync.WaitGroup
	for bkt, head := range a.Unlinked {
		if head == ondisk.NullAgino {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			prev := uint32(ondisk.NullAgino)
			errs[bkt] = agi.WalkBucket(fs.Cache, fs.G, w.agno, bkt, head, locate, func(agino uint32, d *ondisk.Dinode) error {
				chains[bkt] = append(chains[bkt], orphanRef{agino: agino, prev: prev, next: d.NextUnlinked})
				prev = agino
				return nil
			})
		}()
	}
	wg.Wait()
	for bkt := range chains {
		if errs[bkt] != nil {
			return errs[bkt]
		}
		w.orphans = append(w.orphans, chains[bkt]...)
	}
	slices.SortFunc(w.orphans, func(a, b orphanRef) int { return cmpU64(uint64(a.agino), uint64(b.agino)) })
	return nil
}

// ref returns the orphan agino's entry, or nil.
func (w *agWorker) ref(agino uint32) *orphanRef {
	i := sort.Search(len(w.orphans), func(i int) bool { return w.orphans[i].agino >= agino })
	if i < len(w.orphans) && w.orphans[i].agino == agino {
		return &w.orphans[i]
	}
	return nil
}

// readAhead starts reading the inode clusters of the aginos.
func (w *agWorker) readAhead(aginos []uint32) {
	var exts []cache.Extent
	for _, agino := range aginos {
		loc, err := w.fs.Locate(w.agno, w.recs, agino)
		if err != nil {
			continue
		}
		if n := len(exts); n > 0 && exts[n-1].Daddr == loc.Daddr {
			continue
		}
		exts = append(exts, cache.Extent{Daddr: loc.Daddr, Len: loc.Len})
	}
	w.fs.Cache.ReadAhead(exts)
}

// inspect reads the orphans of a window and lists what each free does;
// the orphans that must not be freed are refused by number.
func (w *agWorker) inspect(aginos []uint32) []*icluster.Victim {
	fs, g := w.fs, w.fs.G
	var out []*icluster.Victim
	for _, agino := range aginos {
		ino := g.Ino(w.agno, agino)
		if why, ok := w.o.Keep[ino]; ok {
			w.refuse(ino, &icluster.RefusedError{Ino: ino, Reason: why})
			w.run.tick(1)
			continue
		}
		loc, err := fs.Locate(w.agno, w.recs, agino)
		if err == nil {
			var v *icluster.Victim
			if v, err = icluster.Inspect(fs.Cache, g, w.agno, agino, loc); err == nil {
				out = append(out, v)
				continue
			}
		}
		w.refuse(ino, err)
		w.run.tick(1)
	}
	return out
}

// resolveInos finds every inode asked for by number, by AG, and refuses
// those that are not orphans this run could free (with the reason):
// numbers outside the filesystem, inodes not on their unlinked list,
// inodes Inspect refuses, inodes kept.
func (fs *FS) resolveInos(o FreeOptions) (map[uint32][]uint32, []Refusal) {
	g := fs.G
	byAG := map[uint32][]uint32{}
	var refused []Refusal
	for _, ino := range o.Inos {
		if !g.ValidIno(ino) {
			refused = append(refused, Refusal{Ino: ino, Reason: "not an inode number of this filesystem"})
			continue
		}
		if slices.Contains(byAG[g.InoToAgno(ino)], g.InoToAgino(ino)) {
			continue
		}
		byAG[g.InoToAgno(ino)] = append(byAG[g.InoToAgno(ino)], g.InoToAgino(ino))
	}
	for agno, aginos := range byAG {
		w := &agWorker{fs: fs, o: o, agno: agno}
		if err := w.walk(); err != nil {
			for _, agino := range aginos {
				refused = append(refused, Refusal{Ino: g.Ino(agno, agino), Reason: fmt.Sprintf("AG %d cannot be scanned: %v", agno, err)})
			}
			continue
		}
		slices.Sort(aginos)
		for _, agino := range aginos {
			ino := g.Ino(agno, agino)
			if why, ok := o.Keep[ino]; ok {
				refused = append(refused, Refusal{Ino: ino, Reason: why})
				continue
			}
			if w.ref(agino) == nil {
				refused = append(refused, Refusal{Ino: ino, Reason: fs.whyNotOrphan(agno, w.recs, agino)})
				continue
			}
			loc, err := fs.Locate(agno, w.recs, agino)
			if err == nil {
				_, err = icluster.Inspect(fs.Cache, g, agno, agino, loc)
			}
			if err != nil {
				refused = append(refused, refusal(ino, err))
			}
		}
	}
	slices.SortFunc(refused, func(a, b Refusal) int { return cmpU64(a.Ino, b.Ino) })
	return byAG, refused
}

// whyNotOrphan says why an inode asked for by number is not on an unlinked
// list.
func (fs *FS) whyNotOrphan(agno uint32, recs []ondisk.InobtRec, agino uint32) string {
	loc, err := fs.Locate(agno, recs, agino)
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

// dryRun reports what a run would free: the records' free bits are set in
// memory to find the chunks the frees empty.
type dryRun struct {
	w    *agWorker
	recs []ondisk.InobtRec
}

func (d *dryRun) victims(vs []*icluster.Victim) {
	w, g := d.w, d.w.fs.G
	for _, v := range vs {
		in := FreedInode{Ino: v.Ino, AG: w.agno, Mode: Mode(v.Mode), Size: v.Size, Blocks: v.Blocks()}
		i := sort.Search(len(d.recs), func(i int) bool { return d.recs[i].StartIno+ondisk.InodesPerChunk > v.Agino })
		if i < len(d.recs) && d.recs[i].StartIno <= v.Agino {
			r := &d.recs[i]
			r.Free |= 1 << (v.Agino - r.StartIno)
			r.FreeCount++
			if r.Free == ondisk.InobtAllFree && !w.o.KeepChunks && g.InoPBlock <= ondisk.InodesPerChunk {
				in.ChunkFreed = true
				d.addChunk(*r, false)
			}
		}
		w.run.report(func(*FreeReport) { w.run.freed(in) })
		w.run.tick(1)
	}
}

func (d *dryRun) chunk(r ondisk.InobtRec) {
	d.addChunk(r, true)
	d.w.run.tick(1)
}

func (d *dryRun) addChunk(r ondisk.InobtRec, wasEmpty bool) {
	w, g := d.w, d.w.fs.G
	var blocks uint32
	for _, e := range g.ChunkExtents(r.StartIno, r.HoleMask) {
		blocks += e.Len
	}
	c := FreedChunk{AG: w.agno, StartIno: g.Ino(w.agno, r.StartIno), StartAgino: r.StartIno, Inodes: uint32(r.Count), Blocks: blocks, WasEmpty: wasEmpty}
	w.run.report(func(rep *FreeReport) { rep.Chunks = append(rep.Chunks, c) })
}
