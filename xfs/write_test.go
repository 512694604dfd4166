package xfs

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
)

// labelOf reads sb_fname with xfs_db.
func labelOf(t *testing.T, img string) string {
	t.Helper()
	v := strings.Trim(testimg.ParseFields(testimg.DB(t, img, "sb 0", "p fname"))["fname"], `"`)
	return strings.ReplaceAll(v, `\000`, "")
}

// mountCycle mounts and unmounts img with the kernel and returns what the
// kernel logged meanwhile.
func mountCycle(t *testing.T, img string) string {
	t.Helper()
	kmsg, _ := testimg.KernelMountCycle(t, img)
	return kmsg
}

func recovered(kmsg string) bool { return strings.Contains(kmsg, "Starting recovery") }

func copyImg(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy.img")
	if out, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	return dst
}

func TestOpenWriteRefusesDirtyLog(t *testing.T) {
	testimg.Need(t, "zstd")
	img := testimg.Path(t, "orphans")
	_, err := OpenWrite(img, Options{})
	if !errors.Is(err, ErrDirtyLog) || !strings.Contains(err.Error(), "xfsfree recover") {
		t.Fatalf("OpenWrite of a dirty log: %v", err)
	}
}

// runLabels is the session the tests crash: OpenWrite, one transaction per
// label, Finish. hook, if set, is installed on the device first. It returns
// how many SetLabel calls returned success.
func runLabels(t *testing.T, img string, labels []string, checkpointEach bool, after, tear int) (committed int, err error) {
	t.Helper()
	fs, err := OpenWrite(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	if after >= 0 || tear > 0 {
		fs.Dev.SetWriteHook(CrashHook(fs.Dev, after, tear, nil))
	}
	for _, l := range labels {
		if _, err := fs.SetLabel(l); err != nil {
			return committed, err
		}
		committed++
		if checkpointEach {
			if err := fs.Checkpoint(); err != nil {
				return committed, err
			}
		}
	}
	return committed, fs.Finish()
}

func TestSetLabelFinish(t *testing.T) {
	testimg.Need(t, "zstd")
	img := testimg.Path(t, "default")
	// Wrong summary counters: Finish recomputes them from the AG headers.
	want := testimg.Superblock(t, img)
	testimg.DBWrite(t, img, "sb 0", "write ifree 3", "write fdblocks 5")
	if _, err := runLabels(t, img, []string{"one", "two", "three"}, false, -1, 0); err != nil {
		t.Fatal(err)
	}
	got := testimg.Superblock(t, img)
	for _, f := range []string{"icount", "ifree", "fdblocks"} {
		if got[f] != want[f] {
			t.Errorf("sb %s = %s after Finish, want %s (mkfs's)", f, got[f], want[f])
		}
	}
	if l := labelOf(t, img); l != "three" {
		t.Fatalf("label %q", l)
	}
	fs := openRO(t, img)
	st, err := fs.LogState()
	if err != nil || !st.Clean || !st.Unmounted {
		t.Fatalf("log after Finish: %v, %v", st, err)
	}
	fs.Close()
	testimg.Repair(t, img)
	if k := mountCycle(t, img); recovered(k) {
		t.Fatalf("kernel recovered a finished log:\n%s", k)
	}
	// A second session on the now-clean log.
	if _, err := runLabels(t, img, []string{"again"}, true, -1, 0); err != nil {
		t.Fatal(err)
	}
	testimg.Repair(t, img)
	if k := mountCycle(t, img); recovered(k) {
		t.Fatalf("kernel recovered a finished log:\n%s", k)
	}
	if l := labelOf(t, img); l != "again" {
		t.Fatalf("label %q", l)
	}
}

// A crash after a commit and before its checkpoint: the kernel recovers
// the change. A crash that drops the commit's record: the change is absent.
func TestCrashAroundCommit(t *testing.T) {
	testimg.Need(t, "zstd")
	base := testimg.Path(t, "default")
	orig := labelOf(t, base)

	// Writes of a session that sets one label: clear stale blocks (1),
	// the record (2), then Finish's record, checkpoint and unmount record.
	img := copyImg(t, base)
	n, err := runLabels(t, img, []string{"durable"}, false, 2, 0)
	if n != 1 || !errors.Is(err, ErrCrashed) {
		t.Fatalf("crash after write 2: %d committed, %v", n, err)
	}
	if labelOf(t, img) != orig {
		t.Fatal("label written in place before the checkpoint")
	}
	if k := mountCycle(t, img); !recovered(k) || !strings.Contains(k, "Ending recovery") {
		t.Fatalf("kernel did not recover:\n%s", k)
	}
	if l := labelOf(t, img); l != "durable" {
		t.Fatalf("label after kernel recovery %q, want durable", l)
	}
	testimg.Repair(t, img)

	img = copyImg(t, base)
	n, err = runLabels(t, img, []string{"lost"}, false, 1, 0)
	if n != 0 || !errors.Is(err, ErrCrashed) {
		t.Fatalf("crash after write 1: %d committed, %v", n, err)
	}
	mountCycle(t, img)
	if l := labelOf(t, img); l != orig {
		t.Fatalf("label after kernel mount %q, want %q", l, orig)
	}
	testimg.Repair(t, img)
}

// The crash matrix: `set-label a b c` crashed at every write, and torn at
// every write. After the kernel's recovery the label is the one of a prefix
// of the transactions (at least every commit that returned), and
// xfs_repair -n passes.
func TestCrashMatrix(t *testing.T) {
	testimg.Need(t, "zstd")
	base := testimg.Path(t, "default")
	orig := labelOf(t, base)
	labels := []string{"a", "b", "c"}
	states := append([]string{orig}, labels...)
	for _, checkpointEach := range []bool{false, true} {
		// Count the writes of a complete run.
		img := copyImg(t, base)
		fs, err := OpenWrite(img, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range labels {
			if _, err := fs.SetLabel(l); err != nil {
				t.Fatal(err)
			}
			if checkpointEach {
				if err := fs.Checkpoint(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := fs.Finish(); err != nil {
			t.Fatal(err)
		}
		total := int(fs.Dev.Stats().Writes)
		fs.Close()
		t.Logf("checkpoint each %v: %d writes", checkpointEach, total)
		for _, tear := range []bool{false, true} {
			for n := 0; n <= total; n++ {
				if tear && n == 0 {
					continue
				}
				name := fmt.Sprintf("ckpt=%v/tear=%v/N=%d", checkpointEach, tear, n)
				img := copyImg(t, base)
				after, tearAt := n, 0
				if tear {
					after, tearAt = -1, n
				}
				committed, err := runLabels(t, img, labels, checkpointEach, after, tearAt)
				if err != nil && !errors.Is(err, ErrCrashed) {
					t.Fatalf("%s: %v", name, err)
				}
				ours := copyImg(t, img)
				k := mountCycle(t, img)
				l := labelOf(t, img)
				i := slices.Index(states, l)
				if i < 0 || i < committed {
					t.Fatalf("%s: label %q after kernel recovery; %d transactions had committed\n%s", name, l, committed, k)
				}
				if n == total && !tear && (l != "c" || recovered(k)) {
					t.Fatalf("%s: complete run: label %q, recovery %v", name, l, recovered(k))
				}
				if out, code := testimg.TryRepair(t, img); code != 0 {
					t.Fatalf("%s: xfs_repair -n exit %d\n%s", name, code, out)
				}
				// xfsfree's recovery of the same crash gives the same.
				rep, err := Recover(ours, RecoverOptions{})
				if err != nil {
					t.Fatalf("%s: xfsfree recover: %v", name, err)
				}
				if lo := labelOf(t, ours); lo != l {
					t.Fatalf("%s: label %q after xfsfree recover, %q after the kernel's", name, lo, l)
				}
				if out, code := testimg.TryRepair(t, ours); code != 0 {
					t.Fatalf("%s: xfs_repair -n after xfsfree recover: exit %d\n%s", name, code, out)
				}
				if k := mountCycle(t, ours); recovered(k) {
					t.Fatalf("%s: kernel recovered after xfsfree recover:\n%s", name, k)
				}
				t.Logf("%s: %d committed, label %q, kernel recovery %v, xfsfree recover clean=%v", name, committed, l, recovered(k), rep.Clean)
			}
		}
	}
}

// crashPoints runs fn in parallel subtests of a subtest "points", at every
// write point of a run of total writes: crashed after n writes (n from 0
// to total) and torn at write n (n from 1 to total).
func crashPoints(t *testing.T, total int, fn func(t *testing.T, n int, torn bool)) {
	t.Helper()
	t.Run("points", func(t *testing.T) {
		for _, torn := range []bool{false, true} {
			for n := 0; n <= total; n++ {
				if torn && n == 0 {
					continue
				}
				name := fmt.Sprintf("crash=%d", n)
				if torn {
					name = fmt.Sprintf("tear=%d", n)
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					fn(t, n, torn)
				})
			}
		}
	})
}
