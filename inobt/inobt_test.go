package inobt_test

import (
	"testing"

	"github.com/xfsfree/xfsfree/agi"
	"github.com/xfsfree/xfsfree/inobt"
	"github.com/xfsfree/xfsfree/internal/testfs"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// sameRecords compares our records with xfs_db's, record for record.
func sameRecords(t *testing.T, what string, got []ondisk.InobtRec, want []testimg.Record, sparse bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d records, xfs_db has %d", what, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		exp := ondisk.InobtRec{StartIno: uint32(w["startino"]), FreeCount: uint32(w["freecount"]), Free: w["free"], Count: 64}
		if sparse {
			exp.HoleMask, exp.Count = uint16(w["holemask"]), uint8(w["count"])
		}
		if g != exp {
			t.Errorf("%s record %d: %+v, xfs_db %+v", what, i, g, exp)
		}
	}
}

// TestRecordsAgainstXfsDB walks the inobt and the finobt of every AG of
// every read-only fixture and compares each record with xfs_db's: the
// multi-level inobt3, sparse and non-sparse records, with and without
// finobt, one and 32 AGs.
func TestRecordsAgainstXfsDB(t *testing.T) {
	for _, name := range testimg.ReadOnlyFixtures() {
		t.Run(name, func(t *testing.T) {
			testimg.Need(t, "xfs_db")
			img := testimg.Path(t, name)
			fs := testfs.OpenRO(t, img)
			g := fs.G
			total := 0
			for agno := range g.AGCount {
				a, err := agi.Read(fs.Cache, g, agno)
				if err != nil {
					t.Fatal(err)
				}
				recs, err := inobt.Records(inobt.Tree(fs.Cache, g, a, false))
				if err != nil {
					t.Fatalf("AG %d inobt: %v", agno, err)
				}
				total += len(recs)
				sameRecords(t, "AG inobt", recs, testimg.InobtRecords(t, img, agno, false), g.HasSparse)
				var icount, ifree uint32
				var free []ondisk.InobtRec
				for _, r := range recs {
					icount += uint32(r.Count)
					ifree += r.FreeCount
					if r.FreeCount > 0 {
						free = append(free, r)
					}
				}
				if icount != a.Count || ifree != a.FreeCount {
					t.Errorf("AG %d: records hold %d inodes, %d free; AGI count %d freecount %d", agno, icount, ifree, a.Count, a.FreeCount)
				}
				if !fs.SB.HasFinobt() {
					continue
				}
				frecs, err := inobt.Records(inobt.Tree(fs.Cache, g, a, true))
				if err != nil {
					t.Fatalf("AG %d finobt: %v", agno, err)
				}
				sameRecords(t, "AG finobt", frecs, testimg.InobtRecords(t, img, agno, true), g.HasSparse)
				// The finobt holds exactly the inobt records with free inodes.
				if len(frecs) != len(free) {
					t.Errorf("AG %d: finobt has %d records, inobt %d with free inodes", agno, len(frecs), len(free))
				}
				for i := range min(len(frecs), len(free)) {
					if frecs[i] != free[i] {
						t.Errorf("AG %d finobt record %d: %+v, inobt %+v", agno, i, frecs[i], free[i])
					}
				}
			}
			if name == "inobt3" {
				a, _ := agi.Read(fs.Cache, g, 0)
				if a.Level < 3 {
					t.Errorf("inobt3: AG 0 inobt has %d levels, want 3 or more", a.Level)
				}
			}
			if total == 0 {
				t.Errorf("no inobt records at all")
			}
		})
	}
}

// TestLookupAndFind looks up every inode of every chunk (and the gaps
// between chunks) with Lookup through the btree and with Find in the walked
// records, on a multi-level and on a small inobt.
func TestLookupAndFind(t *testing.T) {
	for _, name := range []string{"default", "nosparse", "inobt3"} {
		t.Run(name, func(t *testing.T) {
			img := testimg.Path(t, name)
			fs := testfs.OpenRO(t, img)
			for agno := range fs.G.AGCount {
				a, err := agi.Read(fs.Cache, fs.G, agno)
				if err != nil {
					t.Fatal(err)
				}
				tree := inobt.Tree(fs.Cache, fs.G, a, false)
				recs, err := inobt.Records(tree)
				if err != nil {
					t.Fatal(err)
				}
				step := uint32(1)
				if len(recs) > 200 {
					step = 13 // still every chunk, not every inode
				}
				for i, r := range recs {
					for agino := r.StartIno; agino < r.StartIno+64; agino += step {
						got, ok, err := inobt.Lookup(tree, agino)
						if err != nil || !ok || got != r {
							t.Fatalf("AG %d Lookup(%d) = %+v, %v, %v; want %+v", agno, agino, got, ok, err, r)
						}
						if f, ok := inobt.Find(recs, agino); !ok || f != r {
							t.Fatalf("AG %d Find(%d) = %+v, %v; want %+v", agno, agino, f, ok, r)
						}
						bit := uint64(1) << (agino - r.StartIno)
						if want := r.AllocMask()&bit != 0 && r.Free&bit == 0; inobt.IsAllocated(r, agino) != want {
							t.Fatalf("IsAllocated(%+v, %d) != %v", r, agino, want)
						}
					}
					// The inode before the first chunk and those between
					// chunks are in none.
					gapEnd := uint32(0)
					if i > 0 {
						gapEnd = recs[i-1].StartIno + 64
					}
					if r.StartIno > gapEnd {
						before := r.StartIno - 1
						if _, ok, err := inobt.Lookup(tree, before); ok || err != nil {
							t.Fatalf("AG %d Lookup(%d) in a gap: ok %v err %v", agno, before, ok, err)
						}
						if _, ok := inobt.Find(recs, before); ok {
							t.Fatalf("AG %d Find(%d) in a gap found a chunk", agno, before)
						}
					}
				}
				if len(recs) > 0 {
					last := recs[len(recs)-1].StartIno + 64
					if _, ok, _ := inobt.Lookup(tree, last); ok {
						t.Fatalf("AG %d Lookup(%d) past the last chunk found one", agno, last)
					}
				}
			}
		})
	}
}

// TestCheckRec feeds CheckRec records that break each of the kernel's
// xfs_inobt_check_irec rules.
func TestCheckRec(t *testing.T) {
	fs := testfs.OpenRO(t, testimg.Path(t, "default"))
	g := fs.G
	good := ondisk.InobtRec{StartIno: 128, Count: 64, FreeCount: 2, Free: 3}
	if err := inobt.CheckRec(g, 0, good, "inobt"); err != nil {
		t.Fatalf("good record: %v", err)
	}
	sparse := ondisk.InobtRec{StartIno: 128, HoleMask: 0xff00, Count: 32, FreeCount: 1, Free: 0xffffffff00000001}
	if err := inobt.CheckRec(g, 0, sparse, "inobt"); err != nil {
		t.Fatalf("good sparse record: %v", err)
	}
	for _, c := range []struct {
		field string
		r     ondisk.InobtRec
	}{
		{"ir_startino", ondisk.InobtRec{StartIno: 129, Count: 64}},
		{"ir_startino", ondisk.InobtRec{StartIno: 136, Count: 64}}, // block 17: not on the 8-block alignment
		{"ir_startino", ondisk.InobtRec{StartIno: 0xfffffc0, Count: 64}},
		{"ir_count", ondisk.InobtRec{StartIno: 128, Count: 63}},
		{"ir_free", ondisk.InobtRec{StartIno: 128, HoleMask: 0xff00, Count: 32, Free: 0}},
		{"ir_freecount", ondisk.InobtRec{StartIno: 128, Count: 64, FreeCount: 3, Free: 3}},
	} {
		err := inobt.CheckRec(g, 2, c.r, "finobt")
		ce, ok := err.(*ondisk.CorruptError)
		if !ok {
			t.Errorf("%+v: error %v, want a *CorruptError on %s", c.r, err, c.field)
			continue
		}
		if ce.Field != c.field || ce.AG != 2 {
			t.Errorf("%+v: %v, want AG 2 field %s", c.r, err, c.field)
		}
	}
}

// BenchmarkWalkInobt walks every AG's inobt of the inobt3 fixture (a
// three-level inobt) through a warm cache.
func BenchmarkWalkInobt(b *testing.B) {
	img := testimg.Path(b, "inobt3")
	fs := testfs.OpenRO(b, img)
	var agis []*ondisk.AGI
	for agno := range fs.G.AGCount {
		a, err := agi.Read(fs.Cache, fs.G, agno)
		if err != nil {
			b.Fatal(err)
		}
		agis = append(agis, a)
	}
	b.ResetTimer()
	for b.Loop() {
		n := 0
		for _, a := range agis {
			err := inobt.Walk(inobt.Tree(fs.Cache, fs.G, a, false), func(ondisk.InobtRec) error { n++; return nil })
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n), "records/op")
	}
}
