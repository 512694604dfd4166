package xfs

import (
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
)

// runClean runs Clean on img, failing the test on an error.
func runClean(t *testing.T, img string, o CleanOptions) *CleanReport {
	t.Helper()
	rep, err := Clean(img, o)
	if err != nil {
		t.Fatalf("Clean: %v", err)
	}
	return rep
}

// TestCleanOrphansLikeKernel: clean on a frozen snapshot (dirty log,
// orphans) ends in the state of the kernel's mount and unmount of a copy;
// xfs_repair -n passes and the kernel then mounts it without recovery. A
// dry run writes nothing; a second clean is a no-op that writes nothing.
func TestCleanOrphansLikeKernel(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair")
	for _, name := range testimg.OrphanFixtures() {
		t.Run(name, func(t *testing.T) {
			img := testimg.Path(t, name)
			before := testimg.Hash(t, img)
			dry := runClean(t, img, CleanOptions{DryRun: true})
			if dry.Recover == nil || dry.Free == nil || dry.Free.InodesFreed == 0 || dry.Cow == nil {
				t.Fatalf("dry run: recover %v, free %+v, cow %v", dry.Recover != nil, dry.Free, dry.Cow != nil)
			}
			if testimg.Hash(t, img) != before {
				t.Fatal("the dry run wrote to the image")
			}
			rep := runClean(t, img, CleanOptions{ListInodes: -1})
			if rep.Recover == nil || rep.Recover.Clean || rep.Free == nil || rep.Free.Failed() || rep.Free.InodesFreed != 313 ||
				len(rep.Free.Inodes) != 0 || rep.Cow == nil {
				t.Fatalf("clean: recover %+v, free %+v", rep.Recover, rep.Free)
			}
			testimg.Repair(t, img)
			compareAllocState(t, readAllocState(t, img), readAllocState(t, kernelFreed(t, name)))
			after := testimg.Hash(t, img)
			again := runClean(t, img, CleanOptions{})
			if again.Recover != nil || again.Free == nil || again.Free.InodesFreed != 0 || again.Cow != nil {
				t.Errorf("second clean: recover %v, free %+v, cow %v", again.Recover != nil, again.Free, again.Cow != nil)
			}
			if testimg.Hash(t, img) != after {
				t.Error("a second clean with nothing to do wrote to the image")
			}
			if _, recovered := testimg.KernelMountCycle(t, img); recovered {
				t.Error("the kernel ran log recovery on the image clean left")
			}
		})
	}
}

// TestCleanReflinkCrash: a crash of a reflink workload (reflinked orphans
// and CoW staging leftovers, dirty log) cleaned in one run ends in the
// kernel's state (every btree's records but the AGFL placement, the
// counters); live files keep their bytes.
func TestCleanReflinkCrash(t *testing.T) {
	for _, v := range []struct {
		name string
		mkfs []string
	}{{"default", nil}, {"rmapbt", []string{"-m", "rmapbt=1"}}} {
		t.Run(v.name, func(t *testing.T) {
			set := reflinkSnapshot(t, v.mkfs...)
			ref := copyFile(t, set.snap, ".kernel")
			testimg.Unmount(t, testimg.Mount(t, ref))
			testimg.Repair(t, ref)
			want := testimg.ReadSpaceState(t, ref)
			img := copyFile(t, set.snap, ".clean")
			rep := runClean(t, img, CleanOptions{})
			if rep.Free == nil || rep.Free.Failed() || rep.Free.InodesFreed != len(set.orphans) || rep.Cow == nil || rep.Cow.Freed == 0 {
				t.Fatalf("clean: free %+v, cow %+v", rep.Free, rep.Cow)
			}
			testimg.Repair(t, img)
			got := testimg.ReadSpaceState(t, img)
			compareLikeKernel(t, got, want)
			t.Logf("%d orphans and %d CoW staging extents freed; compared: %s", rep.Free.InodesFreed, rep.Cow.Freed, treeCounts(got))
			if _, recovered := testimg.KernelMountCycle(t, img); recovered {
				t.Error("the kernel ran log recovery on the image clean left")
			}
			set.checkLive(t, img, false)
		})
	}
}
