package ondisk_test

import (
	"bytes"
	"testing"

	"github.com/xfsfree/xfsfree/ondisk"
)

// Fuzz targets for the attr fork and remote symlink decoders and
// verifiers, seeded with the default fixture's real blocks and shortform
// forks: no input panics, and what decodes re-encodes to the same bytes.
// Run one with, e.g.,
// go test ./ondisk -run '^$' -fuzz '^FuzzAttrBlock$' -fuzztime 10s -fuzzminimizetime 200x.

func FuzzAttrBlock(f *testing.F) {
	m := hdrOpen(f, "default")
	g := m.g
	bs := int(g.BlockSize)
	var ctx ondisk.VerifyCtx
	for _, file := range []string{"xattr-remote", "xattr-many", "long-link"} {
		fl := attrLookup(f, m.path, file)
		for _, e := range append(fl.att, fl.data...) {
			for i := uint64(0); i < e.n; i++ {
				ctx = ondisk.VerifyCtx{G: g, AG: g.FsbToAgno(e.fsb + i), Daddr: g.FsbToDaddr(e.fsb + i)}
				f.Add(m.read(f, ctx.Daddr, bs), int64(ctx.Daddr))
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte, daddr int64) {
		b := make([]byte, bs)
		copy(b, in)
		c := ondisk.VerifyCtx{G: g, AG: 0, Daddr: daddr}
		// With a valid CRC, so that the field checks run.
		ondisk.UpdateCksum(b, ondisk.DA3CrcOff)
		_ = ondisk.VerifyAttrDA(b, c)
		_ = ondisk.VerifyAttr3Leaf(b, c)
		_ = ondisk.VerifyDA3Node(b, c)
		_ = ondisk.VerifyAttr3Rmt(b, c)
		_ = ondisk.VerifySymlinkBlock(b, c)
		_ = ondisk.CheckDAOwner(b, c, 0)
		_ = ondisk.CheckAttr3Rmt(b, c, 0, 0, 0)
		_ = ondisk.CheckSymlinkBlock(b, c, 0, 0, 0)
		if l, err := ondisk.DecodeAttr3Leaf(b); err == nil {
			for i := range l.Entries {
				_, _ = l.Name(b, i)
			}
			_ = l.FirstUsed(bs)
			r := bytes.Clone(b)
			l.Encode(r)
			if !bytes.Equal(r, b) {
				t.Fatal("leaf: Encode(Decode(b)) != b")
			}
		}
		if n, err := ondisk.DecodeDA3Node(b); err == nil {
			r := bytes.Clone(b)
			n.Encode(r)
			if !bytes.Equal(r, b) {
				t.Fatal("node: Encode(Decode(b)) != b")
			}
		}
		if h, err := ondisk.DecodeAttr3RmtHdr(b); err == nil {
			r := bytes.Clone(b)
			h.Encode(r)
			if !bytes.Equal(r, b) {
				t.Fatal("remote header: Encode(Decode(b)) != b")
			}
		}
		if h, err := ondisk.DecodeSymlinkHdr(b); err == nil {
			r := bytes.Clone(b)
			h.Encode(r)
			if !bytes.Equal(r, b) {
				t.Fatal("symlink header: Encode(Decode(b)) != b")
			}
		}
		_, _ = ondisk.DecodeAttr3Leaf(in)
		_, _ = ondisk.DecodeDA3Node(in)
		_ = ondisk.VerifySymlinkTarget(in, 0)
	})
}

func FuzzAttrSF(f *testing.F) {
	m := hdrOpen(f, "default")
	fl := attrLookup(f, m.path, "xattr-local")
	d := attrInode(f, m, fl)
	b, err := d.LocalData(ondisk.AttrFork)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(bytes.Clone(b))
	f.Add([]byte{0, 4, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		sf, err := ondisk.DecodeAttrSF(in, 1)
		if err != nil {
			return
		}
		out := make([]byte, len(in))
		if n := sf.Encode(out); n != len(in) || !bytes.Equal(out, in) {
			t.Fatal("Encode(Decode(b)) != b")
		}
	})
}
