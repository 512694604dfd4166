package xfs

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// runCheck checks img read-only and verifies that the check wrote nothing.
func runCheck(t *testing.T, img string) *CheckReport {
	t.Helper()
	before := testimg.Hash(t, img)
	fs := openRO(t, img)
	calls := 0
	r, err := fs.Check(func(done, total int) { calls++ })
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if calls != int(fs.G.AGCount) || len(r.AGs) != int(fs.G.AGCount) {
		t.Errorf("%d progress calls, %d AG entries; agcount %d", calls, len(r.AGs), fs.G.AGCount)
	}
	fs.Close()
	if testimg.Hash(t, img) != before {
		t.Errorf("Check changed the image")
	}
	return r
}

// TestCheckFixtures: every clean fixture checks clean and xfs_repair -n
// agrees; the orphan snapshots check clean apart from the dirty-log note
// (and superblock counter warnings it explains).
func TestCheckFixtures(t *testing.T) {
	for _, name := range testimg.ReadOnlyFixtures() {
		t.Run(name, func(t *testing.T) {
			testimg.Need(t, "xfs_db")
			img := testimg.Path(t, name)
			r := runCheck(t, img)
			if !r.Clean || len(r.Problems) != 0 {
				t.Fatalf("problems: %+v", r.Problems)
			}
			orphans := isOrphanFixture(name)
			if r.LogClean == orphans || (r.Note != "") != orphans {
				t.Errorf("log clean %v, note %q; orphan fixture %v", r.LogClean, r.Note, orphans)
			}
			for _, w := range r.Warnings {
				if !orphans || !strings.Contains(w.Message, "the log is dirty") {
					t.Errorf("warning: %+v", w)
				}
			}
			for _, a := range r.AGs {
				if a.InobtRecs == 0 && a.AG == 0 || a.FreeExtents == 0 || a.Problems != 0 {
					t.Errorf("AG %d: %+v", a.AG, a)
				}
			}
			// The counts against xfs_db's AG headers.
			for _, a := range r.AGs {
				agi := testimg.ParseFields(testimg.DB(t, img, agCmd("agi", a.AG), "p count freecount"))
				agf := testimg.ParseFields(testimg.DB(t, img, agCmd("agf", a.AG), "p freeblks longest flcount"))
				if a.Inodes != num(t, agi, "count") || a.FreeInodes != num(t, agi, "freecount") ||
					a.FreeBlocks != num(t, agf, "freeblks") || uint64(a.Longest) != num(t, agf, "longest") ||
					uint64(a.AGFLBlocks) != num(t, agf, "flcount") {
					t.Errorf("AG %d: %+v; xfs_db agi %v agf %v", a.AG, a, agi, agf)
				}
			}
			if !orphans {
				testimg.Repair(t, img)
			}
		})
	}
}

// wantProblem fails unless r has a problem in AG ag (with daddr, if
// daddr >= 0) whose structure, field and message contain the given words.
func wantProblem(t *testing.T, r *CheckReport, ag uint32, daddr int64, st, field, msg string) {
	t.Helper()
	if r.Clean {
		t.Errorf("report is clean")
	}
	for _, p := range r.Problems {
		if p.AG == ag && (daddr < 0 || p.Daddr == daddr) && strings.Contains(p.Struct, st) &&
			strings.Contains(p.Field, field) && strings.Contains(p.Message, msg) {
			return
		}
	}
	t.Errorf("no problem AG %d daddr %d %q %q %q in %+v", ag, daddr, st, field, msg, r.Problems)
}

// repairFinds checks the ground truth: xfs_repair -n finds the crafted
// corruption too.
func repairFinds(t *testing.T, img string) {
	t.Helper()
	if out, exit := testimg.TryRepair(t, img); exit != 1 {
		t.Errorf("xfs_repair -n exit %d, want 1 (corruption found):\n%s", exit, out)
	}
}

// TestCheckCorrupt crafts corruption with xfs_db -x (write -d keeps every
// CRC valid, so only the cross-checks can find it) and a flipped byte
// (a bad CRC), and checks that each is found and named.
func TestCheckCorrupt(t *testing.T) {
	testimg.Need(t, "xfs_db")
	field := func(img string, cmds ...string) map[string]string {
		return testimg.ParseFields(testimg.DB(t, img, cmds...))
	}
	t.Run("agi-freecount", func(t *testing.T) {
		img := testimg.Path(t, "default")
		n := num(t, field(img, "agi 0", "p freecount"), "freecount")
		testimg.DBWrite(t, img, "agi 0", fmt.Sprintf("write -d freecount %d", n+1))
		r := runCheck(t, img)
		repairFinds(t, img)
		fs := openRO(t, img)
		wantProblem(t, r, 0, fs.G.AGIDaddr(0), "AGI", "agi_freecount", "sum of the inobt's ir_freecount")
		if len(r.Problems) != 1 {
			t.Errorf("problems: %+v", r.Problems)
		}
	})
	t.Run("agf-freeblks", func(t *testing.T) {
		img := testimg.Path(t, "default")
		n := num(t, field(img, "agf 1", "p freeblks"), "freeblks")
		testimg.DBWrite(t, img, "agf 1", fmt.Sprintf("write -d freeblks %d", n-3))
		r := runCheck(t, img)
		repairFinds(t, img)
		fs := openRO(t, img)
		wantProblem(t, r, 1, fs.G.AGFDaddr(1), "AGF", "agf_freeblks", "sum of the bnobt's extent lengths")
		if len(r.Problems) != 1 {
			t.Errorf("problems: %+v", r.Problems)
		}
	})
	t.Run("cntbt-record", func(t *testing.T) {
		img := testimg.Path(t, "default")
		f := field(img, "agf 0", "addr cntroot", "p level numrecs")
		if num(t, f, "level") != 0 {
			t.Skip("cntbt root is not a leaf")
		}
		n := num(t, f, "numrecs")
		bc := num(t, field(img, "agf 0", "addr cntroot", fmt.Sprintf("p recs[%d].blockcount", n)), fmt.Sprintf("recs[%d].blockcount", n))
		// The last (largest) extent one block shorter: key order holds.
		testimg.DBWrite(t, img, "agf 0", "addr cntroot", fmt.Sprintf("write -d recs[%d].blockcount %d", n, bc-1))
		r := runCheck(t, img)
		repairFinds(t, img)
		wantProblem(t, r, 0, -1, "cntbt", fmt.Sprintf("blockcount %d]", bc-1), "is not in the bnobt")
		wantProblem(t, r, 0, -1, "bnobt", fmt.Sprintf("blockcount %d]", bc), "is not in the cntbt")
		if len(r.Problems) != 2 {
			t.Errorf("problems: %+v", r.Problems)
		}
	})
	t.Run("finobt-removed", func(t *testing.T) {
		img := testimg.Path(t, "default")
		f := field(img, "agi 0", "addr free_root", "p level numrecs recs[1].startino")
		if num(t, f, "level") != 0 || num(t, f, "numrecs") == 0 {
			t.Skip("finobt root is not a leaf holding records")
		}
		n := num(t, f, "numrecs")
		last := num(t, field(img, "agi 0", "addr free_root", fmt.Sprintf("p recs[%d].startino", n)), fmt.Sprintf("recs[%d].startino", n))
		testimg.DBWrite(t, img, "agi 0", "addr free_root", fmt.Sprintf("write -d numrecs %d", n-1))
		r := runCheck(t, img)
		repairFinds(t, img)
		wantProblem(t, r, 0, -1, "finobt", fmt.Sprintf("record at startino %d", last), "is missing")
		if len(r.Problems) != 1 {
			t.Errorf("problems: %+v", r.Problems)
		}
	})
	t.Run("finobt-changed", func(t *testing.T) {
		img := testimg.Path(t, "default")
		f := field(img, "agi 0", "addr free_root", "p level numrecs recs[1].startino recs[1].freecount recs[1].free")
		if num(t, f, "level") != 0 || num(t, f, "numrecs") == 0 {
			t.Skip("finobt root is not a leaf holding records")
		}
		// One free inode marked in use, consistently (ir_free and
		// ir_freecount agree), so only the comparison with the inobt
		// can find it.
		free, fc := num(t, f, "recs[1].free"), num(t, f, "recs[1].freecount")
		testimg.DBWrite(t, img, "agi 0", "addr free_root",
			// xfs_db parses a value with strtoll: a mask with the top bit
			// set is given as a negative number (after --).
			fmt.Sprintf("write -d -- recs[1].free %d", int64(free&(free-1))), fmt.Sprintf("write -d recs[1].freecount %d", fc-1))
		r := runCheck(t, img)
		repairFinds(t, img)
		wantProblem(t, r, 0, -1, "finobt", fmt.Sprintf("record at startino %d", num(t, f, "recs[1].startino")), "differs from the inobt's record")
		if len(r.Problems) != 1 {
			t.Errorf("problems: %+v", r.Problems)
		}
	})
	t.Run("sb-icount", func(t *testing.T) {
		// v5 counters are lazy: a superblock count off is a warning
		// saying so, not a problem.
		img := testimg.Path(t, "default")
		n := num(t, field(img, "sb 0", "p icount"), "icount")
		testimg.DBWrite(t, img, "sb 0", fmt.Sprintf("write -d icount %d", n+64))
		r := runCheck(t, img)
		if !r.Clean || !r.LazyCount || len(r.Warnings) != 1 || r.Warnings[0].Field != "sb_icount" ||
			r.Warnings[0].Daddr != 0 || !strings.Contains(r.Warnings[0].Message, "lazy superblock counters") {
			t.Errorf("problems %+v, warnings %+v", r.Problems, r.Warnings)
		}
	})
	t.Run("agf-bad-crc", func(t *testing.T) {
		img := testimg.Path(t, "default")
		fs := openRO(t, img)
		d, ags := fs.G.AGFDaddr(1), fs.G.AGCount
		fs.Close()
		file, err := os.OpenFile(img, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := []byte{0}
		off := d*ondisk.BBSize + 100 // in agf_spare64: only the CRC can tell
		if _, err := file.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0xff
		if _, err := file.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
		file.Close()
		r := runCheck(t, img)
		repairFinds(t, img)
		wantProblem(t, r, 1, d, "AGF", "crc", "")
		if len(r.Problems) != 1 {
			t.Errorf("problems: %+v", r.Problems)
		}
		// AG 1's AGI side and the other AGs were still checked.
		for agno := range ags {
			if a := r.AGs[agno]; a.InobtRecs == 0 || (agno != 1 && a.FreeExtents == 0) {
				t.Errorf("AG %d not checked: %+v", agno, a)
			}
		}
	})
}
