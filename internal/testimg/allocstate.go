package testimg

import (
	"fmt"
	"testing"
)

// AllocState is the allocation state, read with xfs_db, that xfsfree and
// the kernel must agree on after freeing the same orphans: the superblock
// counters, each AG's inode counts, free space (freeblks + flcount +
// btreeblks: the AGFL and btree blocks may be split differently), inobt and
// finobt records, and the number of unlinked buckets in use.
type AllocState struct {
	SB       map[string]string // icount, ifree, fdblocks
	AGI      []map[string]string
	Space    []uint64
	Inobt    [][]Record
	Finobt   [][]Record
	Unlinked int
}

// ReadAllocState reads img's allocation state (an image file or a block
// device: a loop device over a partition).
func ReadAllocState(t testing.TB, img string) AllocState {
	t.Helper()
	var s AllocState
	s.SB = ParseFields(DB(t, img, "sb 0", "p icount ifree fdblocks"))
	g := Geo(t, img)
	finobt := ParseFields(DB(t, img, "agi 0", "p"))["free_root"] != ""
	for agno := uint32(0); agno < g.AGCount; agno++ {
		a := AGI(t, img, agno)
		s.AGI = append(s.AGI, map[string]string{"count": a["count"], "freecount": a["freecount"]})
		f := ParseFields(DB(t, img, fmt.Sprintf("agf %d", agno), "p freeblks flcount btreeblks"))
		var n uint64
		for _, k := range []string{"freeblks", "flcount", "btreeblks"} {
			v, err := ParseUint(f[k])
			if err != nil {
				t.Fatalf("testimg: agf %d %s = %q", agno, k, f[k])
			}
			n += v
		}
		s.Space = append(s.Space, n)
		s.Inobt = append(s.Inobt, InobtRecords(t, img, agno, false))
		if finobt {
			s.Finobt = append(s.Finobt, InobtRecords(t, img, agno, true))
		}
		for _, h := range Unlinked(t, img, agno) {
			if h != NullAgino {
				s.Unlinked++
			}
		}
	}
	return s
}

// Diff lists how s differs from want (the kernel's), one line each.
func (s AllocState) Diff(want AllocState) []string {
	var d []string
	for _, k := range []string{"icount", "ifree", "fdblocks"} {
		if s.SB[k] != want.SB[k] {
			d = append(d, fmt.Sprintf("sb %s = %s, kernel %s", k, s.SB[k], want.SB[k]))
		}
	}
	if len(s.AGI) != len(want.AGI) {
		return append(d, fmt.Sprintf("%d AGs, kernel %d", len(s.AGI), len(want.AGI)))
	}
	for agno := range want.AGI {
		for _, k := range []string{"count", "freecount"} {
			if s.AGI[agno][k] != want.AGI[agno][k] {
				d = append(d, fmt.Sprintf("AG %d agi %s = %s, kernel %s", agno, k, s.AGI[agno][k], want.AGI[agno][k]))
			}
		}
		if s.Space[agno] != want.Space[agno] {
			d = append(d, fmt.Sprintf("AG %d free space (freeblks+flcount+btreeblks) = %d, kernel %d", agno, s.Space[agno], want.Space[agno]))
		}
		if fmt.Sprint(s.Inobt[agno]) != fmt.Sprint(want.Inobt[agno]) {
			d = append(d, fmt.Sprintf("AG %d inobt records differ:\n got %v\nwant %v", agno, s.Inobt[agno], want.Inobt[agno]))
		}
		if len(want.Finobt) > agno && (len(s.Finobt) <= agno || fmt.Sprint(s.Finobt[agno]) != fmt.Sprint(want.Finobt[agno])) {
			d = append(d, fmt.Sprintf("AG %d finobt records differ", agno))
		}
	}
	if s.Unlinked != want.Unlinked {
		d = append(d, fmt.Sprintf("%d unlinked buckets in use, kernel %d", s.Unlinked, want.Unlinked))
	}
	return d
}

// CompareAllocState fails the test at each way got differs from want (the kernel's).
func CompareAllocState(t testing.TB, got, want AllocState) {
	t.Helper()
	for _, d := range got.Diff(want) {
		t.Error(d)
	}
}
