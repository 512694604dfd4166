package alloc_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/xfsfree/xfsfree/alloc"
	"github.com/xfsfree/xfsfree/internal/testimg"
)

// fragment mounts img, writes n one-block files into AG 0's directory and
// deletes every other one, so the kernel leaves free space in many small
// extents, then unmounts. Each file is synced as it is written, so the
// kernel allocates the blocks one file at a time, in order: left to
// delayed allocation, writeback could place neighbours together or not
// depending on timing, and the number of holes varied from run to run.
func fragment(t *testing.T, img string, n int, bs int) {
	t.Helper()
	mnt := testimg.Mount(t, img)
	dir := filepath.Join(mnt, "frag")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, bs)
	for i := range n {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprint(i)), os.O_CREATE|os.O_WRONLY|os.O_SYNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	testimg.Unmount(t, mnt) // write everything back
	mnt = testimg.Mount(t, img)
	for i := 0; i < n; i += 2 {
		if err := os.Remove(filepath.Join(mnt, "frag", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	testimg.Unmount(t, mnt)
}

// TestKernelFragmented works on free space the kernel fragmented (files
// written and every other one deleted through a mount): the bnobt and cntbt
// the kernel built have two levels. Taking every one-block free extent
// (AllocNear at its block) empties their leaves until they shrink to one
// level; freeing them all again, in random order, grows them back. The AG
// ends with the same space, xfs_repair accepts it, and the kernel mounts
// it, writes a file and unmounts cleanly.
func TestKernelFragmented(t *testing.T) {
	for _, name := range []string{"bs1024", "rmapbt"} {
		t.Run(name, func(t *testing.T) {
			testimg.Need(t, "loop", "xfs_db", "xfs_repair")
			img := testimg.Path(t, name)
			g := testimg.Geo(t, img)
			leaf := (int(g.BlockSize) - 56) / 8
			fragment(t, img, 3*leaf, int(g.BlockSize))
			testimg.Repair(t, img)
			orig := dbState(t, img, 0)
			t.Logf("kernel-fragmented AG 0: %d free extents, levels %v, flcount %d, btreeblks %d", len(orig.free), orig.levels, orig.agf["flcount"], orig.agf["btreeblks"])
			if orig.levels[0] < 2 || orig.levels[1] < 2 {
				t.Fatalf("the kernel left bnobt/cntbt levels %v; want 2 or more", orig.levels)
			}
			var singles []uint32
			for _, e := range orig.free {
				if e.n == 1 {
					singles = append(singles, e.bno)
				}
			}
			fs := openRW(t, img)
			defer fs.Close()
			owner := alloc.OwnerInobt
			var taken []uint32
			for len(singles) > 0 {
				k := min(len(singles), 100)
				tx := begin(t, fs)
				ag := readAG(t, tx, fs, 0)
				for _, b := range singles[:k] {
					got, err := alloc.AllocNear(tx, ag, b, 1, owner)
					if err != nil {
						tx.cancel()
						t.Fatalf("AllocNear(%d): %v", b, err)
					}
					taken = append(taken, got)
				}
				tx.commit()
				singles = singles[k:]
			}
			shrunk := dbState(t, img, 0)
			shrunk.checkConsistent(t, "after taking the one-block extents")
			t.Logf("after taking %d blocks: %d free extents, levels %v, flcount %d, btreeblks %d", len(taken), len(shrunk.free), shrunk.levels, shrunk.agf["flcount"], shrunk.agf["btreeblks"])
			if shrunk.levels[0] >= orig.levels[0] || shrunk.levels[1] >= orig.levels[1] {
				t.Errorf("levels %v after emptying the leaves, were %v: no shrink", shrunk.levels, orig.levels)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			rng.Shuffle(len(taken), func(i, j int) { taken[i], taken[j] = taken[j], taken[i] })
			for len(taken) > 0 {
				k := min(len(taken), 100)
				tx := begin(t, fs)
				ag := readAG(t, tx, fs, 0)
				for _, b := range taken[:k] {
					if err := alloc.FreeExtent(tx, ag, b, 1, owner); err != nil {
						tx.cancel()
						t.Fatalf("FreeExtent(%d): %v", b, err)
					}
				}
				tx.commit()
				taken = taken[k:]
			}
			fs.Close()
			now := dbState(t, img, 0)
			now.checkConsistent(t, "after freeing them")
			t.Logf("after freeing: %d free extents, levels %v, flcount %d, btreeblks %d", len(now.free), now.levels, now.agf["flcount"], now.agf["btreeblks"])
			if now.levels[0] < 2 || now.levels[1] < 2 {
				t.Errorf("levels %v after freeing, want the growth back to 2", now.levels)
			}
			checkSameSpace(t, orig, now, false)
			testimg.Repair(t, img)
			mnt := testimg.Mount(t, img)
			if err := os.WriteFile(filepath.Join(mnt, "after"), make([]byte, 64<<10), 0o644); err != nil {
				t.Fatal(err)
			}
			testimg.Unmount(t, mnt)
			testimg.Repair(t, img)
		})
	}
}

// TestInobtBlocks: the inobt's block source takes a block from free space
// near the one asked, owned by OWN_INOBT in the rmapbt, counts it with the
// inobtcount callback, and gives it back.
func TestInobtBlocks(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair")
	img := testimg.Path(t, "rmapbt")
	orig := dbState(t, img, 0)
	L := longestFree(orig)
	fs := openRW(t, img)
	defer fs.Close()
	count := 0
	tx := begin(t, fs)
	ag := readAG(t, tx, fs, 0)
	src := &alloc.InobtBlocks{AG: ag, Count: func(_ alloc.Tx, d int) error { count += d; return nil }}
	near := L.bno + 500
	b, err := src.Alloc(tx, near)
	if err != nil || b != near {
		tx.cancel()
		t.Fatalf("Alloc(%d) = %d, %v", near, b, err)
	}
	tx.commit()
	wantCount := 0
	if fs.G.HasInobtCount {
		wantCount = 1
	}
	if count != wantCount {
		t.Errorf("inobtcount callback sum %d, want %d", count, wantCount)
	}
	s := dbState(t, img, 0)
	wantRmap(t, s, rmapRec{start: b, count: 1, owner: -6})
	tx = begin(t, fs)
	src.AG = readAG(t, tx, fs, 0)
	if err := src.Free(tx, b); err != nil {
		tx.cancel()
		t.Fatal(err)
	}
	tx.commit()
	if count != 0 {
		t.Errorf("inobtcount callback sum %d after the free, want 0", count)
	}
	fs.Close()
	checkSameSpace(t, orig, dbState(t, img, 0), true)
	testimg.Repair(t, img)
}
