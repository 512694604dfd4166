package xfs

// The crash matrix of finishing intents: a dirty log (rmapbt, reflink)
// holding 19 pending intents of every type — a plain truncation (RUI
// UNMAP, EFI), a reflinked one (RUI UNMAP_SHARED, CUI DECREASE, a plain
// extent's blocks freed by a decrease), a remap (BUI UNMAP, CUI DECREASE,
// CUI INCREASE, BUI MAP), reverse mappings put back (RUI MAP, MAP_SHARED)
// and converted (CONVERT, CONVERT_SHARED) — recovered by xfsfree with
// every transaction its own checkpoint and a checkpoint in place after
// each intent, crashed after every device write of the run and torn at
// every write, then
//
//	(a) xfsfree recover finishes the job: the SpaceState is the
//	    uncrashed run's, xfs_repair -n passes;
//	(b) a kernel mount and unmount of another copy does too (a dirty log
//	    replayed, the intents not yet done finished by the kernel; the
//	    free space compared as a set of blocks), xfs_repair -n passes.
//
// The uncrashed run's result equals the kernel's recovery of the log.
//
// A torn write keeps the first half of its sectors when it is a log
// write, the first half of its filesystem blocks when it is a write in
// place: a metadata block torn inside itself (its header, with the new
// LSN, written, its tail not) is past what XFS recovers — replay skips a
// block whose LSN is not older than the change (xlog_recover_get_buf_lsn
// does not check the CRC), so the kernel's mount fails on it as xfsfree's
// recover does (checked); xfs_repair is the tool for it.

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/journal"
)

// sharedCrash is CrashHook with one write counter for every device handle
// a run opens (recover opens the image more than once).
type sharedCrash struct {
	mu          sync.Mutex
	after, tear int
	n           int
	crashed     bool
	logStart    int64
	logEnd      int64
	blockSize   int
	commits     []int // the write holding each commit record
}

func (c *sharedCrash) hook(dev *cache.Device) cache.WriteHook {
	return func(daddr int64, b []byte) (bool, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.crashed {
			return false, ErrCrashed
		}
		c.n++
		switch {
		case c.tear > 0 && c.n == c.tear:
			c.crashed = true
			// A log write tears at a sector; a write in place at a
			// filesystem block (see the file comment).
			unit := cache.BBSize
			if daddr < c.logStart || daddr >= c.logEnd {
				unit = c.blockSize
			}
			if keep := len(b) / unit / 2 * unit; keep > 0 {
				if err := writeDirect(dev.Path(), daddr, b[:keep]); err != nil {
					return false, err
				}
			}
			return false, ErrCrashed
		case c.after >= 0 && c.n > c.after:
			c.crashed = true
			return false, ErrCrashed
		}
		if daddr >= c.logStart && daddr < c.logEnd {
			for range commitOps(b) {
				c.commits = append(c.commits, c.n)
			}
		}
		return true, nil
	}
}

// recoverTrace recovers img, crashing after `after` writes (-1: never) or
// tearing write `tear` (0: never), and returns the writes that reached
// the device whole and where the commit records were.
func recoverTrace(t *testing.T, img string, after, tear int) (rep *RecoverReport, writes int, commits []int, err error) {
	t.Helper()
	fs := openRO(t, img)
	c := &sharedCrash{after: after, tear: tear, logStart: fs.G.LogStartDaddr, logEnd: fs.G.LogStartDaddr + fs.G.LogBBs,
		blockSize: int(fs.G.BlockSize)}
	fs.Close()
	err = unbusy(func() (err error) {
		rep, err = Recover(img, RecoverOptions{writeHook: c.hook, syncCommits: true, afterIntent: func(fs *FS) { fs.Checkpoint() }})
		return err
	})
	n := c.n
	if c.crashed {
		n--
	}
	return rep, n, c.commits, err
}

// matrixLog makes the matrix's dirty log on a copy of the zoo image.
func matrixLog(t *testing.T, z *zoo) string {
	t.Helper()
	img := copyImg(t, z.img)
	byName := map[string]intentScenario{}
	for _, sc := range intentScenarios(true) {
		byName[sc.name] = sc
	}
	synthLog(t, img, func(fs *FS, tx *journal.Transaction) {
		for _, n := range []string{"efi", "cui-decrease", "remap", "rui-map", "rui-convert"} {
			byName[n].fn(t, z, fs, tx)
		}
	})
	return img
}

// TestFinishIntentsCrashMatrix: see the file comment.
func TestFinishIntentsCrashMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash matrix of finishing intents is not run under -short")
	}
	z := zooImage(t, "-m", "rmapbt=1")
	base := matrixLog(t, z)
	kern := copyImg(t, base)
	if _, recovered := testimg.KernelMountCycle(t, kern); !recovered {
		t.Fatal("the kernel did not recover the base log")
	}
	testimg.Repair(t, kern)
	want := testimg.ReadSpaceState(t, kern)

	done := copyImg(t, base)
	rep, total, commits, err := recoverTrace(t, done, -1, 0)
	if err != nil || rep.Intents == nil || rep.Intents.Finished != rep.Intents.Pending || rep.Intents.Pending < 15 {
		t.Fatalf("uncrashed run: %v; intents %+v", err, rep.Intents)
	}
	if _, total2, commits2, _ := recoverTrace(t, copyImg(t, base), -1, 0); total2 != total || !slices.Equal(commits2, commits) {
		t.Fatalf("two uncrashed runs wrote differently: %d writes, commits %v; then %d, %v", total, commits, total2, commits2)
	}
	testimg.Repair(t, done)
	final := testimg.ReadSpaceState(t, done)
	compareLikeKernel(t, final, want)
	t.Logf("%d intents %v finished in %d transactions; %d writes, commit records at writes %v",
		rep.Intents.Finished, rep.Intents.ByType, rep.Intents.Transactions, total, commits)

	var mu sync.Mutex
	kernelRecoveries, points := 0, 0
	crashPoints(t, total, func(t *testing.T, n int, torn bool) {
		img := copyImg(t, base)
		after, tear := n, 0
		if torn {
			after, tear = -1, n
		}
		_, _, _, cerr := recoverTrace(t, img, after, tear)
		if cerr == nil && n < total {
			t.Fatalf("the run crashed at write %d returned no error", n)
		}
		kimg := copyImg(t, img)
		// (a) xfsfree recover.
		if err := recoverImg(img); err != nil {
			t.Fatalf("xfsfree recover after the crash: %v", err)
		}
		testimg.Repair(t, img)
		if d := testimg.ReadSpaceState(t, img).Diff(final, testimg.SpaceDiffOptions{AGFLAgnostic: true}); len(d) > 0 {
			t.Fatalf("xfsfree recover after the crash ends elsewhere than the uncrashed run: %s", strings.Join(d, "; "))
		}
		// (b) the kernel.
		_, recovered := testimg.KernelMountCycle(t, kimg)
		testimg.Repair(t, kimg)
		if d := testimg.ReadSpaceState(t, kimg).Diff(final, testimg.SpaceDiffOptions{AGFLAgnostic: true}); len(d) > 0 {
			t.Fatalf("the kernel's mount after the crash (recovery %v) ends elsewhere than the uncrashed run: %s", recovered, strings.Join(d, "; "))
		}
		mu.Lock()
		points++
		if recovered {
			kernelRecoveries++
		}
		mu.Unlock()
	})
	t.Logf("%d crash points and %d torn writes (%d writes); %d points checked, the kernel recovered a dirty log at %d",
		total+1, total, total, points, kernelRecoveries)
}
