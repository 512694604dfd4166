package xfs

// Log recovery against the kernel's. The kernel is the judge: the same
// dirty image is recovered by xfsfree on one copy and by a kernel mount and
// umount on another, and xfs_db must print the same superblock, AGIs, AGFs
// and logged inodes for both.
//
// What a kernel mount does besides replaying the log (xlog_recover_finish,
// which runs on read-only mounts too): it finishes intents (refused by
// recover, so none in the compared images), frees the inodes on the AGI
// unlinked lists, and at umount logs the superblock (a new sb_lsn and
// CRC). The shutdown images are made so that no inode is left on an
// unlinked list (the deletes are followed by a sync, which runs the
// deferred inactivation), so everything but sb_lsn/sb_crc must match. On
// the frozen-snapshot fixtures the kernel also frees the orphans; there the
// comparison leaves out what freeing them changes.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
)

// mkfsImage makes a 300 MiB image with mkfs.xfs options.
func mkfsImage(t *testing.T, opts ...string) string {
	t.Helper()
	testimg.Need(t, "mkfs.xfs")
	img := filepath.Join(t.TempDir(), "r.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 300<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.xfs", append(append([]string{"-q", "-f"}, opts...), img)...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs %v: %v\n%s", opts, err, out)
	}
	return img
}

func runCmd(t *testing.T, name string, args ...string) {
	t.Helper()
	testimg.Need(t, name)
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func copyImage(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	runCmd(t, "cp", "--sparse=always", src, dst)
	return dst
}

// shutdownImage leaves a big dirty log of buffer, inode and inode-create
// items: files and directories created (some with data, fsynced), renamed,
// some removed and synced (so inactivation has run and nothing is left on
// an unlinked list), more created, then a forced shutdown that flushes the
// log but writes no metadata in place.
func shutdownImage(t *testing.T, opts ...string) string {
	t.Helper()
	testimg.Need(t, "xfs_io", "sync")
	img := mkfsImage(t, opts...)
	mnt := testimg.Mount(t, img)
	for d := 0; d < 3; d++ {
		dir := filepath.Join(mnt, fmt.Sprintf("d%d", d))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 250; i++ {
			var data []byte
			if i%10 == 0 {
				data = []byte(strings.Repeat("x", 5000))
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("file-with-a-longer-name-%04d", i)), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	runCmd(t, "sync", "-f", mnt)
	for i := 1; i < 250; i += 7 {
		if err := os.Remove(filepath.Join(mnt, "d1", fmt.Sprintf("file-with-a-longer-name-%04d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(filepath.Join(mnt, "d0", "file-with-a-longer-name-0003"), filepath.Join(mnt, "d2", "moved")); err != nil {
		t.Fatal(err)
	}
	runCmd(t, "sync", "-f", mnt) // runs inodegc: the removed inodes leave the unlinked lists
	for i := 0; i < 300; i++ {
		if err := os.WriteFile(filepath.Join(mnt, fmt.Sprintf("late%d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(strings.Repeat("t", 300), filepath.Join(mnt, "longlink")); err != nil {
		t.Fatal(err)
	}
	runCmd(t, "xfs_io", "-x", "-c", "shutdown -f", mnt)
	testimg.Unmount(t, mnt)
	return img
}

// kernelMount mounts img, unmounts it, and reports whether the kernel ran
// log recovery on it (testimg.KernelMountCycle: only the kernel log lines
// of the loop device that mounted it count, so concurrent mounts of
// copies with the same uuid cannot be taken for this one).
func kernelMount(t *testing.T, img string, opts ...string) (recovered bool) {
	t.Helper()
	_, recovered = testimg.KernelMountCycle(t, img, opts...)
	return recovered
}

// recoverImage runs Recover and checks the report's basic promises.
func recoverImage(t *testing.T, img string) *RecoverReport {
	t.Helper()
	rep, err := Recover(img, RecoverOptions{})
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if rep.Clean {
		t.Fatalf("Recover found a clean log on a dirty image")
	}
	if rep.UnmountLSN == "" || rep.Written == 0 {
		t.Errorf("report: no unmount record or nothing written: %+v", rep.RecoverReport)
	}
	t.Logf("recovered: %d records, %d transactions, items %v; buffers %d replayed / %d inode bufs / %d LSN-skipped / %d cancelled; inodes %d / %d skipped; icreates %d; %d bytes in %d writes; warnings %v",
		rep.Records, rep.Transactions, rep.Items, rep.BufReplayed, rep.InodeBufReplayed, rep.BufSkippedLSN, rep.BufCancelled,
		rep.InodesReplayed, rep.InodesSkippedLSN, rep.IcreateReplayed, rep.WrittenBytes, rep.Written, rep.Warnings)
	return rep
}

// checkRecoveredClean: the log is clean by our reading and xfs_logprint's,
// a second recover writes nothing, and the kernel mounts without recovery.
func checkRecoveredClean(t *testing.T, img string) {
	t.Helper()
	fs := openRO(t, img)
	info, err := fs.Info()
	if err != nil {
		t.Fatal(err)
	}
	fs.Close()
	if !info.Log.Clean {
		t.Errorf("info after recover: log not clean: %+v", info.Log)
	}
	if out, err := exec.Command("xfs_logprint", "-t", img).CombinedOutput(); err != nil || !strings.Contains(string(out), "state: <CLEAN>") {
		t.Errorf("xfs_logprint -t after recover: %v\n%s", err, out)
	}
	sum := testimg.Hash(t, img)
	rep, err := Recover(img, RecoverOptions{})
	if err != nil {
		t.Fatalf("second Recover: %v", err)
	}
	if !rep.Clean {
		t.Errorf("second Recover: log not clean: %+v", rep.RecoverReport)
	}
	if testimg.Hash(t, img) != sum {
		t.Errorf("second Recover on a clean log wrote to the image")
	}
}

// dbFields prints objects with xfs_db and parses them, dropping fields.
func dbFields(t *testing.T, img string, skip map[string]bool, cmds ...string) map[string]string {
	t.Helper()
	f := testimg.ParseFields(testimg.DB(t, img, cmds...))
	for k := range skip {
		delete(f, k)
	}
	return f
}

func diffFields(t *testing.T, what string, ours, kernel map[string]string) {
	t.Helper()
	for k, v := range kernel {
		if ours[k] != v {
			t.Errorf("%s: %s = %q after xfsfree recover, %q after the kernel's", what, k, ours[k], v)
		}
	}
	for k, v := range ours {
		if _, ok := kernel[k]; !ok {
			t.Errorf("%s: %s = %q after xfsfree recover, absent after the kernel's", what, k, v)
		}
	}
}

// inodeDump prints each inode with xfs_db, in batches.
func inodeDump(t *testing.T, img string, inos []uint64) map[uint64]string {
	t.Helper()
	out := map[uint64]string{}
	for len(inos) > 0 {
		n := min(len(inos), 200)
		var cmds []string
		for _, ino := range inos[:n] {
			cmds = append(cmds, fmt.Sprintf("inode %d", ino), "p", "echo ==END==")
		}
		parts := strings.Split(testimg.DB(t, img, cmds...), "==END==\n")
		for i, ino := range inos[:n] {
			if i < len(parts) {
				out[ino] = parts[i]
			}
		}
		inos = inos[n:]
	}
	return out
}

var shutdownVariants = []struct {
	name string
	opts []string
}{
	{"default", nil},
	{"bs1024", []string{"-b", "size=1024"}},
	{"isize1024", []string{"-i", "size=1024"}},
	{"sect4096", []string{"-s", "size=4096"}},
	{"lsu64k", []string{"-l", "su=64k"}},
	{"nrext64", []string{"-i", "nrext64=1"}},
	{"nosparse", []string{"-i", "sparse=0"}},
}

// TestRecoverShutdownMatchesKernel: a forced shutdown's log replayed by
// xfsfree and by the kernel gives the same superblock, AG headers and
// inodes; both pass xfs_repair -n; ours is clean and the kernel mounts it
// without recovery.
func TestRecoverShutdownMatchesKernel(t *testing.T) {
	for _, v := range shutdownVariants {
		t.Run(v.name, func(t *testing.T) {
			testimg.Need(t, "xfs_db", "xfs_repair", "xfs_logprint", "cp")
			// A removed inode whose inactivation the sync did not catch is
			// left on an unlinked list, which the kernel's mount frees and
			// recover does not: retry until a run leaves none.
			var ours, kern string
			var rep *RecoverReport
			for try := 0; ; try++ {
				img := shutdownImage(t, v.opts...)
				ours, kern = copyImage(t, img), copyImage(t, img)
				rep = recoverImage(t, ours)
				if rep.Orphans == 0 {
					break
				}
				if try == 4 {
					t.Fatalf("every run left orphans (%d the last time)", rep.Orphans)
				}
				t.Logf("%d inodes left on unlinked lists by the shutdown: retrying", rep.Orphans)
			}
			if rep.Items["XFS_LI_INODE"] == 0 || rep.Items["XFS_LI_BUF"] == 0 || rep.Items["XFS_LI_ICREATE"] == 0 {
				t.Errorf("expected buffer, inode and icreate items in the log, got %v", rep.Items)
			}
			if len(rep.Warnings) > 0 {
				t.Errorf("warnings: %v", rep.Warnings)
			}
			if !kernelMount(t, kern) {
				t.Fatalf("the kernel did not run recovery on the dirty copy")
			}

			sbSkip := map[string]bool{"lsn": true, "crc": true}
			diffFields(t, "sb 0", dbFields(t, ours, sbSkip, "sb 0", "p"), dbFields(t, kern, sbSkip, "sb 0", "p"))
			agcount := num(t, testimg.Superblock(t, ours), "agcount")
			for ag := uint64(0); ag < agcount; ag++ {
				for _, h := range []string{"agi", "agf", "agfl"} {
					c := fmt.Sprintf("%s %d", h, ag)
					diffFields(t, c, dbFields(t, ours, nil, c, "p"), dbFields(t, kern, nil, c, "p"))
				}
			}
			oi, ki := inodeDump(t, ours, rep.LoggedInodes), inodeDump(t, kern, rep.LoggedInodes)
			bad := 0
			for _, ino := range rep.LoggedInodes {
				if oi[ino] != ki[ino] {
					if bad++; bad <= 3 {
						t.Errorf("inode %d differs:\n ours:\n%s\n kernel:\n%s", ino, oi[ino], ki[ino])
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d logged inodes differ", bad, len(rep.LoggedInodes))
			}
			t.Logf("compared sb, %d AGs' AGI/AGF/AGFL and %d logged inodes with the kernel's recovery", agcount, len(rep.LoggedInodes))

			testimg.Repair(t, ours)
			testimg.Repair(t, kern)
			checkRecoveredClean(t, ours)
			if kernelMount(t, ours) {
				t.Errorf("the kernel ran log recovery on the image xfsfree recovered")
			}
			testimg.Repair(t, ours)
		})
	}
}

// TestRecoverDryRun: a dry run reports the same replay and writes nothing.
func TestRecoverDryRun(t *testing.T) {
	img := shutdownImage(t)
	sum := testimg.Hash(t, img)
	dry, err := Recover(img, RecoverOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if testimg.Hash(t, img) != sum {
		t.Fatalf("a dry run wrote to the image")
	}
	if !dry.DryRun || dry.Clean || dry.UnmountLSN != "" || dry.WrittenBytes == 0 {
		t.Errorf("dry run report: %+v", dry.RecoverReport)
	}
	rep := recoverImage(t, img)
	if dry.WrittenBytes != rep.WrittenBytes || dry.Transactions != rep.Transactions || dry.InodesReplayed != rep.InodesReplayed {
		t.Errorf("dry run said %d bytes, %d transactions, %d inodes; the run did %d, %d, %d",
			dry.WrittenBytes, dry.Transactions, dry.InodesReplayed, rep.WrittenBytes, rep.Transactions, rep.InodesReplayed)
	}
}

// TestRecoverOrphanFixtures: the frozen snapshots' logs (the freeze's
// superblock transactions) replay; the orphans stay for 'free'. The kernel
// frees them at mount, so the comparison leaves out what that changes.
func TestRecoverOrphanFixtures(t *testing.T) {
	for _, name := range testimg.OrphanFixtures() {
		t.Run(name, func(t *testing.T) {
			img := testimg.Path(t, name)
			before := openRO(t, img)
			scan, err := before.Scan(nil)
			if err != nil {
				t.Fatal(err)
			}
			before.Close()
			kern := copyImage(t, img)

			rep := recoverImage(t, img)
			if rep.Orphans != scan.Orphans || rep.Orphans == 0 {
				t.Errorf("orphans after recover %d, before %d", rep.Orphans, scan.Orphans)
			}
			// Our counters are the AG headers' sums.
			sb := testimg.Superblock(t, img)
			var icount, ifree, fd uint64
			for ag := uint64(0); ag < num(t, sb, "agcount"); ag++ {
				agi := testimg.AGI(t, img, uint32(ag))
				agf := testimg.ParseFields(testimg.DB(t, img, fmt.Sprintf("agf %d", ag), "p"))
				icount += num(t, agi, "count")
				ifree += num(t, agi, "freecount")
				fd += num(t, agf, "freeblks") + num(t, agf, "flcount") + num(t, agf, "btreeblks")
			}
			if num(t, sb, "icount") != icount || num(t, sb, "ifree") != ifree || num(t, sb, "fdblocks") != fd {
				t.Errorf("sb icount/ifree/fdblocks %s/%s/%s, AG sums %d/%d/%d", sb["icount"], sb["ifree"], sb["fdblocks"], icount, ifree, fd)
			}
			// xfs_repair -n: no log complaint; what it reports is the orphans.
			out, _ := testimg.TryRepair(t, img)
			if strings.Contains(out, "ALERT") || strings.Contains(out, "valuable metadata changes in a log") {
				t.Errorf("xfs_repair -n still sees a dirty log:\n%s", out)
			}
			for _, l := range strings.Split(out, "\n") {
				if repairNoise.MatchString(l) || repairOrphan.MatchString(l) {
					continue
				}
				t.Errorf("xfs_repair -n: unexpected line %q", l)
			}

			if !kernelMount(t, kern) {
				t.Fatalf("the kernel did not run recovery on the snapshot")
			}
			skip := map[string]bool{"lsn": true, "crc": true, "icount": true, "ifree": true, "fdblocks": true}
			diffFields(t, "sb 0", dbFields(t, img, skip, "sb 0", "p"), dbFields(t, kern, skip, "sb 0", "p"))
			checkRecoveredClean(t, img)
			if kernelMount(t, img) {
				t.Errorf("the kernel ran log recovery on the image xfsfree recovered")
			}
		})
	}
}

var (
	repairNoise  = regexp.MustCompile(`^$|^Phase \d|^        - |^Cannot get host filesystem geometry|^Repair may fail|^the image and the host|^No modify flag set|^bad CRC for inode|^would`)
	repairOrphan = regexp.MustCompile(`^agi unlinked bucket \d+ is \d+ in ag \d+|^would have reset inode \d+ nlinks from 0 to 1|^disconnected (dir )?inode \d+, would move|^Would clear next_unlinked in inode \d+`)
)

// efiImage makes an image whose log holds an extent-free intent: the
// truncation of a file of ~1500 extents runs while the log is forced over
// and over, so that some intent lands in a checkpoint before its done
// item (otherwise the CIL whiteouts drop the pair). Timing-dependent: it
// retries and reports whether it got one.
func efiImage(t *testing.T) (string, bool) {
	t.Helper()
	testimg.Need(t, "xfs_io", "xfs_logprint", "sync")
	for try := 0; try < 20; try++ {
		img := mkfsImage(t)
		mnt := testimg.Mount(t, img)
		args := []string{"-f"}
		for i := 0; i < 3000; i += 2 {
			args = append(args, "-c", fmt.Sprintf("falloc %dk 4k", i*4))
		}
		args = append(args, "-c", "fsync", filepath.Join(mnt, "frag"))
		runCmd(t, "xfs_io", args...)
		runCmd(t, "sync", "-f", mnt)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
					exec.Command("sync", "-f", mnt).Run()
				}
			}
		}()
		if err := os.Remove(filepath.Join(mnt, "frag")); err != nil {
			t.Fatal(err)
		}
		runCmd(t, "sync", "-f", mnt)
		close(stop)
		<-done
		runCmd(t, "xfs_io", "-x", "-c", "shutdown -f", mnt)
		testimg.Unmount(t, mnt)
		out, _ := exec.Command("xfs_logprint", "-t", img).CombinedOutput()
		if regexp.MustCompile(`(?m)^EFI: `).Match(out) {
			return img, true
		}
	}
	return "", false
}

// TestRecoverEFILog: a log holding extent-free intents (a truncation of
// ~1500 extents under repeated log forces) is recovered as the kernel
// recovers a copy when every EFI has its EFD; when one is pending, clean
// and the kernel's mount end in the same state and recover finishes it;
// our decoder reads every intent and done item xfs_logprint lists.
func TestRecoverEFILog(t *testing.T) {
	img, ok := efiImage(t)
	if !ok {
		t.Skip("no run left an EFI in the log (the intent and done item kept landing in one checkpoint)")
	}
	counts := compareWithLogprint(t, img)
	_, decoded := ourIntents(t, img)
	pending := pendingOf(decoded)
	t.Logf("items %v, %d pending", counts, len(pending))
	if len(pending) > 0 {
		checkPendingFinished(t, img, pending)
		checkCrashSnapshot(t, img, "efi", &crashTally{byVariant: map[string]int{}, logged: map[string]int{},
			pending: map[string]int{}, finished: map[string]int{}})
		return
	}
	if !checkAllDoneRecovered(t, img) {
		t.Skip("the kernel would have more to do than replay the log: not compared")
	}
}

// TestRecoverCleanLog: a clean log is reported and nothing is written.
func TestRecoverCleanLog(t *testing.T) {
	img := testimg.Path(t, "default")
	sum := testimg.Hash(t, img)
	rep, err := Recover(img, RecoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean || rep.Written != 0 {
		t.Errorf("clean log: %+v", rep.RecoverReport)
	}
	if testimg.Hash(t, img) != sum {
		t.Errorf("recover of a clean log wrote to the image")
	}
}

// TestRecoverRefusesMounted: a mounted image is refused.
func TestRecoverRefusesMounted(t *testing.T) {
	img := testimg.Path(t, "default")
	testimg.Mount(t, img)
	if _, err := Recover(img, RecoverOptions{}); err == nil {
		t.Fatalf("Recover of a mounted image succeeded")
	}
}
