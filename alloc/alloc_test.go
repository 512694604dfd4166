package alloc_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/alloc"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
	"github.com/xfsfree/xfsfree/xfs"
)

// longestFree returns the longest free extent of the state.
func longestFree(s *agState) ext {
	var l ext
	for _, e := range s.free {
		if e.n > l.n {
			l = e
		}
	}
	return l
}

func readAG(t testing.TB, tx *testTx, fs *xfs.FS, agno uint32) *alloc.AG {
	t.Helper()
	ag, err := alloc.ReadAG(tx, fs.G, agno)
	if err != nil {
		tx.cancel()
		t.Fatalf("ReadAG %d: %v", agno, err)
	}
	return ag
}

// TestMinFreelist: on images the kernel populated, the AGFL holds exactly
// what xfs_alloc_min_freelist asks (the kernel trims and refills it on every
// allocation and free).
func TestMinFreelist(t *testing.T) {
	for _, name := range []string{"default", "rmapbt", "bs1024"} {
		t.Run(name, func(t *testing.T) {
			testimg.Need(t, "xfs_db")
			img := testimg.Path(t, name)
			fs := openRW(t, img)
			defer fs.Close()
			for agno := range fs.G.AGCount {
				s := dbState(t, img, agno)
				tx := begin(t, fs)
				ag := readAG(t, tx, fs, agno)
				if got := ag.MinFreelist(); int(got) != s.need || uint64(got) != s.agf["flcount"] {
					t.Errorf("AG %d: MinFreelist %d; levels %v give %d, xfs_db flcount %d", agno, got, s.levels, s.need, s.agf["flcount"])
				}
				if ag.FreeBlks() != uint32(s.agf["freeblks"]) || ag.Longest() != uint32(s.agf["longest"]) || ag.BtreeBlks() != uint32(s.agf["btreeblks"]) {
					t.Errorf("AG %d: AGF counters %d %d %d, xfs_db %v", agno, ag.FreeBlks(), ag.Longest(), ag.BtreeBlks(), s.agf)
				}
				tx.cancel()
			}
		})
	}
}

// TestAGFLRing takes blocks off the head of the AGFL and puts them back at
// its tail more times than the ring has slots: both indexes wrap, the list
// keeps its blocks in order, and xfs_repair accepts the result.
func TestAGFLRing(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair")
	img := testimg.Path(t, "default")
	orig := dbState(t, img, 0)
	fs := openRW(t, img)
	size := int(fs.G.AGFLSize)
	k := size + 3
	tx := begin(t, fs)
	ag := readAG(t, tx, fs, 0)
	for i := range k {
		btree := i%2 == 0 // as a btree block taken and given back: btreeblks +1 -1
		b, err := ag.GetFreelist(tx, btree)
		if err != nil || b == ondisk.NullAgbno {
			t.Fatalf("GetFreelist %d: %d %v", i, b, err)
		}
		if err := ag.PutFreelist(tx, b, btree); err != nil {
			t.Fatalf("PutFreelist %d: %v", i, err)
		}
	}
	tx.commit()
	fs.Close()
	now := dbState(t, img, 0)
	if want := (orig.agf["flfirst"] + uint64(k)) % uint64(size); now.agf["flfirst"] != want {
		t.Errorf("flfirst %d, want %d", now.agf["flfirst"], want)
	}
	if want := (orig.agf["fllast"] + uint64(k)) % uint64(size); now.agf["fllast"] != want {
		t.Errorf("fllast %d, want %d", now.agf["fllast"], want)
	}
	// The list turned k times: the same blocks, rotated by k mod flcount.
	n := len(orig.agfl)
	if rot := append(orig.agfl[k%n:], orig.agfl[:k%n]...); !slices.Equal(now.agfl, rot) {
		t.Errorf("AGFL %v, want %v", now.agfl, rot)
	}
	now.agfl = orig.agfl
	checkSameSpace(t, orig, now, true)
	now.checkConsistent(t, "after the ring went round")
	testimg.Repair(t, img)
}

// TestFreeMerges frees, one block at a time, five blocks taken from the
// middle of a free extent, so that each of xfs_free_ag_extent's four cases
// occurs: no neighbour, right only, left only, both (twice); xfs_db checks
// the free extents after each step.
func TestFreeMerges(t *testing.T) {
	for _, name := range []string{"default", "rmapbt"} {
		t.Run(name, func(t *testing.T) {
			testimg.Need(t, "xfs_db", "xfs_repair")
			img := testimg.Path(t, name)
			orig := dbState(t, img, 0)
			orig.checkConsistent(t, "the fixture")
			L := longestFree(orig)
			x := L.bno + 100
			fs := openRW(t, img)
			defer fs.Close()
			owner := alloc.InodeOwner(4242, 1000, false)
			tx := begin(t, fs)
			got, err := alloc.AllocNear(tx, readAG(t, tx, fs, 0), x, 5, owner)
			if err != nil || got != x {
				tx.cancel()
				t.Fatalf("AllocNear(%d, 5) = %d, %v; want %d", x, got, err, x)
			}
			tx.commit()
			s := dbState(t, img, 0)
			s.checkConsistent(t, "after the allocation")
			wantFree(t, s, ext{L.bno, x - L.bno}, ext{x + 5, L.bno + L.n - x - 5})
			if fs.G.HasRmapbt {
				wantRmap(t, s, rmapRec{start: x, count: 5, owner: 4242, offset: 1000})
			}
			steps := []struct {
				bno  uint32
				desc string
				want []ext
			}{
				{x + 2, "no neighbour", []ext{{x + 2, 1}}},
				{x + 1, "right neighbour", []ext{{x + 1, 2}}},
				{x + 3, "left neighbour", []ext{{x + 1, 3}}},
				{x, "both neighbours", []ext{{L.bno, x + 4 - L.bno}}},
				{x + 4, "both neighbours, back to one extent", []ext{L}},
			}
			for _, st := range steps {
				tx := begin(t, fs)
				o := owner
				o.Offset += uint64(st.bno - x)
				if err := alloc.FreeExtent(tx, readAG(t, tx, fs, 0), st.bno, 1, o); err != nil {
					tx.cancel()
					t.Fatalf("free %d (%s): %v", st.bno, st.desc, err)
				}
				tx.commit()
				s := dbState(t, img, 0)
				s.checkConsistent(t, st.desc)
				wantFree(t, s, st.want...)
			}
			fs.Close()
			now := dbState(t, img, 0)
			checkSameSpace(t, orig, now, true)
			testimg.Repair(t, img)
		})
	}
}

func wantFree(t testing.TB, s *agState, want ...ext) {
	t.Helper()
	for _, e := range want {
		if !slices.Contains(s.free, e) {
			t.Errorf("free extent [%d, %d) missing from xfs_db's freesp", e.bno, e.bno+e.n)
		}
	}
}

func wantRmap(t testing.TB, s *agState, want ...rmapRec) {
	t.Helper()
	for _, r := range want {
		if !slices.Contains(s.rmap, r) {
			t.Errorf("rmap record %v missing from xfs_db's rmapbt", r)
		}
	}
}

// TestRmapMiddleSplit frees the middle of an inode's extent: the rmap
// record splits in two with the right file offsets; then the left part's
// tail and the right part's head are trimmed, and the rest freed.
func TestRmapMiddleSplit(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair")
	img := testimg.Path(t, "rmapbt")
	orig := dbState(t, img, 0)
	L := longestFree(orig)
	x := L.bno + 50
	fs := openRW(t, img)
	defer fs.Close()
	ino := uint64(777)
	tx := begin(t, fs)
	if b, err := alloc.AllocNear(tx, readAG(t, tx, fs, 0), x, 8, alloc.InodeOwner(ino, 100, false)); err != nil || b != x {
		tx.cancel()
		t.Fatalf("AllocNear: %d %v", b, err)
	}
	tx.commit()
	free := func(bno, n uint32, off uint64) {
		t.Helper()
		tx := begin(t, fs)
		if err := alloc.FreeExtent(tx, readAG(t, tx, fs, 0), bno, n, alloc.InodeOwner(ino, off, false)); err != nil {
			tx.cancel()
			t.Fatalf("FreeExtent(%d, %d, offset %d): %v", bno, n, off, err)
		}
		tx.commit()
	}
	free(x+3, 2, 103) // middle: [x,3)@100 and [x+5,3)@105
	s := dbState(t, img, 0)
	wantRmap(t, s, rmapRec{start: x, count: 3, owner: int64(ino), offset: 100}, rmapRec{start: x + 5, count: 3, owner: int64(ino), offset: 105})
	s.checkConsistent(t, "after the split")
	free(x+2, 1, 102) // the left part's tail
	free(x+5, 1, 105) // the right part's head: its offset moves
	s = dbState(t, img, 0)
	wantRmap(t, s, rmapRec{start: x, count: 2, owner: int64(ino), offset: 100}, rmapRec{start: x + 6, count: 2, owner: int64(ino), offset: 106})
	// A free with the wrong offset or owner is refused, nothing written.
	for _, o := range []alloc.Owner{alloc.InodeOwner(ino, 999, false), alloc.InodeOwner(ino+1, 100, false), alloc.InodeOwner(ino, 100, true)} {
		tx := begin(t, fs)
		err := alloc.FreeExtent(tx, readAG(t, tx, fs, 0), x, 2, o)
		tx.cancel()
		var ce *ondisk.CorruptError
		if !errors.As(err, &ce) || ce.AG != 0 {
			t.Errorf("free of [%d, %d) as %v: %v, want a corruption error in AG 0", x, x+2, o, err)
		} else {
			t.Logf("refused as expected: %v", err)
		}
	}
	free(x, 2, 100)
	free(x+6, 2, 106)
	fs.Close()
	now := dbState(t, img, 0)
	checkSameSpace(t, orig, now, true)
	testimg.Repair(t, img)
}

// TestFreeAlreadyFree: freeing blocks that are (partly) free is corruption
// naming the AG and both extents, and nothing is written.
func TestFreeAlreadyFree(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair")
	img := testimg.Path(t, "default")
	orig := dbState(t, img, 0)
	L := longestFree(orig)
	fs := openRW(t, img)
	for _, e := range []ext{{L.bno + 10, 5}, {L.bno - 1, 2}, {L.bno + L.n - 1, 3}} {
		tx := begin(t, fs)
		err := alloc.FreeExtent(tx, readAG(t, tx, fs, 0), e.bno, e.n, alloc.OwnerNull)
		tx.cancel()
		var ce *ondisk.CorruptError
		if !errors.As(err, &ce) || ce.AG != 0 || !strings.Contains(err.Error(), fmt.Sprintf("[%d, %d)", e.bno, e.bno+e.n)) {
			t.Errorf("free [%d, %d): %v; want a corruption error naming AG 0 and the extent", e.bno, e.bno+e.n, err)
		} else {
			t.Logf("refused as expected: %v", err)
		}
	}
	fs.Close()
	checkSameSpace(t, orig, dbState(t, img, 0), true)
	testimg.Repair(t, img)
}

// piece is an extent a test allocated, with its owner.
type piece struct {
	bno, n uint32
	o      alloc.Owner
}

// TestAllocFreeRoundTrip allocates many extents at random places with
// AllocNear (xfs_repair then sees lost blocks), then frees them all back in
// random order and in pieces (inode extents by their file offsets, so the
// rmap records are trimmed and split): the AG ends holding the same space
// as before, the same rmap records, and xfs_repair accepts it.
func TestAllocFreeRoundTrip(t *testing.T) {
	for _, name := range []string{"default", "rmapbt", "bs1024"} {
		t.Run(name, func(t *testing.T) {
			testimg.Need(t, "xfs_db", "xfs_repair")
			img := testimg.Path(t, name)
			orig := dbState(t, img, 0)
			orig.checkConsistent(t, "the fixture")
			rng := rand.New(rand.NewPCG(1, uint64(len(name))))
			fs := openRW(t, img)
			defer fs.Close()
			agLen := orig.agf["freeblks"] // only for the sanity of near
			_ = agLen
			L := longestFree(orig)
			var pieces []piece
			tx := begin(t, fs)
			ag := readAG(t, tx, fs, 0)
			for i := range 150 {
				near := L.bno + uint32(rng.IntN(int(min(L.n, 3000))))
				if i%3 == 0 {
					near = uint32(rng.IntN(int(fs.G.AGSize(0))))
				}
				n := uint32(1 + rng.IntN(5))
				o := alloc.OwnerInobt
				if i%2 == 1 {
					o = alloc.InodeOwner(uint64(100000+i), uint64(rng.IntN(1<<20)), i%4 == 3)
				}
				b, err := alloc.AllocNear(tx, ag, near, n, o)
				if err != nil {
					tx.cancel()
					t.Fatalf("AllocNear %d (near %d, %d blocks): %v", i, near, n, err)
				}
				pieces = append(pieces, piece{b, n, o})
			}
			tx.commit()
			mid := dbState(t, img, 0)
			mid.checkConsistent(t, "after the allocations")
			if out, exit := testimg.TryRepair(t, img); exit == 0 {
				t.Errorf("xfs_repair -n accepts an AG with %d allocated blocks nobody owns:\n%s", len(pieces), out)
			}
			// Cut inode extents into pieces to free separately.
			var frees []piece
			for _, p := range pieces {
				if p.n >= 3 && ondisk.IsInodeOwner(p.o.Owner) {
					cut := 1 + uint32(rng.IntN(int(p.n-2)))
					for _, q := range []piece{{p.bno, cut, p.o}, {p.bno + cut, p.n - cut, p.o}} {
						q.o.Offset += uint64(q.bno - p.bno)
						frees = append(frees, q)
					}
					continue
				}
				frees = append(frees, p)
			}
			rng.Shuffle(len(frees), func(i, j int) { frees[i], frees[j] = frees[j], frees[i] })
			for len(frees) > 0 {
				k := min(len(frees), 40)
				tx := begin(t, fs)
				ag := readAG(t, tx, fs, 0)
				for _, p := range frees[:k] {
					if err := alloc.FreeExtent(tx, ag, p.bno, p.n, p.o); err != nil {
						tx.cancel()
						t.Fatalf("FreeExtent(%d, %d, %v): %v", p.bno, p.n, p.o, err)
					}
				}
				tx.commit()
				frees = frees[k:]
			}
			fs.Close()
			now := dbState(t, img, 0)
			now.checkConsistent(t, "after the frees")
			same := mid.levels == orig.levels && now.levels == orig.levels
			checkSameSpace(t, orig, now, same && !fs.G.HasRmapbt)
			testimg.Repair(t, img)
		})
	}
}

// TestBtreeGrowShrink allocates every other block of the longest free
// extent until the bnobt and cntbt (and the rmapbt) grow by a level, then
// frees them all in random order until they shrink back. The AGFL ring is
// first turned so that its head is two slots before the end: the refills
// and shrinks that follow the height changes wrap it. After each batch the
// AGFL holds between MinFreelist and the ring size; at the end the AG holds
// the same space as before and xfs_repair accepts it.
func TestBtreeGrowShrink(t *testing.T) {
	for _, name := range []string{"bs1024", "rmapbt"} {
		t.Run(name, func(t *testing.T) {
			testimg.Need(t, "xfs_db", "xfs_repair")
			img := testimg.Path(t, name)
			orig := dbState(t, img, 0)
			fs := openRW(t, img)
			defer fs.Close()
			size := int(fs.G.AGFLSize)
			// Turn the ring.
			tx := begin(t, fs)
			ag := readAG(t, tx, fs, 0)
			for range (size - 2 - int(orig.agf["flfirst"]) + size) % size {
				b, err := ag.GetFreelist(tx, false)
				if err != nil {
					t.Fatal(err)
				}
				if err := ag.PutFreelist(tx, b, false); err != nil {
					t.Fatal(err)
				}
			}
			tx.commit()
			start := dbState(t, img, 0)
			if start.agf["flfirst"] != uint64(size-2) {
				t.Fatalf("flfirst %d after turning the ring, want %d", start.agf["flfirst"], size-2)
			}
			L := longestFree(start)
			leafRecs := (int(fs.G.BlockSize) - 56) / 8
			count := leafRecs + leafRecs/2
			if uint32(2*count) > L.n {
				t.Fatalf("longest free extent %d too short for %d allocations", L.n, count)
			}
			var blocks []uint32
			for i := 0; i < count; {
				tx := begin(t, fs)
				ag := readAG(t, tx, fs, 0)
				for j := 0; j < 100 && i < count; i, j = i+1, j+1 {
					// From the end of the extent down: the AGFL refills
					// take the start of the smallest extent that fits,
					// here the rest of this one.
					want := L.bno + L.n - 2 - 2*uint32(i)
					o := alloc.OwnerInobt
					if i%2 == 0 {
						o = alloc.InodeOwner(uint64(200000+i), 7, false)
					}
					b, err := alloc.AllocNear(tx, ag, want, 1, o)
					if err != nil || b != want {
						tx.cancel()
						t.Fatalf("AllocNear(%d) = %d, %v", want, b, err)
					}
					blocks = append(blocks, b)
				}
				checkFix(t, tx, ag, size)
				tx.commit()
			}
			grown := dbState(t, img, 0)
			grown.checkConsistent(t, "after the growth")
			t.Logf("grown: levels %v (were %v), rmapblocks %d (were %d), flfirst %d fllast %d flcount %d btreeblks %d", grown.levels, start.levels, grown.agf["rmapblocks"], start.agf["rmapblocks"], grown.agf["flfirst"], grown.agf["fllast"], grown.agf["flcount"], grown.agf["btreeblks"])
			if grown.levels[0] <= start.levels[0] || grown.levels[1] <= start.levels[1] {
				t.Errorf("bnobt/cntbt levels %v, were %v: no growth", grown.levels, start.levels)
			}
			if fs.G.HasRmapbt && grown.agf["rmapblocks"] <= start.agf["rmapblocks"]+2 {
				t.Errorf("rmapbt blocks %d, were %d: no splits", grown.agf["rmapblocks"], start.agf["rmapblocks"])
			}
			if grown.agf["flfirst"] >= uint64(size-2) {
				t.Errorf("flfirst %d: the AGFL head did not wrap", grown.agf["flfirst"])
			}
			owners := map[uint32]alloc.Owner{}
			for i, b := range blocks {
				owners[b] = alloc.OwnerInobt
				if i%2 == 0 {
					owners[b] = alloc.InodeOwner(uint64(200000+i), 7, false)
				}
			}
			rng := rand.New(rand.NewPCG(7, 7))
			rng.Shuffle(len(blocks), func(i, j int) { blocks[i], blocks[j] = blocks[j], blocks[i] })
			for len(blocks) > 0 {
				k := min(len(blocks), 100)
				tx := begin(t, fs)
				ag := readAG(t, tx, fs, 0)
				for _, b := range blocks[:k] {
					if err := alloc.FreeExtent(tx, ag, b, 1, owners[b]); err != nil {
						tx.cancel()
						t.Fatalf("FreeExtent(%d): %v", b, err)
					}
				}
				checkFix(t, tx, ag, size)
				tx.commit()
				blocks = blocks[k:]
			}
			fs.Close()
			now := dbState(t, img, 0)
			now.checkConsistent(t, "after the frees")
			if now.levels != orig.levels {
				t.Errorf("levels %v at the end, were %v", now.levels, orig.levels)
			}
			checkSameSpace(t, orig, now, false)
			testimg.Repair(t, img)
		})
	}
}

// checkFix runs the AGFL fix-up of a free and checks that it leaves the
// list between MinFreelist and the ring size.
func checkFix(t testing.TB, tx *testTx, ag *alloc.AG, size int) {
	t.Helper()
	if err := ag.FixFreelist(tx, true); err != nil {
		tx.cancel()
		t.Fatalf("FixFreelist: %v", err)
	}
	if ag.FLCount() < ag.MinFreelist() || ag.FLCount() > uint32(size) {
		t.Errorf("flcount %d outside [%d, %d] after the fix-up", ag.FLCount(), ag.MinFreelist(), size)
	}
}
