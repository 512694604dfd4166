package xfs

// The crash matrix of a reflinked-orphan free (issue 9): a frozen snapshot
// (rmapbt=1) whose orphans are a copy sharing with two live files
// (refcount 3), both sides of a reflinked pair, a file whose partner is
// gone, and a reflinked 150-extent btree fork truncated in steps of 40
// (its last extents cut short to 40 blocks) — recovered by xfsfree, its
// CoW leftovers freed, then free --orphans, 2 orphans a transaction,
// every transaction its own checkpoint (journal SyncCommits) and a
// checkpoint in place after every inode freed, crashed after every device
// write and torn at every write, then
//
//	(a) xfsfree recover: the SpaceState (every btree record, the AGF and
//	    AGI counters, the unlinked buckets) is S_j, the state after the
//	    first j transactions, j the transactions whose Commit returned
//	    before the crash; xfs_repair -n finds nothing but the orphans
//	    still listed; free --orphans then ends in the uncrashed run's
//	    state and xfs_repair -n passes;
//	(b) a kernel mount and unmount of another copy: with a dirty log the
//	    kernel replays it and frees the rest of the orphans itself,
//	    ending in the uncrashed run's state (the free space compared as a
//	    set of blocks: the kernel's AGFL refills skip busy extents), and
//	    xfs_repair -n passes; with a clean log it leaves (a)'s state.
//
// The reference states S_0..S_T come from crashing the run right after
// each commit record and recovering with xfsfree; S_0 is the image before
// the run, S_T the uncrashed run's result, and the uncrashed run's result
// equals the kernel's mount of the snapshot.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// commitOps counts the transactions that end in a log write: the op
// headers with XLOG_COMMIT_TRANS in the records it holds.
func commitOps(b []byte) int {
	n := 0
	for off := 0; off+ondisk.LogHeaderSize <= len(b); {
		h, err := ondisk.DecodeLogRecHeader(b[off:])
		if err != nil || h.Magic != ondisk.LogHeaderMagic {
			return n
		}
		hb := h.HBlks(true) * ondisk.LogHeaderSize
		end := off + hb + h.DataBBs()*ondisk.BBSize
		if end > len(b) || int(h.Len) > h.DataBBs()*ondisk.BBSize {
			return n
		}
		hdrs := slices.Clone(b[off : off+hb])
		data := slices.Clone(b[off+hb : off+hb+int(h.Len)])
		if ondisk.LogUnpackData(hdrs, data) != nil {
			return n
		}
		for p, i := 0, 0; i < int(h.NumLogOps) && p+ondisk.LogOpHeaderSize <= len(data); i++ {
			oh, err := ondisk.DecodeLogOpHeader(data[p:])
			if err != nil {
				break
			}
			if oh.Flags&ondisk.OpCommitTrans != 0 {
				n++
			}
			p += ondisk.LogOpHeaderSize + int(oh.Len)
		}
		off = end
	}
	return n
}

// commitTrace runs Free(o) on img with one AG worker, crashing after
// `after` writes (-1: never) or tearing write `tear` (0: never),
// checkpointing after every inode freed, and
// returns the report, the number of writes that reached the
// device whole, and commits[k-1]: the write holding the commit record of
// transaction k (every transaction of the run: truncation steps, frees,
// Finish's), and Free's error.
func commitTrace(t *testing.T, img string, o FreeOptions, after, tear int) (rep *FreeReport, writes int, commits []int, err error) {
	t.Helper()
	var fs *FS
	if err := unbusy(func() (err error) { fs, err = OpenWrite(img, Options{Workers: 1}); return err }); err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	logStart, logEnd := fs.G.LogStartDaddr, fs.G.LogStartDaddr+fs.G.LogBBs
	var mu sync.Mutex
	crash := CrashHook(fs.Dev, after, tear, nil)
	fs.Dev.SetWriteHook(func(daddr int64, b []byte) (bool, error) {
		ok, err := crash(daddr, b)
		if ok {
			mu.Lock()
			writes++
			if daddr >= logStart && daddr < logEnd {
				for range commitOps(b) {
					commits = append(commits, writes)
				}
			}
			mu.Unlock()
		}
		return ok, err
	})
	// Every transaction its own checkpoint, durable when its Commit
	// returns (the kernel's XFS_TRANS_SYNC), so that every transaction
	// boundary is a crash point's prefix; and a checkpoint in place after
	// every freed inode (as the background writeback would, but at fixed
	// points): blocks are written in place between the transactions, some
	// before later ones change them again.
	fs.Log().SyncCommits = true
	o.Progress = func(done, total int) { fs.Checkpoint() }
	rep, err = fs.Free(o)
	return rep, writes, commits, err
}

// reflinkCrashSnapshot makes the matrix's snapshot and returns it with
// the kernel's mount of a copy.
func reflinkCrashSnapshot(t *testing.T) (snap, kernel string) {
	t.Helper()
	testimg.Need(t, "cp", "xfs_freeze", "loop", "mkfs.xfs", "xfs_db", "xfs_repair")
	rng := rand.New(rand.NewPCG(11, 12))
	const bs = 4096
	snap = snapshotImage(t, 300<<20, nil, []string{"-m", "rmapbt=1", "-d", "agcount=4"}, nil, func(t *testing.T, mnt string) []*os.File {
		p := func(s string) string { return filepath.Join(mnt, s) }
		writeFragments(t, p("src"), 12, 4, 2, bs, rng)
		mustRun(t, "cp", "--reflink=always", p("src"), p("c1"))
		mustRun(t, "cp", "--reflink=always", p("c1"), p("c2"))
		overwrite(t, p("c2"), []int{1, 13, 14}, bs, false, rng)
		writeFragments(t, p("d"), 8, 2, 2, bs, rng)
		mustRun(t, "cp", "--reflink=always", p("d"), p("d1"))
		writeFragments(t, p("solo"), 5, 3, 1, bs, rng)
		mustRun(t, "cp", "--reflink=always", p("solo"), p("soloc"))
		if err := os.Remove(p("soloc")); err != nil {
			t.Fatal(err)
		}
		writeFragments(t, p("big"), 150, 1, 1, bs, rng)
		mustRun(t, "cp", "--reflink=always", p("big"), p("bigc"))
		var held []*os.File
		for _, n := range []string{"c1", "d", "d1", "solo", "big"} {
			held = append(held, testimg.HoldUnlinked(t, p(n)))
		}
		if err := f2sync(mnt); err != nil {
			t.Fatal(err)
		}
		return held
	})
	kernel = copyFile(t, snap, ".kernel")
	testimg.Unmount(t, testimg.Mount(t, kernel))
	testimg.Repair(t, kernel)
	return snap, kernel
}

func spaceKey(s testimg.SpaceState) string { return fmt.Sprintf("%v", s) }

func orphanBuckets(s testimg.SpaceState) int {
	n := 0
	for _, a := range s.AGs {
		for _, h := range a.Unlinked {
			if h != testimg.NullAgino {
				n++
			}
		}
	}
	return n
}

// TestFreeReflinkCrashMatrix: see the file comment.
func TestFreeReflinkCrashMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash matrix of a reflinked-orphan free is not run under -short")
	}
	snap, kernel := reflinkCrashSnapshot(t)
	base := copyFile(t, snap, ".base")
	if err := recoverImg(base); err != nil {
		t.Fatal(err)
	}
	runFreeCow(t, base, CowOptions{})
	o := FreeOptions{Orphans: true, BatchInodes: 2, TruncateExtents: 40}

	// The uncrashed run, twice (the same writes), and its result against
	// the kernel's.
	done := copyImg(t, base)
	rep, total, commits, err := commitTrace(t, done, o, -1, 0)
	if err != nil || rep.Failed() || rep.InodesFreed != 5 {
		t.Fatalf("uncrashed run: %v; freed %d; refused %v, errors %v", err, rep.InodesFreed, rep.Refused, rep.Errors)
	}
	if _, total2, commits2, _ := commitTrace(t, copyImg(t, base), o, -1, 0); total2 != total || !slices.Equal(commits2, commits) {
		t.Fatalf("two uncrashed runs wrote differently: %d writes, commits %v; then %d, %v", total, commits, total2, commits2)
	}
	// The free's transactions, then Finish's superblock transaction.
	T := rep.Transactions
	if len(commits) != T+1 || rep.TruncateSteps == 0 {
		t.Fatalf("%d commit records, the report says %d transactions (%d truncation steps) and Finish one", len(commits), T, rep.TruncateSteps)
	}
	testimg.Repair(t, done)
	final := testimg.ReadSpaceState(t, done)
	compareLikeKernel(t, final, testimg.ReadSpaceState(t, kernel))

	// S_0..S_T.
	states := []testimg.SpaceState{testimg.ReadSpaceState(t, base)}
	for k := 1; k <= T; k++ {
		img := copyImg(t, base)
		commitTrace(t, img, o, commits[k-1], 0)
		if err := recoverImg(img); err != nil {
			t.Fatalf("recover after commit %d: %v", k, err)
		}
		s := testimg.ReadSpaceState(t, img)
		if spaceKey(s) == spaceKey(states[k-1]) {
			t.Fatalf("S_%d equals S_%d: the transaction changed nothing", k, k-1)
		}
		states = append(states, s)
	}
	if d := states[T].Diff(final, testimg.SpaceDiffOptions{}); len(d) > 0 {
		t.Fatalf("recovery of a crash after the last commit differs from the uncrashed run: %v", d)
	}
	t.Logf("%d writes, %d transactions (%d truncation steps), commit records at writes %v", total, T, rep.TruncateSteps, commits)

	committedAt := func(n int) int {
		k := 0
		for _, c := range commits[:T] {
			if c <= n {
				k++
			}
		}
		return k
	}
	var mu sync.Mutex
	prefixes := map[int]int{}
	kernelRecoveries := 0
	crashPoints(t, total, func(t *testing.T, n int, torn bool) {
		img := copyImg(t, base)
		after, tear, want := n, 0, committedAt(n)
		if torn {
			after, tear, want = -1, n, committedAt(n-1)
		}
		crep, _, _, cerr := commitTrace(t, img, o, after, tear)
		if crep == nil {
			t.Fatalf("the crashed run returned no report: %v", cerr)
		}
		if cerr == nil && n < total {
			t.Fatalf("the run crashed at write %d returned no error", n)
		}
		if crep.Transactions != want {
			t.Fatalf("%d transactions committed before the crash; the uncrashed trace says %d", crep.Transactions, want)
		}
		kimg := copyImg(t, img)
		// (a) xfsfree recover.
		if err := recoverImg(img); err != nil {
			t.Fatalf("xfsfree recover: %v", err)
		}
		s := testimg.ReadSpaceState(t, img)
		if j := slices.IndexFunc(states, func(x testimg.SpaceState) bool { return spaceKey(x) == spaceKey(s) }); j != want {
			if j < 0 {
				t.Fatalf("recovered state is no prefix of the transactions (%d durable): %s", want, strings.Join(s.Diff(states[want], testimg.SpaceDiffOptions{}), "; "))
			}
			t.Fatalf("recovered state is S_%d, but %d transactions were durable at the crash", j, want)
		}
		if orphanBuckets(s) > 0 {
			repairOrphansOnly(t, img)
		} else {
			testimg.Repair(t, img)
		}
		rep := freeAll(t, img)
		if rep.Failed() {
			t.Fatalf("free --orphans after recovery: refused %v, errors %v", rep.Refused, rep.Errors)
		}
		if d := testimg.ReadSpaceState(t, img).Diff(final, testimg.SpaceDiffOptions{}); len(d) > 0 {
			t.Fatalf("free --orphans after recovery ends elsewhere than the uncrashed run: %s", strings.Join(d, "; "))
		}
		testimg.Repair(t, img)
		// (b) the kernel.
		_, recovered := testimg.KernelMountCycle(t, kimg)
		ks := testimg.ReadSpaceState(t, kimg)
		if recovered {
			if n := orphanBuckets(ks); n != 0 {
				t.Fatalf("kernel recovery left %d buckets in use", n)
			}
			compareLikeKernel(t, ks, final)
			testimg.Repair(t, kimg)
		} else if d := ks.Diff(s, testimg.SpaceDiffOptions{}); len(d) > 0 {
			t.Fatalf("kernel mount of a clean log changed the state: %s", strings.Join(d, "; "))
		}
		mu.Lock()
		prefixes[want]++
		if recovered {
			kernelRecoveries++
		}
		mu.Unlock()
	})
	var b strings.Builder
	for k := range states {
		fmt.Fprintf(&b, " %d", prefixes[k])
	}
	t.Logf("%d crash points and %d torn writes (%d writes); points recovered to S_0..S_%d:%s; kernel log recoveries: %d",
		total+1, total, total, T, b.String(), kernelRecoveries)
}
