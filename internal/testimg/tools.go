package testimg

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// repairArgs returns xfs_repair's arguments for img. A single-AG filesystem has no secondary
// superblock to check the geometry against, which xfs_repair refuses without -o force_geometry.
func repairArgs(t testing.TB, img string, extra ...string) []string {
	t.Helper()
	args := append([]string{"-f"}, extra...)
	if ParseFields(DB(t, img, "sb 0", "p agcount"))["agcount"] == "1" {
		args = append(args, "-o", "force_geometry")
	}
	return append(args, img)
}

// TryRepair runs `xfs_repair -n` on the image and returns its combined output and exit code
// (0 clean, 1 corruption found, 2 dirty log). It does not fail the test on a non-zero exit.
func TryRepair(t testing.TB, img string) (output string, exit int) {
	t.Helper()
	Need(t, "xfs_repair", "xfs_db")
	out, err := exec.Command(tool("xfs_repair"), repairArgs(t, img, "-n")...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	default:
		t.Fatalf("testimg: xfs_repair: %v", err)
		return "", -1
	}
}

// Repair runs `xfs_repair -n` on the image (no modify) and fails the test with its output unless
// it exits 0.
func Repair(t testing.TB, img string) {
	t.Helper()
	if out, exit := TryRepair(t, img); exit != 0 {
		t.Fatalf("testimg: xfs_repair -n %s: exit %d\n%s", img, exit, out)
	}
}

// Mount loop-mounts the image (`mount -o loop,nouuid[,OPTS]`) on a new directory and returns it:
// nouuid, because tests running at the same time mount copies of one fixture, which share a uuid. The
// cleanup unmounts it unless Unmount already did; the loop device goes with the unmount (mount
// sets autoclear). Mounting a dirty image replays its log: the kernel's reference behaviour.
func Mount(t testing.TB, img string, opts ...string) (mnt string) {
	t.Helper()
	Need(t, "loop", "mount", "umount")
	mnt = t.TempDir() // registered before the unmount cleanup, so removed after it
	o := strings.Join(append([]string{"loop", "nouuid"}, opts...), ",")
	if out, err := exec.Command(tool("mount"), "-o", o, img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("testimg: mount -o %s %s: %v\n%s", o, img, err, out)
	}
	t.Cleanup(func() {
		if mounted(mnt) {
			if err := unmount(mnt); err != nil {
				t.Error(err)
			}
		}
	})
	return mnt
}

// Unmount unmounts a mount point that Mount returned, before the test ends (to look at the image
// the kernel left).
func Unmount(t testing.TB, mnt string) {
	t.Helper()
	if err := unmount(mnt); err != nil {
		t.Fatal(err)
	}
}

func unmount(mnt string) error {
	var out []byte
	var err error
	for try := 0; try < 20; try++ { // a just-closed file can keep the mount busy for a moment
		out, err = exec.Command(tool("umount"), mnt).CombinedOutput()
		if err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("testimg: umount %s: %v\n%s", mnt, err, out)
}

// mounted reports whether dir is a mount point of this mount namespace.
func mounted(dir string) bool {
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && unescapeMount(fields[4]) == dir {
			return true
		}
	}
	return false
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// KernelMountCycle mounts img with the kernel and unmounts it, and returns
// what the kernel logged about it and whether it ran log recovery
// ("Starting recovery"). Tests in other packages mount images at the same
// time, so the messages are told apart by loop device: the image is
// attached to a loop device first, a marker is written to the kernel log
// only then, and only lines about that device after the marker count.
func KernelMountCycle(t testing.TB, img string, opts ...string) (kmsg string, recovered bool) {
	t.Helper()
	Need(t, "loop", "mount", "umount", "losetup", "dmesg")
	out, err := exec.Command(tool("losetup"), "-f", "--show", img).Output()
	if err != nil {
		t.Fatalf("testimg: losetup -f --show %s: %v", img, err)
	}
	dev := strings.TrimSpace(string(out))
	defer exec.Command(tool("losetup"), "-d", dev).Run()
	return KernelMountCycleDev(t, dev, opts...)
}

// KernelMountCycleDev is KernelMountCycle of a block device the test has
// attached itself (a loop device over a partition's byte range: Losetup
// with -o OFFSET --sizelimit SIZE).
func KernelMountCycleDev(t testing.TB, dev string, opts ...string) (kmsg string, recovered bool) {
	t.Helper()
	Need(t, "mount", "umount", "dmesg")
	mark := fmt.Sprintf("xfsfree-test %s %d", dev, time.Now().UnixNano())
	if err := os.WriteFile("/dev/kmsg", []byte(mark+"\n"), 0); err != nil {
		t.Skipf("testimg: cannot write a marker to /dev/kmsg: %v", err)
	}
	mnt := t.TempDir()
	// nouuid: copies of one fixture, which share a uuid, are mounted by
	// tests running at the same time.
	args := []string{"-o", strings.Join(append([]string{"nouuid"}, opts...), ","), dev, mnt}
	if out, err := exec.Command(tool("mount"), args...).CombinedOutput(); err != nil {
		t.Fatalf("testimg: mount %s: %v\n%s", dev, err, out)
	}
	if err := unmount(mnt); err != nil {
		t.Fatal(err)
	}
	log, err := exec.Command(tool("dmesg")).Output()
	if err != nil {
		t.Skipf("testimg: dmesg: %v", err)
	}
	s := string(log)
	i := strings.LastIndex(s, mark)
	if i < 0 {
		t.Fatalf("testimg: marker %q not in dmesg", mark)
	}
	var mine []string
	name := "(" + filepath.Base(dev) + ")"
	for _, l := range strings.Split(s[i+len(mark):], "\n") {
		if strings.Contains(l, name) {
			mine = append(mine, l)
		}
	}
	kmsg = strings.Join(mine, "\n")
	return kmsg, strings.Contains(kmsg, "Starting recovery")
}

// Losetup attaches img to a free loop device (`losetup -f --show ARGS img`: -o OFFSET,
// --sizelimit SIZE, -r...) and detaches it at cleanup.
func Losetup(t testing.TB, img string, args ...string) string {
	t.Helper()
	Need(t, "loop", "losetup")
	out, err := exec.Command(tool("losetup"), append(append([]string{"-f", "--show"}, args...), img)...).CombinedOutput()
	if err != nil {
		t.Fatalf("testimg: losetup %v %s: %v\n%s", args, img, err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		var out []byte
		var err error
		for try := 0; try < 20; try++ { // a just-closed device can stay busy for a moment
			if out, err = exec.Command(tool("losetup"), "-d", dev).CombinedOutput(); err == nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Errorf("testimg: losetup -d %s: %v\n%s", dev, err, out)
	})
	return dev
}

// MountDev mounts a block device (`mount -o nouuid[,OPTS] dev`) on a new directory and returns
// it; the cleanup unmounts it unless Unmount already did.
func MountDev(t testing.TB, dev string, opts ...string) (mnt string) {
	t.Helper()
	Need(t, "mount", "umount")
	mnt = t.TempDir()
	o := strings.Join(append([]string{"nouuid"}, opts...), ",")
	if out, err := exec.Command(tool("mount"), "-o", o, dev, mnt).CombinedOutput(); err != nil {
		t.Fatalf("testimg: mount -o %s %s: %v\n%s", o, dev, err, out)
	}
	t.Cleanup(func() {
		if mounted(mnt) {
			if err := unmount(mnt); err != nil {
				t.Error(err)
			}
		}
	})
	return mnt
}

// RepairFix runs plain `xfs_repair` (it modifies the image; no -n, no -L) and returns its
// combined output and exit code: 0 repaired or nothing to repair; 2 when it refuses a dirty log.
func RepairFix(t testing.TB, img string) (output string, exit int) {
	t.Helper()
	Need(t, "xfs_repair", "xfs_db")
	out, err := exec.Command(tool("xfs_repair"), repairArgs(t, img)...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	default:
		t.Fatalf("testimg: xfs_repair: %v", err)
		return "", -1
	}
}
