package btree_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/agi"
	"github.com/xfsfree/xfsfree/alloc"
	"github.com/xfsfree/xfsfree/btree"
	"github.com/xfsfree/xfsfree/inobt"
	"github.com/xfsfree/xfsfree/internal/testfs"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
	"github.com/xfsfree/xfsfree/xfs"
)

func num(t testing.TB, v string) uint64 {
	t.Helper()
	n, err := testimg.ParseUint(v)
	if err != nil {
		t.Fatalf("xfs_db value %q: %v", v, err)
	}
	return n
}

// dbRecords reads a btree's records with xfs_db, level by level from root.
func dbRecords(t *testing.T, img string, agno uint32, root, levels uint64, typ string) []testimg.Record {
	t.Helper()
	g := testimg.Geo(t, img)
	blocks := []uint64{root}
	show := func() string {
		var cmds []string
		for _, b := range blocks {
			cmds = append(cmds, fmt.Sprintf("fsblock %d", g.FSBlock(agno, uint32(b))), "type "+typ, "p")
		}
		return testimg.DB(t, img, cmds...)
	}
	for l := levels; l > 1; l-- {
		ptrs, _ := testimg.ParseArray(show(), "ptrs")
		blocks = blocks[:0]
		for _, p := range ptrs {
			blocks = append(blocks, num(t, p.Value))
		}
	}
	recs, err := testimg.ParseRecords(show(), "recs")
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// allocTree returns the bnobt (cnt false) or cntbt of an AG. The cntbt
// orders by length, then start; both records and keys are [start, len].
func allocTree(fs *xfs.FS, agf *ondisk.AGF, cnt bool) *btree.Tree {
	t := &btree.Tree{Type: ondisk.BtBnobt, Kind: ondisk.KindBnobt, Cache: fs.Cache, G: fs.G, AG: agf.SeqNo,
		Root: agf.Roots[0], Levels: int(agf.Levels[0]), RecKey: func(r []byte) []byte { return r[:8] }, Cmp: bytes.Compare}
	if cnt {
		t.Type, t.Kind, t.Root, t.Levels = ondisk.BtCntbt, ondisk.KindCntbt, agf.Roots[1], int(agf.Levels[1])
		t.Cmp = func(a, b []byte) int {
			if c := bytes.Compare(a[4:8], b[4:8]); c != 0 {
				return c
			}
			return bytes.Compare(a[:4], b[:4])
		}
	}
	return t
}

func be32(b []byte) uint64 {
	return uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
}

// TestWalkAllocBtrees walks the bnobt and the cntbt of every AG of several
// fixtures and compares the records with xfs_db's; then looks every record
// up with LookupLE.
func TestWalkAllocBtrees(t *testing.T) {
	for _, name := range []string{"default", "bs1024", "agcount32", "orphans", "inobt3"} {
		t.Run(name, func(t *testing.T) {
			testimg.Need(t, "xfs_db")
			img := testimg.Path(t, name)
			fs := testfs.OpenRO(t, img)
			for agno := range fs.G.AGCount {
				agf, err := alloc.ReadAGF(fs.Cache, fs.G, agno)
				if err != nil {
					t.Fatal(err)
				}
				for i, typ := range []string{"bnobt", "cntbt"} {
					tree := allocTree(fs, agf, i == 1)
					var got [][]byte
					if err := tree.Walk(func(r []byte) error { got = append(got, append([]byte(nil), r...)); return nil }); err != nil {
						t.Fatalf("AG %d %s: %v", agno, typ, err)
					}
					want := dbRecords(t, img, agno, uint64(tree.Root), uint64(tree.Levels), typ)
					if len(got) != len(want) {
						t.Fatalf("AG %d %s: %d records, xfs_db %d", agno, typ, len(got), len(want))
					}
					var free uint64
					for j, r := range got {
						if be32(r) != want[j]["startblock"] || be32(r[4:]) != want[j]["blockcount"] {
							t.Errorf("AG %d %s record %d: %x, xfs_db %v", agno, typ, j, r, want[j])
						}
						free += be32(r[4:])
						rec, ok, err := tree.LookupLE(r[:8])
						if err != nil || !ok || !bytes.Equal(rec, r) {
							t.Errorf("AG %d %s LookupLE(%x) = %x %v %v", agno, typ, r[:8], rec, ok, err)
						}
					}
					if free != uint64(agf.FreeBlks) {
						t.Errorf("AG %d %s: records hold %d free blocks, agf_freeblks %d", agno, typ, free, agf.FreeBlks)
					}
					if len(got) > 0 && i == 0 {
						if _, ok, err := tree.LookupLE(make([]byte, 8)); ok || err != nil {
							t.Errorf("AG %d bnobt LookupLE(0) below every record: ok %v err %v", agno, ok, err)
						}
					}
				}
			}
		})
	}
}

// TestWalkLevels checks that inobt3's three-level inobt is read whole: the
// records the walk returns are as many as the AGI counts chunks.
func TestWalkLevels(t *testing.T) {
	img := testimg.Path(t, "inobt3")
	fs := testfs.OpenRO(t, img)
	a, err := agi.Read(fs.Cache, fs.G, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a.Level < 3 {
		t.Fatalf("inobt3 AG 0 has %d levels", a.Level)
	}
	n := 0
	var inodes uint32
	err = inobt.Tree(fs.Cache, fs.G, a, false).Walk(func(r []byte) error {
		n++
		inodes += uint32(ondisk.DecodeInobtRec(r, fs.G.HasSparse).Count)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if inodes != a.Count || n < fs.G.InobtLeafMaxRecs*2 {
		t.Errorf("%d records of %d inodes; AGI count %d", n, inodes, a.Count)
	}
	// fn's error stops the walk and comes back unchanged.
	stop := errors.New("stop")
	calls := 0
	err = inobt.Tree(fs.Cache, fs.G, a, false).Walk(func([]byte) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Errorf("Walk with a failing fn: %v after %d calls", err, calls)
	}
}

// TestWalkCorruptShape breaks the shape of inobt3's AG 0 inobt with xfs_db
// (CRCs recomputed, so only the walk's own checks can see it) and checks the
// error names the AG, a block and what is wrong.
func TestWalkCorruptShape(t *testing.T) {
	testimg.Need(t, "xfs_db")
	for _, c := range []struct {
		name  string
		write func(t *testing.T, img string, root uint64, ptrs []uint64, g testimg.Geometry) []string
		want  []string
	}{
		{"pointer twice", func(t *testing.T, img string, root uint64, ptrs []uint64, g testimg.Geometry) []string {
			return []string{fmt.Sprintf("fsblock %d", g.FSBlock(0, uint32(root))), "type inobt", fmt.Sprintf("write -d ptrs[2] %d", ptrs[0])}
		}, []string{"bb_rightsib"}}, // the level's sibling links no longer match the pointers
		{"parent key", func(t *testing.T, img string, root uint64, ptrs []uint64, g testimg.Geometry) []string {
			return []string{fmt.Sprintf("fsblock %d", g.FSBlock(0, uint32(root))), "type inobt", "write -d keys[2].startino 386560"}
		}, []string{"first key", "parent"}},
		{"level", func(t *testing.T, img string, root uint64, ptrs []uint64, g testimg.Geometry) []string {
			return []string{fmt.Sprintf("fsblock %d", g.FSBlock(0, uint32(ptrs[1]))), "type inobt", "write -d level 2"}
		}, []string{"bb_level", "found 2, want 1"}},
		{"right sibling", func(t *testing.T, img string, root uint64, ptrs []uint64, g testimg.Geometry) []string {
			return []string{fmt.Sprintf("fsblock %d", g.FSBlock(0, uint32(ptrs[0]))), "type inobt", fmt.Sprintf("write -d rightsib %d", ptrs[0])}
		}, []string{"bb_rightsib"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := testimg.Path(t, "inobt3")
			g := testimg.Geo(t, img)
			f := testimg.AGI(t, img, 0)
			root := num(t, f["root"])
			out := testimg.DB(t, img, fmt.Sprintf("fsblock %d", g.FSBlock(0, uint32(root))), "type inobt", "p ptrs")
			pe, _ := testimg.ParseArray(out, "ptrs")
			var ptrs []uint64
			for _, p := range pe {
				ptrs = append(ptrs, num(t, p.Value))
			}
			if len(ptrs) < 2 {
				t.Fatalf("inobt3 root has %d pointers", len(ptrs))
			}
			testimg.DBWrite(t, img, c.write(t, img, root, ptrs, g)...)
			fs := testfs.OpenRO(t, img)
			a, err := agi.Read(fs.Cache, fs.G, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = inobt.Records(inobt.Tree(fs.Cache, fs.G, a, false))
			var ce *ondisk.CorruptError
			if !errors.As(err, &ce) || ce.AG != 0 || ce.Daddr <= 0 {
				t.Fatalf("walk: %v, want a CorruptError naming AG 0 and a block", err)
			}
			t.Logf("%v", err)
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
