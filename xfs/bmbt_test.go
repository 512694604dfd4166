package xfs

// The bmbt write side (package bmbt) against the kernel and xfs_repair:
//   - TestBmbtGrowShrink: an empty file's data fork (1 KiB blocks; an
//     attr fork that leaves an inode root of 3 entries) gets 20000
//     one-block extents mapped in (blocks taken from free space,
//     reverse-mapped) in a shuffled order, 500 a transaction: it becomes a
//     btree fork and grows to three levels of blocks below the inode root
//     (the root pushed down into a new block each time it fills, node
//     splits below it); every extent is
//     then unmapped, in another shuffled order, and
//     its block freed, until the fork is an empty extents fork again.
//     xfs_repair -n passes at the top and at the end, every block of the
//     tree is at least half full (but the root's children), the records
//     are what was mapped, and the free space ends as it began.
//   - TestBmbtShapeLikeKernel: the kernel writes a 5000-extent file with
//     O_DIRECT, a block at every other offset in ascending order (each
//     write one insertion into its bmbt: no delayed allocation or
//     speculative preallocation), then punches every third extent out
//     (one btree delete each):
//     the same insertions and deletions through package bmbt, on copies
//     of the image, leave a btree of the same shape — the same number of
//     entries in every block, level by level, left to right.

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/xfsfree/xfsfree/alloc"
	"github.com/xfsfree/xfsfree/bmbt"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/journal"
	"github.com/xfsfree/xfsfree/ondisk"
	"golang.org/x/sys/unix"
)

// forkTx runs fn on inode ino's data fork in one transaction of fs and
// commits it: the inode logged, the freed bmbt blocks freed.
func forkTx(t *testing.T, fs *FS, ino uint64, fn func(tx *journal.Transaction, f *bmbt.Fork)) {
	t.Helper()
	tx := fs.Begin()
	f, done := editFork(t, fs, tx, ino, ondisk.DataFork)
	fn(tx, f)
	done()
	if _, err := tx.Commit(); err != nil {
		tx.Cancel()
		t.Fatalf("commit: %v", err)
	}
}

// bmbtShape is a fork's btree, level by level from the root down: the
// number of entries of each block, left to right.
func bmbtShape(t *testing.T, img string, ino uint64) [][]int {
	t.Helper()
	fs := openRO(t, img)
	defer fs.Close()
	d, _, err := fs.ReadInode(ino)
	if err != nil {
		t.Fatal(err)
	}
	if d.Format != ondisk.DinodeFmtBtree {
		return nil
	}
	root, err := d.BmdrRoot(ondisk.DataFork)
	if err != nil {
		t.Fatal(err)
	}
	shape := [][]int{{len(root.Ptrs)}}
	level := root.Ptrs
	for l := int(root.Level) - 1; l >= 0; l-- {
		var next []uint64
		var counts []int
		for _, p := range level {
			daddr := fs.G.FsbToDaddr(p)
			b, err := fs.Cache.Get(daddr, fs.G.BlockBBs(), ondisk.KindBmbt, ondisk.VerifyCtx{G: fs.G, AG: fs.G.FsbToAgno(p), Daddr: daddr})
			if err != nil {
				t.Fatal(err)
			}
			blk, err := ondisk.DecodeBmbtBlock(b.Data)
			b.Release()
			if err != nil {
				t.Fatal(err)
			}
			if int(blk.Level) != l {
				t.Fatalf("bmbt block %d at level %d, want %d", p, blk.Level, l)
			}
			counts = append(counts, int(blk.NumRecs))
			next = append(next, blk.Ptrs...)
		}
		shape = append(shape, counts)
		level = next
	}
	return shape
}

// checkHalfFull fails the test if a block below the root's children holds
// fewer than half the entries it can.
func checkHalfFull(t *testing.T, shape [][]int, bs int) {
	t.Helper()
	for l := 2; l < len(shape); l++ {
		minrecs := ondisk.BmbtMaxRecs(bs, l == len(shape)-1) / 2
		for i, n := range shape[l] {
			if n < minrecs && len(shape[l]) > 1 {
				t.Errorf("level %d block %d holds %d entries, fewer than %d", len(shape)-1-l, i, n, minrecs)
			}
		}
	}
}

func TestBmbtGrowShrink(t *testing.T) {
	testimg.Need(t, "loop", "xfs_db", "xfs_repair")
	img := mkfsImage(t, "-m", "rmapbt=1", "-d", "agcount=4", "-b", "size=1024")
	mnt := testimg.Mount(t, img)
	mustRun(t, "touch", filepath.Join(mnt, "f"))
	// A big shortform attr fork leaves the data fork the least room
	// (XFS_BMDR_SPACE_CALC(MINDBTPTRS)): a root of 3 entries, so that the
	// tree grows deep.
	for i := 0; i < 4; i++ {
		if err := unix.Setxattr(filepath.Join(mnt, "f"), fmt.Sprintf("user.a%d", i), bytes.Repeat([]byte{'x'}, 60), 0); err != nil {
			t.Fatal(err)
		}
	}
	ino := inodeOf(t, filepath.Join(mnt, "f"))
	testimg.Unmount(t, mnt)
	before := testimg.ReadSpaceState(t, img)
	fs, err := OpenWrite(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	bs := int(fs.G.BlockSize)
	if d, _, err := fs.ReadInode(ino); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("data fork of %d bytes: an inode root of %d entries", d.ForkSize(ondisk.DataFork), ondisk.BmdrMaxRecs(d.ForkSize(ondisk.DataFork)))
	}
	rng := rand.New(rand.NewPCG(7, 8))
	offs := rng.Perm(n)
	var mapped []ondisk.BmbtIrec
	maxLevels := 0
	for len(offs) > 0 {
		k := min(len(offs), 500)
		forkTx(t, fs, ino, func(tx *journal.Transaction, f *bmbt.Fork) {
			for _, o := range offs[:k] {
				ag, err := alloc.ReadAG(tx, fs.G, uint32(o%4))
				if err != nil {
					t.Fatal(err)
				}
				off := uint64(o) * 2
				bno, err := alloc.AllocNear(tx, ag, 0, 1, alloc.InodeOwner(ino, off, false))
				if err != nil {
					t.Fatal(err)
				}
				r := ondisk.BmbtIrec{StartOff: off, StartBlock: fs.G.Fsbno(uint32(o%4), bno), BlockCount: 1}
				if err := f.Remap(r); err != nil {
					t.Fatalf("remap %v: %v", r, err)
				}
				mapped = append(mapped, r)
			}
			maxLevels = max(maxLevels, f.Levels())
		})
		offs = offs[k:]
	}
	if err := fs.Finish(); err != nil {
		t.Fatal(err)
	}
	fs.Close()
	testimg.Repair(t, img)
	shape := bmbtShape(t, img, ino)
	t.Logf("%d extents mapped: %d levels below the inode root, shape %v", n, len(shape)-1, shapeSummary(shape))
	if maxLevels < 4 || len(shape) < 4 {
		t.Errorf("the fork grew to %d levels (root included), want 4 or more", len(shape))
	}
	checkHalfFull(t, shape, bs)
	fs = openRO(t, img)
	got := readExtents(t, fs, ino)
	fs.Close()
	slices.SortFunc(mapped, func(a, b ondisk.BmbtIrec) int { return int(int64(a.StartOff) - int64(b.StartOff)) })
	if !slices.Equal(got, mapped) {
		t.Fatalf("the fork maps %d extents, %d were mapped (first difference near %v)", len(got), len(mapped), firstDiff(got, mapped))
	}

	fs, err = OpenWrite(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rng.Shuffle(len(mapped), func(i, j int) { mapped[i], mapped[j] = mapped[j], mapped[i] })
	for i := 0; i < len(mapped); {
		k := min(len(mapped)-i, 500)
		forkTx(t, fs, ino, func(tx *journal.Transaction, f *bmbt.Fork) {
			for _, r := range mapped[i : i+k] {
				dels, rest, err := f.Unmap(r.StartOff, 1, 0)
				if err != nil || rest != 0 || len(dels) != 1 || dels[0] != r {
					t.Fatalf("unmap %v: %v, rest %d, %v", r, dels, rest, err)
				}
				agno, agbno := fs.agOf(r.StartBlock)
				ag, err := alloc.ReadAG(tx, fs.G, agno)
				if err != nil {
					t.Fatal(err)
				}
				if err := alloc.FreeExtent(tx, ag, agbno, 1, alloc.InodeOwner(ino, r.StartOff, false)); err != nil {
					t.Fatal(err)
				}
			}
		})
		i += k
		if i == len(mapped)/2 {
			fs.Finish()
			fs.Close()
			testimg.Repair(t, img)
			shape := bmbtShape(t, img, ino)
			checkHalfFull(t, shape, bs)
			t.Logf("half unmapped: shape %v", shapeSummary(shape))
			if fs, err = OpenWrite(img, Options{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := fs.Finish(); err != nil {
		t.Fatal(err)
	}
	fs.Close()
	testimg.Repair(t, img)
	if s := bmbtShape(t, img, ino); s != nil {
		t.Errorf("the emptied fork is still a btree: %v", s)
	}
	compareLikeKernel(t, testimg.ReadSpaceState(t, img), before)
}

func firstDiff(a, b []ondisk.BmbtIrec) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("record %d: %v, want %v", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("the first %d agree", min(len(a), len(b)))
}

// shapeSummary prints a shape's levels as block counts and entry totals.
func shapeSummary(shape [][]int) string {
	s := ""
	for l, c := range shape {
		tot := 0
		for _, n := range c {
			tot += n
		}
		s += fmt.Sprintf(" L%d:%d blocks/%d entries", len(shape)-1-l, len(c), tot)
	}
	return s
}

func TestBmbtShapeLikeKernel(t *testing.T) {
	testimg.Need(t, "loop", "xfs_io", "xfs_db", "xfs_repair")
	img := mkfsImage(t, "-d", "agcount=4")
	mnt := testimg.Mount(t, img)
	f := filepath.Join(mnt, "f")
	args := []string{"-d", "-f"}
	for i := 0; i < 5000; i++ {
		args = append(args, "-c", fmt.Sprintf("pwrite -q -b 4096 %d 4096", i*2*4096))
	}
	mustRun(t, lookTool("xfs_io"), append(args, "-c", "fsync", f)...)
	ino := inodeOf(t, f)
	testimg.Unmount(t, mnt)
	fs := openRO(t, img)
	exts := readExtents(t, fs, ino)
	fs.Close()
	if len(exts) != 5000 {
		t.Fatalf("the kernel wrote %d extents", len(exts))
	}
	for _, r := range exts {
		if r.Unwritten || r.BlockCount != 1 {
			t.Fatalf("the kernel wrote extent %v: want written single blocks", r)
		}
	}
	kernelGrown := bmbtShape(t, img, ino)

	// Ours: the fork emptied (from the highest offset down), then the
	// extents mapped back in offset order.
	ours := copyImg(t, img)
	fs, err := OpenWrite(ours, Options{})
	if err != nil {
		t.Fatal(err)
	}
	forkTx(t, fs, ino, func(tx *journal.Transaction, f *bmbt.Fork) {
		if _, rest, err := f.Unmap(0, 1<<40, 0); err != nil || rest != 0 {
			t.Fatalf("unmap all: rest %d, %v", rest, err)
		}
	})
	for i := 0; i < len(exts); i += 500 {
		forkTx(t, fs, ino, func(tx *journal.Transaction, f *bmbt.Fork) {
			for _, r := range exts[i:min(i+500, len(exts))] {
				if err := f.Remap(r); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	if err := fs.Finish(); err != nil {
		t.Fatal(err)
	}
	fs.Close()
	testimg.Repair(t, ours)
	if got := bmbtShape(t, ours, ino); fmt.Sprint(got) != fmt.Sprint(kernelGrown) {
		t.Errorf("grown in offset order: shape%s, the kernel's%s", shapeSummary(got), shapeSummary(kernelGrown))
	} else {
		t.Logf("grown in offset order like the kernel: shape%s", shapeSummary(got))
	}

	// Every third extent punched out.
	kern := copyImg(t, img)
	mnt = testimg.Mount(t, kern)
	args = nil
	var punched []ondisk.BmbtIrec
	for i, r := range exts {
		if i%3 == 1 {
			args = append(args, "-c", fmt.Sprintf("fpunch %d 4096", r.StartOff*4096))
			punched = append(punched, r)
		}
	}
	mustRun(t, lookTool("xfs_io"), append(args, filepath.Join(mnt, "f"))...)
	testimg.Unmount(t, mnt)
	kernelPunched := bmbtShape(t, kern, ino)
	fs, err = OpenWrite(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(punched); i += 500 {
		forkTx(t, fs, ino, func(tx *journal.Transaction, f *bmbt.Fork) {
			for _, r := range punched[i:min(i+500, len(punched))] {
				if _, rest, err := f.Unmap(r.StartOff, 1, 0); err != nil || rest != 0 {
					t.Fatal(err)
				}
				agno, agbno := fs.agOf(r.StartBlock)
				ag, err := alloc.ReadAG(tx, fs.G, agno)
				if err != nil {
					t.Fatal(err)
				}
				if err := alloc.FreeExtent(tx, ag, agbno, 1, alloc.OwnerNull); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	if err := fs.Finish(); err != nil {
		t.Fatal(err)
	}
	fs.Close()
	testimg.Repair(t, img)
	if got := bmbtShape(t, img, ino); fmt.Sprint(got) != fmt.Sprint(kernelPunched) {
		t.Errorf("every third extent unmapped: shape%s, the kernel's%s", shapeSummary(got), shapeSummary(kernelPunched))
	} else {
		t.Logf("every third extent unmapped like the kernel's punches: shape%s", shapeSummary(got))
	}
}
