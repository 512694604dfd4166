package xfs

// CoW leftovers against the kernel (issue 9): staging extents left in the
// refcount btree by a crash during copy-on-write writes (buffered and
// O_DIRECT overwrites of reflinked files, the filesystem frozen, thawed
// and shut down: xfs_io -x -c shutdown), with and without rmapbt, and a
// staging record planted with xfs_db on a clean image (a shared record
// turned into a CoW record whose files no longer map it). The kernel's
// mount of a copy with a dirty log frees them (xfs_reflink_recover_cow);
// xfsfree recover + FreeCowLeftovers on another copy must leave the same
// SpaceState (refcountbt and rmapbt records, free space), pass xfs_repair
// -n, mount without recovery, and keep the live files' bytes. A CoW
// record whose count is not 1 refuses the run with nothing written.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
)

// stagingRecords returns the CoW-domain refcount records of every AG.
func stagingRecords(t *testing.T, s testimg.SpaceState) []testimg.Record {
	var out []testimg.Record
	for agno, a := range s.AGs {
		for _, r := range a.Trees["refcntbt"] {
			if r["cowflag"] != 0 {
				r["ag"] = uint64(agno)
				out = append(out, r)
			}
		}
	}
	return out
}

// checkCowFreed compares img, freed by xfsfree, with ref, freed by the
// kernel, and logs what was compared.
func checkCowFreed(t *testing.T, img, ref string, rep *CowReport, planned []testimg.Record) {
	t.Helper()
	if rep.Freed != len(planned) || rep.Planned != len(planned) {
		t.Errorf("freed %d of %d CoW staging extents; xfs_db lists %d", rep.Freed, rep.Planned, len(planned))
	}
	var blocks uint64
	for _, r := range planned {
		blocks += r["blockcount"]
	}
	if rep.Blocks != blocks {
		t.Errorf("freed %d blocks, the staging records hold %d", rep.Blocks, blocks)
	}
	testimg.Repair(t, img)
	testimg.Repair(t, ref)
	got, want := testimg.ReadSpaceState(t, img), testimg.ReadSpaceState(t, ref)
	if n := len(stagingRecords(t, want)); n != 0 {
		t.Fatalf("the kernel left %d CoW records", n)
	}
	compareLikeKernel(t, got, want)
	if rep.After.FDBlocks != got.SB["fdblocks"] {
		t.Errorf("report: fdblocks after %d, the superblock says %d", rep.After.FDBlocks, got.SB["fdblocks"])
	}
	t.Logf("%d CoW staging extents (%d blocks) freed in %d transactions; compared: %s", rep.Freed, rep.Blocks, rep.Transactions, treeCounts(got))
	if _, recovered := testimg.KernelMountCycle(t, img); recovered {
		t.Errorf("the kernel ran log recovery on the image xfsfree freed")
	}
}

// TestFreeCowLeftoversCrash: see the file comment.
func TestFreeCowLeftoversCrash(t *testing.T) {
	for _, v := range []struct {
		name string
		mkfs []string
	}{{"default", nil}, {"rmapbt", []string{"-m", "rmapbt=1"}}} {
		t.Run(v.name, func(t *testing.T) {
			testimg.Need(t, "xfs_io", "cp", "xfs_freeze", "loop", "xfs_db", "xfs_repair")
			img := mkfsImage(t, append([]string{"-d", "agcount=4"}, v.mkfs...)...)
			mnt := testimg.Mount(t, img)
			p := func(s string) string { return filepath.Join(mnt, s) }
			rng := rand.New(rand.NewPCG(3, 7))
			set := &reflinkSet{live: map[string]string{}}
			writeFragments(t, p("src"), 20, 4, 4, 4096, rng)
			writeFragments(t, p("big"), 200, 2, 1, 4096, rng)
			for _, c := range []string{"c1", "c2"} {
				mustRun(t, "cp", "--reflink=always", p("src"), p(c))
			}
			mustRun(t, "cp", "--reflink=always", p("big"), p("bigc"))
			overwrite(t, p("c1"), []int{0, 17, 40}, 4096, false, rng)
			overwrite(t, p("c2"), []int{5, 6, 80, 121}, 4096, true, rng)
			var blocks []int
			for i := 0; i < 60; i++ {
				blocks = append(blocks, i*9)
			}
			overwrite(t, p("bigc"), blocks, 4096, false, rng)
			for _, n := range []string{"src", "c1", "c2", "big", "bigc"} {
				set.live[n] = md5File(t, p(n))
			}
			mustRun(t, lookTool("xfs_freeze"), "-f", mnt)
			mustRun(t, lookTool("xfs_freeze"), "-u", mnt)
			mustRun(t, lookTool("xfs_io"), "-x", "-c", "shutdown", mnt)
			testimg.Unmount(t, mnt)
			planned := stagingRecords(t, testimg.ReadSpaceState(t, img))
			if len(planned) == 0 {
				t.Fatal("the crash left no CoW staging extent")
			}

			ref := copyFile(t, img, ".kernel")
			if _, recovered := testimg.KernelMountCycle(t, ref); !recovered {
				t.Fatal("the kernel did not recover the crashed image")
			}
			ours := copyFile(t, img, ".xfsfree")
			if _, err := Recover(ours, RecoverOptions{}); err != nil {
				t.Fatalf("recover: %v", err)
			}
			// A dry run lists them, writing nothing.
			before := testimg.Hash(t, ours)
			fs := openRO(t, ours)
			dry, err := fs.FreeCowLeftovers(CowOptions{DryRun: true})
			fs.Close()
			if err != nil || dry.Planned != len(planned) || len(dry.Extents) != len(planned) {
				t.Fatalf("dry run: %v; %d planned, %d listed, xfs_db lists %d", err, dry.Planned, len(dry.Extents), len(planned))
			}
			for i, e := range dry.Extents {
				r := planned[i]
				if uint64(e.AG) != r["ag"] || uint64(e.Agbno) != r["startblock"] || uint64(e.Blocks) != r["blockcount"] {
					t.Errorf("dry run lists %+v; xfs_db record %d is %v", e, i, r)
				}
			}
			if testimg.Hash(t, ours) != before {
				t.Fatal("the dry run wrote to the image")
			}
			rep := runFreeCow(t, ours, CowOptions{BatchExtents: 3})
			checkCowFreed(t, ours, ref, rep, planned)
			set.checkLive(t, ours, true)
		})
	}
}

// plantCow makes a clean image whose refcount btree holds one CoW
// staging record that no file maps (rmapbt off): file f of 16 blocks and
// its reflinked copy g make a shared record of refcount 2, which xfs_db
// turns into a CoW record of refcount 1 (refcount is given), and both
// files lose their mapping. It returns the image and the record.
func plantCow(t *testing.T, refcount int) (string, testimg.Record) {
	t.Helper()
	testimg.Need(t, "cp", "loop", "xfs_db", "xfs_repair")
	img := mkfsImage(t)
	mnt := testimg.Mount(t, img)
	rng := rand.New(rand.NewPCG(5, 5))
	writeFragments(t, filepath.Join(mnt, "f"), 1, 16, 0, 4096, rng)
	mustRun(t, "cp", "--reflink=always", filepath.Join(mnt, "f"), filepath.Join(mnt, "g"))
	inos := []uint64{inodeOf(t, filepath.Join(mnt, "f")), inodeOf(t, filepath.Join(mnt, "g"))}
	testimg.Unmount(t, mnt)
	var ag uint32
	var recs []testimg.Record
	for a := range testimg.Geo(t, img).AGCount {
		if r := testimg.RefcountRecords(t, img, a); len(r) > 0 {
			ag, recs = a, r
		}
	}
	if len(recs) != 1 || recs[0]["refcount"] != 2 || recs[0]["blockcount"] != 16 {
		t.Fatalf("refcount records %v: want one shared extent of 16 blocks", recs)
	}
	testimg.DBWrite(t, img, fmt.Sprintf("agf %d", ag), "addr refcntroot", "write recs[1].cowflag 1", fmt.Sprintf("write recs[1].refcount %d", refcount))
	for _, ino := range inos {
		testimg.DBWrite(t, img, fmt.Sprintf("inode %d", ino), "write core.nextents 0", "write core.nblocks 0", "write core.size 0")
	}
	rec := testimg.RefcountRecords(t, img, ag)[0]
	rec["ag"] = uint64(ag)
	return img, rec
}

func inodeOf(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestFreeCowLeftoversPlanted: the planted staging extent is what
// xfs_repair -n reports as a leftover CoW extent, and survives a clean
// kernel mount; after a mount that dirties the log (a file created, the
// filesystem shut down) the kernel's recovery frees it, and so do xfsfree
// recover + FreeCowLeftovers, to the same state.
func TestFreeCowLeftoversPlanted(t *testing.T) {
	img, rec := plantCow(t, 1)
	if rec["cowflag"] != 1 || rec["refcount"] != 1 {
		t.Fatalf("planted record %v", rec)
	}
	out, code := testimg.TryRepair(t, img)
	if want := fmt.Sprintf("leftover CoW extent (%d/%d) len 16", rec["ag"], rec["startblock"]); code != 1 || !strings.Contains(out, want) {
		t.Fatalf("xfs_repair -n: exit %d, want 1 and %q:\n%s", code, want, out)
	}
	clean := copyFile(t, img, ".clean")
	testimg.Unmount(t, testimg.Mount(t, clean))
	if recs := testimg.RefcountRecords(t, clean, uint32(rec["ag"])); len(recs) != 1 {
		t.Fatalf("a clean mount changed the refcount records: %v", recs)
	}
	// Dirty the log.
	mnt := testimg.Mount(t, img)
	if err := os.WriteFile(filepath.Join(mnt, "new"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "sync", "-f", mnt)
	mustRun(t, lookTool("xfs_io"), "-x", "-c", "shutdown", mnt)
	testimg.Unmount(t, mnt)
	ref := copyFile(t, img, ".kernel")
	if _, recovered := testimg.KernelMountCycle(t, ref); !recovered {
		t.Fatal("the kernel did not recover the dirty log")
	}
	if _, err := Recover(img, RecoverOptions{}); err != nil {
		t.Fatalf("recover: %v", err)
	}
	rep := runFreeCow(t, img, CowOptions{})
	checkCowFreed(t, img, ref, rep, []testimg.Record{rec})
}

// TestFreeCowLeftoversRefusesBadCount: a CoW record of refcount 2 refuses
// the run, naming the AG and the record, with nothing written.
func TestFreeCowLeftoversRefusesBadCount(t *testing.T) {
	img, rec := plantCow(t, 2)
	before := testimg.Hash(t, img)
	fs, err := OpenWrite(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := fs.FreeCowLeftovers(CowOptions{})
	fs.Close()
	var ce *CowRecordError
	if !errors.As(err, &ce) || uint64(ce.AG) != rec["ag"] || !strings.Contains(err.Error(), "refcount is not 1") ||
		!strings.Contains(err.Error(), fmt.Sprint(rec["startblock"])) {
		t.Fatalf("err %v (report %+v), want a CowRecordError naming AG %d and the record at %d", err, rep, rec["ag"], rec["startblock"])
	}
	if testimg.Hash(t, img) != before {
		t.Fatal("the refused run wrote to the image")
	}
	t.Logf("refused: %v", err)
}
