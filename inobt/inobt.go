// Package inobt owns the inode btree and the free inode btree of an AG: the
// record checks that are special to them (xfs_inobt_check_irec), walking
// their records, and looking up the chunk of an inode. It builds on the
// generic engine in package btree.
package inobt

import (
	"bytes"
	"fmt"
	"math/bits"

	"github.com/xfsfree/xfsfree/btree"
	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Tree returns the inobt (fin false) or finobt (fin true) of the AG whose
// AGI is agi. For the finobt the filesystem must have one.
func Tree(c *cache.Cache, g *ondisk.Geometry, agi *ondisk.AGI, fin bool) *btree.Tree {
	t := &btree.Tree{Type: ondisk.BtInobt, Kind: ondisk.KindInobt, Cache: c, G: g, AG: agi.SeqNo,
		Root: agi.Root, Levels: int(agi.Level), RecKey: recKey, Cmp: bytes.Compare}
	if fin {
		t.Type, t.Kind, t.Root, t.Levels = ondisk.BtFinobt, ondisk.KindFinobt, agi.FreeRoot, int(agi.FreeLevel)
	}
	return t
}

// recKey: the key of an inobt record is its startino, the record's first
// four bytes; big-endian, so bytes.Compare orders keys.
func recKey(rec []byte) []byte { return rec[:ondisk.InobtKeyLen] }

// Key encodes an agino as a lookup key.
func Key(agino uint32) []byte {
	k := make([]byte, ondisk.InobtKeyLen)
	ondisk.InobtKey{StartIno: agino}.Encode(k)
	return k
}

// CheckRec checks one record the way the kernel's xfs_inobt_check_irec
// does: the chunk lies in the AG and starts on a chunk boundary, its count
// and free count agree with its holemask and free mask, and holes are
// marked free.
func CheckRec(g *ondisk.Geometry, agno uint32, r ondisk.InobtRec, name string) error {
	bad := func(field string, found, want any, msg string) error {
		return &ondisk.CorruptError{AG: agno, Daddr: -1, Struct: fmt.Sprintf("%s record at startino %d", name, r.StartIno),
			Field: field, Found: found, Want: want, Msg: msg}
	}
	// Chunk alignment, as xfs_repair checks it (scan_single_ino_chunk): a
	// chunk of several blocks starts at a block's first inode, several
	// chunks in one block each start on a 64-inode boundary, and with
	// aligned inodes the chunk's block is a multiple of sb_inoalignmt.
	// (A chunk need not start on a multiple of 64: with 8 inodes a block
	// and 4-block alignment, agino 96 starts one.)
	if off := r.StartIno & (g.InoPBlock - 1); (g.InoPBlock <= ondisk.InodesPerChunk && off != 0) ||
		(g.InoPBlock > ondisk.InodesPerChunk && off%ondisk.InodesPerChunk != 0) {
		return bad("ir_startino", r.StartIno, nil, "does not start a block (or a 64-inode part of one)")
	}
	if al := g.SB.InoAlignMt; al != 0 && g.AginoToAgbno(r.StartIno)%al != 0 {
		return bad("ir_startino", r.StartIno, nil, fmt.Sprintf("is not in a block aligned to sb_inoalignmt %d", al))
	}
	if !g.ValidAgino(agno, r.StartIno) || !g.ValidAgino(agno, r.StartIno+ondisk.InodesPerChunk-1) {
		return bad("ir_startino", r.StartIno, nil, "chunk is not inside the AG")
	}
	if !g.HasSparse && r.HoleMask != 0 {
		return bad("ir_holemask", r.HoleMask, uint16(0), "sparse chunk without the sparse inodes feature")
	}
	holes := bits.OnesCount16(r.HoleMask) * ondisk.InodesPerHolemaskBit
	if int(r.Count) != ondisk.InodesPerChunk-holes {
		return bad("ir_count", r.Count, ondisk.InodesPerChunk-holes, "does not match the holemask")
	}
	alloc := r.AllocMask()
	if r.Free&^alloc != ^alloc {
		return bad("ir_free", r.Free, nil, "holes are not marked free")
	}
	if n := bits.OnesCount64(r.Free & alloc); uint32(n) != r.FreeCount {
		return bad("ir_freecount", r.FreeCount, n, "does not match ir_free")
	}
	return nil
}

// Walk calls fn with every record of t in order, each checked by CheckRec.
func Walk(t *btree.Tree, fn func(ondisk.InobtRec) error) error {
	name := t.Type.Name
	return t.Walk(func(rec []byte) error {
		r := ondisk.DecodeInobtRec(rec, t.G.HasSparse)
		if err := CheckRec(t.G, t.AG, r, name); err != nil {
			return err
		}
		return fn(r)
	})
}

// Records returns every record of t.
func Records(t *btree.Tree) ([]ondisk.InobtRec, error) {
	var out []ondisk.InobtRec
	err := Walk(t, func(r ondisk.InobtRec) error { out = append(out, r); return nil })
	return out, err
}

// Lookup finds the record of the chunk holding agino (xfs_imap_lookup);
// ok is false if no chunk holds it.
func Lookup(t *btree.Tree, agino uint32) (r ondisk.InobtRec, ok bool, err error) {
	rec, ok, err := t.LookupLE(Key(agino))
	if err != nil || !ok {
		return r, false, err
	}
	r = ondisk.DecodeInobtRec(rec, t.G.HasSparse)
	if agino >= r.StartIno+ondisk.InodesPerChunk {
		return r, false, nil
	}
	return r, true, CheckRec(t.G, t.AG, r, t.Type.Name)
}

// Find returns the record of a sorted slice (as Records returns) holding
// agino, for callers that walked the btree already.
func Find(recs []ondisk.InobtRec, agino uint32) (ondisk.InobtRec, bool) {
	lo, hi := 0, len(recs)
	for lo < hi {
		m := (lo + hi) / 2
		if recs[m].StartIno <= agino {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 || agino >= recs[lo-1].StartIno+ondisk.InodesPerChunk {
		return ondisk.InobtRec{}, false
	}
	return recs[lo-1], true
}

// IsAllocated reports whether agino is an allocated inode of r's chunk
// (neither a hole nor free).
func IsAllocated(r ondisk.InobtRec, agino uint32) bool {
	bit := uint64(1) << (agino - r.StartIno)
	return r.AllocMask()&bit != 0 && r.Free&bit == 0
}
