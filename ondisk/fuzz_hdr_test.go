package ondisk_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/xfsfree/xfsfree/ondisk"
)

// Fuzz targets for the AG header and btree decoders and verifiers, seeded
// with real blocks of the rmapbt fixture (every kind of per-AG btree).
// Each checks that no input panics and that Encode(Decode(b)) == b
// wherever Decode succeeds. Run one with, e.g.,
// go test ./ondisk -run '^$' -fuzz '^FuzzAGI$' -fuzztime 10s.

// fuzzImg opens the fixture the seeds come from.
func fuzzImg(f *testing.F) *hdrImg {
	return hdrOpen(f, "rmapbt")
}

func FuzzAGF(f *testing.F) {
	m := fuzzImg(f)
	for ag := uint32(0); ag < m.g.AGCount; ag++ {
		f.Add(m.sector(f, m.g.AGFDaddr(ag)))
	}
	ctx := ondisk.VerifyCtx{G: m.g, AG: 1, Daddr: m.g.AGFDaddr(1)}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = ondisk.VerifyAGF(b, ctx)
		a, err := ondisk.DecodeAGF(b)
		if err != nil {
			return
		}
		c := bytes.Clone(b)
		a.Encode(c)
		if !bytes.Equal(c, b) {
			t.Fatal("Encode(Decode(b)) != b")
		}
	})
}

func FuzzAGI(f *testing.F) {
	m := fuzzImg(f)
	for ag := uint32(0); ag < m.g.AGCount; ag++ {
		f.Add(m.sector(f, m.g.AGIDaddr(ag)))
	}
	ctx := ondisk.VerifyCtx{G: m.g, AG: 1, Daddr: m.g.AGIDaddr(1)}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = ondisk.VerifyAGI(b, ctx)
		a, err := ondisk.DecodeAGI(b)
		if err != nil {
			return
		}
		c := bytes.Clone(b)
		a.Encode(c)
		if !bytes.Equal(c, b) {
			t.Fatal("Encode(Decode(b)) != b")
		}
	})
}

func FuzzAGFL(f *testing.F) {
	m := fuzzImg(f)
	for ag := uint32(0); ag < m.g.AGCount; ag++ {
		f.Add(m.sector(f, m.g.AGFLDaddr(ag)), uint32(1), uint32(6), uint32(6))
	}
	agf0, err := ondisk.DecodeAGF(m.sector(f, m.g.AGFDaddr(1)))
	if err != nil {
		f.Fatal(err)
	}
	ctx := ondisk.VerifyCtx{G: m.g, AG: 1, Daddr: m.g.AGFLDaddr(1)}
	f.Fuzz(func(t *testing.T, b []byte, first, last, count uint32) {
		_ = ondisk.VerifyAGFL(b, ctx)
		a, err := ondisk.DecodeAGFL(b)
		if err != nil {
			return
		}
		agf := *agf0
		agf.FLFirst, agf.FLLast, agf.FLCount = first, last, count
		live, err := a.Live(m.g, &agf)
		if err == nil && len(live) != int(count) {
			t.Fatalf("Live gave %d entries for flcount %d", len(live), count)
		}
		c := bytes.Clone(b)
		a.Encode(c)
		if !bytes.Equal(c, b) {
			t.Fatal("Encode(Decode(b)) != b")
		}
	})
}

// FuzzBtreeBlock feeds every btree type's verifier, view and typed decoder.
func FuzzBtreeBlock(f *testing.F) {
	m := fuzzImg(f)
	ag := uint32(1)
	agf, _ := ondisk.DecodeAGF(m.sector(f, m.g.AGFDaddr(ag)))
	agi, _ := ondisk.DecodeAGI(m.sector(f, m.g.AGIDaddr(ag)))
	for _, tr := range agTrees(m, agf, agi) {
		f.Add(m.block(f, ag, tr.root), tr.root)
	}
	// A node block: the rmapbt root of AG 0 has two levels here.
	agf0, _ := ondisk.DecodeAGF(m.sector(f, m.g.AGFDaddr(0)))
	f.Add(m.block(f, 0, agf0.Roots[ondisk.AGFRmap]), agf0.Roots[ondisk.AGFRmap])
	types := []*ondisk.BtreeType{ondisk.BtInobt, ondisk.BtFinobt, ondisk.BtBnobt, ondisk.BtCntbt, ondisk.BtRmapbt, ondisk.BtRefcbt, ondisk.BtBmbt}
	f.Fuzz(func(t *testing.T, b []byte, bno uint32) {
		ctx := ondisk.VerifyCtx{G: m.g, AG: ag, Daddr: m.g.AgbToDaddr(ag, bno%m.g.AGBlocks)}
		for _, typ := range types {
			_ = typ.Verify(b, ctx)
			if v, err := typ.View(b); err == nil {
				for i := 0; i < v.NumRecs; i++ {
					if v.IsLeaf() {
						_ = v.Rec(i)
					} else {
						_, _ = v.Key(i), v.Ptr(i)
						if typ.Overlapping {
							_ = v.HighKey(i)
						}
					}
				}
			}
		}
		_, _ = ondisk.DecodeLongBlockHdr(b)
		if len(b) >= 4 {
			if k := ondisk.KindByMagic(binary.BigEndian.Uint32(b)); k != nil && k.Verify != nil {
				_ = k.Verify(b, ctx)
			}
		}
		check := func(err error, enc func([]byte)) {
			if err != nil {
				return
			}
			c := bytes.Clone(b)
			enc(c)
			if !bytes.Equal(c, b) {
				t.Fatal("Encode(Decode(b)) != b")
			}
		}
		for _, sparse := range []bool{true, false} {
			blk, err := ondisk.DecodeInobtBlock(b, sparse)
			check(err, func(c []byte) { blk.Encode(c, sparse) })
		}
		ab, err := ondisk.DecodeAllocBlock(b)
		check(err, func(c []byte) { ab.Encode(c) })
		rb, err := ondisk.DecodeRmapBlock(b)
		check(err, func(c []byte) { rb.Encode(c) })
		cb, err := ondisk.DecodeRefcountBlock(b)
		check(err, func(c []byte) { cb.Encode(c) })
		h, err := ondisk.DecodeShortBlockHdr(b)
		check(err, func(c []byte) { h.Encode(c) })
		lh, err := ondisk.DecodeLongBlockHdr(b)
		check(err, func(c []byte) { lh.Encode(c) })
	})
}
