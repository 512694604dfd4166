package refcount_test

// The refcount btree's write side against the kernel: images made with
// mkfs.xfs and populated through a loop mount with files and their
// cp --reflink copies; on one copy the kernel removes (or copies) a file,
// on another this package makes the same refcount changes through real
// journal transactions; the refcount btree records, the AGF's refcount
// fields and the free space must be the same, and xfs_repair -n must
// accept the images.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/xfsfree/xfsfree/alloc"
	"github.com/xfsfree/xfsfree/btree"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/refcount"
	"github.com/xfsfree/xfsfree/xfs"
)

// mkImage makes a 300 MiB image with mkfs.xfs options.
func mkImage(t *testing.T, opts ...string) string {
	t.Helper()
	testimg.Need(t, "mkfs.xfs", "xfs_db", "xfs_repair")
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

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func copyImage(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy.img")
	run(t, "cp", "--sparse=always", src, dst)
	return dst
}

// mkfrag writes a file of n extents of ext blocks, each followed by a hole
// of ext blocks, and fsyncs it.
func mkfrag(t *testing.T, path string, n, ext, bs int) {
	t.Helper()
	args := []string{"-f"}
	for i := 0; i < n; i++ {
		args = append(args, "-c", fmt.Sprintf("pwrite -q %d %d", i*2*ext*bs, ext*bs))
	}
	run(t, "xfs_io", append(args, "-c", "fsync", path)...)
}

func inum(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// extent is a file's mapping as xfs_db's bmap prints it.
type extent struct {
	off         uint64
	agno, agbno uint32
	n           uint32
	unwritten   bool
}

var bmapLine = regexp.MustCompile(`(?m)^data offset (\d+) startblock \d+ \((\d+)/(\d+)\) count (\d+) flag (\d+)`)

// bmap returns inode ino's data extents, in file offset order.
func bmap(t *testing.T, img string, ino uint64) []extent {
	t.Helper()
	out := testimg.DB(t, img, fmt.Sprintf("inode %d", ino), "bmap")
	var exts []extent
	for _, m := range bmapLine.FindAllStringSubmatch(out, -1) {
		n := func(i int) uint64 { v, _ := strconv.ParseUint(m[i], 10, 64); return v }
		exts = append(exts, extent{off: n(1), agno: uint32(n(2)), agbno: uint32(n(3)), n: uint32(n(4)), unwritten: n(5) != 0})
	}
	return exts
}

// bmbtBlocks returns the blocks of inode ino's data fork btree (none for
// an extents-format fork), walked with xfs_db from the root in the inode.
func bmbtBlocks(t *testing.T, img string, ino uint64) []extent {
	t.Helper()
	g := testimg.Geo(t, img)
	f := testimg.ParseFields(testimg.DB(t, img, fmt.Sprintf("inode %d", ino), "p core.format"))
	if !strings.HasPrefix(f["core.format"], "3") {
		return nil
	}
	var level, all []uint64
	out := testimg.DB(t, img, fmt.Sprintf("inode %d", ino), "p u3.bmbt.ptrs")
	ptrs, _ := testimg.ParseArray(out, "u3.bmbt.ptrs")
	for _, p := range ptrs {
		v, _ := testimg.ParseUint(p.Value)
		level = append(level, v)
	}
	if len(ptrs) == 0 { // one pointer: xfs_db prints "u3.bmbt.ptrs[1] = 132"
		v, err := testimg.ParseUint(testimg.ParseFields(out)["u3.bmbt.ptrs[1]"])
		if err != nil {
			t.Fatalf("inode %d: bmbt root pointers in %q", ino, out)
		}
		level = append(level, v)
	}
	for len(level) > 0 {
		all = append(all, level...)
		var cmds []string
		for _, b := range level {
			cmds = append(cmds, fmt.Sprintf("fsblock %d", b), "type bmapbtd", "p")
		}
		lout := testimg.DB(t, img, cmds...)
		if lv := testimg.ParseFields(lout)["level"]; lv == "0" {
			break
		}
		ptrs, _ := testimg.ParseArray(lout, "ptrs")
		level = level[:0:0]
		for _, p := range ptrs {
			v, _ := testimg.ParseUint(p.Value)
			level = append(level, v)
		}
	}
	var blocks []extent
	for _, b := range all {
		blocks = append(blocks, extent{agno: uint32(b >> g.AGBlkLog), agbno: uint32(b & (1<<g.AGBlkLog - 1)), n: 1})
	}
	return blocks
}

// agSpace is what xfs_db says of an AG's refcount btree and free space.
type agSpace struct {
	refc    []testimg.Record
	agf     map[string]uint64
	free    []testimg.Record // bnobt records
	fsSpace []uint32         // every block of the free extents, the AGFL and the bnobt, cntbt, rmapbt
}

var agfKeys = []string{"refcntroot", "refcntlevel", "refcntblocks", "freeblks", "longest", "flcount", "btreeblks",
	"bnoroot", "cntroot", "rmaproot", "bnolevel", "cntlevel", "rmaplevel", "rmapblocks"}

// treeBlocks walks a short-form btree with xfs_db and returns its blocks.
func treeBlocks(t *testing.T, img string, g testimg.Geometry, agno, root uint32, levels int, typ string) []uint32 {
	t.Helper()
	level := []uint32{root}
	var all []uint32
	for l := levels; l >= 1; l-- {
		all = append(all, level...)
		if l == 1 {
			break
		}
		var cmds []string
		for _, b := range level {
			cmds = append(cmds, fmt.Sprintf("fsblock %d", g.FSBlock(agno, b)), "type "+typ, "p")
		}
		ptrs, _ := testimg.ParseArray(testimg.DB(t, img, cmds...), "ptrs")
		level = level[:0:0]
		for _, p := range ptrs {
			v, _ := testimg.ParseUint(p.Value)
			level = append(level, uint32(v))
		}
	}
	return all
}

func space(t *testing.T, img string, agno uint32) *agSpace {
	t.Helper()
	g := testimg.Geo(t, img)
	f := testimg.ParseFields(testimg.DB(t, img, fmt.Sprintf("agf %d", agno), "p"))
	s := &agSpace{agf: map[string]uint64{}}
	for _, k := range agfKeys {
		if v, ok := f[k]; ok {
			s.agf[k], _ = testimg.ParseUint(v)
		}
	}
	s.refc = testimg.RefcountRecords(t, img, agno)
	s.free = testimg.TreeRecords(t, img, agno, uint32(s.agf["bnoroot"]), int(s.agf["bnolevel"]), "bnobt")
	set := map[uint32]bool{}
	for _, r := range s.free {
		for b := r["startblock"]; b < r["startblock"]+r["blockcount"]; b++ {
			set[uint32(b)] = true
		}
	}
	sect, _ := testimg.ParseUint(testimg.ParseFields(testimg.DB(t, img, "sb 0", "p sectsize"))["sectsize"])
	size := (int(sect) - 36) / 4
	bnos, _ := testimg.ParseArray(testimg.DB(t, img, fmt.Sprintf("agfl %d", agno), "p bno"), "bno")
	slot := map[int]uint32{}
	for _, e := range bnos {
		v, _ := testimg.ParseUint(e.Value)
		slot[e.Index] = uint32(v)
	}
	for i, k := 0, int(s.agf["flfirst"]); i < int(s.agf["flcount"]); i, k = i+1, (k+1)%size {
		set[slot[k]] = true
	}
	trees := [][3]string{{"bnoroot", "bnolevel", "bnobt"}, {"cntroot", "cntlevel", "cntbt"}}
	if s.agf["rmaplevel"] > 0 {
		trees = append(trees, [3]string{"rmaproot", "rmaplevel", "rmapbt"})
	}
	for _, tr := range trees {
		for _, b := range treeBlocks(t, img, g, agno, uint32(s.agf[tr[0]]), int(s.agf[tr[1]]), tr[2]) {
			set[b] = true
		}
	}
	for b := range set {
		s.fsSpace = append(s.fsSpace, b)
	}
	slices.Sort(s.fsSpace)
	return s
}

// Comparison modes of sameSpace.
const (
	// blocksOnly: the refcount records and the AGF's refcount fields
	// exactly; the free space as the set of blocks the free-space
	// machinery holds (free extents, AGFL, its btrees: where the AGFL
	// refills from can differ with the order of frees).
	blocksOnly = iota
	// exact: also the free extents and every AGF counter.
	exact
	// totals: the refcount records, level and block count exactly, and
	// the number of blocks the free-space machinery holds (with rmapbt,
	// the kernel's reflink copy also adds rmap records in the AG, which
	// grow its rmapbt and move the AGFL, where a refcount change alone
	// does not).
	totals
)

// sameSpace compares an AG of ours with the kernel's, as mode says.
func sameSpace(t *testing.T, what string, ours, kern *agSpace, mode int) {
	t.Helper()
	if a, b := fmt.Sprint(ours.refc), fmt.Sprint(kern.refc); a != b {
		i := 0
		for i < min(len(ours.refc), len(kern.refc)) && fmt.Sprint(ours.refc[i]) == fmt.Sprint(kern.refc[i]) {
			i++
		}
		show := func(r []testimg.Record) string { return fmt.Sprint(r[i:min(i+4, len(r))]) }
		t.Errorf("%s: %d refcount records, the kernel's %d; from record %d:\n ours   %s\n kernel %s", what, len(ours.refc), len(kern.refc), i, show(ours.refc), show(kern.refc))
	}
	keys := []string{"refcntroot", "refcntlevel", "refcntblocks"}
	switch mode {
	case exact:
		keys = agfKeys
	case totals:
		keys = keys[1:]
	}
	for _, k := range keys {
		if ours.agf[k] != kern.agf[k] {
			t.Errorf("%s: agf %s = %d, the kernel's %d", what, k, ours.agf[k], kern.agf[k])
		}
	}
	if mode == totals {
		if len(ours.fsSpace) != len(kern.fsSpace) {
			t.Errorf("%s: the free-space machinery holds %d blocks, the kernel's %d", what, len(ours.fsSpace), len(kern.fsSpace))
		}
	} else if !slices.Equal(ours.fsSpace, kern.fsSpace) {
		t.Errorf("%s: the free-space machinery holds %d blocks, the kernel's %d (%v)", what, len(ours.fsSpace), len(kern.fsSpace),
			symDiff(ours.fsSpace, kern.fsSpace))
	}
	if a, b := ours.agf["freeblks"]+ours.agf["flcount"]+ours.agf["btreeblks"], kern.agf["freeblks"]+kern.agf["flcount"]+kern.agf["btreeblks"]; a != b {
		t.Errorf("%s: freeblks+flcount+btreeblks %d, the kernel's %d", what, a, b)
	}
	if mode == exact && fmt.Sprint(ours.free) != fmt.Sprint(kern.free) {
		t.Errorf("%s: free extents differ (%d, the kernel's %d):\n ours   %.400v\n kernel %.400v", what, len(ours.free), len(kern.free), fmt.Sprint(ours.free), fmt.Sprint(kern.free))
	}
}

func symDiff(a, b []uint32) string {
	var onlyA, onlyB []uint32
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); !ok {
			onlyA = append(onlyA, x)
		}
	}
	for _, x := range b {
		if _, ok := slices.BinarySearch(a, x); !ok {
			onlyB = append(onlyB, x)
		}
	}
	return fmt.Sprintf("only ours %v, only the kernel's %v", onlyA, onlyB)
}

// apply runs fn on AG agno's refcount btree in one journal transaction of
// the filesystem.
func apply(t *testing.T, fs *xfs.FS, agno uint32, fn func(tx refcount.Tx, r *refcount.AG) error) {
	t.Helper()
	tx := fs.Begin()
	a, err := alloc.ReadAG(tx, fs.G, agno)
	if err != nil {
		tx.Cancel()
		t.Fatal(err)
	}
	if err := fn(tx, refcount.New(a)); err != nil {
		tx.Cancel()
		t.Fatal(err)
	}
	if _, err := tx.Commit(); err != nil {
		tx.Cancel()
		t.Fatal(err)
	}
}

// adjustAll increases or decreases the count of every extent, two
// extents a transaction. With logRes 0 none may stop early; with a log
// reservation, an extent whose adjustment stops early is continued in a
// new transaction (as the kernel continues a CUI in a new intent) until
// done, and the number of continuations is returned.
func adjustAll(t *testing.T, img string, exts []extent, increase bool, logRes int) (continued int) {
	t.Helper()
	fs, err := xfs.OpenWrite(img, xfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	var todo []extent
	for i := 0; i < len(exts) || len(todo) > 0; {
		if len(todo) == 0 {
			todo = exts[i:min(i+2, len(exts))]
			i += len(todo)
		}
		batch := todo
		todo = nil
		agno := batch[0].agno
		apply(t, fs, agno, func(tx refcount.Tx, r *refcount.AG) error {
			r.LogRes = logRes
			for j, e := range batch {
				if e.agno != agno {
					return fmt.Errorf("a batch of extents in two AGs: %v", batch)
				}
				var rest refcount.Extent
				var err error
				if increase {
					rest, err = r.Increase(tx, e.agbno, e.n)
				} else {
					rest, err = r.Decrease(tx, e.agbno, e.n)
				}
				if err != nil {
					return fmt.Errorf("extent %+v: %w", e, err)
				}
				if rest.Len != 0 {
					if logRes == 0 {
						return fmt.Errorf("extent %+v: stopped early at %+v with no log reservation given", e, rest)
					}
					continued++
					todo = append([]extent{{agno: agno, agbno: rest.Start, n: rest.Len}}, batch[j+1:]...)
					return nil
				}
			}
			return nil
		})
	}
	if err := fs.Finish(); err != nil {
		t.Fatal(err)
	}
	return continued
}

// agsOf lists the AGs the extents are in.
func agsOf(exts []extent) []uint32 {
	var ags []uint32
	for _, e := range exts {
		if !slices.Contains(ags, e.agno) {
			ags = append(ags, e.agno)
		}
	}
	sort.Slice(ags, func(i, j int) bool { return ags[i] < ags[j] })
	return ags
}

// repairOnlyRmapOf runs xfs_repair -n and accepts it when it is clean, or
// when every complaint is about the rmap records of inode ino (which a
// refcount-only change leaves in place).
func repairOnlyRmapOf(t *testing.T, img string, ino uint64) {
	t.Helper()
	out, code := testimg.TryRepair(t, img)
	if code == 0 {
		t.Logf("xfs_repair -n: clean")
		return
	}
	owner := fmt.Sprintf(`owner %d[ ,)]|inode %d\b|ino %d\b`, ino, ino, ino)
	mine := regexp.MustCompile(owner)
	var other []string
	rmapLines := 0
	for _, l := range strings.Split(out, "\n") {
		if repairNoise.MatchString(l) {
			continue
		}
		if strings.Contains(l, "rmap") && mine.MatchString(l) {
			rmapLines++
			continue
		}
		other = append(other, l)
	}
	t.Logf("xfs_repair -n: exit %d, %d complaints about inode %d's rmap records", code, rmapLines, ino)
	if len(other) > 0 {
		t.Errorf("xfs_repair -n: exit %d; lines not about inode %d's rmap records:\n%s\n(all:\n%s)", code, ino, strings.Join(other, "\n"), out)
	}
}

// TestDecreaseLikeKernelDelete: removing a file's share of its blocks
// (Decrease of each extent, from the last one back, two a transaction, as
// the kernel's truncation does; blocks left without an owner freed) gives
// the refcount btree, AGF refcount fields and free space the kernel's
// unlink of the file gives. The files: extents of 4 blocks with 4-block
// holes, a reflinked copy and a copy of the copy (shares of 3), partial
// overwrites of the copies (records split around the CoW'd blocks), and a
// file with an unshared part. The removed file's inode is then emptied
// with xfs_db on our image, so that xfs_repair -n judges a consistent
// filesystem (with rmapbt, the file's rmap records, which a refcount
// change does not touch, are its only complaints).
func TestDecreaseLikeKernelDelete(t *testing.T) {
	for _, v := range []struct {
		name string
		opts []string
	}{{"default", nil}, {"rmapbt", []string{"-m", "rmapbt=1"}}} {
		t.Run(v.name, func(t *testing.T) {
			testimg.Need(t, "loop", "xfs_io", "cp")
			base := mkImage(t, v.opts...)
			mnt := testimg.Mount(t, base)
			p := func(s string) string { return filepath.Join(mnt, s) }
			mkfrag(t, p("src"), 12, 4, 4096)
			run(t, "cp", "--reflink=always", p("src"), p("c1"))
			run(t, "cp", "--reflink=always", p("c1"), p("c2"))
			// CoW inside extents of the copies: their records split.
			run(t, "xfs_io", "-c", "pwrite -q 4096 4096", "-c", "pwrite -q 73728 8192", "-c", "fsync", p("c2"))
			run(t, "xfs_io", "-c", "pwrite -q 40960 4096", "-c", "fsync", p("c1"))
			mkfrag(t, p("d"), 6, 8, 4096)
			run(t, "cp", "--reflink=always", p("d"), p("d1"))
			run(t, "xfs_io", "-c", "pwrite -q 0 16384", "-c", "pwrite -q 131072 8192", "-c", "fsync", p("d"))
			inos := map[string]uint64{}
			for _, f := range []string{"src", "c1", "c2", "d", "d1"} {
				inos[f] = inum(t, p(f))
			}
			testimg.Unmount(t, mnt)
			testimg.Repair(t, base)
			for _, c := range []struct {
				victim string
				logRes int
			}{{"c1", 0}, {"src", 0}, {"d", 0}, {"c1", 20000}} {
				victim, logRes := c.victim, c.logRes
				name := victim
				if logRes > 0 {
					name += "-continued"
				}
				t.Run(name, func(t *testing.T) {
					ino := inos[victim]
					exts := bmap(t, base, ino)
					if len(exts) == 0 {
						t.Fatalf("%s (inode %d) has no extents", victim, ino)
					}
					kern, ours := copyImage(t, base), copyImage(t, base)
					m := testimg.Mount(t, kern)
					if err := os.Remove(filepath.Join(m, victim)); err != nil {
						t.Fatal(err)
					}
					testimg.Unmount(t, m)

					mode := exact
					if v.name == "rmapbt" {
						mode = blocksOnly // the kernel's unlink also removes rmap records
					}
					rev := slices.Clone(exts)
					slices.Reverse(rev)
					if n := adjustAll(t, ours, rev, false, logRes); logRes > 0 {
						t.Logf("with a log reservation of %d bytes, %d decreases stopped early and were continued", logRes, n)
						if n == 0 {
							t.Errorf("no decrease stopped early")
						}
					}
					// The kernel frees the file's bmbt blocks as its
					// truncation empties the btree (owner: the inode's
					// bmbt); so do we.
					bmbt := bmbtBlocks(t, base, ino)
					if len(bmbt) > 0 {
						fs, err := xfs.OpenWrite(ours, xfs.Options{})
						if err != nil {
							t.Fatal(err)
						}
						for _, b := range bmbt {
							apply(t, fs, b.agno, func(tx refcount.Tx, r *refcount.AG) error {
								return alloc.FreeExtent(tx, r.A, b.agbno, 1, alloc.BmbtOwner(ino, false))
							})
						}
						if err := fs.Finish(); err != nil {
							t.Fatal(err)
						}
						fs.Close()
					}
					for _, ag := range agsOf(exts) {
						sameSpace(t, fmt.Sprintf("%s AG %d", victim, ag), space(t, ours, ag), space(t, kern, ag), mode)
					}
					t.Logf("%s: %d extents decreased, %d bmbt blocks freed; %d refcount records now", victim, len(exts), len(bmbt), len(testimg.RefcountRecords(t, ours, exts[0].agno)))
					testimg.Repair(t, kern)
					// The file is still there in our image: empty it.
					testimg.DBWrite(t, ours, fmt.Sprintf("inode %d", ino), "write core.format 2", "write core.nextents 0", "write core.nblocks 0", "write core.size 0")
					if v.name == "rmapbt" {
						repairOnlyRmapOf(t, ours, ino)
					} else {
						testimg.Repair(t, ours)
					}
				})
			}
		})
	}
}

// TestGrowShrinkLikeKernel: the counts of a 900-extent file raised by one
// (as its reflinked copy does) grow the refcount btree past one level,
// as the kernel's cp --reflink into another AG's directory does; lowered
// again (as removing the copy does) it shrinks back, as the kernel's rm
// does. Records, AGF refcount fields and the AG's free space match the
// kernel's at both points; both final images pass xfs_repair -n.
func TestGrowShrinkLikeKernel(t *testing.T) {
	for _, v := range []struct {
		name string
		opts []string
	}{{"default", nil}, {"rmapbt", []string{"-m", "rmapbt=1"}}} {
		t.Run(v.name, func(t *testing.T) {
			testimg.Need(t, "loop", "xfs_io", "cp")
			base := mkImage(t, v.opts...)
			mnt := testimg.Mount(t, base)
			mkfrag(t, filepath.Join(mnt, "x"), 900, 1, 4096)
			ino := inum(t, filepath.Join(mnt, "x"))
			// Directories go to other AGs (the inode allocator's rotor):
			// the copy is made in one whose AG differs from x's, so that
			// its bmbt blocks do not come from x's AG.
			subAG := map[string]uint32{}
			g := testimg.Geo(t, base)
			for i := 0; i < 4; i++ {
				d := fmt.Sprintf("sub%d", i)
				if err := os.Mkdir(filepath.Join(mnt, d), 0o755); err != nil {
					t.Fatal(err)
				}
				subAG[d] = uint32(inum(t, filepath.Join(mnt, d)) >> (g.AGBlkLog + g.InoPBLog))
			}
			testimg.Unmount(t, mnt)
			// Only written extents are shared by a reflink copy (the
			// unwritten ones, left by speculative preallocation between
			// the written blocks, are not remapped).
			var exts []extent
			for _, e := range bmap(t, base, ino) {
				if !e.unwritten {
					exts = append(exts, e)
				}
			}
			ags := agsOf(exts)
			sub := ""
			for i := 0; i < 4 && len(ags) == 1; i++ {
				if d := fmt.Sprintf("sub%d", i); subAG[d] != ags[0] {
					sub = d
					break
				}
			}
			if sub == "" {
				t.Skipf("x's extents are in AGs %v and the directories in AGs %v: want one AG other than a directory's", ags, subAG)
			}
			ag := ags[0]
			kern, ours := copyImage(t, base), copyImage(t, base)
			m := testimg.Mount(t, kern)
			run(t, "cp", "--reflink=always", filepath.Join(m, "x"), filepath.Join(m, sub, "y"))
			testimg.Unmount(t, m)
			adjustAll(t, ours, exts, true, 0)
			mode := exact
			if v.name == "rmapbt" {
				mode = totals
			}
			grown := space(t, ours, ag)
			sameSpace(t, "grown", grown, space(t, kern, ag), mode)
			if grown.agf["refcntlevel"] < 2 {
				t.Errorf("refcount btree of %d levels after %d increases, want 2 or more", grown.agf["refcntlevel"], len(exts))
			}
			t.Logf("grown: %d records, %d levels, %d blocks, root %d", len(grown.refc), grown.agf["refcntlevel"], grown.agf["refcntblocks"], grown.agf["refcntroot"])
			testimg.Repair(t, kern)

			m = testimg.Mount(t, kern)
			if err := os.Remove(filepath.Join(m, sub, "y")); err != nil {
				t.Fatal(err)
			}
			testimg.Unmount(t, m)
			rev := slices.Clone(exts)
			slices.Reverse(rev)
			adjustAll(t, ours, rev, false, 0)
			shrunk := space(t, ours, ag)
			sameSpace(t, "shrunk", shrunk, space(t, kern, ag), mode)
			if shrunk.agf["refcntlevel"] != 1 || len(shrunk.refc) != 0 || shrunk.agf["refcntblocks"] != 1 {
				t.Errorf("after the decreases: %d records, level %d, %d blocks", len(shrunk.refc), shrunk.agf["refcntlevel"], shrunk.agf["refcntblocks"])
			}
			testimg.Repair(t, ours)
			testimg.Repair(t, kern)
			if _, recovered := testimg.KernelMountCycle(t, ours); recovered {
				t.Errorf("the kernel ran recovery on our image")
			}
		})
	}
}

// readRecords returns every refcount record and the CoW staging records of
// AG agno of an image, read with this package.
func readRecords(t *testing.T, img string, agno uint32) (all, cow []refcount.Rec) {
	t.Helper()
	fs, err := xfs.Open(img, xfs.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	tx := btree.NewReadTx(fs.Cache)
	defer tx.End()
	a, err := alloc.ReadAG(tx, fs.G, agno)
	if err != nil {
		t.Fatal(err)
	}
	r := refcount.New(a)
	if all, err = r.Records(tx); err != nil {
		t.Fatal(err)
	}
	if cow, err = r.CowRecords(tx); err != nil {
		t.Fatal(err)
	}
	// Lookups: the first CoW record at or after block 0 of the CoW
	// domain, and each record found again by its start.
	rec, found, err := r.Lookup(tx, true, 0, btree.GE)
	if err != nil || found != (len(cow) > 0) || (found && rec != cow[0]) {
		t.Errorf("Lookup(cow, 0, GE) = %v, %v, %v; CoW records %v", rec, found, err, cow)
	}
	for _, want := range all {
		for _, dir := range []btree.LookupDir{btree.EQ, btree.LE} {
			if got, found, err := r.Lookup(tx, want.Cow, want.Start, dir); err != nil || !found || got != want {
				t.Errorf("Lookup(%v, %d, %v) = %v, %v, %v; want %v", want.Cow, want.Start, dir, got, found, err, want)
			}
		}
	}
	return all, cow
}

func dbRecs(recs []testimg.Record) []refcount.Rec {
	var out []refcount.Rec
	for _, r := range recs {
		out = append(out, refcount.Rec{Start: uint32(r["startblock"]), Len: uint32(r["blockcount"]), Refcount: uint32(r["refcount"]), Cow: r["cowflag"] != 0})
	}
	return out
}

// TestCowLeftoversRead: the CoW staging extents a crash during CoW writes
// leaves in the refcount btree (the research note's recipe: a reflinked
// copy's first block rewritten, fsynced, the filesystem frozen and shut
// down) are what xfs_db lists, and Records reads every record as xfs_db
// prints it.
func TestCowLeftoversRead(t *testing.T) {
	testimg.Need(t, "loop", "xfs_io", "cp", "xfs_freeze")
	img := mkImage(t)
	mnt := testimg.Mount(t, img)
	mkfrag(t, filepath.Join(mnt, "src"), 20, 1, 4096)
	run(t, "cp", "--reflink=always", filepath.Join(mnt, "src"), filepath.Join(mnt, "cow1"))
	run(t, "xfs_io", "-c", "pwrite -q 0 4096", "-c", "fsync", filepath.Join(mnt, "cow1"))
	run(t, "xfs_freeze", "-f", mnt)
	run(t, "xfs_freeze", "-u", mnt)
	run(t, "xfs_io", "-x", "-c", "shutdown", mnt)
	testimg.Unmount(t, mnt)
	db := dbRecs(testimg.RefcountRecords(t, img, 0))
	all, cow := readRecords(t, img, 0)
	if fmt.Sprint(all) != fmt.Sprint(db) {
		t.Errorf("records:\n ours   %v\n xfs_db %v", all, db)
	}
	var want []refcount.Rec
	for _, r := range db {
		if r.Cow {
			want = append(want, r)
		}
	}
	if len(want) == 0 {
		t.Skipf("the crash left no CoW staging extent (records %v)", db)
	}
	if fmt.Sprint(cow) != fmt.Sprint(want) {
		t.Errorf("CoW records %v, xfs_db lists %v", cow, want)
	}
	t.Logf("CoW staging extents: %v", cow)
}

// TestCowRoundTrip: blocks allocated as CoW staging extents (OWN_COW in
// the rmapbt, CoW-domain records merging with their neighbours) are what
// xfs_repair -n then reports as leftover CoW extents, and nothing else; a
// copy left with a dirty log (our transactions checkpointed, no unmount
// record) is recovered by the kernel, which frees those leftovers
// (xfs_reflink_recover_cow reads our records) back to the AG's state before;
// freed again by us in pieces (records split), the AG's refcount btree and
// free space are as before, and xfs_repair -n accepts the image.
func TestCowRoundTrip(t *testing.T) {
	for _, v := range []struct {
		name string
		opts []string
	}{{"default", nil}, {"rmapbt", []string{"-m", "rmapbt=1"}}} {
		t.Run(v.name, func(t *testing.T) {
			testimg.Need(t, "loop", "xfs_io", "cp")
			img := mkImage(t, v.opts...)
			mnt := testimg.Mount(t, img)
			mkfrag(t, filepath.Join(mnt, "src"), 10, 2, 4096)
			run(t, "cp", "--reflink=always", filepath.Join(mnt, "src"), filepath.Join(mnt, "c"))
			testimg.Unmount(t, mnt)
			const ag = 1 // the log is in the middle AG
			before := space(t, img, ag)
			target := uint32(1000)
			fs, err := xfs.OpenWrite(img, xfs.Options{})
			if err != nil {
				t.Fatal(err)
			}
			apply(t, fs, ag, func(tx refcount.Tx, r *refcount.AG) error {
				// Three runs: 4 blocks, then 3 and 2 touching each other.
				for _, run := range []struct{ at, n uint32 }{{target, 4}, {target + 10, 3}, {target + 13, 2}} {
					b, err := alloc.AllocNear(tx, r.A, run.at, run.n, alloc.OwnerCow)
					if err != nil {
						return err
					}
					if b != run.at {
						return fmt.Errorf("allocated %d blocks at %d, asked at %d", run.n, b, run.at)
					}
					if err := r.CowAlloc(tx, b, run.n); err != nil {
						return err
					}
				}
				return nil
			})
			if err := fs.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			dirty := copyImage(t, img)
			if err := fs.Finish(); err != nil {
				t.Fatal(err)
			}
			fs.Close()
			want := []refcount.Rec{{Start: target, Len: 4, Refcount: 1, Cow: true}, {Start: target + 10, Len: 5, Refcount: 1, Cow: true}}
			if _, cow := readRecords(t, img, ag); fmt.Sprint(cow) != fmt.Sprint(want) {
				t.Errorf("CoW records %v, want %v", cow, want)
			}
			out, code := testimg.TryRepair(t, img)
			var complaints []string
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, "leftover CoW extent") {
					complaints = append(complaints, strings.TrimSpace(l))
				} else if !repairNoise.MatchString(l) {
					t.Errorf("xfs_repair -n: %q", l)
				}
			}
			wantC := []string{fmt.Sprintf("leftover CoW extent (%d/%d) len 4", ag, target), fmt.Sprintf("leftover CoW extent (%d/%d) len 5", ag, target+10)}
			if code != 1 || !slices.Equal(complaints, wantC) {
				t.Errorf("xfs_repair -n: exit %d, complaints %q; want exit 1 and %q", code, complaints, wantC)
			}

			if _, recovered := testimg.KernelMountCycle(t, dirty); !recovered {
				t.Fatalf("the kernel did not recover the copy with a dirty log")
			}
			if _, cow := readRecords(t, dirty, ag); len(cow) != 0 {
				t.Errorf("the kernel's recovery left CoW records %v", cow)
			}
			sameSpace(t, "after the kernel's CoW recovery", space(t, dirty, ag), before, blocksOnly)
			testimg.Repair(t, dirty)

			fs, err = xfs.OpenWrite(img, xfs.Options{})
			if err != nil {
				t.Fatal(err)
			}
			apply(t, fs, ag, func(tx refcount.Tx, r *refcount.AG) error {
				// The middle block of the merged record first: it splits.
				for _, e := range []struct{ at, n uint32 }{{target + 12, 1}, {target, 4}, {target + 10, 2}, {target + 13, 2}} {
					if err := r.CowFree(tx, e.at, e.n); err != nil {
						return fmt.Errorf("CowFree(%d, %d): %w", e.at, e.n, err)
					}
					if err := alloc.FreeExtent(tx, r.A, e.at, e.n, alloc.OwnerCow); err != nil {
						return err
					}
				}
				return nil
			})
			if err := fs.Finish(); err != nil {
				t.Fatal(err)
			}
			fs.Close()
			if _, cow := readRecords(t, img, ag); len(cow) != 0 {
				t.Errorf("CoW records left: %v", cow)
			}
			after := space(t, img, ag)
			sameSpace(t, "after the round trip", after, before, blocksOnly)
			if fmt.Sprint(after.free) != fmt.Sprint(before.free) {
				t.Errorf("free extents %v, were %v", after.free, before.free)
			}
			testimg.Repair(t, img)
		})
	}
}

var repairNoise = regexp.MustCompile(`^$|^Phase \d|^\s+- |^No modify flag set|^Cannot get host|^Repair may fail|^the image and the host`)
