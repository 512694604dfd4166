package testimg

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Snapshot makes, at test time, the field snapshot of a live filesystem
// with deleted-but-open files (DESIGN.md "Fixtures"): mkfs.xfs with args on
// a sparse file of size bytes in t.TempDir(), loop-mounted with opts;
// populate creates files under the mount point, opens, unlinks and
// returns the ones to hold (HoldUnlinked helps); the filesystem is synced,
// frozen, the image copied sparsely, thawed, the files closed and the
// filesystem unmounted. It returns the copy: orphans on the AGI unlinked
// lists and a dirty log. The live image is removed.
func Snapshot(t testing.TB, size int64, args, opts []string, populate func(t testing.TB, mnt string) []*os.File) string {
	t.Helper()
	Need(t, "mkfs.xfs", "xfs_freeze", "loop", "mount", "umount")
	dir := t.TempDir()
	live := filepath.Join(dir, "live.img")
	f, err := os.Create(live)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command(tool("mkfs.xfs"), append(append([]string{"-q", "-f"}, args...), live)...).CombinedOutput(); err != nil {
		t.Fatalf("testimg: mkfs.xfs %v: %v\n%s", args, err, out)
	}
	mnt := Mount(t, live, opts...)
	held := populate(t, mnt)
	defer func() {
		for _, f := range held {
			f.Close()
		}
	}()
	if out, err := exec.Command("sync", "-f", mnt).CombinedOutput(); err != nil {
		t.Fatalf("testimg: sync -f: %v\n%s", err, out)
	}
	snap := filepath.Join(dir, "snapshot.img")
	if out, err := exec.Command(tool("xfs_freeze"), "-f", mnt).CombinedOutput(); err != nil {
		t.Fatalf("testimg: xfs_freeze -f: %v\n%s", err, out)
	}
	cpErr := CopySparse(snap, live)
	if out, err := exec.Command(tool("xfs_freeze"), "-u", mnt).CombinedOutput(); err != nil {
		t.Fatalf("testimg: xfs_freeze -u: %v\n%s", err, out)
	}
	if cpErr != nil {
		t.Fatalf("testimg: copying the frozen image: %v", cpErr)
	}
	for _, f := range held {
		f.Close()
	}
	held = nil
	Unmount(t, mnt)
	os.Remove(live)
	return snap
}

// HoldUnlinked opens path without following a symlink or blocking on a
// fifo (O_PATH|O_NOFOLLOW: it holds the inode itself), unlinks it (rmdir
// for a directory) and returns the open file: an orphan while it is held.
func HoldUnlinked(t testing.TB, path string) *os.File {
	t.Helper()
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("testimg: open %s: %v", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		err = os.Remove(path)
	} else {
		err = unix.Unlink(path)
	}
	if err != nil {
		unix.Close(fd)
		t.Fatalf("testimg: unlink %s: %v", path, err)
	}
	return os.NewFile(uintptr(fd), path)
}
