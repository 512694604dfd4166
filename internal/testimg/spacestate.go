package testimg

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// SpaceState is the whole allocation state of an image, read with xfs_db,
// for comparing what xfsfree leaves with what the kernel leaves when
// shared extents, CoW staging extents and reverse mappings are involved:
// the superblock counters, each AG's AGI and AGF counters and unlinked
// buckets, and every record of its inobt, finobt, bnobt, cntbt, refcountbt
// and rmapbt (those the filesystem has).
type SpaceState struct {
	SB  map[string]uint64 // icount, ifree, fdblocks
	AGs []AGSpaceState
}

// AGSpaceState is one AG's part of a SpaceState.
type AGSpaceState struct {
	AGI      map[string]uint64 // count, freecount
	AGF      map[string]uint64 // freeblks, flcount, btreeblks, longest, refcntblocks, rmapblocks (where present)
	Unlinked [64]uint32
	// Trees holds each btree's leaf records in key order, by xfs_db type
	// name: "inobt", "finobt", "bnobt", "cntbt", "refcntbt", "rmapbt".
	Trees map[string][]Record
	// Blocks holds each btree's blocks (AG block numbers), and AGFL the
	// blocks on the AG free list.
	Blocks map[string][]uint64
	AGFL   []uint64
}

// Space is freeblks + flcount + btreeblks: the AG's free blocks as the
// superblock's fdblocks counts them (the AGFL and the free-space btrees'
// blocks may be split differently between equal states).
func (a AGSpaceState) Space() uint64 {
	return a.AGF["freeblks"] + a.AGF["flcount"] + a.AGF["btreeblks"]
}

var spaceTrees = []struct{ typ, hdr, root, level string }{
	{"inobt", "agi", "root", "level"},
	{"finobt", "agi", "free_root", "free_level"},
	{"bnobt", "agf", "bnoroot", "bnolevel"},
	{"cntbt", "agf", "cntroot", "cntlevel"},
	{"refcntbt", "agf", "refcntroot", "refcntlevel"},
	{"rmapbt", "agf", "rmaproot", "rmaplevel"},
}

var agfCounters = []string{"freeblks", "flcount", "btreeblks", "longest", "refcntblocks", "rmapblocks"}

// ReadSpaceState reads img's SpaceState in a few xfs_db runs: one for the
// headers, then one per btree level for every tree of every AG at once.
func ReadSpaceState(t testing.TB, img string) SpaceState {
	t.Helper()
	g := Geo(t, img)
	s := SpaceState{SB: map[string]uint64{}}
	u := func(f map[string]string, k, what string) uint64 {
		v, err := ParseUint(f[k])
		if err != nil {
			t.Fatalf("testimg: %s %s = %q: %v", what, k, f[k], err)
		}
		return v
	}
	sb := ParseFields(DB(t, img, "sb 0", "p icount ifree fdblocks"))
	for _, k := range []string{"icount", "ifree", "fdblocks"} {
		s.SB[k] = u(sb, k, "sb")
	}
	type tree struct {
		agno   uint32
		typ    string
		levels uint64
		blocks []uint64
	}
	var trees []*tree
	for agno := range g.AGCount {
		out := DB(t, img, fmt.Sprintf("agi %d", agno), "p", fmt.Sprintf("agf %d", agno), "p", fmt.Sprintf("agfl %d", agno), "p bno")
		i := strings.Index(out, "\nmagicnum = 0x58414746") // the AGF's, after the AGI's
		if i < 0 {
			t.Fatalf("testimg: AG %d: no AGF in xfs_db output", agno)
		}
		agiF, agfF := ParseFields(out[:i]), ParseFields(out[i:])
		a := AGSpaceState{AGI: map[string]uint64{}, AGF: map[string]uint64{}, Trees: map[string][]Record{}, Blocks: map[string][]uint64{}}
		slots, _ := ParseArray(out[i:], "bno")
		bno := map[int]uint64{}
		for _, e := range slots {
			v, err := ParseUint(e.Value)
			if err != nil {
				t.Fatalf("testimg: AG %d agfl bno[%d] = %q", agno, e.Index, e.Value)
			}
			bno[e.Index] = v
		}
		first, count := u(agfF, "flfirst", "agf"), u(agfF, "flcount", "agf")
		for k := uint64(0); k < count && len(slots) > 0; k++ {
			a.AGFL = append(a.AGFL, bno[int((first+k)%uint64(len(slots)))])
		}
		for _, k := range []string{"count", "freecount"} {
			a.AGI[k] = u(agiF, k, "agi")
		}
		for _, k := range agfCounters {
			if _, ok := agfF[k]; ok {
				a.AGF[k] = u(agfF, k, "agf")
			}
		}
		b, err := ParseUnlinked(out[:i])
		if err != nil {
			t.Fatal(err)
		}
		a.Unlinked = b
		for _, tr := range spaceTrees {
			f := agiF
			if tr.hdr == "agf" {
				f = agfF
			}
			if _, ok := f[tr.root]; !ok {
				continue // the filesystem has no such btree
			}
			lv := u(f, tr.level, tr.hdr)
			if lv == 0 {
				continue
			}
			a.Trees[tr.typ] = []Record{}
			trees = append(trees, &tree{agno: agno, typ: tr.typ, levels: lv, blocks: []uint64{u(f, tr.root, tr.hdr)}})
		}
		s.AGs = append(s.AGs, a)
	}
	magic := regexp.MustCompile(`(?m)^magic = `)
	for {
		var cmds []string
		var owners []*tree
		var cmdBlocks []uint64
		for _, tr := range trees {
			for _, b := range tr.blocks {
				cmds = append(cmds, fmt.Sprintf("fsblock %d", g.FSBlock(tr.agno, uint32(b))), "type "+tr.typ, "p")
				owners = append(owners, tr)
				cmdBlocks = append(cmdBlocks, b)
			}
			tr.blocks = nil
		}
		if len(cmds) == 0 {
			break
		}
		out := DB(t, img, cmds...)
		parts := magic.Split(out, -1)[1:]
		if len(parts) != len(owners) {
			t.Fatalf("testimg: xfs_db printed %d btree blocks, want %d", len(parts), len(owners))
		}
		for i, p := range parts {
			tr := owners[i]
			blk := cmdBlocks[i]
			s.AGs[tr.agno].Blocks[tr.typ] = append(s.AGs[tr.agno].Blocks[tr.typ], blk)
			if tr.levels > 1 {
				ptrs, _ := ParseArray(p, "ptrs")
				for _, e := range ptrs {
					v, err := ParseUint(e.Value)
					if err != nil {
						t.Fatalf("testimg: AG %d %s ptr %q: %v", tr.agno, tr.typ, e.Value, err)
					}
					tr.blocks = append(tr.blocks, v)
				}
				continue
			}
			recs, err := ParseRecords(p, "recs")
			if err != nil {
				t.Fatal(err)
			}
			a := &s.AGs[tr.agno]
			a.Trees[tr.typ] = append(a.Trees[tr.typ], recs...)
		}
		for _, tr := range trees {
			tr.levels--
		}
	}
	return s
}

// SpaceDiffOptions relax SpaceState.Diff where equal states may differ.
type SpaceDiffOptions struct {
	// AGFLAgnostic compares the free space as the set of blocks that are
	// free, on the AGFL or in the bnobt, cntbt and rmapbt (OWN_AG in the
	// rmapbt): which blocks the AGFL and those btrees hold depends on the
	// order of frees and refills, and the kernel's refills skip extents
	// freed by transactions not yet on disk (busy extents), which an
	// offline tool has none of. The bnobt and cntbt records, the AGF's
	// split of the free space (freeblks, flcount, btreeblks, longest,
	// rmapblocks) and the rmapbt's OWN_AG records are then not compared
	// one by one; their sum and the set of blocks are.
	AGFLAgnostic bool
}

// Diff lists how s differs from want (the kernel's), one line each.
func (s SpaceState) Diff(want SpaceState, o SpaceDiffOptions) []string {
	var d []string
	for _, k := range []string{"icount", "ifree", "fdblocks"} {
		if s.SB[k] != want.SB[k] {
			d = append(d, fmt.Sprintf("sb %s = %d, kernel %d", k, s.SB[k], want.SB[k]))
		}
	}
	if len(s.AGs) != len(want.AGs) {
		return append(d, fmt.Sprintf("%d AGs, kernel %d", len(s.AGs), len(want.AGs)))
	}
	for agno := range want.AGs {
		a, w := s.AGs[agno], want.AGs[agno]
		for _, k := range []string{"count", "freecount"} {
			if a.AGI[k] != w.AGI[k] {
				d = append(d, fmt.Sprintf("AG %d agi %s = %d, kernel %d", agno, k, a.AGI[k], w.AGI[k]))
			}
		}
		if a.Unlinked != w.Unlinked {
			d = append(d, fmt.Sprintf("AG %d unlinked buckets differ", agno))
		}
		if a.Space() != w.Space() {
			d = append(d, fmt.Sprintf("AG %d free space (freeblks+flcount+btreeblks) = %d, kernel %d", agno, a.Space(), w.Space()))
		}
		for _, k := range agfCounters {
			if o.AGFLAgnostic && k != "refcntblocks" {
				continue
			}
			if a.AGF[k] != w.AGF[k] {
				d = append(d, fmt.Sprintf("AG %d agf %s = %d, kernel %d", agno, k, a.AGF[k], w.AGF[k]))
			}
		}
		for _, tr := range spaceTrees {
			got, exp := a.Trees[tr.typ], w.Trees[tr.typ]
			if o.AGFLAgnostic {
				switch tr.typ {
				case "bnobt", "cntbt":
					continue
				case "rmapbt":
					got, exp = notOwnAG(got), notOwnAG(exp)
				}
			}
			if l := recordsDiff(got, exp); l != "" {
				if tr.typ == "bnobt" {
					l += "\n blocks: " + symBlocks(got, exp)
				}
				d = append(d, fmt.Sprintf("AG %d %s (%d records, kernel %d): %s", agno, tr.typ, len(got), len(exp), l))
			}
		}
		if o.AGFLAgnostic {
			if l := blocksDiff(a.fsBlocks(), w.fsBlocks()); l != "" {
				d = append(d, fmt.Sprintf("AG %d free-space blocks (free extents and OWN_AG): %s", agno, l))
			}
		}
	}
	return d
}

// ownAG is XFS_RMAP_OWN_AG as xfs_db prints an rmap owner.
const ownAG = 0xfffffffffffffffb

func notOwnAG(recs []Record) []Record {
	return slices.DeleteFunc(slices.Clone(recs), func(r Record) bool { return r["owner"] == ownAG })
}

// fsBlocks is every block that is free or held by the free-space
// machinery (the AGFL, bnobt, cntbt and rmapbt blocks: owner OWN_AG in the
// rmapbt), as sorted runs.
func (a AGSpaceState) fsBlocks() [][2]uint64 {
	var runs [][2]uint64
	for _, r := range a.Trees["bnobt"] {
		runs = append(runs, [2]uint64{r["startblock"], r["blockcount"]})
	}
	for _, b := range a.AGFL {
		runs = append(runs, [2]uint64{b, 1})
	}
	for _, typ := range []string{"bnobt", "cntbt", "rmapbt"} {
		for _, b := range a.Blocks[typ] {
			runs = append(runs, [2]uint64{b, 1})
		}
	}
	slices.SortFunc(runs, func(x, y [2]uint64) int {
		switch {
		case x[0] < y[0]:
			return -1
		case x[0] > y[0]:
			return 1
		}
		return 0
	})
	var out [][2]uint64
	for _, r := range runs {
		if n := len(out); n > 0 && out[n-1][0]+out[n-1][1] >= r[0] {
			out[n-1][1] = max(out[n-1][1], r[0]+r[1]-out[n-1][0])
			continue
		}
		out = append(out, r)
	}
	return out
}

func blocksDiff(got, want [][2]uint64) string {
	if fmt.Sprint(got) == fmt.Sprint(want) {
		return ""
	}
	return fmt.Sprintf("\n got  %.600v\n want %.600v", fmt.Sprint(got), fmt.Sprint(want))
}

// recordsDiff describes the first difference of two record lists, "" if
// they are equal.
func recordsDiff(got, want []Record) string {
	if fmt.Sprint(got) == fmt.Sprint(want) {
		return ""
	}
	i := 0
	for i < min(len(got), len(want)) && fmt.Sprint(got[i]) == fmt.Sprint(want[i]) {
		i++
	}
	show := func(r []Record) string { return fmt.Sprint(r[i:min(i+3, len(r))]) }
	return fmt.Sprintf("from record %d:\n got  %s\n want %s", i, show(got), show(want))
}

// CompareSpaceState fails the test at each way got differs from want (the
// kernel's).
func CompareSpaceState(t testing.TB, got, want SpaceState, o SpaceDiffOptions) {
	t.Helper()
	for _, d := range got.Diff(want, o) {
		t.Error(d)
	}
}

// Records returns the records of every AG's btree typ, in AG order.
func (s SpaceState) Records(typ string) []Record {
	var out []Record
	for _, a := range s.AGs {
		out = append(out, a.Trees[typ]...)
	}
	return out
}

// symBlocks lists the blocks only one of two free-extent lists holds.
func symBlocks(got, want []Record) string {
	set := func(recs []Record) map[uint64]bool {
		m := map[uint64]bool{}
		for _, r := range recs {
			for b := r["startblock"]; b < r["startblock"]+r["blockcount"]; b++ {
				m[b] = true
			}
		}
		return m
	}
	g, w := set(got), set(want)
	var onlyG, onlyW []uint64
	for b := range g {
		if !w[b] {
			onlyG = append(onlyG, b)
		}
	}
	for b := range w {
		if !g[b] {
			onlyW = append(onlyW, b)
		}
	}
	slices.Sort(onlyG)
	slices.Sort(onlyW)
	return fmt.Sprintf("free only in ours %.300s, only in the kernel's %.300s", fmt.Sprint(onlyG), fmt.Sprint(onlyW))
}
