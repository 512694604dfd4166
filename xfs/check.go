package xfs

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/xfsfree/xfsfree/agi"
	"github.com/xfsfree/xfsfree/alloc"
	"github.com/xfsfree/xfsfree/btree"
	"github.com/xfsfree/xfsfree/inobt"
	"github.com/xfsfree/xfsfree/ondisk"
	"github.com/xfsfree/xfsfree/refcount"
)

// CheckProblem is one finding of Check: where (AG, daddr: -1 when no one
// block is to blame), which structure and field, and the whole message.
type CheckProblem = Problem

// AGCheck is what Check counted in one AG's btrees.
type AGCheck struct {
	AG          uint32 `json:"ag"`
	InobtRecs   int    `json:"inobt_records"`
	FinobtRecs  int    `json:"finobt_records"`
	Inodes      uint64 `json:"icount"` // Σ ir_count
	FreeInodes  uint64 `json:"ifree"`  // Σ ir_freecount
	FreeExtents int    `json:"free_extents"`
	FreeBlocks  uint64 `json:"free_blocks"` // Σ bnobt extent lengths
	Longest     uint32 `json:"longest"`
	AGFLBlocks  int    `json:"agfl_blocks"`
	RmapRecs    int    `json:"rmap_records"`
	// RefcountRecs counts the refcount btree's records (shared extents
	// and CoW staging extents), on reflink filesystems.
	RefcountRecs int `json:"refcount_records,omitempty"`
	Problems     int `json:"problem_count"`
}

// CheckReport is the result of Check. Problems are errors (Clean false);
// Warnings are differences that a dirty log or lazy superblock counters
// explain.
type CheckReport struct {
	Device    string         `json:"device"`
	LogClean  bool           `json:"log_clean"`
	Note      string         `json:"note,omitempty"`
	LazyCount bool           `json:"lazy_counters"`
	Clean     bool           `json:"consistent"` // no problem found
	AGs       []AGCheck      `json:"ags"`
	Problems  []CheckProblem `json:"problems"`
	Warnings  []CheckProblem `json:"warnings"`
}

// problem turns an error into a CheckProblem, taking its place from a
// *ondisk.CorruptError inside it, else from agno and daddr.
func problem(agno uint32, daddr int64, err error) CheckProblem {
	return ProblemOf(agno, daddr, 0, err)
}

// agChecker collects one AG's problems.
type agChecker struct {
	fs       *FS
	agno     uint32
	res      AGCheck
	problems []CheckProblem
	agi      *ondisk.AGI // nil if it could not be read
	agf      *ondisk.AGF // nil if it could not be read
}

func (c *agChecker) fail(daddr int64, err error) {
	c.problems = append(c.problems, problem(c.agno, daddr, err))
}

func (c *agChecker) mismatch(daddr int64, st, field string, found, want any, msg string) {
	c.fail(daddr, ondisk.Where{AG: c.agno, Daddr: daddr}.Corrupt(st, field, found, want, msg))
}

// agfTree is the read-only view of AGF btree i (ondisk.AGFBno, AGFCnt,
// AGFRmap), for walking.
func (fs *FS) agfTree(agf *ondisk.AGF, i int) *btree.Tree {
	return alloc.Tree(fs.Cache, fs.G, agf.SeqNo, i, agf.Roots[i], int(agf.Levels[i]))
}

// checkAGI reads the AGI, walks the inobt and finobt, and checks the
// AGI's counters against the inobt and the finobt against the inobt.
func (c *agChecker) checkAGI() {
	fs, g, agno := c.fs, c.fs.G, c.agno
	a, err := agi.Read(fs.Cache, g, agno)
	if err != nil {
		c.fail(g.AGIDaddr(agno), err)
		return
	}
	c.agi = a
	d := g.AGIDaddr(agno)
	recs, err := inobt.Records(inobt.Tree(fs.Cache, g, a, false))
	if err != nil {
		c.fail(-1, err)
		return
	}
	c.res.InobtRecs = len(recs)
	for _, r := range recs {
		c.res.Inodes += uint64(r.Count)
		c.res.FreeInodes += uint64(r.FreeCount)
	}
	if uint64(a.Count) != c.res.Inodes {
		c.mismatch(d, "AGI", "agi_count", a.Count, c.res.Inodes, "differs from the sum of the inobt's ir_count")
	}
	if uint64(a.FreeCount) != c.res.FreeInodes {
		c.mismatch(d, "AGI", "agi_freecount", a.FreeCount, c.res.FreeInodes, "differs from the sum of the inobt's ir_freecount")
	}
	if !g.HasFinobt {
		return
	}
	fin, err := inobt.Records(inobt.Tree(fs.Cache, g, a, true))
	if err != nil {
		c.fail(-1, err)
		return
	}
	c.res.FinobtRecs = len(fin)
	// Both lists are in startino order: merge them.
	var want []ondisk.InobtRec
	for _, r := range recs {
		if r.FreeCount > 0 {
			want = append(want, r)
		}
	}
	i, j := 0, 0
	for i < len(want) || j < len(fin) {
		switch {
		case j == len(fin) || (i < len(want) && want[i].StartIno < fin[j].StartIno):
			c.mismatch(-1, "finobt", fmt.Sprintf("record at startino %d", want[i].StartIno), nil, nil,
				fmt.Sprintf("is missing: the inobt's record has %d free inode(s)", want[i].FreeCount))
			i++
		case i == len(want) || fin[j].StartIno < want[i].StartIno:
			r := fin[j]
			msg := "is in no inobt record"
			if ir, ok := inobt.Find(recs, r.StartIno); ok && ir.StartIno == r.StartIno {
				msg = "has no free inode in the inobt (ir_freecount 0)"
			}
			c.mismatch(-1, "finobt", fmt.Sprintf("record at startino %d", r.StartIno), nil, nil, msg)
			j++
		default:
			w, f := want[i], fin[j]
			if w != f {
				c.mismatch(-1, "finobt", fmt.Sprintf("record at startino %d", f.StartIno),
					fmt.Sprintf("holemask %#x count %d freecount %d free %#x", f.HoleMask, f.Count, f.FreeCount, f.Free),
					fmt.Sprintf("holemask %#x count %d freecount %d free %#x", w.HoleMask, w.Count, w.FreeCount, w.Free),
					"differs from the inobt's record")
			}
			i++
			j++
		}
	}
}

// checkAGF reads the AGF and AGFL, walks the bnobt, cntbt and rmapbt, and
// checks the free-space counters and the two free-space btrees against
// each other.
func (c *agChecker) checkAGF() {
	fs, g, agno := c.fs, c.fs.G, c.agno
	d := g.AGFDaddr(agno)
	f, err := alloc.ReadAGF(fs.Cache, g, agno)
	if err != nil {
		c.fail(d, err)
		return
	}
	c.agf = f
	// The AGFL.
	fld := g.AGFLDaddr(agno)
	if b, err := fs.Cache.Get(fld, g.SectBBs(), ondisk.KindAGFL, ondisk.VerifyCtx{G: g, AG: agno, Daddr: fld}); err != nil {
		c.fail(fld, err)
	} else {
		fl, err := ondisk.DecodeAGFL(b.Data[:min(len(b.Data), ondisk.AGFLHdrLen+4*int(g.AGFLSize))])
		b.Release()
		if err != nil {
			c.fail(fld, err)
		} else if live, err := fl.Live(g, f); err != nil {
			// Ring errors name the AGF, slot errors the AGFL.
			var ce *ondisk.CorruptError
			if errors.As(err, &ce) && ce.Struct == "AGFL" {
				c.fail(fld, err)
			} else {
				c.fail(d, err)
			}
		} else {
			c.res.AGFLBlocks = len(live)
			if int(f.FLCount) != len(live) {
				c.mismatch(d, "AGF", "agf_flcount", f.FLCount, len(live), "differs from the live AGFL entries")
			}
		}
	}
	// The free-space btrees: records checked as xfs_alloc_check_irec does.
	agLen := min(f.Length, g.AGSize(agno))
	collect := func(i int) ([]ondisk.AllocRec, error) {
		t := fs.agfTree(f, i)
		var out []ondisk.AllocRec
		err := t.Walk(func(rec []byte) error {
			r := ondisk.DecodeAllocRec(rec)
			if r.BlockCount == 0 || uint64(r.StartBlock)+uint64(r.BlockCount) > uint64(agLen) {
				return &ondisk.CorruptError{AG: agno, Daddr: -1, Struct: t.Type.Name + " record",
					Field: fmt.Sprintf("extent [%d, %d)", r.StartBlock, uint64(r.StartBlock)+uint64(r.BlockCount)),
					Msg:   fmt.Sprintf("is empty or not inside the AG's %d blocks", agLen)}
			}
			out = append(out, r)
			return nil
		})
		return out, err
	}
	bno, errB := collect(ondisk.AGFBno)
	if errB != nil {
		c.fail(-1, errB)
	}
	cnt, errC := collect(ondisk.AGFCnt)
	if errC != nil {
		c.fail(-1, errC)
	}
	if errB == nil {
		c.res.FreeExtents = len(bno)
		for k, r := range bno {
			c.res.FreeBlocks += uint64(r.BlockCount)
			c.res.Longest = max(c.res.Longest, r.BlockCount)
			if k > 0 && bno[k-1].StartBlock+bno[k-1].BlockCount > r.StartBlock {
				c.mismatch(-1, "bnobt", fmt.Sprintf("extent at agbno %d", r.StartBlock), nil, nil,
					fmt.Sprintf("overlaps the previous extent [%d, %d)", bno[k-1].StartBlock, bno[k-1].StartBlock+bno[k-1].BlockCount))
			}
		}
		if uint64(f.FreeBlks) != c.res.FreeBlocks {
			c.mismatch(d, "AGF", "agf_freeblks", f.FreeBlks, c.res.FreeBlocks, "differs from the sum of the bnobt's extent lengths")
		}
		if f.Longest != c.res.Longest {
			c.mismatch(d, "AGF", "agf_longest", f.Longest, c.res.Longest, "differs from the bnobt's largest extent")
		}
	}
	if errB == nil && errC == nil {
		c.compareFreeSpace(bno, cnt)
	}
	if g.HasRmapbt {
		n := 0
		if err := fs.agfTree(f, ondisk.AGFRmap).Walk(func([]byte) error { n++; return nil }); err != nil {
			c.fail(-1, err)
		}
		c.res.RmapRecs = n
	}
	if g.HasReflink {
		// The refcount btree, each record checked (xfs_refcount_check_irec):
		// reflinked orphans and CoW leftovers change it.
		n := 0
		t := refcount.Tree(fs.Cache, g, agno, f.RefcountRoot, int(f.RefcountLevel))
		if err := t.Walk(func(rec []byte) error { n++; return ondisk.DecodeRefcountRec(rec).Check(g, agno) }); err != nil {
			c.fail(-1, err)
		}
		c.res.RefcountRecs = n
	}
}

// compareFreeSpace reports the extents that only one of the bnobt and the
// cntbt holds (at most 8 of each).
func (c *agChecker) compareFreeSpace(bno, cnt []ondisk.AllocRec) {
	byBno := slices.Clone(cnt)
	slices.SortFunc(byBno, func(a, b ondisk.AllocRec) int {
		return cmp.Or(cmp.Compare(a.StartBlock, b.StartBlock), cmp.Compare(a.BlockCount, b.BlockCount))
	})
	var onlyB, onlyC []ondisk.AllocRec
	i, j := 0, 0
	for i < len(bno) || j < len(byBno) {
		switch {
		case j == len(byBno) || (i < len(bno) && (bno[i].StartBlock < byBno[j].StartBlock ||
			(bno[i].StartBlock == byBno[j].StartBlock && bno[i].BlockCount < byBno[j].BlockCount))):
			onlyB = append(onlyB, bno[i])
			i++
		case i == len(bno) || bno[i] != byBno[j]:
			onlyC = append(onlyC, byBno[j])
			j++
		default:
			i++
			j++
		}
	}
	report := func(st, other string, recs []ondisk.AllocRec) {
		for k, r := range recs {
			if k == 8 {
				c.mismatch(-1, st, "records", len(recs)-k, nil, "more extents not in the "+other)
				return
			}
			c.mismatch(-1, st, fmt.Sprintf("extent [startblock %d, blockcount %d]", r.StartBlock, r.BlockCount), nil, nil,
				"is not in the "+other+" (bnobt and cntbt must hold the same free extents)")
		}
	}
	report("bnobt", "cntbt", onlyB)
	report("cntbt", "bnobt", onlyC)
}

// Check verifies, AG by AG in parallel, the structures xfsfree relies on:
// every AG header and btree block's CRC and magic, the shape, key order
// and sibling links of the inobt, finobt, bnobt, cntbt, rmapbt and
// refcountbt (its records checked), the AGI counters against the inobt,
// the finobt against the inobt, the bnobt against the cntbt, the AGF's
// free-space counters against the bnobt and its free list count against
// the AGFL, and the superblock's summary
// counters against the AG sums. It writes nothing. An AG whose headers
// cannot be read is reported and the others are still checked. progress,
// if set, is called after each AG.
func (fs *FS) Check(progress func(done, total int)) (*CheckReport, error) {
	g := fs.G
	r := &CheckReport{Device: fs.Path, LogClean: true, LazyCount: fs.SB.HasLazySBCount(), AGs: make([]AGCheck, g.AGCount),
		Problems: []CheckProblem{}, Warnings: []CheckProblem{}}
	st, err := fs.LogState()
	switch {
	case err != nil:
		r.Problems = append(r.Problems, problem(ondisk.NoAG, -1, fmt.Errorf("log: cannot find its head and tail: %w", err)))
		r.LogClean = false
	case st != nil && !st.Clean:
		r.LogClean, r.Note = false, DirtyLogNote
	}
	perAG := make([][]CheckProblem, g.AGCount)
	headers := make([]struct {
		icount, ifree, fdblocks uint64
		ok                      bool
	}, g.AGCount)
	fs.forEachAG(func(agno uint32) error {
		c := &agChecker{fs: fs, agno: agno, res: AGCheck{AG: agno}}
		c.checkAGI()
		c.checkAGF()
		c.res.Problems = len(c.problems)
		r.AGs[agno], perAG[agno] = c.res, c.problems
		// The header counters, for the superblock comparison.
		if a, f := c.agi, c.agf; a != nil && f != nil {
			h := &headers[agno]
			h.icount, h.ifree = uint64(a.Count), uint64(a.FreeCount)
			h.fdblocks = uint64(f.FreeBlks) + uint64(f.FLCount) + uint64(f.BtreeBlks)
			h.ok = true
		}
		return nil
	}, progress)
	for _, ps := range perAG {
		r.Problems = append(r.Problems, ps...)
	}
	// Superblock summary counters against the AG headers (as the kernel's
	// xfs_initialize_perag_data sums them), when every AG could be read.
	var sum SBCounters
	all := true
	for _, h := range headers {
		all = all && h.ok
		sum.ICount += h.icount
		sum.IFree += h.ifree
		sum.FDBlocks += h.fdblocks
	}
	if all {
		why := ""
		switch {
		case !r.LogClean:
			why = "the log is dirty: the superblock counters may lag the log"
		case r.LazyCount:
			why = "lazy superblock counters: they are kept only in memory and written at unmount"
		}
		w := ondisk.Where{AG: 0, Daddr: ondisk.SBDaddr}
		for _, x := range []struct {
			field     string
			sb, sum   uint64
			headerSum string
		}{
			{"sb_icount", fs.SB.ICount, sum.ICount, "the sum of agi_count"},
			{"sb_ifree", fs.SB.IFree, sum.IFree, "the sum of agi_freecount"},
			{"sb_fdblocks", fs.SB.FDBlocks, sum.FDBlocks, "the sum of agf_freeblks+agf_flcount+agf_btreeblks"},
		} {
			if x.sb == x.sum {
				continue
			}
			if why != "" {
				r.Warnings = append(r.Warnings, problem(0, ondisk.SBDaddr, w.Corrupt("superblock", x.field, x.sb, x.sum, "differs from "+x.headerSum+" ("+why+")")))
			} else {
				r.Problems = append(r.Problems, problem(0, ondisk.SBDaddr, w.Corrupt("superblock", x.field, x.sb, x.sum, "differs from "+x.headerSum)))
			}
		}
	}
	r.Clean = len(r.Problems) == 0
	return r, nil
}
