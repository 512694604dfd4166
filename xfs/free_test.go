package xfs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/icluster"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// cleanOrphans returns a private copy of an orphan fixture (a frozen
// snapshot: orphans on the unlinked lists, metadata flushed by the
// freeze, the log dirty) with its log zeroed and re-formatted by xfs_db
// (`logformat -c 5`, a cycle above every LSN the metadata carries): the
// orphans stay, the log is clean. Without replaying the log this is the
// same on-disk state the kernel's recovery starts from.
func cleanOrphans(t *testing.T, name string) string {
	t.Helper()
	testimg.Need(t, "xfs_db")
	img := testimg.Path(t, name)
	fs := openRO(t, img)
	start, n := fs.G.LogStartDaddr, fs.G.LogBBs
	fs.Close()
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, n*ondisk.BBSize), start*ondisk.BBSize); err != nil {
		t.Fatal(err)
	}
	f.Close()
	testimg.DBWrite(t, img, "logformat -c 5")
	return img
}

// copyFile copies src to a new file next to it.
func copyFile(t *testing.T, src, suffix string) string {
	t.Helper()
	dst := src + suffix
	if out, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	return dst
}

// kernelFreed returns a copy of the (dirty) fixture after a kernel mount
// and unmount: the kernel's own processing of the orphans.
func kernelFreed(t *testing.T, name string) string {
	t.Helper()
	img := testimg.Path(t, name)
	testimg.Unmount(t, testimg.Mount(t, img))
	return img
}

func runFree(t *testing.T, img string, o FreeOptions) *FreeReport {
	t.Helper()
	fs, err := OpenWrite(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	rep, err := fs.Free(o)
	if err != nil {
		t.Fatalf("Free: %v", err)
	}
	return rep
}

// allocState is the allocation state the kernel and xfsfree must agree on.
type allocState struct {
	sb        map[string]string
	agi       []map[string]string
	space     []uint64
	inobt     [][]testimg.Record
	finobt    [][]testimg.Record
	unlinkedN int
}

func readAllocState(t *testing.T, img string) allocState {
	t.Helper()
	var s allocState
	s.sb = testimg.ParseFields(testimg.DB(t, img, "sb 0", "p icount ifree fdblocks"))
	g := testimg.Geo(t, img)
	finobt := testimg.ParseFields(testimg.DB(t, img, "agi 0", "p"))["free_root"] != ""
	for agno := uint32(0); agno < g.AGCount; agno++ {
		a := testimg.AGI(t, img, agno)
		s.agi = append(s.agi, map[string]string{"count": a["count"], "freecount": a["freecount"]})
		f := testimg.ParseFields(testimg.DB(t, img, fmt.Sprintf("agf %d", agno), "p freeblks flcount btreeblks"))
		var n uint64
		for _, k := range []string{"freeblks", "flcount", "btreeblks"} {
			v, err := testimg.ParseUint(f[k])
			if err != nil {
				t.Fatalf("agf %d %s = %q", agno, k, f[k])
			}
			n += v
		}
		s.space = append(s.space, n)
		s.inobt = append(s.inobt, testimg.InobtRecords(t, img, agno, false))
		if finobt {
			s.finobt = append(s.finobt, testimg.InobtRecords(t, img, agno, true))
		}
		for _, h := range testimg.Unlinked(t, img, agno) {
			if h != ondisk.NullAgino {
				s.unlinkedN++
			}
		}
	}
	return s
}

func compareAllocState(t *testing.T, got, want allocState) {
	t.Helper()
	for _, k := range []string{"icount", "ifree", "fdblocks"} {
		if got.sb[k] != want.sb[k] {
			t.Errorf("sb %s = %s, kernel %s", k, got.sb[k], want.sb[k])
		}
	}
	for agno := range want.agi {
		for _, k := range []string{"count", "freecount"} {
			if got.agi[agno][k] != want.agi[agno][k] {
				t.Errorf("AG %d agi %s = %s, kernel %s", agno, k, got.agi[agno][k], want.agi[agno][k])
			}
		}
		if got.space[agno] != want.space[agno] {
			t.Errorf("AG %d free space (freeblks+flcount+btreeblks) = %d, kernel %d", agno, got.space[agno], want.space[agno])
		}
		if !recordsEqual(got.inobt[agno], want.inobt[agno]) {
			t.Errorf("AG %d inobt records differ:\n got %v\nwant %v", agno, got.inobt[agno], want.inobt[agno])
		}
		if len(want.finobt) > 0 && !recordsEqual(got.finobt[agno], want.finobt[agno]) {
			t.Errorf("AG %d finobt records differ:\n got %v\nwant %v", agno, got.finobt[agno], want.finobt[agno])
		}
	}
	if got.unlinkedN != 0 {
		t.Errorf("%d unlinked buckets still in use", got.unlinkedN)
	}
}

func recordsEqual(a, b []testimg.Record) bool {
	return slices.EqualFunc(a, b, func(x, y testimg.Record) bool { return fmt.Sprint(x) == fmt.Sprint(y) })
}

// mountAndCreate mounts an image xfsfree left clean, checks the kernel did
// not need recovery, creates files in it and unmounts; xfs_repair -n must
// pass again afterwards.
func mountAndCreate(t *testing.T, img string) {
	t.Helper()
	fs := openRO(t, img)
	st, err := fs.LogState()
	fs.Close()
	if err != nil || st == nil || !st.Clean {
		t.Fatalf("log after free: %v, %v: not clean", st, err)
	}
	mnt := testimg.Mount(t, img)
	dir := filepath.Join(mnt, "after-xfsfree")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), []byte(strings.Repeat("x", i*100)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testimg.Unmount(t, mnt)
	testimg.Repair(t, img)
}

// TestFreeOrphansLikeKernel: `free --orphans` on a frozen snapshot (its
// log cleared) ends in the allocation state a kernel mount of the same
// snapshot ends in; both pass xfs_repair -n; the kernel then mounts
// xfsfree's image without recovery and can create files in it.
func TestFreeOrphansLikeKernel(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair", "loop")
	for _, name := range testimg.OrphanFixtures() {
		t.Run(name, func(t *testing.T) {
			img := cleanOrphans(t, name)
			ref := kernelFreed(t, name)
			rep := runFree(t, img, FreeOptions{Orphans: true})
			if rep.Failed() {
				t.Fatalf("refused %v, errors %v", rep.Refused, rep.Errors)
			}
			if rep.InodesFreed != 313 || rep.ChunksFreed == 0 {
				t.Errorf("freed %d inodes and %d chunks, want 313 and some", rep.InodesFreed, rep.ChunksFreed)
			}
			t.Logf("%d inodes (%d blocks), %d chunks (%d blocks) in %d transactions", rep.InodesFreed, rep.ForkBlocks,
				rep.ChunksFreed, rep.ChunkBlocks, rep.Transactions)
			testimg.Repair(t, ref)
			testimg.Repair(t, img)
			compareAllocState(t, readAllocState(t, img), readAllocState(t, ref))
			if rep.After.ICount != mustU(t, readAllocState(t, img).sb["icount"]) {
				t.Errorf("report after.icount %d", rep.After.ICount)
			}
			mountAndCreate(t, img)
		})
	}
}

func mustU(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := testimg.ParseUint(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestFreeKeepThenEmptyChunks: `--orphans --keep-chunks` leaves the
// emptied chunks (xfs_repair -n accepts that), and `--empty-chunks` then
// releases them: the same state as `--orphans` alone.
func TestFreeKeepThenEmptyChunks(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair")
	for _, name := range []string{"orphans", "orphans-nosparse"} {
		t.Run(name, func(t *testing.T) {
			one := cleanOrphans(t, name)
			two := copyFile(t, one, ".two")
			runFree(t, one, FreeOptions{Orphans: true})
			rep := runFree(t, two, FreeOptions{Orphans: true, KeepChunks: true})
			if rep.ChunksFreed != 0 || rep.InodesFreed != 313 {
				t.Errorf("--keep-chunks freed %d chunks, %d inodes", rep.ChunksFreed, rep.InodesFreed)
			}
			testimg.Repair(t, two)
			// A scan lists the kept chunks; a dry run plans their release.
			fs := openRO(t, two)
			dry, err := fs.Free(FreeOptions{EmptyChunks: true, DryRun: true})
			fs.Close()
			if err != nil || len(dry.Chunks) == 0 {
				t.Fatalf("dry run of --empty-chunks: %v, %d chunks", err, len(dry.Chunks))
			}
			rep = runFree(t, two, FreeOptions{EmptyChunks: true})
			if rep.ChunksFreed != len(dry.Chunks) || rep.Failed() {
				t.Errorf("--empty-chunks freed %d chunks (planned %d); refused %v errors %v", rep.ChunksFreed, len(dry.Chunks), rep.Refused, rep.Errors)
			}
			testimg.Repair(t, two)
			compareAllocState(t, readAllocState(t, two), readAllocState(t, one))
		})
	}
}

// TestFreeDryRunWritesNothing: a dry run reports the plan and the image
// is unchanged, even opened read-write.
func TestFreeDryRunWritesNothing(t *testing.T) {
	img := cleanOrphans(t, "orphans")
	h := testimg.Hash(t, img)
	fs := openRO(t, img)
	rep, err := fs.Free(FreeOptions{Orphans: true, EmptyChunks: true, DryRun: true})
	fs.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Inodes) != 313 || rep.InodesFreed != 313 || len(rep.Chunks) == 0 {
		t.Errorf("dry run plans %d inodes (lists %d), %d chunks", rep.InodesFreed, len(rep.Inodes), len(rep.Chunks))
	}
	// A bounded list: the counts are the same.
	fs = openRO(t, img)
	short, err := fs.Free(FreeOptions{Orphans: true, EmptyChunks: true, DryRun: true, ListInodes: 10})
	fs.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(short.Inodes) != 10 || short.InodesFreed != rep.InodesFreed || short.ForkBlocks != rep.ForkBlocks || short.After != rep.After {
		t.Errorf("ListInodes 10: lists %d, plans %d inodes and %d blocks (after %+v); unbounded: %d, %d (after %+v)",
			len(short.Inodes), short.InodesFreed, short.ForkBlocks, short.After, rep.InodesFreed, rep.ForkBlocks, rep.After)
	}
	if testimg.Hash(t, img) != h {
		t.Error("the dry run changed the image")
	}
}

// TestFreeInos: --ino frees just those orphans, whatever their place on
// the chain, and refuses by number an inode with links, a free inode and
// a number outside the filesystem.
func TestFreeInos(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair")
	img := cleanOrphans(t, "orphans")
	fs := openRO(t, img)
	var pick []uint64
	for agno := uint32(0); agno < fs.G.AGCount && len(pick) < 3; agno++ {
		st, err := fs.ScanAG(agno)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range st.Chains {
			if len(c.Inodes) >= 3 {
				pick = append(pick, c.Inodes[1].Ino, c.Inodes[2].Ino) // not the head
				break
			}
		}
	}
	fs.Close()
	if len(pick) < 2 {
		t.Fatal("no chain of 3")
	}
	root := mustU(t, testimg.ParseFields(testimg.DB(t, img, "sb 0", "p rootino"))["rootino"])
	bad := []uint64{root, 1 << 60}
	// One unfreeable number refuses them all, before anything is written.
	before := testimg.Hash(t, img)
	fs, err := OpenWrite(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := fs.Free(FreeOptions{Inos: append(slices.Clone(pick), bad...)})
	fs.Close()
	var ire *InoRefusedError
	if !errors.As(err, &ire) || rep.InodesFreed != 0 {
		t.Fatalf("--ino with unfreeable numbers: freed %d, error %v; want InoRefusedError", rep.InodesFreed, err)
	}
	var refused []uint64
	for _, r := range ire.Refused {
		refused = append(refused, r.Ino)
	}
	if !slices.Equal(refused, bad) {
		t.Errorf("refused %v, want %v", ire.Refused, bad)
	}
	if testimg.Hash(t, img) != before {
		t.Fatal("a refused --ino run wrote to the image")
	}
	rep = runFree(t, img, FreeOptions{Inos: pick})
	if rep.InodesFreed != len(pick) || rep.Failed() {
		t.Errorf("freed %d inodes, want %d; refused %v, errors %v", rep.InodesFreed, len(pick), rep.Refused, rep.Errors)
	}
	for _, ino := range pick {
		if f := testimg.Inode(t, img, ino); f["core.mode"] != "0" {
			t.Errorf("inode %d mode %s after --ino", ino, f["core.mode"])
		}
	}
	// The others stay on their chains, which skip the freed ones.
	left := 0
	for agno := uint32(0); agno < 4; agno++ {
		for _, c := range testimg.OrphanChains(t, img, agno) {
			for _, agino := range c {
				if slices.Contains(pick, uint64(agno)<<18|uint64(agino)) {
					t.Errorf("freed inode agno %d agino %d still on a chain", agno, agino)
				}
				left++
			}
		}
	}
	if left != 313-len(pick) {
		t.Errorf("%d orphans left on the chains, want %d", left, 313-len(pick))
	}
	// Then --orphans frees the rest: the kernel's state.
	rep = runFree(t, img, FreeOptions{Orphans: true})
	if rep.Failed() || rep.InodesFreed != left {
		t.Errorf("--orphans after --ino: freed %d, refused %v, errors %v", rep.InodesFreed, rep.Refused, rep.Errors)
	}
	testimg.Repair(t, img)
	compareAllocState(t, readAllocState(t, img), readAllocState(t, kernelFreed(t, "orphans")))
}

// TestFreeCorruptBnobt: a corrupt free-space btree block in one AG fails
// the frees that reach it (their transactions cancelled: the inodes stay
// allocated and on their lists), the error names the AG and the block,
// and every orphan that does not touch that AG is freed.
func TestFreeCorruptBnobt(t *testing.T) {
	testimg.Need(t, "xfs_db")
	img := cleanOrphans(t, "orphans")
	fs := openRO(t, img)
	var bad uint32 = ondisk.NoAG
	clear := map[uint64]bool{} // orphans whose frees stay out of the bad AG
	all := map[uint64]bool{}
	type vic struct {
		ino uint64
		ags []uint32
	}
	var vics []vic
	for agno := uint32(0); agno < fs.G.AGCount; agno++ {
		st, err := fs.ScanAG(agno)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range st.Chains {
			for _, o := range c.Inodes {
				loc, err := fs.Locate(agno, st.Inobt, o.Agino)
				if err != nil {
					t.Fatal(err)
				}
				v, err := icluster.Inspect(fs.Cache, fs.G, agno, o.Agino, loc)
				if err != nil {
					t.Fatal(err)
				}
				if bad == ondisk.NoAG && v.Blocks() > 0 {
					bad = agno
				}
				vics = append(vics, vic{v.Ino, v.AGs})
				all[v.Ino] = true
			}
		}
	}
	fs.Close()
	for _, v := range vics {
		if !slices.Contains(v.ags, bad) {
			clear[v.ino] = true
		}
	}
	if bad == ondisk.NoAG || len(clear) == 0 || len(clear) == len(all) {
		t.Fatalf("fixture: bad AG %d, %d of %d orphans clear of it", bad, len(clear), len(all))
	}
	root := mustU(t, testimg.ParseFields(testimg.DB(t, img, fmt.Sprintf("agf %d", bad), "p bnoroot"))["bnoroot"])
	corrupt := func() {
		testimg.DBWrite(t, img, fmt.Sprintf("fsblock %d", testimg.Geo(t, img).FSBlock(bad, uint32(root))), "type bnobt", "write -d magic 0x41425442")
	}
	// Corrupt before the run: the check before the first write refuses
	// it, in a dry run as in the real one, and nothing is written.
	pristine := copyFile(t, img, ".pristine")
	corrupt()
	before := testimg.Hash(t, img)
	for _, dry := range []bool{true, false} {
		fs, err := OpenWrite(img, Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = fs.Free(FreeOptions{Orphans: true, DryRun: dry})
		fs.Close()
		var pe *PreflightError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "bnobt") {
			t.Fatalf("dry run %v on a corrupt bnobt: %v; want a PreflightError naming the bnobt", dry, err)
		}
		t.Logf("dry run %v: %v", dry, err)
	}
	if testimg.Hash(t, img) != before {
		t.Fatal("a refused run wrote to the image")
	}
	// Corrupt after the check (as a block no check reaches would be met):
	// the frees that reach it fail, the others are freed, the log is
	// left clean.
	if err := os.Rename(pristine, img); err != nil {
		t.Fatal(err)
	}
	fs, err := OpenWrite(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := fs.Free(FreeOptions{Orphans: true, afterPreflight: func(fs *FS) {
		corrupt()
		fs.Cache.DropClean()
	}})
	fs.Close()
	if err != nil {
		t.Fatalf("Free: %v", err)
	}
	if !xfsLogprint(t, img).Clean {
		t.Error("the log is dirty after a run that met a corrupt block")
	}
	if len(rep.Errors) == 0 {
		t.Fatal("no error reported for the corrupt bnobt block")
	}
	for _, e := range rep.Errors {
		if e.AG != bad && !strings.Contains(e.Message, fmt.Sprintf("AG %d", bad)) {
			t.Errorf("error outside AG %d: %+v", bad, e)
		}
		if !strings.Contains(e.Message, "bnobt") && !strings.Contains(e.Message, "magic") {
			t.Errorf("error does not name the block: %+v", e)
		}
		// A cancelled batch's cluster free is taken back: a retry of its
		// other inodes meets the corrupt block again, not a STALE mark.
		if strings.Contains(e.Message, "cluster was freed") {
			t.Errorf("a cancelled cluster free left its inodes STALE: %+v", e)
		}
	}
	freed := map[uint64]bool{}
	for _, in := range rep.Inodes {
		freed[in.Ino] = true
	}
	for ino := range clear {
		if !freed[ino] {
			t.Errorf("orphan %d, clear of AG %d, was not freed", ino, bad)
		}
	}
	for _, e := range rep.Errors {
		if e.Ino == 0 {
			continue
		}
		if m := testimg.Inode(t, img, e.Ino)["core.mode"]; m == "0" {
			t.Errorf("failed inode %d was written (mode 0)", e.Ino)
		}
	}
	t.Logf("%d freed, %d failed; first error: %s", len(rep.Inodes), len(rep.Errors), rep.Errors[0].Message)
}

// TestFreeNothingWritesNothing: a run that refuses every inode it was
// given, or finds nothing to free, commits nothing and leaves the image
// byte for byte as it was (no log record, no superblock, no unmount
// record).
func TestFreeNothingWritesNothing(t *testing.T) {
	testimg.Need(t, "xfs_db")
	img := testimg.Path(t, "default")
	root := mustU(t, testimg.ParseFields(testimg.DB(t, img, "sb 0", "p rootino"))["rootino"])
	before := testimg.Hash(t, img)
	fs, err := OpenWrite(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := fs.Free(FreeOptions{Inos: []uint64{root}})
	fs.Close()
	if len(rep.Refused) != 1 || rep.Transactions != 0 || err == nil {
		t.Errorf("--ino root: refused %v, %d transactions, error %v", rep.Refused, rep.Transactions, err)
	}
	if testimg.Hash(t, img) != before {
		t.Error("a run that refused everything wrote to the image")
	}
	rep = runFree(t, img, FreeOptions{Orphans: true, EmptyChunks: true})
	if rep.Failed() || rep.Transactions != 0 || rep.InodesFreed != 0 || rep.ChunksFreed != 0 {
		t.Errorf("--orphans --empty-chunks on a fresh filesystem: %+v", rep)
	}
	if testimg.Hash(t, img) != before {
		t.Error("a run with nothing to free wrote to the image")
	}
}
