package alloc_test

import (
	"math/rand/v2"
	"testing"

	"github.com/xfsfree/xfsfree/alloc"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/xfs"
)

// TestThroughJournal allocates and frees through the real log
// (journal.Transaction, xfs.OpenWrite/Begin/Finish), a batch per
// transaction, growing the bnobt and cntbt of a 1 KiB-block AG by a level
// and shrinking them back; the image ends clean: the same free space,
// xfs_repair accepts it.
func TestThroughJournal(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair")
	img := testimg.Path(t, "bs1024")
	orig := dbState(t, img, 0)
	L := longestFree(orig)
	fs, err := xfs.OpenWrite(img, xfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	leaf := (int(fs.G.BlockSize) - 56) / 8
	var blocks []uint32
	for i := 0; i < leaf+leaf/2; {
		tx := fs.Begin()
		ag, err := alloc.ReadAG(tx, fs.G, 0)
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 60 && i < leaf+leaf/2; i, j = i+1, j+1 {
			want := L.bno + L.n - 2 - 2*uint32(i)
			b, err := alloc.AllocNear(tx, ag, want, 1, alloc.OwnerInobt)
			if err != nil || b != want {
				tx.Cancel()
				t.Fatalf("AllocNear(%d) = %d, %v", want, b, err)
			}
			blocks = append(blocks, b)
		}
		if _, err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	rng.Shuffle(len(blocks), func(i, j int) { blocks[i], blocks[j] = blocks[j], blocks[i] })
	for len(blocks) > 0 {
		k := min(len(blocks), 60)
		tx := fs.Begin()
		ag, err := alloc.ReadAG(tx, fs.G, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range blocks[:k] {
			if err := alloc.FreeExtent(tx, ag, b, 1, alloc.OwnerInobt); err != nil {
				tx.Cancel()
				t.Fatalf("FreeExtent(%d): %v", b, err)
			}
		}
		if _, err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		blocks = blocks[k:]
	}
	if err := fs.Finish(); err != nil {
		t.Fatal(err)
	}
	fs.Close()
	now := dbState(t, img, 0)
	now.checkConsistent(t, "after the journal run")
	checkSameSpace(t, orig, now, false)
	testimg.Repair(t, img)
}
