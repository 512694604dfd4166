package ondisk

import (
	"bytes"
	"testing"
)

// Fuzz targets for the inode and bmbt decoders and verifiers, seeded with
// real inodes (every slot of the default fixture's chunks, allocated and
// free) and real bmbt blocks. Each checks that no input panics and that
// Encode(Decode(b)) == b wherever Decode succeeds. Run one with, e.g.,
// go test ./ondisk -run '^$' -fuzz '^FuzzDinode$' -fuzztime 10s.
// For FuzzBmbtBlock add -fuzzminimizetime 200x: minimizing each new
// 4 KiB input for the default 60 s leaves no time to fuzz.

func FuzzDinode(f *testing.F) {
	m := diOpen(f, "default")
	g := m.g
	isz := int(g.InodeSize)
	var ctx VerifyCtx
	var ino uint64
	for i, s := range m.slots(f) {
		if i == 0 {
			ino, ctx = s.ino, VerifyCtx{G: g, AG: s.agno, Daddr: s.cluster.Daddr}
		}
		d, _ := DecodeDinode(s.bytes(isz))
		// Every allocated inode and a few free ones.
		if !d.IsFree() || i < 8 {
			f.Add(s.bytes(isz))
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		d, err := DecodeDinode(in)
		if err != nil {
			return
		}
		if !bytes.Equal(d.Bytes(), in) {
			t.Fatal("Encode(Decode(b)) != b")
		}
		// One inode of the filesystem's size, with a valid CRC so the
		// field checks run too, and with the input's own di_ino.
		b := make([]byte, isz)
		copy(b, in)
		DinodeCalcCRC(b)
		_ = VerifyDinode(b, ino, ctx)
		_ = VerifyDinode(b, be.Uint64(b[152:]), ctx)
		_ = VerifyInodeBuf(b, ctx)
		d, _ = DecodeDinode(b)
		for _, fork := range []int{DataFork, AttrFork} {
			_ = d.ForkSize(fork)
			_ = d.ForkBytes(fork)
			_ = d.Nextents(fork)
			_, _ = d.Extents(fork)
			_, _ = d.BmdrRoot(fork)
			_, _ = d.LocalData(fork)
		}
		_, _ = d.dirSF()
		_ = d.Rdev()
		r, _ := DecodeDinode(b)
		r.ResetForFree(false, g.NewDiflags2())
		r.EncodeCRC(make([]byte, isz))
	})
}

func FuzzBmbtBlock(f *testing.F) {
	m := diOpen(f, "default")
	g := m.g
	d := diBtreeInode(f, m)
	_, blocks := diBmbtWalk(f, m, d, DataFork)
	for _, b := range blocks {
		f.Add(b)
	}
	daddr := be.Uint64(blocks[0][24:])
	ctx := VerifyCtx{G: g, AG: g.DaddrToAgno(int64(daddr)), Daddr: int64(daddr)}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = VerifyBmbtBlock(b, ctx, d.Ino)
		if len(b) >= LongBlockHdrLen {
			c := bytes.Clone(b)
			UpdateCksum(c, LongBlockCrcOff)
			_ = VerifyBmbtBlock(c, ctx, BmbtOwnerAny)
		}
		blk, err := DecodeBmbtBlock(b)
		if err != nil {
			return
		}
		c := bytes.Clone(b)
		blk.Encode(c)
		if !bytes.Equal(c, b) {
			t.Fatal("Encode(Decode(b)) != b")
		}
		_, _ = DecodeBmdr(b)
	})
}
