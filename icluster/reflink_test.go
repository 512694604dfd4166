package icluster_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/icluster"
	"github.com/xfsfree/xfsfree/inobt"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
	"github.com/xfsfree/xfsfree/xfs"
)

// sharedSpace is fakeSpace that also releases shared extents, recording
// them apart.
type sharedSpace struct {
	fakeSpace
	shared []icluster.Extent
}

func (s *sharedSpace) FreeShared(_ icluster.FreeTx, agno, agbno, n uint32, o icluster.Owner) error {
	s.shared = append(s.shared, icluster.Extent{AG: agno, Agbno: agbno, Len: n, Owner: o})
	return nil
}

// TestIfreeReflinked: a reflinked orphan (a cp --reflink copy of a live
// file, held open and unlinked in a frozen snapshot) is inspected with its
// data extents Shared and NeedsSteps counting their blocks; Ifree refuses
// it, changing nothing, when its Space cannot release shared extents, and
// otherwise releases its data extents through FreeShared (highest file
// offset first, with the inode's owner and offsets) and resets the inode
// to the filesystem's new-inode flags2 (REFLINK dropped).
func TestIfreeReflinked(t *testing.T) {
	testimg.Need(t, "cp", "xfs_db")
	snap := testimg.Snapshot(t, 300<<20, nil, nil, func(t testing.TB, mnt string) []*os.File {
		f, err := os.Create(filepath.Join(mnt, "a"))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 6; i++ {
			f.WriteAt([]byte(strings.Repeat(fmt.Sprint(i), 8192)), int64(i)*16384)
		}
		f.Sync()
		f.Close()
		if out, err := exec.Command("cp", "--reflink=always", filepath.Join(mnt, "a"), filepath.Join(mnt, "b")).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v\n%s", err, out)
		}
		return []*os.File{testimg.HoldUnlinked(t, filepath.Join(mnt, "b"))}
	})
	fs, err := xfs.Open(snap, xfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	var v *icluster.Victim
	var ag *icluster.AG
	for agno := uint32(0); agno < fs.G.AGCount && v == nil; agno++ {
		st, err := fs.ScanAG(agno)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Chains) == 0 {
			continue
		}
		o := st.Chains[0].Inodes[0]
		loc, err := fs.Locate(agno, st.Inobt, o.Agino)
		if err != nil {
			t.Fatal(err)
		}
		if v, err = icluster.Inspect(fs.Cache, fs.G, agno, o.Agino, loc); err != nil {
			t.Fatal(err)
		}
		fin, _ := inobt.Records(inobt.Tree(fs.Cache, fs.G, st.AGI, true))
		ag = &icluster.AG{Agno: agno, G: fs.G, Cache: fs.Cache, Inodes: fs.Inodes, Btrees: newFakeBtrees(st.Inobt, fin), Space: &fakeSpace{}}
	}
	if v == nil {
		t.Fatal("the snapshot has no orphan")
	}
	if !v.Reflink || len(v.Extents) != 6 {
		t.Fatalf("victim %d: reflink %v, %d extents: want a reflinked file of 6 extents", v.Ino, v.Reflink, len(v.Extents))
	}
	for _, e := range v.Extents {
		if !e.Shared || e.Len != 2 {
			t.Errorf("extent %+v: want a shared 2-block data extent", e)
		}
	}
	if v.SharedBlocks() != 12 || !v.NeedsSteps(11) || v.NeedsSteps(12) {
		t.Errorf("SharedBlocks %d, NeedsSteps(11) %v, NeedsSteps(12) %v: want 12, true, false", v.SharedBlocks(), v.NeedsSteps(11), v.NeedsSteps(12))
	}

	// Without FreeShared: refused, nothing changed.
	tx := newFreeTx(fs.Cache, int(fs.G.InodeSize))
	_, err = ag.Ifree(tx, v, icluster.Unlink{Prev: ondisk.NullAgino})
	var re *icluster.RefusedError
	if !errors.As(err, &re) || !strings.Contains(re.Reason, "REFLINK") {
		t.Fatalf("Ifree without FreeShared: %v, want a refusal naming REFLINK", err)
	}
	if len(tx.dirty) != 0 {
		t.Fatalf("the refused free dirtied %d buffers", len(tx.dirty))
	}
	tx.commit(t)

	// With it: every data extent goes through FreeShared.
	space := &sharedSpace{}
	ag.Space = space
	tx = newFreeTx(fs.Cache, int(fs.G.InodeSize))
	res, err := ag.Ifree(tx, v, icluster.Unlink{Prev: ondisk.NullAgino})
	if err != nil {
		t.Fatal(err)
	}
	tx.commit(t)
	if len(space.freed) != 0 || len(space.shared) != 6 || res.ForkBlocks != 12 {
		t.Fatalf("freed %v, shared %v, fork blocks %d", space.freed, space.shared, res.ForkBlocks)
	}
	for i, e := range space.shared {
		if e.Owner.Owner != v.Ino || e.Owner.Offset != uint64(4*(5-i)) {
			t.Errorf("shared extent %d released with owner %+v, want inode %d offset %d", i, e.Owner, v.Ino, 4*(5-i))
		}
	}
	d := testimg.ParseFields(testimg.DB(t, snap, fmt.Sprintf("inode %d", v.Ino), "p core.mode v3.flags2"))
	if want := fmt.Sprintf("%#x", fs.G.NewDiflags2()); d["core.mode"] != "0" || d["v3.flags2"] != want {
		t.Errorf("freed inode: %v, want mode 0 and flags2 %s", d, want)
	}
}
