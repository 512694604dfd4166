package xfs

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"golang.org/x/sys/unix"
)

// smallLog makes mkfs.xfs accept a log below its usual minimum (as
// xfstests does).
var smallLog = []string{"TEST_DEV=1", "TEST_DIR=1", "QA_CHECK_FS=1"}

// bigOrphanSnapshot is a frozen snapshot of a 1 GiB filesystem of 16 AGs
// (mkfs adds its options, a small log among them) whose orphans are a file of n one-block extents (every
// other 4k block preallocated: a btree fork root → node → leaves) and a
// few small files.
func bigOrphanSnapshot(t *testing.T, n int, mkfs ...string) (img string, bigIno uint64) {
	t.Helper()
	args := append([]string{"-d", "agcount=16"}, mkfs...)
	img = snapshotImage(t, 1<<30, smallLog, args, nil, func(t *testing.T, dir string) []*os.File {
		f, err := os.Create(filepath.Join(dir, "big"))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			if err := unix.Fallocate(int(f.Fd()), 0, int64(2*i)*4096, 4096); err != nil {
				t.Fatal(err)
			}
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		bigIno = st.Ino
		held := []*os.File{f}
		for i := 0; i < 5; i++ {
			p := filepath.Join(dir, fmt.Sprint("small", i))
			s, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			s.Write(make([]byte, 8192*(i+1)))
			held = append(held, s)
		}
		if err := f2sync(dir); err != nil {
			t.Fatal(err)
		}
		for _, h := range held {
			if err := os.Remove(h.Name()); err != nil {
				t.Fatal(err)
			}
		}
		return held
	})
	return img, bigIno
}

// repairOrphansOnly runs xfs_repair -n on an image that may still hold
// orphans and fails the test on anything it says beyond its phases and
// what it says of every unlinked inode (listed in an AGI bucket,
// disconnected, nlink 0): a truncation interrupted between its steps must
// leave nothing else to repair.
func repairOrphansOnly(t *testing.T, img string) {
	t.Helper()
	out, _ := testimg.TryRepair(t, img)
	allowed := regexp.MustCompile(`^(\s*$|Phase \d|\s+- |No modify flag|Cannot get host filesystem geometry|Repair may fail if|the image and the host|\s*agi unlinked bucket \d+ is \d+ in ag \d+ \(inode=\d+\)$|\s*disconnected inode \d+, would move to lost\+found$|\s*would have reset inode \d+ nlinks from 0 to 1$)`)
	var bad []string
	for _, l := range strings.Split(out, "\n") {
		if !allowed.MatchString(l) {
			bad = append(bad, l)
		}
	}
	if len(bad) > 0 {
		t.Errorf("xfs_repair -n %s found more than orphans:\n%s\n--- full output:\n%s", img, strings.Join(bad, "\n"), out)
	}
}

// bigFreeOptions truncates in steps of 2048 extents.
var bigFreeOptions = FreeOptions{Orphans: true, TruncateExtents: 2048, CheckpointBytes: 64 << 10}

// TestFreeBigOrphanInSteps: an orphan of 30000 extents on a small log is
// truncated in several transactions (whole bmbt leaves from the highest
// offset, the inode logged with fewer extents each time) and freed in the
// last; the result equals a kernel mount's (counters, free space, inobt
// and finobt records) and passes xfs_repair -n. A crash after any of a
// spread of writes leaves an image that xfsfree recover makes clean and
// consistent (xfs_repair -n: the orphan still listed, with fewer extents
// and a smaller btree), and a second free then ends in the kernel's state
// too.
func TestFreeBigOrphanInSteps(t *testing.T) {
	testimg.Need(t, "mkfs.xfs", "xfs_db", "xfs_repair", "xfs_freeze", "loop")
	for _, tc := range []struct {
		name string
		mkfs []string
	}{{"default", []string{"-l", "size=1368b"}}, {"rmapbt", []string{"-m", "rmapbt=1", "-l", "size=3075b"}}} {
		t.Run(tc.name, func(t *testing.T) {
			if testing.Short() && tc.name != "default" {
				t.Skip("-short: the default geometry only")
			}
			const n = 30000
			snap, ino := bigOrphanSnapshot(t, n, tc.mkfs...)
			before := testimg.Inode(t, snap, ino)
			if before["core.format"] != "3 (btree)" || before["core.nextents"] != strconv.Itoa(n) {
				t.Fatalf("the big orphan is not a btree fork of %d extents: %v", n, before)
			}
			ref := copyFile(t, snap, ".kernel")
			testimg.Unmount(t, testimg.Mount(t, ref))
			testimg.Repair(t, ref)
			want := readAllocState(t, ref)

			clean := copyFile(t, snap, ".clean")
			clearLog(t, clean)
			img := copyFile(t, clean, ".xfsfree")
			var writes atomic.Int64
			fs, err := OpenWrite(img, Options{WriteHook: func(*cache.Device) cache.WriteHook {
				return func(int64, []byte) (bool, error) { writes.Add(1); return true, nil }
			}})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := fs.Free(bigFreeOptions)
			fs.Close()
			if err != nil || rep.Failed() {
				t.Fatalf("Free: %v; refused %v, errors %v", err, rep.Refused, rep.Errors)
			}
			if rep.TruncateSteps < 5 || rep.InodesFreed != 6 {
				t.Errorf("%d truncation steps, %d inodes freed: want several steps and 6", rep.TruncateSteps, rep.InodesFreed)
			}
			var bigBlocks uint64
			for _, in := range rep.Inodes {
				if in.Ino == ino {
					bigBlocks = in.Blocks
				}
			}
			if want := mustU(t, before["core.nblocks"]); bigBlocks != want {
				t.Errorf("report: the big orphan freed %d blocks, it had %d", bigBlocks, want)
			}
			t.Logf("%d transactions (%d truncation steps), %d device writes, log %d bytes", rep.Transactions, rep.TruncateSteps, writes.Load(), rep.LogBytes)
			testimg.Repair(t, img)
			compareAllocState(t, readAllocState(t, img), want)

			// Crashes in the middle of the steps.
			total := int(writes.Load())
			partial := 0
			for _, frac := range []int{20, 55} {
				after := total * frac / 100
				t.Run(fmt.Sprintf("crash-after-%d-of-%d", after, total), func(t *testing.T) {
					img := copyFile(t, clean, fmt.Sprintf(".crash%d", after))
					fs, err := OpenWrite(img, Options{WriteHook: func(dev *cache.Device) cache.WriteHook {
						return CrashHook(dev, after, 0, nil)
					}})
					if err != nil {
						t.Fatal(err)
					}
					if _, err := fs.Free(bigFreeOptions); err == nil {
						t.Fatal("Free went through a crash")
					}
					fs.Close()
					// The kernel replays the crashed log and, its log
					// having been dirty, goes on truncating and frees the
					// orphans at mount.
					ro := openRO(t, img)
					st, err := ro.LogState()
					ro.Close()
					if err != nil {
						t.Fatal(err)
					}
					if !st.Clean {
						kimg := copyFile(t, img, ".kernel")
						testimg.Unmount(t, testimg.Mount(t, kimg))
						testimg.Repair(t, kimg)
						compareAllocState(t, readAllocState(t, kimg), want)
					}
					if _, err := Recover(img, RecoverOptions{}); err != nil {
						t.Fatalf("recover: %v", err)
					}
					repairOrphansOnly(t, img)
					mid := testimg.DBUnchecked(t, img, fmt.Sprintf("inode %d", ino), "p core.mode core.nextents core.nblocks core.format")
					f := testimg.ParseFields(mid)
					if f["core.mode"] != "0" && f["core.nextents"] != strconv.Itoa(n) {
						partial++
						t.Logf("recovered mid-truncation: %v", f)
					}
					rep := runFree(t, img, bigFreeOptions)
					if rep.Failed() {
						t.Fatalf("second free: refused %v, errors %v", rep.Refused, rep.Errors)
					}
					testimg.Repair(t, img)
					compareAllocState(t, readAllocState(t, img), want)
				})
			}
			if partial == 0 {
				t.Errorf("no crash point left the orphan partly truncated")
			}
		})
	}
}
