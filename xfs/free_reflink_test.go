package xfs

// Reflinked orphans against the kernel (issue 9): frozen snapshots made at
// test time whose orphans share extents — reflinked copies (cp
// --reflink=always), copies of copies (refcount 3), copies partly
// overwritten (CoW), an O_TMPFILE clone, originals, copies and both sides
// of a pair orphaned, a file whose partner is gone (REFLINK flag, nothing
// shared), reflinked files with btree forks of hundreds of extents — with
// and without rmapbt. `xfsfree recover` and free --orphans on one copy, a
// kernel mount and unmount of another: the same SpaceState (sb counters;
// per AG the AGI and AGF counters, unlinked buckets, free space; every
// inobt, finobt, bnobt, cntbt, refcountbt and rmapbt record), both pass
// xfs_repair -n, the kernel mounts ours without recovery, and every live
// file keeps its bytes (md5 taken before the snapshot), also after a file
// as large as the free space allows has been written over the freed space
// through a mount (a shared block freed by mistake would be overwritten).

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"golang.org/x/sys/unix"
)

// writeFragments writes n extents of ext blocks of random bytes, each
// followed by a hole of gap blocks, and fsyncs the file.
func writeFragments(t testing.TB, path string, n, ext, gap, bs int, rng *rand.Rand) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, ext*bs)
	for i := 0; i < n; i++ {
		for j := range buf {
			buf[j] = byte(rng.Uint32())
		}
		if _, err := f.WriteAt(buf, int64(i*(ext+gap)*bs)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// overwrite rewrites blocks of a file in place with random bytes (a CoW
// of a shared extent), fsynced; direct uses O_DIRECT.
func overwrite(t testing.TB, path string, blocks []int, bs int, direct bool, rng *rand.Rand) {
	t.Helper()
	flags := os.O_RDWR
	if direct {
		flags |= syscall.O_DIRECT
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// O_DIRECT wants an aligned buffer: a whole page from mmap.
	buf, err := unix.Mmap(-1, 0, bs, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(buf)
	for _, b := range blocks {
		for j := range buf {
			buf[j] = byte(rng.Uint32())
		}
		if _, err := f.WriteAt(buf, int64(b*bs)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func md5File(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func mustRun(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// reflinkSet is a frozen snapshot with reflinked orphans: the live files'
// md5 sums (by path relative to the mount) and the orphans by name.
type reflinkSet struct {
	snap    string
	live    map[string]string
	orphans map[string]uint64
}

// reflinkSnapshot makes the snapshot on a 300 MiB filesystem of 4 AGs
// (mkfs.xfs options opts). The files (4 KiB blocks; * = orphaned: held
// open and unlinked when the filesystem is frozen):
//
//	a/src      40 extents of 4 blocks; a/c1* its copy; a/c2 a copy of c1
//	           (refcount 3), then blocks CoW'd (buffered and O_DIRECT)
//	b/d*, b/d1* 20 extents of 2 blocks and its copy: both sides orphaned
//	b/e*       12 extents of 8 blocks; b/e1 its copy, partly overwritten
//	a/tmp*     an O_TMPFILE clone of a/src (FICLONE), never linked
//	c/solo*    its copy was removed: REFLINK set, nothing shared
//	c/big*     600 extents (a btree fork); c/bigc its copy, 30 blocks CoW'd
//	d/pair*, d/pairc* 300 extents and its copy, both orphaned (btree forks)
//	d/plain*   a file never copied
func reflinkSnapshot(t *testing.T, opts ...string) *reflinkSet {
	t.Helper()
	testimg.Need(t, "xfs_io", "cp", "xfs_freeze", "loop", "mkfs.xfs", "xfs_db", "xfs_repair")
	set := &reflinkSet{live: map[string]string{}, orphans: map[string]uint64{}}
	const bs = 4096
	rng := rand.New(rand.NewPCG(9, uint64(len(opts))))
	args := append([]string{"-d", "agcount=4"}, opts...)
	set.snap = snapshotImage(t, 300<<20, nil, args, nil, func(t *testing.T, mnt string) []*os.File {
		p := func(s string) string { return filepath.Join(mnt, s) }
		for _, d := range []string{"a", "b", "c", "d"} {
			if err := os.Mkdir(p(d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		writeFragments(t, p("a/src"), 40, 4, 4, bs, rng)
		mustRun(t, "cp", "--reflink=always", p("a/src"), p("a/c1"))
		mustRun(t, "cp", "--reflink=always", p("a/c1"), p("a/c2"))
		overwrite(t, p("a/c2"), []int{1, 9, 10, 33, 64}, bs, false, rng)
		overwrite(t, p("a/c2"), []int{80, 81, 82, 83, 120}, bs, true, rng)
		writeFragments(t, p("b/d"), 20, 2, 3, bs, rng)
		mustRun(t, "cp", "--reflink=always", p("b/d"), p("b/d1"))
		writeFragments(t, p("b/e"), 12, 8, 2, bs, rng)
		mustRun(t, "cp", "--reflink=always", p("b/e"), p("b/e1"))
		overwrite(t, p("b/e1"), []int{0, 3, 41, 42, 43, 44, 45, 46, 47, 48}, bs, false, rng)
		writeFragments(t, p("c/solo"), 10, 3, 1, bs, rng)
		mustRun(t, "cp", "--reflink=always", p("c/solo"), p("c/soloc"))
		if err := os.Remove(p("c/soloc")); err != nil {
			t.Fatal(err)
		}
		writeFragments(t, p("c/big"), 600, 1, 1, bs, rng)
		mustRun(t, "cp", "--reflink=always", p("c/big"), p("c/bigc"))
		var cow []int
		for i := 0; i < 30; i++ {
			cow = append(cow, 40*i)
		}
		overwrite(t, p("c/bigc"), cow, bs, false, rng)
		writeFragments(t, p("d/pair"), 300, 1, 2, bs, rng)
		mustRun(t, "cp", "--reflink=always", p("d/pair"), p("d/pairc"))
		writeFragments(t, p("d/plain"), 30, 1, 1, bs, rng)

		// The O_TMPFILE clone.
		fd, err := unix.Open(p("a"), unix.O_TMPFILE|unix.O_RDWR, 0o644)
		if err != nil {
			t.Fatalf("O_TMPFILE: %v", err)
		}
		tmp := os.NewFile(uintptr(fd), "tmp")
		src, err := os.Open(p("a/src"))
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.IoctlFileClone(int(tmp.Fd()), int(src.Fd())); err != nil {
			t.Fatalf("FICLONE into the O_TMPFILE: %v", err)
		}
		src.Close()
		if err := tmp.Sync(); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(tmp.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		set.orphans["a/tmp"] = st.Ino
		held := []*os.File{tmp}
		for _, n := range []string{"a/c1", "b/d", "b/d1", "b/e", "c/solo", "c/big", "d/pair", "d/pairc", "d/plain"} {
			var st unix.Stat_t
			if err := unix.Stat(p(n), &st); err != nil {
				t.Fatal(err)
			}
			set.orphans[n] = st.Ino
			held = append(held, testimg.HoldUnlinked(t, p(n)))
		}
		for _, n := range []string{"a/src", "a/c2", "b/e1", "c/bigc"} {
			set.live[n] = md5File(t, p(n))
		}
		if err := f2sync(mnt); err != nil {
			t.Fatal(err)
		}
		return held
	})
	return set
}

// checkLive mounts img and checks every live file's md5; with fill, it
// then writes a file of random bytes as large as the free space allows
// (over every block the free made free), syncs, drops the caches and
// checks them again.
func (s *reflinkSet) checkLive(t *testing.T, img string, fill bool) {
	t.Helper()
	mnt := testimg.Mount(t, img)
	check := func(when string) {
		for n, want := range s.live {
			if got := md5File(t, filepath.Join(mnt, n)); got != want {
				t.Errorf("%s: %s has md5 %s, had %s before the snapshot", when, n, got, want)
			}
		}
	}
	check("after the free")
	if fill {
		var st unix.Statfs_t
		if err := unix.Statfs(mnt, &st); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(mnt, "fill"))
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		buf := make([]byte, 1<<20)
		var written int64
		for {
			for i := 0; i < len(buf); i += 8 {
				v := rng.Uint64()
				for k := 0; k < 8; k++ {
					buf[i+k] = byte(v >> (8 * k))
				}
			}
			n, err := f.Write(buf)
			written += int64(n)
			if err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("writing the fill file: %v", err)
				}
				break
			}
		}
		f.Sync()
		f.Close()
		t.Logf("fill: %d MiB written (%d MiB were free)", written>>20, (int64(st.Bavail)*st.Bsize)>>20)
		testimg.Unmount(t, mnt)
		mnt = testimg.Mount(t, img)
		check("after filling the free space")
	}
	testimg.Unmount(t, mnt)
}

// counts returns, for a log line, the records of every tree.
func treeCounts(s testimg.SpaceState) string {
	var parts []string
	for _, typ := range []string{"inobt", "finobt", "bnobt", "cntbt", "refcntbt", "rmapbt"} {
		n := len(s.Records(typ))
		if n > 0 || typ == "refcntbt" {
			parts = append(parts, fmt.Sprintf("%s %d", typ, n))
		}
	}
	return strings.Join(parts, ", ")
}

// TestFreeReflinkedOrphans: the snapshot's reflinked (and plain) orphans,
// with and without rmapbt, freed by recover + free --orphans, in one
// transaction each and in steps of 7 extents (reflinked extents cut
// short to 7 blocks), equal the kernel's mount: SpaceState, xfs_repair
// -n, no recovery at the next mount, live files' bytes kept also after
// the free space is written over.
func TestFreeReflinkedOrphans(t *testing.T) {
	for _, v := range []struct {
		name string
		mkfs []string
	}{{"default", nil}, {"rmapbt", []string{"-m", "rmapbt=1"}}} {
		t.Run(v.name, func(t *testing.T) {
			set := reflinkSnapshot(t, v.mkfs...)
			orphans := len(set.orphans)
			var reflinked int
			for n, ino := range set.orphans {
				f := testimg.Inode(t, set.snap, ino)
				flags2, _ := testimg.ParseUint(f["v3.flags2"])
				if flags2&2 != 0 {
					reflinked++
				} else if n != "d/plain" {
					t.Errorf("orphan %s (inode %d) has no REFLINK flag: flags2 %#x", n, ino, flags2)
				}
				if strings.HasPrefix(n, "c/big") || strings.HasPrefix(n, "d/pair") {
					if f["core.format"] != "3 (btree)" {
						t.Errorf("orphan %s (inode %d) is not a btree fork: %s", n, ino, f["core.format"])
					}
				}
			}
			ref := copyFile(t, set.snap, ".kernel")
			testimg.Unmount(t, testimg.Mount(t, ref))
			testimg.Repair(t, ref)
			want := testimg.ReadSpaceState(t, ref)
			if n := len(want.Records("refcntbt")); n == 0 {
				t.Fatalf("the kernel's result has no refcount records: the snapshot shares nothing")
			}
			for _, tc := range []struct {
				name string
				o    FreeOptions
			}{{"whole", FreeOptions{Orphans: true}}, {"steps", FreeOptions{Orphans: true, TruncateExtents: 7}}} {
				t.Run(tc.name, func(t *testing.T) {
					img := copyFile(t, set.snap, "."+tc.name)
					if _, err := Recover(img, RecoverOptions{}); err != nil {
						t.Fatalf("recover: %v", err)
					}
					rep := runFree(t, img, tc.o)
					if rep.Failed() || rep.InodesFreed != orphans {
						t.Fatalf("freed %d of %d orphans; refused %v, errors %v", rep.InodesFreed, orphans, rep.Refused, rep.Errors)
					}
					if tc.o.TruncateExtents > 0 && rep.TruncateSteps < 20 {
						t.Errorf("%d truncation steps: the steps were not exercised", rep.TruncateSteps)
					}
					// The kernel's mount, its log being dirty, also frees the
					// CoW staging extents the live copies' overwrites left
					// (their speculative CoW preallocation).
					cow := runFreeCow(t, img, CowOptions{})
					testimg.Repair(t, img)
					got := testimg.ReadSpaceState(t, img)
					compareLikeKernel(t, got, want)
					t.Logf("%d orphans freed (%d reflinked) in %d transactions (%d truncation steps), %d CoW leftovers (%d blocks) freed; compared: %s",
						rep.InodesFreed, reflinked, rep.Transactions, rep.TruncateSteps, cow.Freed, cow.Blocks, treeCounts(got))
					if _, recovered := testimg.KernelMountCycle(t, img); recovered {
						t.Errorf("the kernel ran log recovery on the image xfsfree freed")
					}
					set.checkLive(t, img, tc.name == "whole")
				})
			}
		})
	}
}

// compareLikeKernel compares a SpaceState with the kernel's, the free
// space as a set of blocks (testimg.SpaceDiffOptions.AGFLAgnostic: the
// kernel's AGFL refills avoid busy extents), and logs how many exact
// differences in the placement of the AGFL and free-space btree blocks
// that leaves.
func compareLikeKernel(t *testing.T, got, want testimg.SpaceState) {
	t.Helper()
	testimg.CompareSpaceState(t, got, want, testimg.SpaceDiffOptions{AGFLAgnostic: true})
	if d := got.Diff(want, testimg.SpaceDiffOptions{}); len(d) > 0 {
		t.Logf("%d difference(s) in where the AGFL and free-space btree blocks are (not compared), e.g. %.300s", len(d), d[0])
	}
}

// runFreeCow runs FreeCowLeftovers on img, failing the test on an error or
// a failed free.
func runFreeCow(t *testing.T, img string, o CowOptions) *CowReport {
	t.Helper()
	fs, err := OpenWrite(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	rep, err := fs.FreeCowLeftovers(o)
	if err != nil || rep.Failed() {
		t.Fatalf("FreeCowLeftovers: %v; errors %v", err, rep.Errors)
	}
	return rep
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
