package refcount_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/xfsfree/xfsfree/alloc"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
	"github.com/xfsfree/xfsfree/refcount"
	"github.com/xfsfree/xfsfree/xfs"
)

// TestAdjustModel raises and lowers the counts of random ranges of a
// 1500-block region of a 1 KiB-block filesystem (80 records a leaf, so the
// btree grows past one level), through journal transactions, and checks
// after each transaction, against a per-block model, every block's count
// (a block without a record counts 1), that a decrease frees exactly the
// blocks whose count reaches 0, and the btree's shape (btree.Tree.Walk:
// levels, key order, parent keys, siblings). Every count is then lowered
// back to 1: the btree is empty again, its freed blocks are back in free
// space, and xfs_repair -n accepts the image. The model, not the kernel,
// is the judge here; the kernel tests check the same code on real files.
func TestAdjustModel(t *testing.T) {
	testimg.Need(t, "mkfs.xfs", "xfs_db", "xfs_repair")
	img := mkImage(t, "-b", "size=1024")
	const ag, lo, n = 1, 3000, 1500
	count := make([]int, n) // blocks lo..lo+n: count, 1 = no record
	for i := range count {
		count[i] = 1
	}
	var freed [][2]uint32
	fs, err := xfs.OpenWrite(img, xfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	check := func(when string) {
		t.Helper()
		tr := refcount.Tree(fs.Cache, fs.G, ag, 0, 0)
		tx := fs.Begin()
		a, err := alloc.ReadAG(tx, fs.G, ag)
		if err != nil {
			t.Fatal(err)
		}
		tr.Root, tr.Levels = a.RefcountRoot(), a.RefcountLevel()
		tx.Cancel()
		got := make([]int, n)
		for i := range got {
			got[i] = 1
		}
		if err := tr.Walk(func(rec []byte) error {
			r := ondisk.DecodeRefcountRec(rec)
			if r.Cow() {
				return fmt.Errorf("CoW record %+v", r)
			}
			for b := r.Agbno(); b < r.Agbno()+r.BlockCount; b++ {
				if b < lo || b >= lo+n {
					return fmt.Errorf("record %+v outside the region", r)
				}
				got[b-lo] = int(r.RefCount)
			}
			return nil
		}); err != nil {
			t.Fatalf("%s: walk: %v", when, err)
		}
		for i := range got {
			if got[i] != count[i] {
				t.Fatalf("%s: block %d has count %d, the model %d", when, lo+i, got[i], count[i])
			}
		}
	}
	rng := rand.New(rand.NewPCG(11, 12))
	maxLevels := 0
	for round := 0; round < 60; round++ {
		tx := fs.Begin()
		a, err := alloc.ReadAG(tx, fs.G, ag)
		if err != nil {
			t.Fatal(err)
		}
		r := refcount.New(a)
		r.Free = func(_ refcount.Tx, bno, len uint32, o alloc.Owner) error {
			if o != alloc.OwnerNull {
				return alloc.FreeExtent(tx, a, bno, len, o) // the btree's own blocks
			}
			freed = append(freed, [2]uint32{bno, len})
			return nil
		}
		for op := 0; op < 25; op++ {
			start := rng.IntN(n - 8)
			ln := 1 + rng.IntN(6)
			if round < 30 || rng.IntN(3) > 0 {
				// Mostly increases while growing, then a mix.
				if _, err := r.Increase(tx, uint32(lo+start), uint32(ln)); err != nil {
					tx.Cancel()
					t.Fatalf("round %d: Increase(%d, %d): %v", round, lo+start, ln, err)
				}
				for i := start; i < start+ln; i++ {
					count[i]++
				}
				continue
			}
			// Decrease only where every block is mapped (count >= 1),
			// and never to 0 here.
			ok := true
			for i := start; i < start+ln; i++ {
				ok = ok && count[i] >= 2
			}
			if !ok {
				continue
			}
			if _, err := r.Decrease(tx, uint32(lo+start), uint32(ln)); err != nil {
				tx.Cancel()
				t.Fatalf("round %d: Decrease(%d, %d): %v", round, lo+start, ln, err)
			}
			for i := start; i < start+ln; i++ {
				count[i]--
			}
		}
		maxLevels = max(maxLevels, a.RefcountLevel())
		if _, err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if len(freed) > 0 {
			t.Fatalf("round %d: decreases that left every count >= 1 freed %v", round, freed)
		}
		check(fmt.Sprintf("round %d", round))
	}
	if maxLevels < 2 {
		t.Errorf("the btree reached %d levels, want 2 or more", maxLevels)
	}
	// A decrease to 0 frees exactly the blocks at 1.
	tx := fs.Begin()
	a, _ := alloc.ReadAG(tx, fs.G, ag)
	r := refcount.New(a)
	r.Free = func(_ refcount.Tx, bno, len uint32, o alloc.Owner) error {
		if o != alloc.OwnerNull {
			return alloc.FreeExtent(tx, a, bno, len, o)
		}
		freed = append(freed, [2]uint32{bno, len})
		return nil
	}
	var want [][2]uint32
	start := 0
	for start < n-20 && count[start] != 1 {
		start++
	}
	for i := start; i < start+20; i++ {
		if count[i] == 1 && (len(want) == 0 || want[len(want)-1][0]+want[len(want)-1][1] != uint32(lo+i)) {
			want = append(want, [2]uint32{uint32(lo + i), 1})
		} else if count[i] == 1 {
			want[len(want)-1][1]++
		}
	}
	if _, err := r.Decrease(tx, uint32(lo+start), 20); err != nil {
		t.Fatal(err)
	}
	tx.Cancel() // the freed blocks were never allocated: drop it all
	if fmt.Sprint(freed) != fmt.Sprint(want) {
		t.Errorf("a decrease of [%d, %d) freed %v, want %v", lo+start, lo+start+20, freed, want)
	}
	freed = nil

	// Back to no records.
	for i := 0; i < n; {
		tx := fs.Begin()
		a, err := alloc.ReadAG(tx, fs.G, ag)
		if err != nil {
			t.Fatal(err)
		}
		r := refcount.New(a)
		for k := 0; k < 40 && i < n; i++ {
			for count[i] > 1 {
				if _, err := r.Decrease(tx, uint32(lo+i), 1); err != nil {
					t.Fatal(err)
				}
				count[i]--
				k++
			}
		}
		if _, err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	check("emptied")
	if err := fs.Finish(); err != nil {
		t.Fatal(err)
	}
	fs.Close()
	t.Logf("the btree reached %d levels and is back to %s", maxLevels, testimg.ParseFields(testimg.DB(t, img, fmt.Sprintf("agf %d", ag), "p refcntlevel refcntblocks")))
	testimg.Repair(t, img)
}
