package xfs

// Orphans with deep block maps against the kernel: on a filesystem of 1
// KiB blocks, a reflinked file written one block in two, 40000 times (on
// 4 KiB pages the holes become unwritten extents: about 80000 extents, a
// data fork btree of four levels, the in-inode root at level 3) whose copy
// stays, a file whose bmbt leaves hole punching left half full,
// and a file whose attr fork is a btree (hundreds of remote xattr values,
// their blocks interleaved with another file's) — freed whole (steps of
// the default 16384) and in steps of 100 extents, with and without rmapbt:
// the kernel's mount of the same snapshot leaves the same SpaceState;
// xfs_repair -n passes; the copy keeps its bytes. Crashes in the middle of
// the steps leave orphans that xfsfree recover makes consistent
// (xfs_repair -n finds only the orphans) and a second free finishes.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"golang.org/x/sys/unix"
)

// deepSnapshot makes the snapshot: deep* (40000 written extents, every
// other 1 KiB block), deepc (its reflinked copy, live), xat* (400 xattrs
// of 3000 bytes, each value's blocks followed by a block of spacer),
// spacer (live), and holey* (8000 extents left of 24000 by hole punching:
// half-full bmbt leaves).
func deepSnapshot(t *testing.T, opts ...string) (set *reflinkSet, deepIno, xatIno, holeyIno uint64) {
	t.Helper()
	testimg.Need(t, "cp", "xfs_freeze", "loop", "mkfs.xfs", "xfs_db", "xfs_repair")
	set = &reflinkSet{live: map[string]string{}, orphans: map[string]uint64{}}
	const bs = 1024
	rng := rand.New(rand.NewPCG(4, 40000))
	args := append([]string{"-b", "size=1024", "-d", "agcount=4"}, opts...)
	set.snap = snapshotImage(t, 300<<20, nil, args, nil, func(t *testing.T, mnt string) []*os.File {
		p := func(s string) string { return filepath.Join(mnt, s) }
		writeFragments(t, p("deep"), 40000, 1, 1, bs, rng)
		mustRun(t, "cp", "--reflink=always", p("deep"), p("deepc"))
		spacer, err := os.Create(p("spacer"))
		if err != nil {
			t.Fatal(err)
		}
		x, err := os.Create(p("xat"))
		if err != nil {
			t.Fatal(err)
		}
		x.Write(make([]byte, 5000))
		val := make([]byte, 3000)
		for i := 0; i < 400; i++ {
			for j := range val {
				val[j] = byte(rng.Uint32())
			}
			if err := unix.Fsetxattr(int(x.Fd()), fmt.Sprintf("user.a%04d", i), val, 0); err != nil {
				t.Fatalf("setxattr: %v", err)
			}
			if err := unix.Fallocate(int(spacer.Fd()), 0, int64(i)*bs, bs); err != nil {
				t.Fatal(err)
			}
			if i%50 == 49 {
				x.Sync()
				spacer.Sync()
			}
		}
		x.Sync()
		spacer.Sync()
		spacer.Close()
		// holey: 24000 one-block extents, then two of every three punched
		// out, which leaves the kernel's bmbt leaves about half full (its
		// deletions rebalance them) where appends left them full.
		h, err := os.Create(p("holey"))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 24000; i++ {
			if err := unix.Fallocate(int(h.Fd()), 0, int64(2*i)*bs, bs); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 24000; i++ {
			if i%3 != 0 {
				if err := unix.Fallocate(int(h.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(2*i)*bs, bs); err != nil {
					t.Fatal(err)
				}
			}
		}
		h.Sync()
		for n, ino := range map[string]*uint64{"deep": &deepIno, "xat": &xatIno, "holey": &holeyIno} {
			var st unix.Stat_t
			if err := unix.Stat(p(n), &st); err != nil {
				t.Fatal(err)
			}
			*ino = st.Ino
			set.orphans[n] = st.Ino
		}
		set.live["deepc"] = md5File(t, p("deepc"))
		held := []*os.File{x, h, testimg.HoldUnlinked(t, p("deep"))}
		for _, n := range []string{"xat", "holey"} {
			if err := os.Remove(p(n)); err != nil {
				t.Fatal(err)
			}
		}
		if err := f2sync(mnt); err != nil {
			t.Fatal(err)
		}
		return held
	})
	return set, deepIno, xatIno, holeyIno
}

// countWrites runs Free(o) on a copy of img, every transaction its own
// checkpoint (SyncCommits, as the crash runs below), and returns its
// device writes.
func countWrites(t *testing.T, img string, o FreeOptions) int {
	t.Helper()
	cp := copyFile(t, img, ".count")
	var writes atomic.Int64
	fs, err := OpenWrite(cp, Options{WriteHook: func(*cache.Device) cache.WriteHook {
		return func(int64, []byte) (bool, error) { writes.Add(1); return true, nil }
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	fs.Log().SyncCommits = true
	if rep, err := fs.Free(o); err != nil || rep.Failed() {
		t.Fatalf("Free: %v; refused %v, errors %v", err, rep.Refused, rep.Errors)
	}
	os.Remove(cp)
	return int(writes.Load())
}

// TestFreeDeepOrphans: see the file comment.
func TestFreeDeepOrphans(t *testing.T) {
	for _, v := range []struct {
		name string
		mkfs []string
	}{{"default", nil}, {"rmapbt", []string{"-m", "rmapbt=1"}}} {
		t.Run(v.name, func(t *testing.T) {
			if testing.Short() && v.name != "default" {
				t.Skip("-short: the default geometry only")
			}
			set, deep, xat, holey := deepSnapshot(t, v.mkfs...)
			hf := testimg.ParseFields(testimg.DB(t, set.snap, fmt.Sprintf("inode %d", holey), "p core.format core.nextents u3.bmbt.level"))
			if hf["core.format"] != "3 (btree)" || hf["core.nextents"] != "8000" {
				t.Fatalf("holey is not a btree fork of 8000 extents: %v", hf)
			}
			d := testimg.ParseFields(testimg.DB(t, set.snap, fmt.Sprintf("inode %d", deep), "p core.format core.nextents u3.bmbt.level v3.flags2"))
			if n, _ := strconv.Atoi(d["core.nextents"]); d["core.format"] != "3 (btree)" || d["u3.bmbt.level"] != "3" || n < 40000 {
				t.Fatalf("deep is not a 4-level btree fork of 40000 extents or more: %v", d)
			}
			x := testimg.ParseFields(testimg.DB(t, set.snap, fmt.Sprintf("inode %d", xat), "p core.aformat core.naextents a.bmbt.level"))
			if x["core.aformat"] != "3 (btree)" {
				t.Fatalf("xat's attr fork is not a btree: %v", x)
			}
			t.Logf("deep: %v; xat: %v", d, x)
			xatExtents, _ := strconv.Atoi(x["core.naextents"])
			ref := copyFile(t, set.snap, ".kernel")
			testimg.Unmount(t, testimg.Mount(t, ref))
			testimg.Repair(t, ref)
			want := testimg.ReadSpaceState(t, ref)
			clean := copyFile(t, set.snap, ".clean")
			if _, err := Recover(clean, RecoverOptions{}); err != nil {
				t.Fatalf("recover: %v", err)
			}
			for _, tc := range []struct {
				name string
				o    FreeOptions
			}{{"whole", FreeOptions{Orphans: true}}, {"steps", FreeOptions{Orphans: true, TruncateExtents: 100}}} {
				t.Run(tc.name, func(t *testing.T) {
					img := copyFile(t, clean, "."+tc.name)
					var writes atomic.Int64
					fs, err := OpenWrite(img, Options{WriteHook: func(*cache.Device) cache.WriteHook {
						return func(int64, []byte) (bool, error) { writes.Add(1); return true, nil }
					}})
					if err != nil {
						t.Fatal(err)
					}
					rep, err := fs.Free(tc.o)
					fs.Close()
					if err != nil || rep.Failed() || rep.InodesFreed != 3 {
						t.Fatalf("Free: %v; freed %d; refused %v, errors %v", err, rep.InodesFreed, rep.Refused, rep.Errors)
					}
					if rep.TruncateSteps < 2 {
						t.Errorf("%d truncation steps", rep.TruncateSteps)
					}
					runFreeCow(t, img, CowOptions{})
					testimg.Repair(t, img)
					got := testimg.ReadSpaceState(t, img)
					compareLikeKernel(t, got, want)
					t.Logf("%d transactions (%d truncation steps), %d device writes; compared: %s", rep.Transactions, rep.TruncateSteps, writes.Load(), treeCounts(got))
					if _, recovered := testimg.KernelMountCycle(t, img); recovered {
						t.Errorf("the kernel ran log recovery on the image xfsfree freed")
					}
					set.checkLive(t, img, false)
					if tc.name != "steps" {
						return
					}
					// Crashes in the middle of the steps: of the deep data
					// fork (the whole run), and of the attr fork (a run
					// freeing xat alone, whose last steps are its attr
					// fork's); every transaction its own checkpoint
					// (SyncCommits), so that write counts place the crash
					// between two given steps.
					total := countWrites(t, clean, tc.o)
					xatOnly := FreeOptions{Inos: []uint64{xat}, TruncateExtents: 100}
					t.Logf("freeing xat alone: %d writes", countWrites(t, clean, xatOnly))
					whole := 0 // crash points where xat is stepped up to its attr fork
					for _, c := range []struct {
						o     FreeOptions
						after int
					}{{tc.o, total * 30 / 100}, {xatOnly, 2}, {xatOnly, 3}} {
						t.Run(fmt.Sprintf("crash-after-%d-writes-of-%d-orphans", c.after, len(c.o.Inos)), func(t *testing.T) {
							img := copyFile(t, clean, fmt.Sprintf(".crash%d-%d", c.after, len(c.o.Inos)))
							fs, err := OpenWrite(img, Options{WriteHook: func(dev *cache.Device) cache.WriteHook {
								return CrashHook(dev, c.after, 0, nil)
							}})
							if err != nil {
								t.Fatal(err)
							}
							fs.Log().SyncCommits = true
							if _, err := fs.Free(c.o); err == nil {
								t.Fatal("Free went through a crash")
							}
							fs.Close()
							// The kernel replays the crashed log and goes on
							// truncating where the crash stopped us.
							kimg := copyFile(t, img, ".kernel")
							testimg.Unmount(t, testimg.Mount(t, kimg))
							testimg.Repair(t, kimg)
							compareLikeKernel(t, testimg.ReadSpaceState(t, kimg), want)
							if _, err := Recover(img, RecoverOptions{}); err != nil {
								t.Fatalf("recover: %v", err)
							}
							partial := false
							for _, ino := range []uint64{deep, xat} {
								f := testimg.ParseFields(testimg.DB(t, img, fmt.Sprintf("inode %d", ino),
									"p core.mode core.format core.nextents core.aformat core.naextents core.nblocks"))
								t.Logf("inode %d after recovery: %v", ino, f)
								if n, _ := strconv.Atoi(f["core.naextents"]); ino == xat && n > 0 && n < xatExtents {
									partial = true
								}
								if n, _ := strconv.Atoi(f["core.naextents"]); ino == xat && f["core.nextents"] == "0" && n == xatExtents {
									whole++
								}
							}
							if partial {
								// The kernel's inactivation reads the attr
								// btree before it truncates the fork: an attr
								// fork cut short is an orphan it cannot free.
								t.Errorf("the crash left inode %d's attr fork cut short", xat)
							}
							repairOrphansOnly(t, img)
							rep := runFree(t, img, tc.o)
							if rep.Failed() {
								t.Fatalf("second free: refused %v, errors %v", rep.Refused, rep.Errors)
							}
							runFreeCow(t, img, CowOptions{})
							testimg.Repair(t, img)
							compareLikeKernel(t, testimg.ReadSpaceState(t, img), want)
						})
					}
					if whole == 0 {
						t.Errorf("no crash point left xat's data fork freed and its attr fork whole")
					}
				})
			}
		})
	}
}
