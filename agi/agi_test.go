package agi_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/agi"
	"github.com/xfsfree/xfsfree/inobt"
	"github.com/xfsfree/xfsfree/internal/testfs"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

func num(t testing.TB, f map[string]string, k string) uint64 {
	t.Helper()
	n, err := testimg.ParseUint(f[k])
	if err != nil {
		t.Fatalf("xfs_db %s = %q: %v", k, f[k], err)
	}
	return n
}

// TestReadAgainstXfsDB reads every AGI of a few fixtures and compares them
// with xfs_db's (alloc's TestReadAGFAgainstXfsDB does the AGFs).
func TestReadAgainstXfsDB(t *testing.T) {
	for _, name := range []string{"default", "sect4096", "nofinobt", "orphans", "agcount1"} {
		t.Run(name, func(t *testing.T) {
			testimg.Need(t, "xfs_db")
			img := testimg.Path(t, name)
			fs := testfs.OpenRO(t, img)
			for agno := range fs.G.AGCount {
				a, err := agi.Read(fs.Cache, fs.G, agno)
				if err != nil {
					t.Fatal(err)
				}
				w := testimg.AGI(t, img, agno)
				got := []uint64{uint64(a.SeqNo), uint64(a.Length), uint64(a.Count), uint64(a.Root), uint64(a.Level), uint64(a.FreeCount), uint64(a.NewIno)}
				want := []uint64{num(t, w, "seqno"), num(t, w, "length"), num(t, w, "count"), num(t, w, "root"), num(t, w, "level"), num(t, w, "freecount"), num(t, w, "newino")}
				if fs.SB.HasFinobt() {
					got = append(got, uint64(a.FreeRoot), uint64(a.FreeLevel))
					want = append(want, num(t, w, "free_root"), num(t, w, "free_level"))
				}
				if !slices.Equal(got, want) {
					t.Errorf("AG %d AGI seqno/length/count/root/level/freecount/newino[/free_root/free_level] %v, xfs_db %v", agno, got, want)
				}
				if heads := testimg.Unlinked(t, img, agno); heads != a.Unlinked {
					t.Errorf("AG %d unlinked %v, xfs_db %v", agno, a.Unlinked, heads)
				}
			}
		})
	}
}

// TestWalkBucket follows every bucket of the orphan fixtures with
// WalkBucket and compares the chains with xfs_db's.
func TestWalkBucket(t *testing.T) {
	for _, name := range testimg.OrphanFixtures() {
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
					t.Fatal(err)
				}
				want := testimg.OrphanChains(t, img, agno)
				for b, head := range a.Unlinked {
					var got []uint32
					if head != ondisk.NullAgino {
						err := agi.WalkBucket(fs.Cache, g, agno, b, head, func(agino uint32) (ondisk.InodeLoc, error) {
							return fs.Locate(agno, recs, agino)
						}, func(agino uint32, d *ondisk.Dinode) error {
							if d.Nlink != 0 {
								t.Errorf("agino %d nlink %d", agino, d.Nlink)
							}
							got = append(got, agino)
							return nil
						})
						if err != nil {
							t.Fatalf("AG %d bucket %d: %v", agno, b, err)
						}
					}
					if !slices.Equal(got, want[b]) {
						t.Errorf("AG %d bucket %d: %v, xfs_db %v", agno, b, got, want[b])
					}
					total += len(got)
					// fn's error stops the walk at the head.
					if head != ondisk.NullAgino {
						stop := errors.New("stop")
						n := 0
						err := agi.WalkBucket(fs.Cache, g, agno, b, head, func(agino uint32) (ondisk.InodeLoc, error) {
							return fs.Locate(agno, recs, agino)
						}, func(uint32, *ondisk.Dinode) error { n++; return stop })
						if err != stop || n != 1 {
							t.Errorf("AG %d bucket %d: fn error gave %v after %d calls", agno, b, err, n)
						}
					}
				}
			}
			if total == 0 {
				t.Errorf("no orphans in %s", name)
			}
		})
	}
}

// TestWalkBucketWrongHead starts a walk at an inode of another bucket and
// at an agino outside the AG.
func TestWalkBucketWrongHead(t *testing.T) {
	img := testimg.Path(t, "orphans")
	fs := testfs.OpenRO(t, img)
	g := fs.G
	a, err := agi.Read(fs.Cache, g, 1)
	if err != nil {
		t.Fatal(err)
	}
	never := func(uint32) (ondisk.InodeLoc, error) { t.Fatal("locate called"); return ondisk.InodeLoc{}, nil }
	nop := func(uint32, *ondisk.Dinode) error { return nil }
	err = agi.WalkBucket(fs.Cache, g, 1, 3, a.Unlinked[2], never, nop)
	var ce *agi.ChainError
	if !errors.As(err, &ce) || ce.AG != 1 || ce.Bucket != 3 || !strings.Contains(err.Error(), "belongs to bucket 2") {
		t.Errorf("head of bucket 2 walked as bucket 3: %v", err)
	}
	outside := uint32(g.AGSize(1)) << g.InoPBLog
	err = agi.WalkBucket(fs.Cache, g, 1, int(outside%64), outside, never, nop)
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "not an inode of the AG") {
		t.Errorf("head outside the AG: %v", err)
	}
	if !errors.Is(err, ondisk.ErrCorrupt) {
		t.Errorf("ChainError %v does not wrap ErrCorrupt", err)
	}
}

func TestChainErrorString(t *testing.T) {
	e := &agi.ChainError{AG: 2, Bucket: 7, Chain: []uint32{71, 135, ondisk.NullAgino}, Reason: "test"}
	if got, want := e.Error(), "AG 2, AGI unlinked bucket 7: test; chain (aginos): 71 -> 135 -> null"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}
