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
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/alloc"
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
// unwritten extent of 16 blocks, fallocate), uw and its copy uw2 (16
// unwritten blocks shared), big (600 one-block extents: a btree fork) and
// its copy big2.
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
	mustRun(t, xfsIO, "-f", "-c", fmt.Sprintf("falloc 0 %d", 16*bs), "-c", "fsync", p("uw"))
	mustRun(t, "cp", "--reflink=always", p("uw"), p("uw2"))
	if err := mkfrag(p("big"), 600, bs); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "cp", "--reflink=always", p("big"), p("big2"))
	z := &zoo{img: img, inos: map[string]uint64{}}
	for _, n := range []string{"a", "s", "s2", "u", "uw", "uw2", "big", "big2"} {
		z.inos[n] = inodeOf(t, p(n))
	}
	testimg.Unmount(t, mnt)
	testimg.Repair(t, img)
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

// extents returns inode ino's data fork extents.
func extentsOf(t *testing.T, fs *FS, ino uint64) []ondisk.BmbtIrec {
	t.Helper()
	tx := fs.Begin()
	defer tx.Cancel()
	f, _ := editFork(t, fs, tx, ino, ondisk.DataFork)
	exts, err := f.Extents()
	if err != nil {
		t.Fatal(err)
	}
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
	repairOrphansOnly(t, rec)
	t.Logf("intents %v finished in %d transactions (%d continued); compared: %s", ir.ByType, ir.Transactions, ir.Continued, treeCounts(got))
	return ir
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

func intentScenarios(rmap bool) []intentScenario {
	var s []intentScenario
	add := func(name string, fn func(t *testing.T, z *zoo, fs *FS, tx *journal.Transaction)) {
		s = append(s, intentScenario{name, fn})
	}
	_ = func(e ondisk.BmbtIrec, skip, n uint32) ondisk.BmbtIrec {
		return ondisk.BmbtIrec{StartOff: e.StartOff + uint64(skip), StartBlock: e.StartBlock + uint64(skip), BlockCount: n, Unwritten: e.Unwritten}
	}
	// Truncating a plain file: RUI UNMAP + EFI (owner unknown).
	add("efi", func(t *testing.T, z *zoo, fs *FS, tx *journal.Transaction) {
		exts := extentsOf(t, fs, z.inos["a"])
		e1, e2 := exts[len(exts)-1], exts[len(exts)-2]
		unmapFrom(t, fs, tx, z.inos["a"], e1, e2)
		if rmap {
			tx.LogItem(rui(ondisk.RmapExtentUnmap, z.inos["a"], false, e1))
		}
		tx.LogItem(efi(e1, e2)) // e2 keeps its rmap: the wildcard removes it
	})
	return s
}

var (
	_ = os.Remove
	_ = exec.Command
	_ = strings.Contains
	_ = refcount.New
)
