package btree_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/alloc"
	"github.com/xfsfree/xfsfree/btree"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Keys of the rmapbt as the kernel makes them (xfs_rmap_btree.c): the low
// key is the record's startblock, owner and offset without the unwritten
// flag; the high key is its last block and, for inode data, its last
// offset. Keys compare field by field, unsigned: bytes.Compare of the
// big-endian layout.
func rmapKey(rec []byte) []byte {
	r := ondisk.DecodeRmapRec(rec)
	k := make([]byte, ondisk.RmapKeyLen)
	ondisk.RmapKey{StartBlock: r.StartBlock, Owner: r.Owner, Offset: r.Offset &^ ondisk.RmapOffUnwritten}.Encode(k)
	return k
}

func rmapHighKey(dst, rec []byte) []byte {
	r := ondisk.DecodeRmapRec(rec)
	adj := r.BlockCount - 1
	off := r.Offset &^ ondisk.RmapOffUnwritten
	if ondisk.IsInodeOwner(r.Owner) && !r.BmbtBlock() {
		off = (off&ondisk.RmapOffMask + uint64(adj)) | off&^ondisk.RmapOffMask
	}
	k := make([]byte, ondisk.RmapKeyLen)
	ondisk.RmapKey{StartBlock: r.StartBlock + adj, Owner: r.Owner, Offset: off}.Encode(k)
	return append(dst, k...)
}

// dbRmapRecords reads AG agno's rmapbt records with xfs_db, level by level:
// [startblock, blockcount, owner, offset] each (owners below zero are the
// XFS_RMAP_OWN_* codes, printed signed).
func dbRmapRecords(t *testing.T, img string, agno uint32) [][4]uint64 {
	t.Helper()
	g := testimg.Geo(t, img)
	f := testimg.ParseFields(testimg.DB(t, img, fmt.Sprintf("agf %d", agno), "p rmaproot rmaplevel"))
	root, _ := testimg.ParseUint(f["rmaproot"])
	levels, _ := testimg.ParseUint(f["rmaplevel"])
	blocks := []uint64{root}
	show := func() string {
		var cmds []string
		for _, b := range blocks {
			cmds = append(cmds, fmt.Sprintf("fsblock %d", g.FSBlock(agno, uint32(b))), "type rmapbt", "p")
		}
		return testimg.DB(t, img, cmds...)
	}
	for l := levels; l > 1; l-- {
		ptrs, _ := testimg.ParseArray(show(), "ptrs")
		blocks = blocks[:0]
		for _, p := range ptrs {
			blocks = append(blocks, num(t, p.Value))
		}
	}
	var out [][4]uint64
	for _, line := range strings.Split(show(), "\n") {
		m := rmapDBRec.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var r [4]uint64
		for i := range r {
			v, err := strconv.ParseInt(m[i+1], 0, 64)
			if err != nil {
				u, err2 := strconv.ParseUint(m[i+1], 0, 64)
				if err2 != nil {
					t.Fatalf("xfs_db rmap record %q: %v", line, err)
				}
				v = int64(u)
			}
			r[i] = uint64(v)
		}
		out = append(out, r)
	}
	return out
}

// rmapDBRec matches a record line of `p` on an rmapbt leaf:
// N:[startblock,blockcount,owner,offset,extentflag,attrfork,bmbtblock].
var rmapDBRec = regexp.MustCompile(`^\s*\d+:\[(-?\w+),(-?\w+),(-?\w+),(-?\w+),\d+,\d+,\d+\]`)

// TestModifyRmapbt changes the rmapbt (an overlapping btree) of a fresh
// 1 KiB-block image: random inserts of records of made-up inodes (each
// record up to 40 blocks long, so high keys differ from low keys), updates
// of their lengths (the high key moves, the low key stays) and deletes,
// growing it to three levels and back to the single leaf of mkfs's
// records. After every transaction Walk checks every node's low and high
// keys against its child, and the records against the model; at several
// points and at the end xfs_db reads the same records.
func TestModifyRmapbt(t *testing.T) {
	testimg.Need(t, "mkfs.xfs", "xfs_db")
	img := filepath.Join(t.TempDir(), "rmap.img")
	for _, cmd := range [][]string{{"truncate", "-s", "300M", img}, {"mkfs.xfs", "-q", "-b", "size=1024", "-m", "rmapbt=1,reflink=0", img}} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd, err, out)
		}
	}
	fs := openMod(t, img)
	const agno = 0
	agf, err := alloc.ReadAGF(fs.c, fs.g, agno)
	if err != nil {
		t.Fatal(err)
	}
	start, n := largestFree(t, fs, agno)
	if n < 300 {
		t.Fatalf("largest free extent %d", n)
	}
	var blocks []uint32
	for b := start; b < start+300; b++ {
		blocks = append(blocks, b)
	}
	pool := newPool(blocks)
	tr := &btree.Tree{Type: ondisk.BtRmapbt, Kind: ondisk.KindRmapbt, Cache: fs.c, G: fs.g, AG: agno,
		Root: agf.Roots[2], Levels: int(agf.Levels[2]), RecKey: rmapKey, RecHighKey: rmapHighKey, Cmp: bytes.Compare, Blocks: pool}
	pool.inUse[tr.Root] = true
	heights := []int{tr.Levels}
	tr.SetRoot = func(tx btree.Tx, root uint32, levels int) error {
		d := fs.g.AGFDaddr(agno)
		b, err := tx.ReadBuf(d, fs.g.SectBBs(), ondisk.KindAGF, ondisk.VerifyCtx{G: fs.g, AG: agno, Daddr: d})
		if err != nil {
			return err
		}
		binary.BigEndian.PutUint32(b.Data[24:], root)
		binary.BigEndian.PutUint32(b.Data[36:], uint32(levels))
		tx.LogRange(b, 24, 39)
		heights = append(heights, levels)
		return nil
	}
	orig := walkRecs(t, tr)
	if tr.Levels != 1 || len(orig) == 0 {
		t.Fatalf("fresh rmapbt: %d levels, %d records", tr.Levels, len(orig))
	}
	model := map[string][]byte{}
	for _, r := range orig {
		model[string(rmapKey(r))] = r
	}
	sortedRecs := func() [][]byte {
		out := make([][]byte, 0, len(model))
		for _, r := range model {
			out = append(out, r)
		}
		slices.SortFunc(out, func(a, b []byte) int { return bytes.Compare(rmapKey(a), rmapKey(b)) })
		return out
	}
	check := func(withDB bool) {
		t.Helper()
		want := sortedRecs()
		got := walkRecs(t, tr)
		if len(got) != len(want) {
			t.Fatalf("%d records, model %d", len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("record %d: %x, model %x", i, got[i], want[i])
			}
		}
		if len(treeBlocks(t, tr)) != len(pool.inUse) {
			t.Fatalf("rmapbt has %d blocks, %d allocated", len(treeBlocks(t, tr)), len(pool.inUse))
		}
		if !withDB {
			return
		}
		db := dbRmapRecords(t, img, agno)
		if len(db) != len(want) {
			t.Fatalf("xfs_db: %d records, model %d", len(db), len(want))
		}
		for i, w := range want {
			r := ondisk.DecodeRmapRec(w)
			if db[i] != [4]uint64{uint64(r.StartBlock), uint64(r.BlockCount), r.Owner, r.FileOffset()} {
				t.Fatalf("xfs_db record %d: %v, model %+v", i, db[i], r)
			}
		}
	}

	rng := rand.New(rand.NewPCG(5, 6))
	var fake []string // keys of the made-up records
	nextOwner := uint64(1 << 20)
	newRec := func(s, n uint32, owner, off uint64) []byte {
		r := make([]byte, ondisk.RmapRecLen)
		ondisk.RmapRec{StartBlock: s, BlockCount: n, Owner: owner, Offset: off}.Encode(r)
		return r
	}
	commits := 0
	for phase := 0; phase < 2; phase++ {
		grow := phase == 0
		for (grow && len(fake) < 1000) || (!grow && len(fake) > 0) {
			tx := fs.begin(t)
			for range 1 + rng.IntN(8) {
				op := rng.IntN(100)
				ins, del := 15, 60
				if grow {
					ins, del = 65, 15
				}
				switch {
				case op < ins:
					r := newRec(100+rng.Uint32N(60000), 1+rng.Uint32N(40), nextOwner, uint64(rng.Uint32N(1<<20)))
					nextOwner += 1 + uint64(rng.IntN(3))
					if err := tr.Insert(tx, r); err != nil {
						t.Fatalf("insert: %v", err)
					}
					k := string(rmapKey(r))
					model[k] = r
					fake = append(fake, k)
				case op < ins+del && len(fake) > 0:
					i := rng.IntN(len(fake))
					cur, found, err := tr.Lookup(tx, []byte(fake[i]), btree.EQ)
					if err != nil || !found {
						t.Fatalf("lookup: %v %v", found, err)
					}
					if err := cur.Delete(); err != nil {
						t.Fatalf("delete: %v", err)
					}
					delete(model, fake[i])
					fake = slices.Delete(fake, i, i+1)
				case len(fake) > 0:
					// A new length: the high key moves, the low key stays.
					i := rng.IntN(len(fake))
					cur, found, err := tr.Lookup(tx, []byte(fake[i]), btree.EQ)
					if err != nil || !found {
						t.Fatalf("lookup: %v %v", found, err)
					}
					r := ondisk.DecodeRmapRec(cur.Rec())
					nr := newRec(r.StartBlock, 1+rng.Uint32N(400), r.Owner, r.Offset)
					if err := cur.Update(nr); err != nil {
						t.Fatalf("update: %v", err)
					}
					model[fake[i]] = nr
				}
			}
			tx.commit()
			commits++
			check(commits%60 == 0)
		}
		t.Logf("phase %d: %d records, %d levels", phase, len(model), tr.Levels)
		if grow && tr.Levels < 3 {
			t.Errorf("grew to %d levels only", tr.Levels)
		}
	}
	fs.c.DropClean()
	check(true)
	if tr.Levels != 1 || len(pool.inUse) != 1 {
		t.Errorf("back to the original records: %d levels, %d blocks", tr.Levels, len(pool.inUse))
	}
	t.Logf("%d commits; heights %v", commits, heights)
}
