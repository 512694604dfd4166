package xfs

// Log intents in crash-consistent images made at test time: a busy
// reflink-copy and delete workload is shut down (xfs_io -x -c shutdown, no
// log flush) at varying moments, with and without rmapbt. Judges:
// xfs_logprint -t (every intent and done item it lists, with its id and
// records, is what our decoder read), the kernel's recovery of a copy (a
// log whose intents all have their done items recovers to the same state),
// the kernel's refusal to mount a log holding a bad intent, and xfsfree's
// finishing of the intents left pending.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/journal"
	"github.com/xfsfree/xfsfree/ondisk"
)

// mkfrag writes a file of n one-block extents (every other block) and
// fsyncs it.
func mkfrag(path string, n int, bs int) error {
	args := []string{"-f"}
	for i := 0; i < n; i++ {
		args = append(args, "-c", fmt.Sprintf("pwrite -q %d %d", i*2*bs, bs))
	}
	args = append(args, "-c", "fsync", path)
	return exec.Command(lookTool("xfs_io"), args...).Run()
}

func reflinkCopy(src, dst string) error {
	return exec.Command("cp", "--reflink=always", src, dst).Run()
}

// intentCrashImage makes a 300 MiB filesystem (mkfs options opts), writes
// fragmented files and reflinked copies of them, then runs three loops at
// once — one making fragmented files, copying them with cp --reflink,
// overwriting the copies' first 16 blocks (CoW, with a CoW extent size
// hint of one block, so that no staging extent outlives the write) with
// fsync, deleting the originals and syncing (which runs their
// inactivation); one copying a 2000-extent file with cp --reflink again
// and again; one forcing the log (directory fsync) over and over, so that
// checkpoints fall inside long chains of deferred work — and shuts the
// filesystem down after delay without flushing the log.
func intentCrashImage(t *testing.T, delay time.Duration, opts ...string) string {
	t.Helper()
	testimg.Need(t, "xfs_io", "cp", "sync")
	img := mkfsImage(t, opts...)
	mnt := testimg.Mount(t, img)
	bs := 4096
	p := func(s string) string { return filepath.Join(mnt, s) }
	for _, f := range []struct {
		name string
		n    int
	}{{"a", 300}, {"b", 200}, {"big", 2000}} {
		if err := mkfrag(p(f.name), f.n, bs); err != nil {
			t.Fatal(err)
		}
		if err := reflinkCopy(p(f.name), p(f.name+"2")); err != nil {
			t.Fatal(err)
		}
	}
	runCmd(t, "sync", "-f", mnt)
	xfsIO := lookTool("xfs_io")
	crashDuring(t, mnt, delay, func(stopped func() bool) {
		for i := 1; i <= 8 && !stopped(); i++ {
			f, g := p(fmt.Sprintf("f%d", i)), p(fmt.Sprintf("g%d", i))
			if mkfrag(f, 150, bs) != nil || reflinkCopy(f, g) != nil {
				return
			}
			exec.Command(xfsIO, "-c", "cowextsize 4096", "-c", "pwrite -q 0 65536", "-c", "fsync", g).Run()
			os.Remove(f)
			exec.Command("sync", "-f", mnt).Run()
		}
	}, func(stopped func() bool) {
		for i := 1; i <= 10 && !stopped(); i++ {
			if reflinkCopy(p("big"), p(fmt.Sprintf("c%d", i))) != nil {
				return
			}
		}
	})
	return img
}

// loggedIntent is an intent or done item as a committed transaction holds
// it.
type loggedIntent struct {
	typ  string // "EFI", "CUD", ...
	id   uint64
	recs []string // "s:0x64b l:1 f:0x2 own:135 off:297", as xfs_logprint prints the fields it prints
	n    int      // record count (EFD: efd_nextents)
}

func (l loggedIntent) String() string {
	return fmt.Sprintf("%s %#x n=%d %v", l.typ, l.id, l.n, l.recs)
}

var logprintShort = map[uint16]string{ondisk.LIEFI: "EFI", ondisk.LIEFD: "EFD", ondisk.LIRUI: "RUI", ondisk.LIRUD: "RUD",
	ondisk.LICUI: "CUI", ondisk.LICUD: "CUD", ondisk.LIBUI: "BUI", ondisk.LIBUD: "BUD"}

// ourIntents decodes every intent and done item of the committed
// transactions of img's log, in log order, and checks that each encodes
// back to the bytes the kernel logged.
func ourIntents(t *testing.T, img string) (items []loggedIntent, decoded []*ondisk.IntentLog) {
	t.Helper()
	fs, err := Open(img, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	lg, err := journal.NewGeometry(fs.G)
	if err != nil {
		t.Fatal(err)
	}
	l := journal.New(fs.Dev, lg)
	st, err := l.FindTail()
	if err != nil {
		t.Fatal(err)
	}
	if st.Clean {
		return nil, nil
	}
	_, err = l.Transactions(st.Head, st.Tail, func(tr *journal.RecoveredTrans) error {
		for _, it := range tr.Items {
			if len(it.Regions) == 0 || (!ondisk.IsIntentType(it.Type) && !ondisk.IsDoneType(it.Type)) {
				continue
			}
			f, err := ondisk.DecodeIntentLog(it.Regions[0])
			if err != nil {
				return fmt.Errorf("transaction %#x: %w", tr.Tid, err)
			}
			if !bytes.Equal(f.Bytes(), it.Regions[0]) {
				t.Errorf("transaction %#x: %v encodes to % x, the kernel logged % x", tr.Tid, f, f.Bytes(), it.Regions[0])
			}
			decoded = append(decoded, f)
			li := loggedIntent{typ: logprintShort[f.Type], id: f.ID, n: int(f.NExtents)}
			for _, e := range f.Free {
				if f.Type == ondisk.LIEFI {
					li.recs = append(li.recs, fmt.Sprintf("s:%#x l:%d", e.Start, e.Len))
				}
			}
			for _, m := range f.Maps {
				li.recs = append(li.recs, fmt.Sprintf("s:%#x l:%d own:%d off:%d f:%#x", m.StartBlock, m.Len, m.Owner, m.StartOff, m.Flags))
			}
			for _, p := range f.Phys {
				li.recs = append(li.recs, fmt.Sprintf("s:%#x l:%d f:%#x", p.StartBlock, p.Len, p.Flags))
			}
			if ondisk.IsDoneType(f.Type) && f.Type != ondisk.LIEFD {
				li.n = 0
			}
			items = append(items, li)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return items, decoded
}

var (
	lpItem   = regexp.MustCompile(`^(EFI|EFD|RUI|RUD|CUI|CUD|BUI|BUD): cnt:`)
	lpID     = regexp.MustCompile(`(?:num_extents: ?(\d+))?\s+id: ?0x([0-9a-f]+)`)
	lpRecord = regexp.MustCompile(`\(s: 0x([0-9a-f]+), l: (\d+)(?:, own: (-?\d+), off: (\d+))?(?:, f: 0x([0-9a-f]+))?\)`)
)

// logprintIntents parses the intent and done items `xfs_logprint -t`
// prints, in order.
func logprintIntents(t *testing.T, img string) []loggedIntent {
	t.Helper()
	out, err := exec.Command(lookTool("xfs_logprint"), "-t", img).CombinedOutput()
	if err != nil {
		t.Fatalf("xfs_logprint -t: %v\n%s", err, out)
	}
	var items []loggedIntent
	var cur *loggedIntent
	for _, line := range strings.Split(string(out), "\n") {
		if m := lpItem.FindStringSubmatch(line); m != nil {
			items = append(items, loggedIntent{typ: m[1], id: ^uint64(0)})
			cur = &items[len(items)-1]
			continue
		}
		if cur == nil {
			continue
		}
		if cur.id == ^uint64(0) {
			if m := lpID.FindStringSubmatch(line); m != nil {
				cur.id, _ = strconv.ParseUint(m[2], 16, 64)
				if m[1] != "" {
					cur.n, _ = strconv.Atoi(m[1])
				}
				continue
			}
		}
		if ms := lpRecord.FindAllStringSubmatch(line, -1); ms != nil && strings.HasPrefix(strings.TrimSpace(line), "(s:") {
			for _, m := range ms {
				cur.recs = append(cur.recs, lpRecordString(m))
			}
			continue
		}
		if !strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, "(") && !strings.HasPrefix(line, cur.typ) {
			cur = nil
		}
	}
	return items
}

// lpRecordString normalises one record xfs_logprint printed to the form
// ourIntents gives (hex without leading zeros).
func lpRecordString(m []string) string {
	hex := func(h string) string {
		v, _ := strconv.ParseUint(h, 16, 64)
		return fmt.Sprintf("%#x", v)
	}
	s := fmt.Sprintf("s:%s l:%s", hex(m[1]), m[2])
	if m[3] != "" {
		s += fmt.Sprintf(" own:%s off:%s", m[3], m[4])
	}
	if m[5] != "" {
		s += " f:" + hex(m[5])
	}
	return s
}

// ownerSigned prints an rmap owner as xfs_logprint does (signed decimal).
func ownerSigned(rec string) string {
	re := regexp.MustCompile(`own:(\d+)`)
	return re.ReplaceAllStringFunc(rec, func(s string) string {
		v, _ := strconv.ParseUint(s[4:], 10, 64)
		return "own:" + strconv.FormatInt(int64(v), 10)
	})
}

// compareWithLogprint checks that our decoder read every intent and done
// item xfs_logprint lists, with the same ids and records, and returns the
// counts by type.
func compareWithLogprint(t *testing.T, img string) map[string]int {
	t.Helper()
	ours, _ := ourIntents(t, img)
	theirs := logprintIntents(t, img)
	counts := map[string]int{}
	for _, o := range ours {
		counts[o.typ]++
	}
	if len(ours) != len(theirs) {
		t.Errorf("%d intent and done items decoded, xfs_logprint lists %d", len(ours), len(theirs))
	}
	bad := 0
	for i := 0; i < min(len(ours), len(theirs)); i++ {
		o, l := ours[i], theirs[i]
		for j := range o.recs {
			o.recs[j] = ownerSigned(o.recs[j])
		}
		if o.typ != l.typ || o.id != l.id || o.n != l.n || strings.Join(o.recs, ";") != strings.Join(l.recs, ";") {
			if bad++; bad <= 5 {
				t.Errorf("item %d: ours %v, xfs_logprint %v", i, o, l)
			}
		}
	}
	return counts
}

// pendingOf pairs decoded items as recovery does and returns the intents
// left pending.
func pendingOf(items []*ondisk.IntentLog) []*ondisk.IntentLog {
	var pending []*ondisk.IntentLog
	for _, f := range items {
		if ondisk.IsIntentType(f.Type) {
			pending = append(pending, f)
			continue
		}
		keep := pending[:0]
		for _, p := range pending {
			if !(p.Type == ondisk.IntentOfDone(f.Type) && p.ID == f.ID) {
				keep = append(keep, p)
			}
		}
		pending = keep
	}
	return pending
}

// cowRecords counts the CoW staging records of every AG's refcount btree.
func cowRecords(t *testing.T, img string) int {
	t.Helper()
	n := 0
	agcount := num(t, testimg.Superblock(t, img), "agcount")
	for ag := uint32(0); ag < uint32(agcount); ag++ {
		for _, r := range testimg.RefcountRecords(t, img, ag) {
			if r["cowflag"] != 0 {
				n++
			}
		}
	}
	return n
}

// compareRecoveredWithKernel compares our recovered image with the
// kernel's recovery of a copy as TestRecoverShutdownMatchesKernel does —
// superblock (but its LSN and CRC), every AG's AGI, AGF and AGFL, the
// logged inodes — and the refcount btree records.
func compareRecoveredWithKernel(t *testing.T, ours, kern string, rep *RecoverReport) {
	t.Helper()
	sbSkip := map[string]bool{"lsn": true, "crc": true}
	diffFields(t, "sb 0", dbFields(t, ours, sbSkip, "sb 0", "p"), dbFields(t, kern, sbSkip, "sb 0", "p"))
	agcount := num(t, testimg.Superblock(t, ours), "agcount")
	for ag := uint64(0); ag < agcount; ag++ {
		for _, h := range []string{"agi", "agf", "agfl"} {
			c := fmt.Sprintf("%s %d", h, ag)
			diffFields(t, c, dbFields(t, ours, nil, c, "p"), dbFields(t, kern, nil, c, "p"))
		}
		if a, b := fmt.Sprint(testimg.RefcountRecords(t, ours, uint32(ag))), fmt.Sprint(testimg.RefcountRecords(t, kern, uint32(ag))); a != b {
			t.Errorf("AG %d refcount btree records differ:\n ours   %s\n kernel %s", ag, a, b)
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
}

// tryMount mounts img with the kernel and unmounts it if that worked; it
// reports whether the mount worked, and mount's output.
func tryMount(t *testing.T, img string) (bool, string) {
	t.Helper()
	testimg.Need(t, "loop", "mount", "umount", "losetup")
	out, err := exec.Command("losetup", "-f", "--show", img).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", dev).Run()
	mnt := t.TempDir()
	mout, err := exec.Command("mount", "-o", "nouuid", dev, mnt).CombinedOutput()
	if err != nil {
		return false, strings.TrimSpace(string(mout))
	}
	if uout, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount %s: %v\n%s", mnt, err, uout)
	}
	return true, ""
}

// patchEFI rewrites the first EFI region of img's log that lies in a
// record not crossing the log end: its id becomes id (so its EFD, if any,
// no longer matches and it is pending) and its first extent's length 0,
// the record repacked and its CRC recomputed. It reports false if the log
// has no such EFI.
func patchEFI(t *testing.T, img string, id uint64) bool {
	t.Helper()
	fs, err := Open(img, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	lg, err := journal.NewGeometry(fs.G)
	if err != nil {
		t.Fatal(err)
	}
	l := journal.New(fs.Dev, lg)
	st, err := l.FindTail()
	if err != nil || st.Clean {
		t.Fatalf("log state %v, %v", st, err)
	}
	var hdrs, data []byte
	var at int64 = -1
	err = l.Records(st.Head, st.Tail, func(r *journal.Record) error {
		if at >= 0 || r.Wrapped {
			return nil
		}
		ops, err := journal.SplitOps(r)
		if err != nil {
			return err
		}
		for _, op := range ops {
			d := op.Data
			if len(d) == 32 && d[0] == byte(ondisk.LIEFI&0xff) && d[1] == byte(ondisk.LIEFI>>8) && d[4] == 1 {
				for i := 0; i < 8; i++ {
					d[8+i] = byte(id >> (8 * i))
				}
				clear(d[24:28])
				hdrs, data, at = append([]byte(nil), r.Hdrs...), append([]byte(nil), r.Data...), r.Block
				return nil
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if at < 0 {
		return false
	}
	h, err := ondisk.DecodeLogRecHeader(hdrs)
	if err != nil {
		t.Fatal(err)
	}
	if err := ondisk.LogPackData(hdrs, data, h.Cycle); err != nil {
		t.Fatal(err)
	}
	if err := ondisk.SetLogRecCRC(hdrs, data); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec := append(hdrs, data...)
	rec = append(rec, make([]byte, (ondisk.BBSize-len(rec)%ondisk.BBSize)%ondisk.BBSize)...)
	if _, err := f.WriteAt(rec, (lg.StartDaddr+at)*ondisk.BBSize); err != nil {
		t.Fatal(err)
	}
	return true
}

// TestRecoverIntentCrashLogs makes crash logs until, for each variant, one
// log whose intents are all finished and which leaves the kernel nothing
// else to do (no orphan, no CoW leftover) has been recovered and compared
// with the kernel's recovery, one log with pending intents has had them
// finished (a dry run writing nothing), and one with an EFI patched bad
// has been refused — or the attempts run out (skipped, with the reason).
// Every log's intents are compared with xfs_logprint's.
func TestRecoverIntentCrashLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("makes many crash images; not in -short mode")
	}
	for _, v := range []struct {
		name string
		opts []string
	}{{"default", nil}, {"rmapbt", []string{"-m", "rmapbt=1"}}} {
		t.Run(v.name, func(t *testing.T) {
			testimg.Need(t, "xfs_db", "xfs_repair", "xfs_logprint", "cp")
			const attempts = 14
			counts := map[string]int{}
			compared, finished, logs, withIntents, withPending := false, false, 0, 0, 0
			efiPatched := false
			for try := 0; try < attempts && !(compared && finished && efiPatched); try++ {
				delay := 800*time.Millisecond + time.Duration(try%7)*350*time.Millisecond
				img := intentCrashImage(t, delay, v.opts...)
				logs++
				c := compareWithLogprint(t, img)
				_, decoded := ourIntents(t, img)
				for k, n := range c {
					counts[k] += n
				}
				pending := pendingOf(decoded)
				intents := c["EFI"] + c["RUI"] + c["CUI"] + c["BUI"]
				t.Logf("crash %d (after %v): items %v, %d pending", try, delay, c, len(pending))
				if intents > 0 {
					withIntents++
				}
				if len(pending) > 0 {
					withPending++
				}
				if !efiPatched && c["EFI"] > 0 {
					efiPatched = checkPatchedEFIRefused(t, img) // on a copy
				}
				switch {
				case intents == 0:
				case len(pending) > 0 && !finished:
					finished = checkPendingFinished(t, img, pending) // on a copy
				case len(pending) == 0 && !compared:
					compared = checkAllDoneRecovered(t, img) // on copies
				}
			}
			t.Logf("%s: %d crash logs, %d with intents, %d with pending intents; items seen %v", v.name, logs, withIntents, withPending, counts)
			var missing []string
			if !compared {
				missing = append(missing, "no log with intents all finished and nothing else for the kernel to do")
			}
			if !finished {
				missing = append(missing, "no log with pending intents")
			}
			if !efiPatched {
				missing = append(missing, "no log with an EFI to patch")
			}
			if len(missing) > 0 {
				t.Skipf("after %d crashes: %s", logs, strings.Join(missing, "; "))
			}
		})
	}
}

// checkPendingFinished: a dry run names the pending intents and writes
// nothing; recover finishes every one of them, in logged transactions,
// and leaves the log clean (the comparisons with the kernel's recovery are
// TestCleanCrashSnapshotsLikeKernel's).
func checkPendingFinished(t *testing.T, img string, pending []*ondisk.IntentLog) bool {
	t.Helper()
	img = copyImage(t, img)
	sum := testimg.Hash(t, img)
	dry, err := Recover(img, RecoverOptions{DryRun: true})
	if err != nil {
		t.Errorf("Recover(dry run) = %v", err)
		return true
	}
	if len(dry.PendingIntents) != len(pending) || dry.Intents == nil || dry.Intents.Pending != len(pending) || dry.Intents.Finished != 0 {
		t.Errorf("dry run: %d pending intents listed, report %+v; the log has %d", len(dry.PendingIntents), dry.Intents, len(pending))
	}
	for i, p := range dry.PendingIntents {
		if i < len(pending) && (p.Intent.ID != pending[i].ID || p.Intent.Type != pending[i].Type) {
			t.Errorf("pending intent %d: %s, want %v", i, p.Desc, pending[i])
		}
	}
	if testimg.Hash(t, img) != sum {
		t.Fatalf("a dry run wrote to the image")
	}
	rep, err := Recover(img, RecoverOptions{})
	if err != nil {
		t.Errorf("Recover of a log with %d pending intents: %v", len(pending), err)
		return true
	}
	if rep.Intents == nil || rep.Intents.Finished != len(pending) || rep.Intents.Transactions < len(pending) {
		t.Errorf("recover finished %+v of %d pending intents", rep.Intents, len(pending))
	}
	t.Logf("finished %d pending intents: %+v", len(pending), rep.Intents)
	checkRecoveredClean(t, img)
	repairAllowing(t, img, `^\s*leftover CoW extent \(\d+/\d+\) len \d+$`)
	return true
}

// checkAllDoneRecovered: a log whose intents all have done items is
// recovered as the kernel recovers a copy, if the kernel has nothing else
// to do after the replay (no orphan, no CoW staging extent); it reports
// whether the comparison was made.
func checkAllDoneRecovered(t *testing.T, img string) bool {
	t.Helper()
	ours, kern := copyImage(t, img), copyImage(t, img)
	rep, err := Recover(ours, RecoverOptions{})
	if err != nil {
		t.Errorf("Recover of a log whose intents are all finished: %v", err)
		return true
	}
	if rep.IntentsLogged == 0 || rep.IntentsCancelled != rep.IntentsLogged || len(rep.PendingIntents) != 0 {
		t.Errorf("report: %d intents logged, %d cancelled, %d pending", rep.IntentsLogged, rep.IntentsCancelled, len(rep.PendingIntents))
	}
	if rep.Orphans > 0 {
		t.Logf("recovered (%d intents, all finished), but %d orphans are left, which the kernel would free: not compared", rep.IntentsLogged, rep.Orphans)
		return false
	}
	if n := cowRecords(t, ours); n > 0 {
		t.Logf("recovered (%d intents, all finished), but %d CoW staging extents are left, which the kernel would free: not compared", rep.IntentsLogged, n)
		return false
	}
	if !kernelMount(t, kern) {
		t.Fatalf("the kernel did not run recovery on the dirty copy")
	}
	compareRecoveredWithKernel(t, ours, kern, rep)
	t.Logf("recovered a log of %d transactions with %d intents (all finished, %d done items matching nothing) as the kernel did",
		rep.Transactions, rep.IntentsLogged, rep.DoneUnmatched)
	testimg.Repair(t, ours)
	testimg.Repair(t, kern)
	checkRecoveredClean(t, ours)
	if kernelMount(t, ours) {
		t.Errorf("the kernel ran log recovery on the image xfsfree recovered")
	}
	return true
}

// checkPatchedEFIRefused: an EFI patched to be pending with an extent of
// length 0 (record CRC recomputed) is refused by name with nothing
// written, and the kernel refuses to mount the image.
func checkPatchedEFIRefused(t *testing.T, img string) bool {
	t.Helper()
	bad := copyImage(t, img)
	const id = 0xbadef10
	if !patchEFI(t, bad, id) {
		return false
	}
	sum := testimg.Hash(t, bad)
	_, err := Recover(bad, RecoverOptions{})
	var ce *ondisk.CorruptError
	if !errors.As(err, &ce) || !strings.Contains(ce.Struct, fmt.Sprintf("XFS_LI_EFI %#x", id)) || ce.Field != "efi_extents[0].ext_start/ext_len" {
		t.Errorf("Recover of a log with a pending EFI of length 0 = %v, want a CorruptError naming it", err)
	} else {
		t.Logf("refused: %v", err)
	}
	if testimg.Hash(t, bad) != sum {
		t.Fatalf("a refused recover wrote to the image")
	}
	if ok, _ := tryMount(t, bad); ok {
		t.Errorf("the kernel mounted the image with the bad EFI")
	} else {
		t.Logf("the kernel refused to mount it too")
	}
	return true
}
