package rescue_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xfsfree/xfsfree/extract"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/rescue"
	"github.com/xfsfree/xfsfree/xfs"
)

func copyImage(t *testing.T, src, suffix string) string {
	t.Helper()
	dst := src + suffix
	if out, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	return dst
}

func openRO(t *testing.T, img string) *xfs.FS {
	t.Helper()
	fs, err := xfs.Open(img, xfs.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	return fs
}

// checkDescribe compares Describe with what the kernel said of o.
func checkDescribe(t *testing.T, fs *xfs.FS, o *orphan) {
	t.Helper()
	in, err := fs.Describe(o.ino, true)
	if err != nil {
		t.Fatalf("%s (inode %d): %v", o.name, o.ino, err)
	}
	if in.Type != o.typ || uint32(in.Mode) != o.mode || in.UID != o.uid || int64(in.Size) != o.size || in.Nlink != 0 ||
		!in.Mtime.Equal(time.Unix(o.mtime.Unix())) || in.ProjID != o.projid || !slices.Equal(in.Flags, o.flags) || len(in.Errors) > 0 {
		t.Errorf("%s (inode %d): described as %s %#o uid %d size %d nlink %d mtime %v projid %d flags %v errors %v; "+
			"kernel %s %#o uid %d size %d mtime %v projid %d flags %v", o.name, o.ino, in.Type, in.Mode, in.UID, in.Size, in.Nlink,
			in.Mtime, in.ProjID, in.Flags, in.Errors, o.typ, o.mode, o.uid, o.size, time.Unix(o.mtime.Unix()), o.projid, o.flags)
	}
	if in.XattrCount != len(o.xattrs) {
		t.Errorf("%s: %d xattrs, kernel %d", o.name, in.XattrCount, len(o.xattrs))
	}
	for _, x := range in.Xattrs {
		if v, ok := o.xattrs[x.Name]; !ok || !bytes.Equal(v, x.Value) || x.ValueLen != len(v) {
			t.Errorf("%s: xattr %s (%d bytes) is not the kernel's (%d bytes, present %v)", o.name, x.Name, len(x.Value), len(v), ok)
		}
	}
	if o.typ == "symlink" && md5hex([]byte(in.Target)) != o.md5 {
		t.Errorf("%s: target %q is not the kernel's", o.name, in.Target)
	}
}

// checkExtract extracts every orphan of img, as a sparse file and as a
// stream, and compares with what the kernel read when they were made: the
// same bytes (md5), and data exactly where img has written extents (holes
// and unwritten extents left as holes). The image is not changed.
func checkExtract(t *testing.T, img string, files []*orphan, label string) {
	t.Helper()
	before := testimg.Hash(t, img)
	fs := openRO(t, img)
	dir := t.TempDir()
	for _, o := range files {
		checkDescribe(t, fs, o)
		out := filepath.Join(dir, label+"-"+o.name)
		// A small buffer: segments are split over many reads.
		opts := rescue.Options{BufferBytes: 256 << 10}
		r, err := rescue.SaveInode(fs, o.ino, out, false, opts)
		if o.typ == "directory" || o.typ == "fifo" {
			if !errors.Is(err, extract.ErrNoData) {
				t.Errorf("%s: SaveInode of a %s: %v, want ErrNoData", o.name, o.typ, err)
			}
			if _, err := os.Lstat(out); err == nil {
				t.Errorf("%s: an output file for a %s", o.name, o.typ)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s (inode %d): %v", o.name, o.ino, err)
		}
		if got := md5file(t, out); got != o.md5 || r.Size != o.size && o.typ == "regular" {
			t.Errorf("%s: extracted md5 %s size %d, kernel %s %d", o.name, got, r.Size, o.md5, o.size)
		}
		var buf bytes.Buffer
		if _, err := rescue.WriteInode(fs, o.ino, &buf, opts); err != nil || md5hex(buf.Bytes()) != o.md5 {
			t.Errorf("%s: streamed %d bytes, md5 %s (%v), kernel %s", o.name, buf.Len(), md5hex(buf.Bytes()), err, o.md5)
		}
		if o.typ != "regular" {
			continue
		}
		want := writtenSpans(t, img, o.ino, o.size)
		got := dataSpans(t, out)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: data of the output at %v, written extents of the inode at %v", o.name, got, want)
		}
		var wantData int64
		for _, s := range want {
			wantData += s.end - s.off
		}
		if r.Data != wantData {
			t.Errorf("%s: %d bytes of data read, written extents hold %d", o.name, r.Data, wantData)
		}
		if fi, _ := os.Stat(out); fi.ModTime() != time.Unix(o.mtime.Unix()) {
			t.Errorf("%s: output mtime %v, inode's %v", o.name, fi.ModTime(), time.Unix(o.mtime.Unix()))
		}
		if label == "snapshot" {
			t.Logf("%s: %d bytes, %d of data in %d span(s) %v, %d segment(s), %d unwritten extent(s)", o.name, o.size, r.Data,
				len(want), want[:min(len(want), 4)], r.Segments, r.Unwritten)
		}
		switch o.name {
		case "sparse", "prealloc", "fragmented":
			if len(want) < 2 && o.name != "prealloc" || wantData >= o.size {
				t.Errorf("%s: written extents %v: the test wants holes", o.name, want)
			}
		}
	}
	// Every orphan at once, with a manifest.
	all := filepath.Join(dir, label+"-all")
	m, err := rescue.SaveOrphans(fs, all, rescue.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Orphans != len(files) || m.Saved != len(files) || m.Failed != 0 || len(m.NotSaved()) != 0 {
		t.Errorf("SaveOrphans: %d orphans, %d saved, %d failed: %v", m.Orphans, m.Saved, m.Failed, m.NotSaved())
	}
	checkSaved(t, all, files)
	fs.Close()
	if testimg.Hash(t, img) != before {
		t.Errorf("%s: extracting changed the image", label)
	}
}

// checkSaved checks a save directory against the kernel's records: every
// regular file and symlink as DIR/<ino> with its md5, and the manifest
// describing each orphan, xattr values included.
func checkSaved(t *testing.T, dir string, files []*orphan) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, rescue.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	var m rescue.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	byIno := map[uint64]rescue.Entry{}
	for _, e := range m.Files {
		byIno[e.Ino] = e
	}
	for _, o := range files {
		e, ok := byIno[o.ino]
		if !ok || !e.Saved || e.Info == nil || e.Info.Type != o.typ || int64(e.Info.Size) != o.size {
			t.Errorf("%s (inode %d): manifest entry %+v", o.name, o.ino, e)
			continue
		}
		for _, x := range e.Info.Xattrs {
			if !bytes.Equal(o.xattrs[x.Name], x.Value) {
				t.Errorf("%s: manifest xattr %s differs from the kernel's", o.name, x.Name)
			}
		}
		if len(e.Info.Xattrs) != len(o.xattrs) {
			t.Errorf("%s: manifest has %d xattrs, kernel %d", o.name, len(e.Info.Xattrs), len(o.xattrs))
		}
		path := filepath.Join(dir, strconv.FormatUint(o.ino, 10))
		if o.typ == "directory" || o.typ == "fifo" {
			if e.File != "" {
				t.Errorf("%s: a file for a %s", o.name, o.typ)
			}
			continue
		}
		if e.File != strconv.FormatUint(o.ino, 10) || md5file(t, path) != o.md5 {
			t.Errorf("%s: saved as %q, md5 %s, kernel %s", o.name, e.File, md5file(t, path), o.md5)
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), "partial") {
			t.Errorf("a temporary file is left: %s", e.Name())
		}
	}
}

// TestExtractSnapshot: a frozen snapshot with a dirty log whose orphans
// hold known bytes (recorded through the kernel when they were made), and
// a copy recovered by xfsfree recover. From each, every orphan extracts
// to the kernel's bytes, with data exactly where the inode has written
// extents (holes and unwritten extents stay holes: SEEK_DATA of the output
// against xfs_db's bmap), reflinked files included; Describe agrees with
// the kernel's stat and xattrs; SaveOrphans saves them all with a
// manifest; and neither image changes.
func TestExtractSnapshot(t *testing.T) {
	testimg.Need(t, "xfs_db")
	img, files := makeSnapshot(t, true)
	fs := openRO(t, img)
	st, err := fs.LogState()
	fs.Close()
	if err != nil || st == nil || st.Clean {
		t.Fatalf("the snapshot's log: %v %v, want dirty", st, err)
	}
	checkExtract(t, img, files, "snapshot")

	rec := copyImage(t, img, ".recovered")
	rep, err := xfs.Recover(rec, xfs.RecoverOptions{})
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	if rep.Orphans != len(files) {
		t.Errorf("%d orphans after recover, want %d", rep.Orphans, len(files))
	}
	checkExtract(t, rec, files, "recovered")
}

// TestSaveOrphansThenFree: recover a snapshot, then, on one writable
// handle, save every orphan (SaveOrphans) and free them all
// (FreeOptions.Keep from the manifest): every saved file has the kernel's
// md5, nothing is refused, and the image ends in the allocation state a
// kernel mount of the same snapshot leaves; xfs_repair -n passes and the
// kernel mounts it without recovery.
func TestSaveOrphansThenFree(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair")
	snap, files := makeSnapshot(t, false)
	ref := copyImage(t, snap, ".kernel")
	testimg.Unmount(t, testimg.Mount(t, ref))
	img := copyImage(t, snap, ".xfsfree")
	if _, err := xfs.Recover(img, xfs.RecoverOptions{}); err != nil {
		t.Fatal(err)
	}
	fs, err := xfs.OpenWrite(img, xfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "saved")
	m, err := rescue.SaveOrphans(fs, dir, rescue.SaveOptions{})
	if err != nil {
		fs.Close()
		t.Fatal(err)
	}
	fs.Cache.DropClean()
	rep, err := fs.Free(xfs.FreeOptions{Orphans: true, Keep: m.NotSaved()})
	fs.Close()
	if err != nil {
		t.Fatal(err)
	}
	if m.Saved != len(files) || rep.Failed() || rep.InodesFreed != len(files) {
		t.Fatalf("saved %d of %d, freed %d, refused %v, errors %v", m.Saved, len(files), rep.InodesFreed, rep.Refused, rep.Errors)
	}
	checkSaved(t, dir, files)
	testimg.Repair(t, img)
	testimg.CompareAllocState(t, testimg.ReadAllocState(t, img), testimg.ReadAllocState(t, ref))
	if _, recovered := testimg.KernelMountCycle(t, img); recovered {
		t.Error("the kernel ran log recovery on the image xfsfree freed")
	}
}

// orphanInos finds, among img's orphans, one with a btree-format data
// fork and one regular file with a single extent.
func orphanInos(t *testing.T, img string) (btree, oneExtent uint64) {
	t.Helper()
	fs := openRO(t, img)
	defer fs.Close()
	scan, err := fs.Scan(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range scan.AGs {
		for _, c := range a.Chains {
			for _, o := range c.Inodes {
				in, err := fs.Describe(o.Ino, false)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case in.Format == "btree" && btree == 0:
					btree = o.Ino
				case in.Type == "regular" && in.Format == "extents" && in.Extents == 1 && oneExtent == 0:
					oneExtent = o.Ino
				}
			}
		}
	}
	if btree == 0 || oneExtent == 0 {
		t.Fatalf("orphans: no btree-format (%d) or one-extent (%d) orphan", btree, oneExtent)
	}
	return btree, oneExtent
}

// TestCorruptBlockMap fuzzes, with xfs_db (CRCs kept valid), a record of
// a bmbt leaf block, the header of another, and the extent record in an
// inode, of orphans of a snapshot: extracting each is an error naming the
// inode, the block (AG and daddr) and the field, and leaves no output file
// (nor a temporary one); SaveOrphans saves the other orphans and lists the
// corrupt one as not saved; the image is unchanged. After a recover, a
// free of the orphans with the save's manifest refuses it as not saved and
// frees the others.
func TestCorruptBlockMap(t *testing.T) {
	testimg.Need(t, "xfs_db", "zstd")
	clean := testimg.Path(t, "orphans")
	btree, one := orphanInos(t, clean)
	fs := openRO(t, clean)
	g := fs.G
	fs.Close()
	ptr := func(i int) int64 {
		v, err := testimg.ParseUint(testimg.ParseFields(testimg.DB(t, clean, fmt.Sprintf("inode %d", btree),
			fmt.Sprintf("p u3.bmbt.ptrs[%d]", i)))[fmt.Sprintf("u3.bmbt.ptrs[%d]", i)])
		if err != nil {
			t.Fatal(err)
		}
		return g.FsbToDaddr(v)
	}
	cluster := func(ino uint64) int64 {
		fs := openRO(t, clean)
		defer fs.Close()
		_, loc, err := fs.ReadInode(ino)
		if err != nil {
			t.Fatal(err)
		}
		return loc.Daddr
	}
	cases := []struct {
		name string
		ino  uint64
		cmds []string
		want []string
	}{
		{"bmbt record", btree, []string{fmt.Sprintf("inode %d", btree), "addr u3.bmbt.ptrs[1]", "fuzz -d recs[5].startoff zeroes"},
			[]string{fmt.Sprintf("bmbt block of inode %d", btree), fmt.Sprintf("daddr %d", ptr(1)), "recs[4].startoff", "overlaps"}},
		{"bmbt header", btree, []string{fmt.Sprintf("inode %d", btree), "addr u3.bmbt.ptrs[2]", "fuzz -d numrecs ones"},
			[]string{"bmbt block", fmt.Sprintf("daddr %d", ptr(2)), "bb_numrecs"}},
		{"inode extent record", one, []string{fmt.Sprintf("inode %d", one), "fuzz -d u3.bmx[0].startblock ones"},
			[]string{fmt.Sprintf("dinode %d data fork", one), fmt.Sprintf("daddr %d", cluster(one)), "extent 0", "not inside one AG"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := copyImage(t, clean, ".fuzzed")
			t.Cleanup(func() { os.Remove(img) })
			testimg.DBWrite(t, img, c.cmds...)
			before := testimg.Hash(t, img)
			fs := openRO(t, img)
			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			_, err := rescue.SaveInode(fs, c.ino, out, false, rescue.Options{})
			for _, w := range append(c.want, fmt.Sprintf("inode %d", c.ino)) {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("SaveInode: %v; want an error with %q", err, w)
				}
			}
			t.Logf("error: %v", err)
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("files left after the error: %v", ents)
			}
			var buf bytes.Buffer
			if _, err := rescue.WriteInode(fs, c.ino, &buf, rescue.Options{}); err == nil {
				t.Error("WriteInode of the corrupt inode succeeded")
			}
			m, err := rescue.SaveOrphans(fs, filepath.Join(dir, "all"), rescue.SaveOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ns := m.NotSaved()
			if len(ns) != 1 || !strings.Contains(ns[c.ino], c.want[0]) || m.Saved != m.Orphans-1 {
				t.Errorf("SaveOrphans: %d of %d saved, not saved %v", m.Saved, m.Orphans, ns)
			}
			if _, err := os.Lstat(filepath.Join(dir, "all", strconv.FormatUint(c.ino, 10))); err == nil {
				t.Error("SaveOrphans left a file for the corrupt inode")
			}
			fs.Close()
			if testimg.Hash(t, img) != before {
				t.Error("extracting changed the image")
			}
		})
	}

	// Recover, corrupt, save, free: the corrupt orphan is refused as not
	// saved; every other orphan is freed.
	img := copyImage(t, clean, ".free")
	if _, err := xfs.Recover(img, xfs.RecoverOptions{}); err != nil {
		t.Fatal(err)
	}
	testimg.DBWrite(t, img, cases[0].cmds...)
	wfs, err := xfs.OpenWrite(img, xfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer wfs.Close()
	m, err := rescue.SaveOrphans(wfs, filepath.Join(t.TempDir(), "saved"), rescue.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wfs.Cache.DropClean()
	rep, err := wfs.Free(xfs.FreeOptions{Orphans: true, Keep: m.NotSaved()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Refused) != 1 || rep.Refused[0].Ino != btree || !strings.Contains(rep.Refused[0].Reason, "not saved") ||
		rep.InodesFreed != m.Orphans-1 || len(rep.Errors) != 0 {
		t.Errorf("freed %d of %d; refused %v; errors %v", rep.InodesFreed, m.Orphans, rep.Refused, rep.Errors)
	}
}
