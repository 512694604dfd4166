package testimg

import (
	"fmt"
	"testing"
)

// AllocState is the allocation state, as xfs_db reads it, that a free by
// xfsfree and the kernel's own processing of the same orphans must agree
// on: the superblock counters, each AG's inode counts, free space
// (freeblks + flcount + btreeblks), inobt and finobt records, and the
// unlinked buckets still in use.
type AllocState struct {
	SB        map[string]string
	AGI       []map[string]string
	Space     []uint64
	Inobt     [][]Record
	Finobt    [][]Record
	UnlinkedN int
}

// ReadAllocState reads img's AllocState with xfs_db.
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
				s.UnlinkedN++
			}
		}
	}
	return s
}

// CompareAllocState fails the test where got differs from want (the
// kernel's), or where got still has unlinked buckets in use.
func CompareAllocState(t testing.TB, got, want AllocState) {
	t.Helper()
	for _, k := range []string{"icount", "ifree", "fdblocks"} {
		if got.SB[k] != want.SB[k] {
			t.Errorf("sb %s = %s, kernel %s", k, got.SB[k], want.SB[k])
		}
	}
	for agno := range want.AGI {
		for _, k := range []string{"count", "freecount"} {
			if got.AGI[agno][k] != want.AGI[agno][k] {
				t.Errorf("AG %d agi %s = %s, kernel %s", agno, k, got.AGI[agno][k], want.AGI[agno][k])
			}
		}
		if got.Space[agno] != want.Space[agno] {
			t.Errorf("AG %d free space (freeblks+flcount+btreeblks) = %d, kernel %d", agno, got.Space[agno], want.Space[agno])
		}
		if !recordsEqual(got.Inobt[agno], want.Inobt[agno]) {
			t.Errorf("AG %d inobt records differ:\n got %v\nwant %v", agno, got.Inobt[agno], want.Inobt[agno])
		}
		if len(want.Finobt) > 0 && !recordsEqual(got.Finobt[agno], want.Finobt[agno]) {
			t.Errorf("AG %d finobt records differ:\n got %v\nwant %v", agno, got.Finobt[agno], want.Finobt[agno])
		}
	}
	if got.UnlinkedN != 0 {
		t.Errorf("%d unlinked buckets still in use", got.UnlinkedN)
	}
}

func recordsEqual(a, b []Record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if fmt.Sprint(a[i]) != fmt.Sprint(b[i]) {
			return false
		}
	}
	return true
}
