package xfs

// Issue 7's "never make an image worse": a corrupt AG header met by a
// writing run, before or after its first write, and by recovery. Judges:
// xfs_logprint (the log is clean), plain xfs_repair (it works without -L
// whenever it did before) and xfs_repair -n afterwards.

import (
	"errors"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
)

// agiOffset is the byte offset of AG agno's AGI in img.
func agiOffset(t *testing.T, img string, agno uint32) int64 {
	t.Helper()
	sb := testimg.Superblock(t, img)
	return int64(uint64(agno)*num(t, sb, "agblocks")*num(t, sb, "blocksize") + 2*num(t, sb, "sectsize"))
}

// repairable checks that plain xfs_repair fixes img (no -L needed) and
// that xfs_repair -n is clean afterwards.
func repairable(t *testing.T, img string) {
	t.Helper()
	if out, code := testimg.RepairFix(t, img); code != 0 {
		t.Fatalf("plain xfs_repair: exit %d\n%s", code, out)
	}
	testimg.Repair(t, img)
}

// A corrupt AGI found before the first write refuses the run; found after
// it (the AGI corrupted once the check passed), the frees of the other AGs
// commit and the run still ends with a clean log, so plain xfs_repair fixes
// the image as it would have fixed it before.
func TestFreeCorruptAGI(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair", "xfs_logprint")
	const bad = 3
	t.Run("before", func(t *testing.T) {
		img := cleanOrphans(t, "orphans")
		flipByte(t, img, agiOffset(t, img, bad)+32)
		before := testimg.Hash(t, img)
		fs, err := OpenWrite(img, Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = fs.Free(FreeOptions{Orphans: true})
		fs.Close()
		var pe *PreflightError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "AG 3") {
			t.Fatalf("Free on a corrupt AGI: %v; want a PreflightError naming AG 3", err)
		}
		if testimg.Hash(t, img) != before {
			t.Fatal("a refused run wrote to the image")
		}
		repairable(t, img)
	})
	t.Run("after", func(t *testing.T) {
		img := cleanOrphans(t, "orphans")
		off := agiOffset(t, img, bad) + 32
		fs, err := OpenWrite(img, Options{})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := fs.Free(FreeOptions{Orphans: true, afterPreflight: func(fs *FS) {
			flipByte(t, img, off)
			fs.Cache.DropClean()
		}})
		fs.Close()
		var ce *CountersError
		if !errors.As(err, &ce) {
			t.Fatalf("Free with AG 3's AGI corrupted mid-run: %v; want a CountersError", err)
		}
		t.Logf("freed %d, %d errors, %d refused (first: %v); %v", rep.InodesFreed, len(rep.Errors), len(rep.Refused), rep.Refused[:min(1, len(rep.Refused))], err)
		if rep.InodesFreed == 0 {
			t.Error("nothing was freed in the other AGs")
		}
		if !xfsLogprint(t, img).Clean {
			t.Fatal("the log is dirty after the run")
		}
		repairable(t, img)
	})
}

// Recovery of a dirty log with a corrupt AGI: the log is replayed and
// closed (the summary counters left as the log left them, said), so plain
// xfs_repair — which refuses the dirty log before — can fix it.
func TestRecoverCorruptAGI(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair", "xfs_logprint")
	img := testimg.Path(t, "orphans")
	flipByte(t, img, agiOffset(t, img, 3)+32)
	probe := copyFile(t, img, ".probe")
	if out, code := testimg.RepairFix(t, probe); code == 0 {
		t.Fatalf("plain xfs_repair accepted the dirty log:\n%s", out)
	}
	rep, err := Recover(img, RecoverOptions{})
	if err == nil || !strings.Contains(err.Error(), "xfs_repair") || rep == nil || rep.CountersNotRebuilt == "" {
		t.Fatalf("Recover: %v; want an error saying to run xfs_repair, with the report", err)
	}
	t.Log(err)
	if !xfsLogprint(t, img).Clean {
		t.Fatal("the log is dirty after recover")
	}
	repairable(t, img)
}
