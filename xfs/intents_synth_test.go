package xfs

// Every intent type and record type xfsfree finishes, against the kernel
// doing the same work: on a clean image the kernel populated (plain,
// reflinked, unwritten and btree-format files), xfsfree's journal commits
// one transaction holding intents — with, where the kernel logs them
// together, the metadata change they follow (a mapping taken out of an
// inode's fork) — makes it durable and stops, leaving the log dirty with
// the intents pending, as a crash right after the kernel committed them
// would. Each scenario is the kernel's own sequence of deferred work
// (truncation: RUI UNMAP + EFI; a reflinked file's: RUI UNMAP_SHARED + CUI
// DECREASE; remap: BUI UNMAP + CUI DECREASE + CUI INCREASE + BUI MAP;
// CoW: RUI ALLOC + CUI ALLOC_COW, RUI FREE + CUI FREE_COW + EFI; ...), so
// the result is consistent. `xfsfree clean` on one copy and a kernel mount
// and unmount of another must leave the same SpaceState (every btree's
// records, the counters; the free space as a set of blocks), both pass
// xfs_repair -n, the kernel mounts ours without recovery, and `xfsfree
// recover` alone finishes every intent and leaves a clean log.

import (
	"cmp"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/alloc"
	"github.com/xfsfree/xfsfree/bmap"
	"github.com/xfsfree/xfsfree/bmbt"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/journal"
	"github.com/xfsfree/xfsfree/ondisk"
	"github.com/xfsfree/xfsfree/refcount"
)

// zoo is the clean image the scenarios start from, and its files' inode
// numbers by name.
type zoo struct {
	img  string
	inos map[string]uint64
}

// zooImage makes it (mkfs.xfs opts, 4 AGs): plain a (20 one-block
// extents), s and its reflinked copy s2 (20 extents of 2 blocks), u (an
// unwritten extent of 16 blocks, fallocate), l and its copy l2 (4 extents
// of 8 blocks), big (600 one-block extents: a btree fork) and its copy
// big2.
func zooImage(t *testing.T, opts ...string) *zoo {
	t.Helper()
	testimg.Need(t, "xfs_io", "cp", "loop", "xfs_db", "xfs_repair")
	img := mkfsImage(t, append([]string{"-d", "agcount=4"}, opts...)...)
	mnt := testimg.Mount(t, img)
	p := func(s string) string { return filepath.Join(mnt, s) }
	bs := 4096
	xfsIO := lookTool("xfs_io")
	if err := mkfrag(p("a"), 20, bs); err != nil {
		t.Fatal(err)
	}
	args := []string{"-f"}
	for i := 0; i < 20; i++ {
		args = append(args, "-c", fmt.Sprintf("pwrite -q %d %d", i*4*bs, 2*bs))
	}
	mustRun(t, xfsIO, append(args, "-c", "fsync", p("s"))...)
	mustRun(t, "cp", "--reflink=always", p("s"), p("s2"))
	mustRun(t, xfsIO, "-f", "-c", fmt.Sprintf("falloc 0 %d", 16*bs), "-c", "fsync", p("u"))
	args = []string{"-f"}
	for i := 0; i < 4; i++ {
		args = append(args, "-c", fmt.Sprintf("pwrite -q %d %d", i*16*bs, 8*bs))
	}
	mustRun(t, xfsIO, append(args, "-c", "fsync", p("l"))...)
	mustRun(t, "cp", "--reflink=always", p("l"), p("l2"))
	if err := mkfrag(p("big"), 600, bs); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "cp", "--reflink=always", p("big"), p("big2"))
	z := &zoo{img: img, inos: map[string]uint64{}}
	for _, n := range []string{"a", "s", "s2", "u", "l", "l2", "big", "big2"} {
		z.inos[n] = inodeOf(t, p(n))
	}
	testimg.Unmount(t, mnt)
	testimg.Repair(t, img)
	fs := openRO(t, img)
	for _, ino := range z.inos {
		zooExtents[ino] = readExtents(t, fs, ino)
	}
	fs.Close()
	return z
}

// synthLog commits one transaction that fn fills (metadata changes and
// intent items), makes it durable and closes the filesystem without
// finishing: the log is left dirty with the intents pending.
func synthLog(t *testing.T, img string, fn func(fs *FS, tx *journal.Transaction)) {
	t.Helper()
	fs, err := OpenWrite(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	tx := fs.Begin()
	fn(fs, tx)
	if _, err := tx.Commit(); err != nil {
		tx.Cancel()
		t.Fatalf("commit: %v", err)
	}
	if err := fs.log.Force(); err != nil {
		t.Fatal(err)
	}
	fs.log = nil
}

// editFork opens fork which of inode ino in tx and returns it and a
// function that writes the inode back and logs it.
func editFork(t *testing.T, fs *FS, tx *journal.Transaction, ino uint64, which int) (*bmbt.Fork, func()) {
	t.Helper()
	g := fs.G
	loc, err := fs.inodeLoc(ino)
	if err != nil {
		t.Fatal(err)
	}
	ip, err := fs.lockInode(tx, ino)
	if err != nil {
		t.Fatal(err)
	}
	ib, err := tx.ReadBuf(loc.Daddr, loc.Len, ondisk.KindInodeCluster, ondisk.VerifyCtx{G: g, AG: loc.Agno, Daddr: loc.Daddr})
	if err != nil {
		t.Fatal(err)
	}
	raw := ib.Data[loc.Offset : loc.Offset+int(g.InodeSize)]
	d, err := ondisk.DecodeDinode(raw)
	if err != nil {
		t.Fatal(err)
	}
	f, err := bmbt.Open(tx, g, ino, d, which, &bmbtBlocks{g: g, owner: alloc.BmbtOwner(ino, which == ondisk.AttrFork)})
	if err != nil {
		t.Fatal(err)
	}
	return f, func() {
		f.Flush()
		d.ChangeCount++
		d.EncodeCRC(raw)
		tx.LogInodeCore(ib, loc.Offset, ip, 1)
		for _, fsb := range f.Freed {
			agno, agbno := fs.agOf(fsb)
			ag, err := alloc.ReadAG(tx, g, agno)
			if err != nil {
				t.Fatal(err)
			}
			if err := alloc.FreeExtent(tx, ag, agbno, 1, alloc.BmbtOwner(ino, which == ondisk.AttrFork)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// extentsOf returns inode ino's data fork extents as the zoo image holds
// them (read when it was made: scenarios read no buffer their
// transaction may hold).
func extentsOf(t *testing.T, fs *FS, ino uint64) []ondisk.BmbtIrec {
	t.Helper()
	exts, ok := zooExtents[ino]
	if !ok {
		t.Fatalf("no extents read for inode %d", ino)
	}
	return exts
}

// zooExtents holds the zoo files' data extents by inode number.
var zooExtents = map[uint64][]ondisk.BmbtIrec{}

// readExtents reads inode ino's data fork map.
func readExtents(t *testing.T, fs *FS, ino uint64) []ondisk.BmbtIrec {
	t.Helper()
	d, _, err := fs.ReadInode(ino)
	if err != nil {
		t.Fatal(err)
	}
	m, err := bmap.Map(fs.Cache, fs.G, d, ondisk.DataFork)
	if err != nil {
		t.Fatal(err)
	}
	exts := slices.Clone(m.Extents)
	slices.SortFunc(exts, func(a, b ondisk.BmbtIrec) int { return cmp.Compare(a.StartOff, b.StartOff) })
	return exts
}

var synthID uint64 = 0xffff888000000000

func nextSynthID() uint64 { synthID += 0x40; return synthID }

func efi(exts ...ondisk.BmbtIrec) []byte {
	f := &ondisk.IntentLog{Type: ondisk.LIEFI, Size: 1, ID: nextSynthID()}
	for _, e := range exts {
		f.Free = append(f.Free, ondisk.FreeExtent{Start: e.StartBlock, Len: e.BlockCount})
	}
	return f.Bytes()
}

func rui(typ uint32, owner uint64, attr bool, exts ...ondisk.BmbtIrec) []byte {
	f := &ondisk.IntentLog{Type: ondisk.LIRUI, Size: 1, ID: nextSynthID()}
	for _, e := range exts {
		fl := typ
		if attr {
			fl |= ondisk.RmapExtentAttrFork
		}
		if e.Unwritten {
			fl |= ondisk.RmapExtentUnwritten
		}
		off := e.StartOff
		if owner&ondisk.RmapNonInodeOwner != 0 {
			off = 0
		}
		f.Maps = append(f.Maps, ondisk.MapExtent{Owner: owner, StartBlock: e.StartBlock, StartOff: off, Len: e.BlockCount, Flags: fl})
	}
	return f.Bytes()
}

func cui(typ uint32, exts ...ondisk.BmbtIrec) []byte {
	f := &ondisk.IntentLog{Type: ondisk.LICUI, Size: 1, ID: nextSynthID()}
	for _, e := range exts {
		f.Phys = append(f.Phys, ondisk.PhysExtent{StartBlock: e.StartBlock, Len: e.BlockCount, Flags: typ})
	}
	return f.Bytes()
}

func bui(typ uint32, ino uint64, e ondisk.BmbtIrec) []byte {
	fl := typ
	if e.Unwritten {
		fl |= ondisk.BmapExtentUnwritten
	}
	f := &ondisk.IntentLog{Type: ondisk.LIBUI, Size: 1, ID: nextSynthID(),
		Maps: []ondisk.MapExtent{{Owner: ino, StartBlock: e.StartBlock, StartOff: e.StartOff, Len: e.BlockCount, Flags: fl}}}
	return f.Bytes()
}

// checkCleanLikeKernel: clean on a copy of img (a dirty log with pending
// intents) and the kernel's mount and unmount of another end in the same
// SpaceState; both pass xfs_repair -n; the kernel mounts ours without
// recovery; recover alone on a third copy finishes the intents and leaves
// the log clean. It returns clean's intents report.
func checkCleanLikeKernel(t *testing.T, img string) *IntentsReport {
	t.Helper()
	ours, kern, rec := copyImg(t, img), copyImg(t, img), copyImg(t, img)
	rep, err := Clean(ours, CleanOptions{})
	if err != nil {
		t.Fatalf("clean: %v", err)
	}
	if rep.Recover == nil || rep.Recover.Intents == nil {
		t.Fatalf("clean finished no intents: %+v", rep.Recover)
	}
	ir := rep.Recover.Intents
	if ir.Finished != ir.Pending || ir.Pending == 0 {
		t.Errorf("clean: %d of %d pending intents finished", ir.Finished, ir.Pending)
	}
	if _, recovered := testimg.KernelMountCycle(t, kern); !recovered {
		t.Fatal("the kernel did not recover the dirty log")
	}
	testimg.Repair(t, ours)
	testimg.Repair(t, kern)
	got, want := testimg.ReadSpaceState(t, ours), testimg.ReadSpaceState(t, kern)
	compareLikeKernel(t, got, want)
	if _, recovered := testimg.KernelMountCycle(t, ours); recovered {
		t.Error("the kernel ran log recovery on the image clean left")
	}
	rrep, err := Recover(rec, RecoverOptions{})
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	if rrep.Intents == nil || rrep.Intents.Finished != ir.Pending {
		t.Errorf("recover finished %+v, clean %d", rrep.Intents, ir.Pending)
	}
	checkRecoveredClean(t, rec)
	repairAllowing(t, rec, `^\s*leftover CoW extent \(\d+/\d+\) len \d+$`)
	t.Logf("intents %v finished in %d transactions (%d continued); compared: %s", ir.ByType, ir.Transactions, ir.Continued, treeCounts(got))
	return ir
}

// repairAllowing runs xfs_repair -n on img and fails the test on any
// complaint but orphans still on the unlinked lists and lines matching
// extra (the CoW staging extents recover leaves for the free phase).
func repairAllowing(t *testing.T, img string, extra string) {
	t.Helper()
	out, _ := testimg.TryRepair(t, img)
	allowed := regexp.MustCompile(`^(\s*$|Phase \d|\s+- |No modify flag|Cannot get host filesystem geometry|Repair may fail if|the image and the host|\s*agi unlinked bucket \d+ is \d+ in ag \d+ \(inode=\d+\)$|\s*disconnected inode \d+, would move to lost\+found$|\s*would have reset inode \d+ nlinks from 0 to 1$)`)
	extraRe := regexp.MustCompile(extra)
	var bad []string
	for _, l := range strings.Split(out, "\n") {
		if !allowed.MatchString(l) && !extraRe.MatchString(l) {
			bad = append(bad, l)
		}
	}
	if len(bad) > 0 {
		t.Errorf("xfs_repair -n %s:\n%s\n--- full output:\n%s", img, strings.Join(bad, "\n"), out)
	}
}

// TestIntentsLikeKernel: see the file comment.
func TestIntentsLikeKernel(t *testing.T) {
	for _, v := range []struct {
		name string
		mkfs []string
	}{{"rmapbt", []string{"-m", "rmapbt=1"}}, {"default", nil}} {
		t.Run(v.name, func(t *testing.T) {
			z := zooImage(t, v.mkfs...)
			rmap := len(v.mkfs) > 0
			for _, sc := range intentScenarios(rmap) {
				t.Run(sc.name, func(t *testing.T) {
					img := copyImg(t, z.img)
					synthLog(t, img, func(fs *FS, tx *journal.Transaction) { sc.fn(t, z, fs, tx) })
					checkCleanLikeKernel(t, img)
				})
			}
		})
	}
}

type intentScenario struct {
	name string
	fn   func(t *testing.T, z *zoo, fs *FS, tx *journal.Transaction)
}

// unmapFrom takes the mapping of e out of inode ino's data fork in tx, as
// the transaction that logs the intents for it does.
func unmapFrom(t *testing.T, fs *FS, tx *journal.Transaction, ino uint64, exts ...ondisk.BmbtIrec) {
	t.Helper()
	f, done := editFork(t, fs, tx, ino, ondisk.DataFork)
	for _, e := range exts {
		if _, rest, err := f.Unmap(e.StartOff, uint64(e.BlockCount), 0); err != nil || rest != 0 {
			t.Fatalf("unmap %v: rest %d, %v", e, rest, err)
		}
	}
	done()
}

// agOfExt returns the AG of an extent, read into tx.
func agOfExt(t *testing.T, fs *FS, tx *journal.Transaction, e ondisk.BmbtIrec) (*alloc.AG, uint32) {
	t.Helper()
	agno, agbno := fs.agOf(e.StartBlock)
	ag, err := alloc.ReadAG(tx, fs.G, agno)
	if err != nil {
		t.Fatal(err)
	}
	return ag, agbno
}

// piece is the part of e from skip blocks in, n blocks long.
func piece(e ondisk.BmbtIrec, skip, n uint32) ondisk.BmbtIrec {
	return ondisk.BmbtIrec{StartOff: e.StartOff + uint64(skip), StartBlock: e.StartBlock + uint64(skip), BlockCount: n, Unwritten: e.Unwritten}
}

// holesOf returns the first n holes of one block between ino's extents.
func holesOf(exts []ondisk.BmbtIrec, n int) []uint64 {
	var out []uint64
	for i := 0; i+1 < len(exts) && len(out) < n; i++ {
		for off := exts[i].End(); off < exts[i+1].StartOff && len(out) < n; off++ {
			out = append(out, off)
		}
	}
	return out
}

func intentScenarios(rmap bool) []intentScenario {
	var s []intentScenario
	add := func(name string, fn func(t *testing.T, z *zoo, fs *FS, tx *journal.Transaction)) {
		s = append(s, intentScenario{name, fn})
	}
	// Truncating a plain file: RUI UNMAP + EFI (owner unknown: the
	// second extent keeps its rmap, which the wildcard removes).
	add("efi", func(t *testing.T, z *zoo, fs *FS, tx *journal.Transaction) {
		exts := extentsOf(t, fs, z.inos["a"])
		e1, e2 := exts[len(exts)-1], exts[len(exts)-2]
		unmapFrom(t, fs, tx, z.inos["a"], e1, e2)
		if rmap {
			tx.LogItem(rui(ondisk.RmapExtentUnmap, z.inos["a"], false, e1))
		}
		tx.LogItem(efi(e1, e2))
	})
	// A reflinked file truncated: RUI UNMAP_SHARED + CUI DECREASE (the
	// blocks stay, mapped once); a plain file's extent decreased: its
	// blocks, mapped by no one, freed.
	add("cui-decrease", func(t *testing.T, z *zoo, fs *FS, tx *journal.Transaction) {
		exts := extentsOf(t, fs, z.inos["s2"])
		e1, e2 := exts[len(exts)-1], exts[len(exts)-2]
		unmapFrom(t, fs, tx, z.inos["s2"], e1, e2)
		a := extentsOf(t, fs, z.inos["a"])[3]
		unmapFrom(t, fs, tx, z.inos["a"], a)
		if rmap {
			tx.LogItem(rui(ondisk.RmapExtentUnmapShared, z.inos["s2"], false, e1, e2))
			tx.LogItem(rui(ondisk.RmapExtentUnmap, z.inos["a"], false, a))
		}
		tx.LogItem(cui(ondisk.RefcountDecrease, e1, e2, a))
	})
	// CoW staging: blocks allocated (RUI ALLOC owner COW, CUI
	// ALLOC_COW), which the mount's CoW recovery frees afterwards; and a
	// staging extent given up (RUI FREE, CUI FREE_COW, EFI).
	add("cow", func(t *testing.T, z *zoo, fs *FS, tx *journal.Transaction) {
		g := fs.G
		ag, err := alloc.ReadAG(tx, g, 1)
		if err != nil {
			t.Fatal(err)
		}
		b1, err := alloc.AllocNear(tx, ag, 1000, 8, alloc.OwnerNull)
		if err != nil {
			t.Fatal(err)
		}
		b2, err := alloc.AllocNear(tx, ag, 2000, 6, alloc.OwnerCow)
		if err != nil {
			t.Fatal(err)
		}
		if err := refcount.New(ag).CowAlloc(tx, b2, 6); err != nil {
			t.Fatal(err)
		}
		e1 := ondisk.BmbtIrec{StartBlock: g.Fsbno(1, b1), BlockCount: 8}
		e2 := ondisk.BmbtIrec{StartBlock: g.Fsbno(1, b2), BlockCount: 6}
		if rmap {
			tx.LogItem(rui(ondisk.RmapExtentAlloc, ondisk.RmapOwnCow, false, e1))
		}
		tx.LogItem(cui(ondisk.RefcountAllocCow, e1))
		if rmap {
			tx.LogItem(rui(ondisk.RmapExtentFree, ondisk.RmapOwnCow, false, e2))
		}
		tx.LogItem(cui(ondisk.RefcountFreeCow, e2))
		tx.LogItem(efi(e2))
	})
	// Remapping (xfs_reflink_remap_extent): s2's extent at one offset
	// replaced by blocks of s mapped elsewhere: BUI UNMAP + CUI DECREASE
	// of the old, CUI INCREASE + BUI MAP of the new (refcount 3).
	add("remap", func(t *testing.T, z *zoo, fs *FS, tx *journal.Transaction) {
		old := extentsOf(t, fs, z.inos["s2"])[5]
		src := extentsOf(t, fs, z.inos["s"])[9]
		nw := ondisk.BmbtIrec{StartOff: old.StartOff, StartBlock: src.StartBlock, BlockCount: src.BlockCount}
		tx.LogItem(bui(ondisk.BmapUnmap, z.inos["s2"], old))
		tx.LogItem(cui(ondisk.RefcountDecrease, old))
		tx.LogItem(cui(ondisk.RefcountIncrease, nw))
		tx.LogItem(bui(ondisk.BmapMap, z.inos["s2"], nw))
	})
	// A BUI UNMAP over several extents and holes (the kernel continues
	// it in new BUIs), and one in the middle of an extent (split).
	add("bui-unmap", func(t *testing.T, z *zoo, fs *FS, tx *journal.Transaction) {
		exts := extentsOf(t, fs, z.inos["s2"])
		r := ondisk.BmbtIrec{StartOff: exts[10].StartOff, StartBlock: exts[10].StartBlock,
			BlockCount: uint32(exts[12].End() - exts[10].StartOff)}
		tx.LogItem(bui(ondisk.BmapUnmap, z.inos["s2"], r))
		tx.LogItem(cui(ondisk.RefcountDecrease, exts[10], exts[11], exts[12]))
		l := extentsOf(t, fs, z.inos["l2"])[1]
		m := piece(l, 3, 2)
		tx.LogItem(bui(ondisk.BmapUnmap, z.inos["l2"], m))
		tx.LogItem(cui(ondisk.RefcountDecrease, m))
	})
	// Mapping into an extents fork until it becomes a btree fork.
	add("bui-map-to-btree", func(t *testing.T, z *zoo, fs *FS, tx *journal.Transaction) {
		s2 := extentsOf(t, fs, z.inos["s2"])
		src := extentsOf(t, fs, z.inos["s"])
		for i, off := range holesOf(s2, 4) {
			nw := ondisk.BmbtIrec{StartOff: off, StartBlock: src[i].StartBlock, BlockCount: 1}
			tx.LogItem(cui(ondisk.RefcountIncrease, nw))
			tx.LogItem(bui(ondisk.BmapMap, z.inos["s2"], nw))
		}
	})
	// Mapping many extents into the holes of a btree fork (leaf splits,
	// merges with contiguous neighbours), then unmapping most of another
	// btree fork's extents (joins, the root's children pulled in, the
	// fork back to extents format).
	add("bui-btree", func(t *testing.T, z *zoo, fs *FS, tx *journal.Transaction) {
		b2 := extentsOf(t, fs, z.inos["big2"])
		for i, off := range holesOf(b2, 300) {
			src := b2[i+1] // the block the next offset maps: a left merge
			nw := ondisk.BmbtIrec{StartOff: off, StartBlock: src.StartBlock, BlockCount: 1}
			if i%3 == 0 {
				nw.StartBlock = b2[i].StartBlock
			}
			tx.LogItem(cui(ondisk.RefcountIncrease, nw))
			tx.LogItem(bui(ondisk.BmapMap, z.inos["big2"], nw))
		}
		big := extentsOf(t, fs, z.inos["big"])
		for i, e := range big {
			if i%50 == 7 {
				continue
			}
			tx.LogItem(bui(ondisk.BmapUnmap, z.inos["big"], e))
			tx.LogItem(cui(ondisk.RefcountDecrease, e))
		}
	})
	if !rmap {
		return s
	}
	// Reverse mappings put back: MAP for a plain file, MAP_SHARED for a
	// reflinked one (a whole record, and a block out of a record: merged
	// back from both sides).
	add("rui-map", func(t *testing.T, z *zoo, fs *FS, tx *journal.Transaction) {
		a := extentsOf(t, fs, z.inos["a"])[4]
		ag, bno := agOfExt(t, fs, tx, a)
		if err := alloc.Unmap(tx, ag, bno, a.BlockCount, alloc.InodeOwner(z.inos["a"], a.StartOff, false)); err != nil {
			t.Fatal(err)
		}
		tx.LogItem(rui(ondisk.RmapExtentMap, z.inos["a"], false, a))
		s := extentsOf(t, fs, z.inos["s2"])
		for _, e := range []ondisk.BmbtIrec{s[2], piece(s[3], 0, 1), piece(s[4], 1, 1)} {
			ag, bno := agOfExt(t, fs, tx, e)
			if err := alloc.UnmapShared(tx, ag, bno, e.BlockCount, alloc.InodeOwner(z.inos["s2"], e.StartOff, false)); err != nil {
				t.Fatal(err)
			}
			tx.LogItem(rui(ondisk.RmapExtentMapShared, z.inos["s2"], false, e))
		}
	})
	// Extents converted: u's unwritten one (plain file) written, l2's
	// second (shared with l) unwritten, in the bmbt, and their rmaps
	// converted piece by piece (the middle, then the left part merging
	// right, then the right part merging left).
	add("rui-convert", func(t *testing.T, z *zoo, fs *FS, tx *journal.Transaction) {
		for _, c := range []struct {
			name string
			i    int
			typ  uint32
		}{{"u", 0, ondisk.RmapExtentConvert}, {"l2", 1, ondisk.RmapExtentConvertShared}} {
			ino := z.inos[c.name]
			e := extentsOf(t, fs, ino)[c.i]
			f, done := editFork(t, fs, tx, ino, ondisk.DataFork)
			if _, rest, err := f.Unmap(e.StartOff, uint64(e.BlockCount), 0); err != nil || rest != 0 {
				t.Fatalf("unmap: %v", err)
			}
			w := e
			w.Unwritten = !e.Unwritten
			if err := f.Remap(w); err != nil {
				t.Fatal(err)
			}
			done()
			n := w.BlockCount
			for _, p := range []ondisk.BmbtIrec{piece(w, n/2-1, 2), piece(w, 0, n/2-1), piece(w, n/2+1, n-n/2-1)} {
				tx.LogItem(rui(c.typ, ino, false, p))
			}
		}
	})
	return s
}

// TestBadIntentsRefused: a pending intent the kernel's recovery rejects —
// an EFI extent of length 0, an RUI record of unknown type, a CUI record
// with a flag beyond its type, a BUI whose owner is no inode — makes
// recover, a dry run and clean refuse the log, naming the intent, with the
// image unchanged; the kernel's mount fails on it too.
func TestBadIntentsRefused(t *testing.T) {
	testimg.Need(t, "mkfs.xfs", "loop", "mount", "losetup")
	img := mkfsImage(t, "-m", "rmapbt=1")
	for _, c := range []struct {
		name, field string
		item        func(g *ondisk.Geometry) *ondisk.IntentLog
	}{
		{"efi-len0", "efi_extents[0].ext_start/ext_len", func(g *ondisk.Geometry) *ondisk.IntentLog {
			return &ondisk.IntentLog{Type: ondisk.LIEFI, Size: 1, ID: 0xffff888000badef0, Free: []ondisk.FreeExtent{{Start: g.Fsbno(1, 100), Len: 0}}}
		}},
		{"rui-type9", "rui_extents[0].me_flags", func(g *ondisk.Geometry) *ondisk.IntentLog {
			return &ondisk.IntentLog{Type: ondisk.LIRUI, Size: 1, ID: 0xffff888000bad001,
				Maps: []ondisk.MapExtent{{Owner: ondisk.RmapOwnCow, StartBlock: g.Fsbno(1, 100), Len: 1, Flags: 9}}}
		}},
		{"cui-flag", "cui_extents[0].pe_flags", func(g *ondisk.Geometry) *ondisk.IntentLog {
			return &ondisk.IntentLog{Type: ondisk.LICUI, Size: 1, ID: 0xffff888000bad002,
				Phys: []ondisk.PhysExtent{{StartBlock: g.Fsbno(1, 100), Len: 1, Flags: 0x100 | ondisk.RefcountIncrease}}}
		}},
		{"bui-owner", "bui_extents[0].me_owner", func(g *ondisk.Geometry) *ondisk.IntentLog {
			return &ondisk.IntentLog{Type: ondisk.LIBUI, Size: 1, ID: 0xffff888000bad003,
				Maps: []ondisk.MapExtent{{Owner: 1, StartBlock: g.Fsbno(1, 100), StartOff: 0, Len: 1, Flags: ondisk.BmapMap}}}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := copyImg(t, img)
			var item *ondisk.IntentLog
			synthLog(t, bad, func(fs *FS, tx *journal.Transaction) {
				item = c.item(fs.G)
				tx.LogItem(item.Bytes())
			})
			sum := testimg.Hash(t, bad)
			want := fmt.Sprintf("%s %#x", item.Name(), item.ID)
			for _, run := range []struct {
				name string
				fn   func() error
			}{
				{"recover --dry-run", func() error { _, err := Recover(bad, RecoverOptions{DryRun: true}); return err }},
				{"recover", func() error { _, err := Recover(bad, RecoverOptions{}); return err }},
				{"clean", func() error { _, err := Clean(bad, CleanOptions{}); return err }},
			} {
				err := run.fn()
				var ce *ondisk.CorruptError
				if !errors.As(err, &ce) || ce.Struct != want || ce.Field != c.field {
					t.Errorf("%s = %v, want a CorruptError naming %s, field %s", run.name, err, want, c.field)
				} else if run.name == "recover" {
					t.Logf("refused: %v", err)
				}
				if testimg.Hash(t, bad) != sum {
					t.Fatalf("a refused %s wrote to the image", run.name)
				}
			}
			if ok, _ := tryMount(t, bad); ok {
				t.Errorf("the kernel mounted the image with the bad intent")
			}
		})
	}
}
