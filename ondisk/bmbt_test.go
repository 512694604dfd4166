package ondisk

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
)

func TestBmbtRecBits(t *testing.T) {
	b := make([]byte, BmbtRecLen)
	BmbtIrec{StartOff: 1, StartBlock: 1, BlockCount: 1}.Encode(b)
	if be.Uint64(b) != 0x200 || be.Uint64(b[8:]) != 0x200001 {
		t.Fatalf("{1,1,1}: l0 %#x l1 %#x", be.Uint64(b), be.Uint64(b[8:]))
	}
	all := BmbtIrec{StartOff: BmbtStartoffMask, StartBlock: BmbtStartblockMask, BlockCount: BmbtBlockcountMask, Unwritten: true}
	all.Encode(b)
	if !bytes.Equal(b, bytes.Repeat([]byte{0xff}, 16)) {
		t.Fatalf("all ones: %x", b)
	}
	// The startblock straddles l0 and l1: its top 9 bits end l0.
	BmbtIrec{StartBlock: 1 << 43}.Encode(b)
	if be.Uint64(b) != 1 || be.Uint64(b[8:]) != 0 {
		t.Fatalf("startblock bit 43: %x", b)
	}
	BmbtIrec{Unwritten: true}.Encode(b)
	if b[0] != 0x80 {
		t.Fatalf("unwritten flag: %x", b)
	}
	// Every bit pattern is a record: decode then encode gives it back.
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 10000; i++ {
		be.PutUint64(b, r.Uint64())
		be.PutUint64(b[8:], r.Uint64())
		orig := append([]byte(nil), b...)
		DecodeBmbtRec(orig).Encode(b)
		if !bytes.Equal(b, orig) {
			t.Fatalf("%x -> %v -> %x", orig, DecodeBmbtRec(orig), b)
		}
	}
}

func TestBmdrRootLayout(t *testing.T) {
	// A 336-byte data fork (512-byte inodes, no attr fork): 20 slots, the
	// pointers start at 4 + 20*8 = 164 (XFS_BMDR_PTR_ADDR).
	fb := make([]byte, 336)
	if BmdrMaxRecs(len(fb)) != 20 {
		t.Fatalf("maxrecs %d", BmdrMaxRecs(len(fb)))
	}
	r := &BmdrRoot{Level: 2, Numrecs: 2, Keys: []uint64{0, 500}, Ptrs: []uint64{77, 88}}
	r.Encode(fb)
	if be.Uint16(fb) != 2 || be.Uint16(fb[2:]) != 2 || be.Uint64(fb[12:]) != 500 || be.Uint64(fb[164:]) != 77 || be.Uint64(fb[172:]) != 88 {
		t.Fatalf("layout: %x", fb[:180])
	}
	got, err := DecodeBmdr(fb)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(r) {
		t.Fatalf("decode: %+v %v", got, err)
	}
	be.PutUint16(fb[2:], 21)
	if _, err := DecodeBmdr(fb); err == nil {
		t.Fatal("numrecs beyond the fork accepted")
	}
}

// diBmbtWalk walks the block map btree of a BTREE-format fork, verifying
// each block and checking that its encoding round-trips, and returns the
// extents of its leaves in order and the blocks read.
func diBmbtWalk(t testing.TB, m *diImage, d *Dinode, fork int) ([]BmbtIrec, [][]byte) {
	t.Helper()
	g := m.g
	bs := int(g.BlockSize)
	root, err := d.BmdrRoot(fork)
	if err != nil {
		t.Fatalf("inode %d: %v", d.Ino, err)
	}
	var recs []BmbtIrec
	var blocks [][]byte
	var walk func(ptr uint64, level int, key uint64)
	walk = func(ptr uint64, level int, key uint64) {
		daddr := g.FsbToDaddr(ptr)
		b := m.read(t, daddr, bs)
		c := VerifyCtx{G: g, AG: g.FsbToAgno(ptr), Daddr: daddr}
		if err := VerifyBmbtBlock(b, c, d.Ino); err != nil {
			t.Fatalf("inode %d bmbt block %d: %v", d.Ino, ptr, err)
		}
		blk, err := DecodeBmbtBlock(b)
		if err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, b)
		if int(blk.Level) != level || blk.Owner != d.Ino || blk.Magic != BmbtMagic {
			t.Fatalf("inode %d bmbt block %d: level %d owner %d, want level %d", d.Ino, ptr, blk.Level, blk.Owner, level)
		}
		// Encode into zeroes reproduces the header and the entries.
		z := make([]byte, bs)
		blk.Encode(z)
		n := int(blk.NumRecs)
		if level == 0 {
			if !bytes.Equal(z[:LongBlockHdrLen+n*BmbtRecLen], b[:LongBlockHdrLen+n*BmbtRecLen]) {
				t.Fatalf("bmbt leaf %d: encoding differs", ptr)
			}
			if n == 0 || blk.Recs[0].StartOff != key {
				t.Fatalf("bmbt leaf %d: first startoff %v, parent key %d", ptr, blk.Recs, key)
			}
			recs = append(recs, blk.Recs...)
			return
		}
		po := BtBmbt.PtrOff(bs, 0)
		if !bytes.Equal(z[:LongBlockHdrLen+n*BmbtKeyLen], b[:LongBlockHdrLen+n*BmbtKeyLen]) ||
			!bytes.Equal(z[po:po+n*LongPtrLen], b[po:po+n*LongPtrLen]) {
			t.Fatalf("bmbt node %d: encoding differs", ptr)
		}
		for i := range blk.Ptrs {
			walk(blk.Ptrs[i], level-1, blk.Keys[i])
		}
	}
	for i := range root.Ptrs {
		walk(root.Ptrs[i], int(root.Level)-1, root.Keys[i])
	}
	return recs, blocks
}

// diCompareBmap compares the extents found by walking a btree-format data
// fork with xfs_db's bmap.
func diCompareBmap(t *testing.T, m *diImage, d *Dinode, fork int) {
	t.Helper()
	recs, _ := diBmbtWalk(t, m, d, fork)
	if uint64(len(recs)) != d.Nextents(fork) {
		t.Errorf("inode %d fork %d: %d extents in the btree, nextents %d", d.Ino, fork, len(recs), d.Nextents(fork))
	}
	cmd, word := "bmap", "data"
	if fork == AttrFork {
		cmd, word = "bmap -a", "attr"
	}
	out := testimg.DB(t, m.path, fmt.Sprintf("inode %d", d.Ino), cmd)
	var want []BmbtIrec
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r BmbtIrec
		var agno, agbno uint64
		var flag int
		if _, err := fmt.Sscanf(line, word+" offset %d startblock %d (%d/%d) count %d flag %d",
			&r.StartOff, &r.StartBlock, &agno, &agbno, &r.BlockCount, &flag); err != nil {
			t.Fatalf("bmap line %q: %v", line, err)
		}
		r.Unwritten = flag != 0
		want = append(want, r)
	}
	if len(want) != len(recs) {
		t.Fatalf("inode %d: xfs_db bmap %d extents, ours %d", d.Ino, len(want), len(recs))
	}
	for i := range want {
		if want[i] != recs[i] {
			t.Errorf("inode %d extent %d: xfs_db %v, ours %v", d.Ino, i, want[i], recs[i])
		}
	}
}

// diBtreeInode finds an inode with a btree-format data fork.
func diBtreeInode(t testing.TB, m *diImage) *Dinode {
	t.Helper()
	isz := int(m.g.InodeSize)
	for _, s := range m.slots(t) {
		d, _ := DecodeDinode(s.bytes(isz))
		if !d.IsFree() && d.Format == DinodeFmtBtree {
			return d
		}
	}
	t.Fatal("no btree-format inode")
	return nil
}

func TestBmbtBlockVerifyRejects(t *testing.T) {
	m := diOpen(t, "default")
	g := m.g
	d := diBtreeInode(t, m)
	root, _ := d.BmdrRoot(DataFork)
	ptr := root.Ptrs[0]
	daddr := g.FsbToDaddr(ptr)
	c := VerifyCtx{G: g, AG: g.FsbToAgno(ptr), Daddr: daddr}
	orig := m.read(t, daddr, int(g.BlockSize))
	if err := VerifyBmbtBlock(orig, c, d.Ino); err != nil {
		t.Fatal(err)
	}
	fresh := func() []byte { return append([]byte(nil), orig...) }
	fix := func(b []byte) []byte { UpdateCksum(b, LongBlockCrcOff); return b }

	b := fresh()
	b[LongBlockHdrLen+5] ^= 1
	diWantCorrupt(t, "flipped byte", VerifyBmbtBlock(b, c, d.Ino), "bmbt block", "bb_crc")
	b = fresh()
	b[0] = 'X'
	diWantCorrupt(t, "magic", VerifyBmbtBlock(fix(b), c, d.Ino), "bmbt block", "bb_magic")
	diWantCorrupt(t, "owner", VerifyBmbtBlock(orig, c, d.Ino+1), "bmbt block", "bb_owner")
	if err := VerifyBmbtBlock(orig, c, BmbtOwnerAny); err != nil {
		t.Errorf("BmbtOwnerAny: %v", err)
	}
	c2 := c
	c2.Daddr += int64(g.BlockBBs())
	diWantCorrupt(t, "read from elsewhere", VerifyBmbtBlock(orig, c2, d.Ino), "bmbt block", "bb_blkno")
	b = fresh()
	be.PutUint16(b[6:], uint16(BmbtMaxRecs(len(b), true)+1))
	diWantCorrupt(t, "numrecs", VerifyBmbtBlock(fix(b), c, d.Ino), "bmbt block", "bb_numrecs")
	if _, err := DecodeBmbtBlock(b); err == nil {
		t.Error("DecodeBmbtBlock accepted numrecs beyond the block")
	}
	b = fresh()
	b[45] ^= 1
	diWantCorrupt(t, "uuid", VerifyBmbtBlock(fix(b), c, d.Ino), "bmbt block", "bb_uuid")
}
