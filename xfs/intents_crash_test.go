package xfs

// Crash-consistent snapshots of busy workloads, cleaned as the kernel's
// mount cleans them (issue 9): filesystems (with and without rmapbt)
// running fragmented writes, reflinked copies, copy-on-write overwrites,
// deletes in parallel and fsyncs — and, in a second workload, a
// 4000-extent file reflink-copied again and again while older copies are
// deleted; in a third, 200-extent files created, reflinked and deleted —
// shut down (xfs_io -x -c shutdown, no log flush) at varying moments. The
// logs hold pending EFIs, RUIs, CUIs and BUIs. On each: `xfsfree clean`
// on one copy and a kernel mount and unmount of another end in the same
// SpaceState (the free space compared as a set of blocks), both pass
// xfs_repair -n, and the kernel mounts ours without recovery; `xfsfree
// recover` alone on a third copy finishes the intents and leaves the log
// clean, xfs_repair -n finding nothing but the orphans and CoW staging
// extents recover leaves, and the kernel's mount of that clean image
// changes nothing.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xfsfree/xfsfree/internal/testimg"
)

// bigCopyCrashImage: a 4000-extent file reflink-copied with cp in a loop,
// the older copies deleted by another, the root directory fsynced by a
// third, then the shutdown after delay (the research note's BUI recipe).
func bigCopyCrashImage(t *testing.T, delay time.Duration, opts ...string) string {
	t.Helper()
	testimg.Need(t, "xfs_io", "cp")
	img := mkfsImage(t, opts...)
	mnt := testimg.Mount(t, img)
	p := func(s string) string { return filepath.Join(mnt, s) }
	if err := mkfrag(p("big"), 4000, 4096); err != nil {
		t.Fatal(err)
	}
	runCmd(t, "sync", "-f", mnt)
	crashDuring(t, mnt, delay, func(stopped func() bool) {
		for i := 1; i <= 40 && !stopped(); i++ {
			if reflinkCopy(p("big"), p(fmt.Sprintf("c%d", i))) != nil {
				return
			}
		}
	}, func(stopped func() bool) {
		for i := 1; i <= 40 && !stopped(); i++ {
			for !stopped() {
				if _, err := os.Stat(p(fmt.Sprintf("c%d", i+1))); err == nil {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			os.Remove(p(fmt.Sprintf("c%d", i)))
		}
	})
	return img
}

// churnCrashImage: 200-extent files made, reflinked, partly overwritten
// and deleted in loops with directory fsyncs (the research note's EFI
// recipe), then the shutdown after delay.
func churnCrashImage(t *testing.T, delay time.Duration, opts ...string) string {
	t.Helper()
	testimg.Need(t, "xfs_io", "cp")
	img := mkfsImage(t, opts...)
	mnt := testimg.Mount(t, img)
	p := func(s string) string { return filepath.Join(mnt, s) }
	xfsIO := lookTool("xfs_io")
	churn := func(w int) func(stopped func() bool) {
		return func(stopped func() bool) {
			for i := 0; i < 30 && !stopped(); i++ {
				f, g := p(fmt.Sprintf("w%d-%d", w, i)), p(fmt.Sprintf("w%d-%d.c", w, i))
				if mkfrag(f, 200, 4096) != nil || reflinkCopy(f, g) != nil {
					return
				}
				if w == 1 {
					exec.Command(xfsIO, "-c", "pwrite -q 0 40960", "-c", "fsync", g).Run()
				}
				exec.Command(xfsIO, "-c", "fsync", mnt).Run()
				os.Remove(f)
				if i%2 == 0 {
					os.Remove(g)
				}
				exec.Command(xfsIO, "-c", "fsync", mnt).Run()
			}
		}
	}
	crashDuring(t, mnt, delay, churn(0), churn(1))
	return img
}

// crashDuring runs the workers on the filesystem mounted at mnt, with
// another forcing its log (a directory fsync) over and over so that
// checkpoints fall inside long chains of deferred work, shuts it down
// after delay without flushing the log (xfs_io -x -c shutdown), stops
// them and unmounts.
func crashDuring(t *testing.T, mnt string, delay time.Duration, workers ...func(stopped func() bool)) {
	t.Helper()
	stop := make(chan struct{})
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	xfsIO := lookTool("xfs_io")
	var wg sync.WaitGroup
	for _, w := range append(workers, func(stopped func() bool) {
		for !stopped() {
			if exec.Command(xfsIO, "-c", "fsync", mnt).Run() != nil {
				return
			}
		}
	}) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w(stopped)
		}()
	}
	time.Sleep(delay)
	runCmd(t, "xfs_io", "-x", "-c", "shutdown", mnt)
	close(stop)
	wg.Wait()
	testimg.Unmount(t, mnt)
}

// crashTally counts what the snapshots held and what was done with them.
type crashTally struct {
	mu                  sync.Mutex
	snapshots, withPend int
	byVariant           map[string]int
	logged, pending     map[string]int // intent items seen in the logs, and left pending
	finished            map[string]int
	cowFreed, orphans   int
}

func (c *crashTally) String() string {
	keys := func(m map[string]int) string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		var parts []string
		for _, k := range ks {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
		return strings.Join(parts, ", ")
	}
	return fmt.Sprintf("%d snapshots (%s), %d with pending intents; items logged: %s; pending: %s; finished by clean: %s; orphans freed %d, CoW leftovers freed %d",
		c.snapshots, keys(c.byVariant), c.withPend, keys(c.logged), keys(c.pending), keys(c.finished), c.orphans, c.cowFreed)
}

// checkCrashSnapshot runs the file comment's checks on a crashed image
// and adds to the tally.
func checkCrashSnapshot(t *testing.T, img, variant string, tally *crashTally) {
	t.Helper()
	_, decoded := ourIntents(t, img)
	logged := map[string]int{}
	for _, f := range decoded {
		logged[logprintShort[f.Type]]++
	}
	pend := pendingOf(decoded)
	pendBy := map[string]int{}
	var descs []string
	for _, f := range pend {
		pendBy[ItemName(f.Name())]++
		if len(descs) < 6 {
			descs = append(descs, f.String())
		}
	}
	t.Logf("%s: log items %v; %d pending %v %s", variant, logged, len(pend), pendBy, strings.Join(descs, "; "))

	ours, kern, rec := copyImg(t, img), copyImg(t, img), copyImg(t, img)
	rep, err := Clean(ours, CleanOptions{})
	if err != nil {
		t.Fatalf("clean: %v", err)
	}
	fin := map[string]int{}
	if len(pend) > 0 {
		ir := rep.Recover.Intents
		if ir == nil || ir.Pending != len(pend) || ir.Finished != len(pend) {
			t.Fatalf("clean: intents %+v, %d pending in the log", ir, len(pend))
		}
		fin = ir.FinishedByType
	} else if rep.Recover != nil && rep.Recover.Intents != nil {
		t.Errorf("clean reports intents %+v, the log has none pending", rep.Recover.Intents)
	}
	if _, recovered := testimg.KernelMountCycle(t, kern); !recovered {
		t.Fatal("the kernel did not recover the crashed image")
	}
	testimg.Repair(t, ours)
	testimg.Repair(t, kern)
	got := testimg.ReadSpaceState(t, ours)
	compareLikeKernel(t, got, testimg.ReadSpaceState(t, kern))
	if _, recovered := testimg.KernelMountCycle(t, ours); recovered {
		t.Error("the kernel ran log recovery on the image clean left")
	}
	// recover alone.
	rrep, err := Recover(rec, RecoverOptions{})
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	if len(pend) > 0 && (rrep.Intents == nil || rrep.Intents.Finished != len(pend)) {
		t.Errorf("recover finished intents %+v, %d pending", rrep.Intents, len(pend))
	}
	checkRecoveredClean(t, rec)
	repairAllowing(t, rec, `^\s*leftover CoW extent \(\d+/\d+\) len \d+$`)
	before := testimg.ReadSpaceState(t, rec)
	if _, recovered := testimg.KernelMountCycle(t, rec); recovered {
		t.Error("the kernel ran log recovery on the image recover left")
	}
	if d := testimg.ReadSpaceState(t, rec).Diff(before, testimg.SpaceDiffOptions{}); len(d) > 0 {
		t.Errorf("the kernel's mount of the recovered image changed it: %s", strings.Join(d, "; "))
	}
	tally.mu.Lock()
	defer tally.mu.Unlock()
	tally.snapshots++
	tally.byVariant[variant]++
	if len(pend) > 0 {
		tally.withPend++
	}
	for k, v := range logged {
		tally.logged[k] += v
	}
	for k, v := range pendBy {
		tally.pending[k] += v
	}
	for k, v := range fin {
		tally.finished[k] += v
	}
	if rep.Free != nil {
		tally.orphans += rep.Free.InodesFreed
	}
	if rep.Cow != nil {
		tally.cowFreed += rep.Cow.Freed
	}
	t.Logf("%s: clean finished %v, freed %d orphans and %d CoW leftovers; compared: %s", variant, fin,
		func() int {
			if rep.Free != nil {
				return rep.Free.InodesFreed
			}
			return 0
		}(), func() int {
			if rep.Cow != nil {
				return rep.Cow.Freed
			}
			return 0
		}(), treeCounts(got))
}

// TestCleanCrashSnapshotsLikeKernel: see the file comment. At least 20
// snapshots (with and without rmapbt, the three workloads), at least 8
// of them with pending intents, until pending EFIs, RUIs, CUIs and BUIs
// have all been seen; the attempts are bounded (skipped, with what was
// reached, if there are fewer than 20 snapshots or 8 with pending
// intents when they run out).
func TestCleanCrashSnapshotsLikeKernel(t *testing.T) {
	if testing.Short() {
		t.Skip("makes dozens of crash images; not in -short mode")
	}
	testimg.Need(t, "xfs_db", "xfs_repair", "xfs_logprint", "cp", "xfs_io")
	tally := &crashTally{byVariant: map[string]int{}, logged: map[string]int{}, pending: map[string]int{}, finished: map[string]int{}}
	type variant struct {
		name string
		make func(t *testing.T, delay time.Duration, opts ...string) string
		opts []string
	}
	variants := []variant{
		{"busy", intentCrashImage, nil},
		{"busy-rmapbt", intentCrashImage, []string{"-m", "rmapbt=1"}},
		{"bigcopy", bigCopyCrashImage, nil},
		{"bigcopy-rmapbt", bigCopyCrashImage, []string{"-m", "rmapbt=1"}},
		{"churn", churnCrashImage, nil},
		{"churn-rmapbt", churnCrashImage, []string{"-m", "rmapbt=1"}},
	}
	// Past chaseTypes attempts the run ends as soon as the counts are
	// reached, whether or not every kind of intent was seen pending (a
	// pending EFI is rare: about one in 40 snapshots).
	const maxAttempts, chaseTypes = 48, 30
	for try := 0; try < maxAttempts; try++ {
		allTypes := tally.pending["bmap_intent"] > 0 && tally.pending["extent_free_intent"] > 0 &&
			tally.pending["rmap_intent"] > 0 && tally.pending["refcount_intent"] > 0
		if tally.snapshots >= 20 && tally.withPend >= 8 && (allTypes || try >= chaseTypes) {
			break
		}
		v := variants[try%len(variants)]
		delay := 700*time.Millisecond + time.Duration((try/len(variants))%6)*300*time.Millisecond
		ok := t.Run(fmt.Sprintf("%02d-%s", try, v.name), func(t *testing.T) {
			img := v.make(t, delay, v.opts...)
			checkCrashSnapshot(t, img, v.name, tally)
		})
		if !ok {
			break
		}
	}
	t.Logf("%v", tally)
	if tally.snapshots < 20 || tally.withPend < 8 {
		t.Skipf("after the attempts: %v", tally)
	}
	for _, k := range []string{"extent_free_intent", "rmap_intent", "refcount_intent", "bmap_intent"} {
		if tally.pending[k] == 0 {
			t.Logf("no snapshot held a pending %s (the synthetic scenarios of TestIntentsLikeKernel cover it)", k)
		}
	}
}
