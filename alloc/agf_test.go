package alloc_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/xfsfree/xfsfree/alloc"
	"github.com/xfsfree/xfsfree/internal/testfs"
	"github.com/xfsfree/xfsfree/internal/testimg"
)

// TestReadAGFAgainstXfsDB reads every AGF of a few fixtures outside a
// transaction (ReadAGF) and compares them with xfs_db's.
func TestReadAGFAgainstXfsDB(t *testing.T) {
	for _, name := range []string{"default", "sect4096", "nofinobt", "orphans", "agcount1"} {
		t.Run(name, func(t *testing.T) {
			testimg.Need(t, "xfs_db", "zstd")
			img := testimg.Path(t, name)
			fs := testfs.OpenRO(t, img)
			num := func(f map[string]string, k string) uint64 {
				t.Helper()
				n, err := testimg.ParseUint(f[k])
				if err != nil {
					t.Fatalf("xfs_db %s = %q: %v", k, f[k], err)
				}
				return n
			}
			for agno := range fs.G.AGCount {
				f, err := alloc.ReadAGF(fs.Cache, fs.G, agno)
				if err != nil {
					t.Fatal(err)
				}
				wf := testimg.ParseFields(testimg.DB(t, img, fmt.Sprintf("agf %d", agno), "p"))
				got := []uint64{uint64(f.SeqNo), uint64(f.Length), uint64(f.Roots[0]), uint64(f.Roots[1]), uint64(f.FLCount), uint64(f.FreeBlks), uint64(f.Longest), uint64(f.BtreeBlks)}
				want := []uint64{num(wf, "seqno"), num(wf, "length"), num(wf, "bnoroot"), num(wf, "cntroot"), num(wf, "flcount"), num(wf, "freeblks"), num(wf, "longest"), num(wf, "btreeblks")}
				if !slices.Equal(got, want) {
					t.Errorf("AG %d AGF %v, xfs_db %v", agno, got, want)
				}
			}
		})
	}
}
