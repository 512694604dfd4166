package xfs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// snapshotImage makes, at run time, the field snapshot of a live
// filesystem with deleted-but-open files (DESIGN.md "Fixtures"): mkfs.xfs
// with env and args on a sparse file of size bytes, mounted with opts;
// populate creates files in the mount point and returns the ones it holds
// open and unlinked; the mount is frozen, the image copied, thawed, the
// files closed and the filesystem unmounted. It returns the copy: orphans
// on the AGI unlinked lists and a dirty log.
func snapshotImage(t *testing.T, size int64, env, args, opts []string, populate func(t *testing.T, dir string) []*os.File) string {
	t.Helper()
	testimg.Need(t, "mkfs.xfs", "xfs_freeze", "loop")
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
	cmd := exec.Command(lookTool("mkfs.xfs"), append(append([]string{"-q", "-f"}, args...), live)...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs %v: %v\n%s", args, err, out)
	}
	mnt := testimg.Mount(t, live, opts...)
	held := populate(t, mnt)
	snap := filepath.Join(dir, "snapshot.img")
	if out, err := exec.Command(lookTool("xfs_freeze"), "-f", mnt).CombinedOutput(); err != nil {
		t.Fatalf("xfs_freeze -f: %v\n%s", err, out)
	}
	out, err := exec.Command("cp", "--sparse=always", live, snap).CombinedOutput()
	if out2, err2 := exec.Command(lookTool("xfs_freeze"), "-u", mnt).CombinedOutput(); err2 != nil {
		t.Fatalf("xfs_freeze -u: %v\n%s", err2, out2)
	}
	if err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	for _, f := range held {
		f.Close()
	}
	testimg.Unmount(t, mnt)
	return snap
}

// clearLog zeroes the log of img and has xfs_db format it clean with a
// cycle above every LSN the metadata carries (as cleanOrphans does for
// the committed fixtures): the orphans stay, the log is clean.
func clearLog(t *testing.T, img string) {
	t.Helper()
	fs := openRO(t, img)
	start, n := fs.G.LogStartDaddr, fs.G.LogBBs
	fs.Close()
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, n*ondisk.BBSize), start*ondisk.BBSize); err != nil {
		t.Fatal(err)
	}
	f.Close()
	testimg.DBWrite(t, img, "logformat -c 5")
}

// kmsgMark writes a unique line to the kernel log and returns it.
func kmsgMark(t *testing.T, what string) string {
	t.Helper()
	mark := fmt.Sprintf("xfsfree-test %s %d", what, os.Getpid())
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("cannot write the kernel log: %v", err)
	}
	fmt.Fprintln(f, mark)
	f.Close()
	return mark
}

// kmsgSince returns the kernel log after the line holding mark.
func kmsgSince(t *testing.T, mark string) string {
	t.Helper()
	out, err := exec.Command("dmesg").CombinedOutput()
	if err != nil {
		t.Skipf("dmesg: %v", err)
	}
	s := string(out)
	if i := strings.LastIndex(s, mark); i >= 0 {
		return s[i+len(mark):]
	}
	t.Fatalf("mark %q not in the kernel log", mark)
	return ""
}

// quotaReport is `xfs_quota -x -c 'report -ugbin'` of a mounted
// filesystem without its header lines.
func quotaReport(t *testing.T, mnt string) string {
	t.Helper()
	out, err := exec.Command(lookTool("xfs_quota"), "-x", "-c", "report -ugbi -n -N", mnt).CombinedOutput()
	if err != nil {
		t.Fatalf("xfs_quota report: %v\n%s", err, out)
	}
	return string(out)
}

// TestFreeQuota: orphans of a filesystem mounted with usrquota,grpquota
// (its superblock has quota inodes and the ACCT, ENFD and CHKD flags).
// After free --orphans the CHKD flags are cleared (as xfs_repair does) and
// the report says so; xfs_repair -n passes; the kernel mounts the image
// with quotas, says a quotacheck is needed and runs it, and then reports
// the same usage as a kernel that processed the orphans itself.
func TestFreeQuota(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair", "xfs_quota", "loop")
	needKernelQuota(t)
	opts := []string{"usrquota", "grpquota"}
	snap := snapshotImage(t, 300<<20, nil, nil, opts, func(t *testing.T, dir string) []*os.File {
		var held []*os.File
		for i := 0; i < 150; i++ {
			p := filepath.Join(dir, fmt.Sprintf("f%d", i))
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte(strings.Repeat("q", 4096*(i%7+1)))); err != nil {
				t.Fatal(err)
			}
			uid, gid := 1000+i%3, 2000+i%2
			if err := f.Chown(uid, gid); err != nil {
				t.Fatal(err)
			}
			if i%4 != 0 {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				held = append(held, f)
			} else {
				f.Close()
			}
		}
		if err := f2sync(dir); err != nil {
			t.Fatal(err)
		}
		return held
	})
	sb := testimg.ParseFields(testimg.DB(t, snap, "sb 0", "p qflags uquotino gquotino"))
	qf, err := testimg.ParseUint(sb["qflags"])
	if err != nil {
		t.Fatalf("qflags %q", sb["qflags"])
	}
	if qf&ondisk.QFlagAllChkd == 0 || sb["uquotino"] == "null" || sb["gquotino"] == "null" {
		t.Fatalf("the snapshot has no quota accounting: %v", sb)
	}
	ref := copyFile(t, snap, ".kernel")
	img := copyFile(t, snap, ".xfsfree")
	clearLog(t, img)
	rep := runFree(t, img, FreeOptions{Orphans: true})
	if rep.Failed() || rep.InodesFreed != 112 {
		t.Fatalf("freed %d (want 112), refused %v, errors %v", rep.InodesFreed, rep.Refused, rep.Errors)
	}
	if !strings.Contains(rep.QuotaNote, "cleared") {
		t.Errorf("report's quota note: %q", rep.QuotaNote)
	}
	qf2, _ := testimg.ParseUint(testimg.ParseFields(testimg.DB(t, img, "sb 0", "p qflags"))["qflags"])
	if qf2&ondisk.QFlagAllChkd != 0 || qf2 != qf&^ondisk.QFlagAllChkd {
		t.Errorf("qflags after free %#x, want %#x (the CHKD bits of %#x cleared)", qf2, qf&^ondisk.QFlagAllChkd, qf)
	}
	testimg.Repair(t, img)

	// The kernel's own processing of the orphans, with quotas.
	mnt := testimg.Mount(t, ref, opts...)
	want := quotaReport(t, mnt)
	testimg.Unmount(t, mnt)

	mark := kmsgMark(t, "quota "+filepath.Base(img))
	mnt = testimg.Mount(t, img, opts...)
	got := quotaReport(t, mnt)
	log := kmsgSince(t, mark)
	testimg.Unmount(t, mnt)
	if !strings.Contains(log, "Quotacheck needed") || !strings.Contains(log, "Quotacheck: Done") {
		t.Errorf("the kernel did not run a quotacheck at mount:\n%s", log)
	}
	if got != want {
		t.Errorf("quota usage after xfsfree and a quotacheck:\n%s\nkernel:\n%s", got, want)
	}
	t.Logf("qflags %#x -> %#x; quota report:\n%s", qf, qf2, got)
	testimg.Repair(t, img)
}

// needKernelQuota skips a test when the running kernel's XFS has no quota
// support (CONFIG_XFS_QUOTA): it cannot make or check quota images.
func needKernelQuota(t *testing.T) {
	t.Helper()
	out, err := exec.Command("sh", "-c", "zcat /proc/config.gz 2>/dev/null || cat /boot/config-$(uname -r) 2>/dev/null").Output()
	if err == nil && strings.Contains(string(out), "# CONFIG_XFS_QUOTA is not set") {
		t.Skip("the running kernel has no XFS quota support (CONFIG_XFS_QUOTA is not set): cannot mount with usrquota,grpquota")
	}
}

// TestFreeQuotaFlags: an orphan fixture whose superblock says user and
// group quota accounting and enforcement are on and checked (qflags set
// with xfs_db: the kernel here may have no quota support to make a real
// one; TestFreeQuota does that where it has). free --orphans clears
// exactly the CHKD bits and says so, a dry run says it would, and the
// image passes xfs_repair -n and mounts.
func TestFreeQuotaFlags(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair", "loop")
	const on = 0x0001 | 0x0002 | 0x0004 | 0x0040 | 0x0080 | 0x0100 // U/G ACCT, ENFD, CHKD
	img := cleanOrphans(t, "orphans")
	testimg.DBWrite(t, img, "sb 0", fmt.Sprintf("write qflags %#x", on))
	fs := openRO(t, img)
	dry, err := fs.Free(FreeOptions{Orphans: true, DryRun: true})
	fs.Close()
	if err != nil || !strings.Contains(dry.QuotaNote, "would be cleared") {
		t.Errorf("dry run: %v, quota note %q", err, dry.QuotaNote)
	}
	rep := runFree(t, img, FreeOptions{Orphans: true})
	if rep.Failed() || !strings.Contains(rep.QuotaNote, "cleared") {
		t.Fatalf("refused %v, errors %v, quota note %q", rep.Refused, rep.Errors, rep.QuotaNote)
	}
	qf, err := testimg.ParseUint(testimg.ParseFields(testimg.DB(t, img, "sb 0", "p qflags"))["qflags"])
	if err != nil || qf != on&^ondisk.QFlagAllChkd {
		t.Errorf("qflags after free %#x (%v), want %#x", qf, err, on&^ondisk.QFlagAllChkd)
	}
	testimg.Repair(t, img)
	testimg.Unmount(t, testimg.Mount(t, img))
}

// f2sync syncs the filesystem holding dir (syncfs), so the snapshot's
// metadata is on disk as a freeze leaves it.
func f2sync(dir string) error {
	return exec.Command("sync", "-f", dir).Run()
}
