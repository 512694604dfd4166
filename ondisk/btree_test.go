package ondisk_test

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// btDecoded is one btree block decoded by our typed decoder, in the shape
// xfs_db prints it.
type btDecoded struct {
	recs, keys []hdrRecord
	ptrs       []uint64
	encode     func(dst []byte) // the typed Encode of what was decoded
}

func b2u(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

func rmapKeyRec(k ondisk.RmapKey, sfx string, r hdrRecord) {
	r["startblock"+sfx] = uint64(k.StartBlock)
	r["owner"+sfx] = k.Owner
	r["offset"+sfx] = k.Offset & ondisk.RmapOffMask
	r["attrfork"+sfx] = b2u(k.Offset&ondisk.RmapOffAttrFork != 0)
	r["bmbtblock"+sfx] = b2u(k.Offset&ondisk.RmapOffBmbtBlock != 0)
}

// btDecode decodes b with the typed decoder of t.
func btDecode(t *testing.T, typ *ondisk.BtreeType, g *ondisk.Geometry, b []byte) btDecoded {
	t.Helper()
	var d btDecoded
	ptrs := func(p []uint32) {
		for _, v := range p {
			d.ptrs = append(d.ptrs, uint64(v))
		}
	}
	switch typ {
	case ondisk.BtInobt, ondisk.BtFinobt:
		blk, err := ondisk.DecodeInobtBlock(b, g.HasSparse)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range blk.Recs {
			m := hdrRecord{"startino": uint64(r.StartIno), "freecount": uint64(r.FreeCount), "free": r.Free}
			if g.HasSparse {
				m["holemask"], m["count"] = uint64(r.HoleMask), uint64(r.Count)
			} else if r.HoleMask != 0 || r.Count != 64 {
				t.Errorf("non-sparse record decoded with holemask %#x count %d", r.HoleMask, r.Count)
			}
			d.recs = append(d.recs, m)
		}
		for _, k := range blk.Keys {
			d.keys = append(d.keys, hdrRecord{"startino": uint64(k.StartIno)})
		}
		ptrs(blk.Ptrs)
		d.encode = func(dst []byte) { blk.Encode(dst, g.HasSparse) }
	case ondisk.BtBnobt, ondisk.BtCntbt:
		blk, err := ondisk.DecodeAllocBlock(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range blk.Recs {
			d.recs = append(d.recs, hdrRecord{"startblock": uint64(r.StartBlock), "blockcount": uint64(r.BlockCount)})
		}
		for _, k := range blk.Keys {
			d.keys = append(d.keys, hdrRecord{"startblock": uint64(k.StartBlock), "blockcount": uint64(k.BlockCount)})
		}
		ptrs(blk.Ptrs)
		d.encode = blk.Encode
	case ondisk.BtRmapbt:
		blk, err := ondisk.DecodeRmapBlock(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range blk.Recs {
			d.recs = append(d.recs, hdrRecord{"startblock": uint64(r.StartBlock), "blockcount": uint64(r.BlockCount),
				"owner": r.Owner, "offset": r.FileOffset(), "extentflag": b2u(r.Unwritten()),
				"attrfork": b2u(r.AttrFork()), "bmbtblock": b2u(r.BmbtBlock())})
		}
		for i, k := range blk.Keys {
			m := hdrRecord{}
			rmapKeyRec(k, "", m)
			rmapKeyRec(blk.HighKeys[i], "_hi", m)
			d.keys = append(d.keys, m)
		}
		ptrs(blk.Ptrs)
		d.encode = blk.Encode
	case ondisk.BtRefcbt:
		blk, err := ondisk.DecodeRefcountBlock(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range blk.Recs {
			d.recs = append(d.recs, hdrRecord{"startblock": uint64(r.Agbno()), "blockcount": uint64(r.BlockCount),
				"refcount": uint64(r.RefCount), "cowflag": b2u(r.Cow())})
		}
		for _, k := range blk.Keys {
			d.keys = append(d.keys, hdrRecord{"startblock": uint64(k.StartBlock &^ ondisk.RefcCowFlag), "cowflag": b2u(k.StartBlock&ondisk.RefcCowFlag != 0)})
		}
		ptrs(blk.Ptrs)
		d.encode = blk.Encode
	default:
		t.Fatalf("no typed decoder for %s", typ.Name)
	}
	return d
}

func shortHdrFields(h ondisk.ShortBlockHdr) map[string]hdrField {
	return map[string]hdrField{
		"magic": hdrU(uint64(h.Magic), 32), "level": hdrU(uint64(h.Level), 16), "numrecs": hdrU(uint64(h.NumRecs), 16),
		"leftsib": hdrU(uint64(h.LeftSib), 32), "rightsib": hdrU(uint64(h.RightSib), 32), "bno": hdrU(h.Blkno, 64),
		"lsn": hdrU(h.LSN, 64), "uuid": hdrS(hdrUUID(h.UUID)), "owner": hdrU(uint64(h.Owner), 32), "crc": hdrCRC(h.CRC),
	}
}

func cmpRecords(t *testing.T, what, kind string, db, ours []hdrRecord) {
	t.Helper()
	if len(db) != len(ours) {
		t.Errorf("%s: %d %s from xfs_db, %d ours", what, len(db), kind, len(ours))
		return
	}
	for i := range db {
		if fmt.Sprint(map[string]uint64(db[i])) != fmt.Sprint(map[string]uint64(ours[i])) {
			t.Errorf("%s: %s %d: xfs_db %v, ours %v", what, kind, i, db[i], ours[i])
		}
	}
}

// btTree is one btree of an AG: its type, xfs_db type name, root and height.
type btTree struct {
	typ    *ondisk.BtreeType
	kind   *ondisk.BlockKind
	dbType string
	root   uint32
	levels uint32
}

func agTrees(m *hdrImg, agf *ondisk.AGF, agi *ondisk.AGI) []btTree {
	trees := []btTree{
		{ondisk.BtInobt, ondisk.KindInobt, "inobt", agi.Root, agi.Level},
		{ondisk.BtBnobt, ondisk.KindBnobt, "bnobt", agf.Roots[ondisk.AGFBno], agf.Levels[ondisk.AGFBno]},
		{ondisk.BtCntbt, ondisk.KindCntbt, "cntbt", agf.Roots[ondisk.AGFCnt], agf.Levels[ondisk.AGFCnt]},
	}
	if m.g.HasFinobt {
		trees = append(trees, btTree{ondisk.BtFinobt, ondisk.KindFinobt, "finobt", agi.FreeRoot, agi.FreeLevel})
	}
	if m.g.HasRmapbt {
		trees = append(trees, btTree{ondisk.BtRmapbt, ondisk.KindRmapbt, "rmapbt", agf.Roots[ondisk.AGFRmap], agf.Levels[ondisk.AGFRmap]})
	}
	if m.g.HasReflink {
		trees = append(trees, btTree{ondisk.BtRefcbt, ondisk.KindRefcbt, "refcntbt", agf.RefcountRoot, agf.RefcountLevel})
	}
	return trees
}

// btWalk walks one btree level by level from its root with our decoders,
// checking on every block: the verifier, the round trip of the typed
// decoder and of the header, and every header field, key, pointer and
// record against what xfs_db prints for the same block. It returns the
// leaf records.
func btWalk(t *testing.T, m *hdrImg, ag uint32, tr btTree) (leafRecs []hdrRecord, blocks int) {
	t.Helper()
	level := []uint32{tr.root}
	for l := int(tr.levels) - 1; l >= 0; l-- {
		what := fmt.Sprintf("AG %d %s level %d", ag, tr.typ.Name, l)
		var cmds []string
		for _, bno := range level {
			cmds = append(cmds, fmt.Sprintf("fsblock %d", m.g.Fsbno(ag, bno)), "type "+tr.dbType, "p")
		}
		out := testimg.DB(t, m.path, cmds...)
		chunks := strings.Split(out, "magic = ")[1:]
		if len(chunks) != len(level) {
			t.Fatalf("%s: xfs_db printed %d blocks for %d", what, len(chunks), len(level))
		}
		var next []uint32
		for i, bno := range level {
			bw := fmt.Sprintf("%s block %d", what, bno)
			dbOut := "magic = " + chunks[i]
			b := m.block(t, ag, bno)
			d := m.g.AgbToDaddr(ag, bno)
			ctx := ondisk.VerifyCtx{G: m.g, AG: ag, Daddr: d}
			if err := tr.kind.Verify(b, ctx); err != nil {
				t.Errorf("%s: verifier rejects a real block: %v", bw, err)
			}
			if k := ondisk.KindByMagic(tr.typ.Magic); k != tr.kind {
				t.Errorf("%s: KindByMagic gives %v", bw, k)
			}
			h, err := ondisk.DecodeShortBlockHdr(b)
			if err != nil {
				t.Fatal(err)
			}
			if int(h.Level) != l {
				t.Errorf("%s: bb_level %d", bw, h.Level)
			}
			hdrCompare(t, bw, dbOut, shortHdrFields(h))
			dec := btDecode(t, tr.typ, m.g, b)
			if l == 0 {
				cmpRecords(t, bw, "recs", hdrRecords(t, dbOut, "recs"), dec.recs)
				leafRecs = append(leafRecs, dec.recs...)
			} else {
				cmpRecords(t, bw, "keys", hdrRecords(t, dbOut, "keys"), dec.keys)
				dbPtrs := hdrArray(t, dbOut, "ptrs")
				if len(dbPtrs) != len(dec.ptrs) {
					t.Errorf("%s: %d ptrs from xfs_db, %d ours", bw, len(dbPtrs), len(dec.ptrs))
				}
				for j, p := range dec.ptrs {
					if dbPtrs[j+1] != p {
						t.Errorf("%s: ptr %d: xfs_db %d, ours %d", bw, j, dbPtrs[j+1], p)
					}
					next = append(next, uint32(p))
				}
			}
			btRoundTrip(t, bw, tr.typ, b, h, dec)
			blocks++
		}
		level = next
	}
	return leafRecs, blocks
}

// btRoundTrip checks Encode(Decode(b)) == b: into a copy of b, and into a
// buffer of 0xa5 bytes, where the header and every live entry must come out
// as in b (the bytes past the live entries are not ours to reproduce).
func btRoundTrip(t *testing.T, what string, typ *ondisk.BtreeType, b []byte, h ondisk.ShortBlockHdr, dec btDecoded) {
	t.Helper()
	c := bytes.Clone(b)
	dec.encode(c)
	if !bytes.Equal(c, b) {
		t.Errorf("%s: Encode(Decode(b)) into b changed it", what)
	}
	c2 := bytes.Clone(b)
	h.Encode(c2)
	if !bytes.Equal(c2, b) {
		t.Errorf("%s: header Encode(Decode(b)) changed it", what)
	}
	f := bytes.Repeat([]byte{0xa5}, len(b))
	dec.encode(f)
	v, err := typ.View(b)
	if err != nil {
		t.Fatal(err)
	}
	fv, _ := typ.View(f)
	if !bytes.Equal(f[:typ.HdrLen()], b[:typ.HdrLen()]) {
		t.Errorf("%s: encoded header differs", what)
	}
	for i := 0; i < v.NumRecs; i++ {
		if v.IsLeaf() {
			if !bytes.Equal(fv.Rec(i), v.Rec(i)) {
				t.Errorf("%s: encoded record %d differs", what, i)
			}
			continue
		}
		if !bytes.Equal(fv.Key(i), v.Key(i)) || fv.Ptr(i) != v.Ptr(i) {
			t.Errorf("%s: encoded key/ptr %d differs", what, i)
		}
		if typ.Overlapping && !bytes.Equal(fv.HighKey(i), v.HighKey(i)) {
			t.Errorf("%s: encoded high key %d differs", what, i)
		}
	}
	s := bytes.Clone(b)
	ondisk.KindByMagic(typ.Magic).Stamp(s, 0)
	if !bytes.Equal(s, b) {
		t.Errorf("%s: Stamp changed a correct block", what)
	}
}

// TestBtreesVsXfsDB walks every per-AG btree of every AG of every fixture
// and compares each block with xfs_db; it also checks the counts the AGI
// and AGF keep against the leaves.
func TestBtreesVsXfsDB(t *testing.T) {
	fixtures := append(append([]string{}, hdrFixtures...), "inobt3")
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			m := hdrOpen(t, name)
			multi := false
			for ag := uint32(0); ag < m.g.AGCount; ag++ {
				agf, _ := ondisk.DecodeAGF(m.sector(t, m.g.AGFDaddr(ag)))
				agi, _ := ondisk.DecodeAGI(m.sector(t, m.g.AGIDaddr(ag)))
				for _, tr := range agTrees(m, agf, agi) {
					if tr.levels > 1 {
						multi = true
					}
					recs, _ := btWalk(t, m, ag, tr)
					switch tr.typ {
					case ondisk.BtInobt:
						var count, free uint64
						for _, r := range recs {
							if m.g.HasSparse {
								count += r["count"]
							} else {
								count += 64
							}
							free += r["freecount"]
						}
						if name[:min(7, len(name))] != "orphans" && (count != uint64(agi.Count) || free != uint64(agi.FreeCount)) {
							t.Errorf("AG %d: inobt counts %d/%d, AGI %d/%d", ag, count, free, agi.Count, agi.FreeCount)
						}
					case ondisk.BtBnobt:
						var freeb, longest uint64
						for _, r := range recs {
							freeb += r["blockcount"]
							longest = max(longest, r["blockcount"])
						}
						if freeb != uint64(agf.FreeBlks) || (name[:min(7, len(name))] != "orphans" && longest != uint64(agf.Longest)) {
							t.Errorf("AG %d: bnobt free %d longest %d, AGF freeblks %d longest %d", ag, freeb, longest, agf.FreeBlks, agf.Longest)
						}
					}
				}
			}
			t.Logf("%s: multi-level btree seen: %v", name, multi)
		})
	}
}

// TestBtreeVerifierRejects corrupts the root blocks of AG 1 (AG 0 for a
// single-AG image) one field at a time and checks the field named.
func TestBtreeVerifierRejects(t *testing.T) {
	for _, name := range []string{"default", "rmapbt", "bs1024"} {
		t.Run(name, func(t *testing.T) {
			m := hdrOpen(t, name)
			ag := min(uint32(1), m.g.AGCount-1)
			agf, _ := ondisk.DecodeAGF(m.sector(t, m.g.AGFDaddr(ag)))
			agi, _ := ondisk.DecodeAGI(m.sector(t, m.g.AGIDaddr(ag)))
			for _, tr := range agTrees(m, agf, agi) {
				b := m.block(t, ag, tr.root)
				d := m.g.AgbToDaddr(ag, tr.root)
				ctx := ondisk.VerifyCtx{G: m.g, AG: ag, Daddr: d}
				st := tr.typ.Name + " block"
				what := fmt.Sprintf("%s AG %d %s", name, ag, tr.typ.Name)
				try := func(field string, mod func(h *ondisk.ShortBlockHdr), c ondisk.VerifyCtx) {
					t.Helper()
					x := bytes.Clone(b)
					h, _ := ondisk.DecodeShortBlockHdr(x)
					mod(&h)
					h.Encode(x)
					tr.kind.Stamp(x, 0)
					hdrCorrupt(t, what+" "+field, tr.kind.Verify(x, c), st, field)
				}
				x := bytes.Clone(b)
				x[len(x)/2] ^= 4
				hdrCorrupt(t, what+" flipped byte", tr.kind.Verify(x, ctx), st, "bb_crc")
				try("bb_magic", func(h *ondisk.ShortBlockHdr) { h.Magic = ondisk.BmbtMagic }, ctx)
				try("bb_uuid", func(h *ondisk.ShortBlockHdr) { h.UUID[8] ^= 2 }, ctx)
				try("bb_blkno", func(h *ondisk.ShortBlockHdr) { h.Blkno += 8 }, ctx)
				moved := ctx
				moved.Daddr += int64(m.g.BlockBBs())
				try("bb_blkno", func(h *ondisk.ShortBlockHdr) {}, moved)
				try("bb_owner", func(h *ondisk.ShortBlockHdr) { h.Owner++ }, ctx)
				other := ctx
				other.AG = ag + 1
				try("bb_owner", func(h *ondisk.ShortBlockHdr) {}, other)
				try("bb_level", func(h *ondisk.ShortBlockHdr) { h.Level = 40 }, ctx)
				try("bb_numrecs", func(h *ondisk.ShortBlockHdr) { h.NumRecs = uint16(tr.typ.MaxRecs(len(b), h.Level == 0) + 1) }, ctx)
				try("bb_leftsib", func(h *ondisk.ShortBlockHdr) { h.LeftSib = tr.root }, ctx)
				try("bb_leftsib", func(h *ondisk.ShortBlockHdr) { h.LeftSib = 0 }, ctx)
				try("bb_rightsib", func(h *ondisk.ShortBlockHdr) { h.RightSib = agf.Length }, ctx)
				// A block of another btree is refused by magic.
				if tr.typ != ondisk.BtInobt {
					hdrCorrupt(t, what+" as inobt", ondisk.KindInobt.Verify(b, ctx), "inobt block", "bb_magic")
				}
			}
		})
	}
}

// TestBmbtBlocks finds the bmbt blocks of the rmapbt fixtures through their
// rmap records (the bmbt-block flag names the owning inode) and checks the
// long-form header against xfs_db, the verifier and its rejections.
func TestBmbtBlocks(t *testing.T) {
	for _, name := range []string{"rmapbt", "orphans-rmap"} {
		t.Run(name, func(t *testing.T) {
			m := hdrOpen(t, name)
			type bm struct {
				ag, bno uint32
				owner   uint64
			}
			var found []bm
			for ag := uint32(0); ag < m.g.AGCount; ag++ {
				agf, _ := ondisk.DecodeAGF(m.sector(t, m.g.AGFDaddr(ag)))
				recs, _ := btWalk(t, m, ag, btTree{ondisk.BtRmapbt, ondisk.KindRmapbt, "rmapbt", agf.Roots[ondisk.AGFRmap], agf.Levels[ondisk.AGFRmap]})
				for _, r := range recs {
					if r["bmbtblock"] == 1 && r["attrfork"] == 0 {
						for i := uint64(0); i < r["blockcount"]; i++ {
							found = append(found, bm{ag, uint32(r["startblock"] + i), r["owner"]})
						}
					}
				}
			}
			if len(found) == 0 {
				t.Fatal("no bmbt block in the rmapbt")
			}
			sort.Slice(found, func(i, j int) bool { return found[i].bno < found[j].bno })
			for _, f := range found {
				what := fmt.Sprintf("%s bmbt AG %d block %d", name, f.ag, f.bno)
				b := m.block(t, f.ag, f.bno)
				d := m.g.AgbToDaddr(f.ag, f.bno)
				h, err := ondisk.DecodeLongBlockHdr(b)
				if err != nil {
					t.Fatal(err)
				}
				out := testimg.DB(t, m.path, fmt.Sprintf("fsblock %d", m.g.Fsbno(f.ag, f.bno)), "type bmapbtd", "p")
				ours := map[string]hdrField{
					"magic": hdrU(uint64(h.Magic), 32), "level": hdrU(uint64(h.Level), 16), "numrecs": hdrU(uint64(h.NumRecs), 16),
					"leftsib": hdrU(h.LeftSib, 64), "rightsib": hdrU(h.RightSib, 64), "bno": hdrU(h.Blkno, 64),
					"lsn": hdrU(h.LSN, 64), "uuid": hdrS(hdrUUID(h.UUID)), "owner": hdrU(h.Owner, 64), "crc": hdrCRC(h.CRC),
				}
				hdrCompare(t, what, out, ours)
				if h.Owner != f.owner {
					t.Errorf("%s: bb_owner %d, rmap owner %d", what, h.Owner, f.owner)
				}
				c := bytes.Clone(b)
				h.Encode(c)
				if !bytes.Equal(c, b) {
					t.Errorf("%s: Encode(Decode(b)) != b", what)
				}
				ctx := ondisk.VerifyCtx{G: m.g, AG: f.ag, Daddr: d}
				if err := ondisk.KindBmbt.Verify(b, ctx); err != nil {
					t.Errorf("%s: verifier rejects a real block: %v", what, err)
				}
				if v, err := ondisk.BtBmbt.View(b); err != nil || len(v.Ptrs()) != v.NumRecs && v.Level > 0 {
					t.Errorf("%s: View: %v", what, err)
				}
				try := func(field string, mod func(h *ondisk.LongBlockHdr), c ondisk.VerifyCtx) {
					t.Helper()
					x := bytes.Clone(b)
					h, _ := ondisk.DecodeLongBlockHdr(x)
					mod(&h)
					h.Encode(x)
					ondisk.KindBmbt.Stamp(x, 0)
					hdrCorrupt(t, what+" "+field, ondisk.KindBmbt.Verify(x, c), "bmbt block", field)
				}
				x := bytes.Clone(b)
				x[100] ^= 1
				hdrCorrupt(t, what+" flipped byte", ondisk.KindBmbt.Verify(x, ctx), "bmbt block", "bb_crc")
				try("bb_magic", func(h *ondisk.LongBlockHdr) { h.Magic = ondisk.InobtMagic }, ctx)
				try("bb_uuid", func(h *ondisk.LongBlockHdr) { h.UUID[0]++ }, ctx)
				try("bb_blkno", func(h *ondisk.LongBlockHdr) { h.Blkno++ }, ctx)
				try("bb_owner", func(h *ondisk.LongBlockHdr) { h.Owner = ondisk.NullIno }, ctx)
				try("bb_level", func(h *ondisk.LongBlockHdr) { h.Level = 30 }, ctx)
				try("bb_numrecs", func(h *ondisk.LongBlockHdr) { h.NumRecs = 1000 }, ctx)
				try("bb_leftsib", func(h *ondisk.LongBlockHdr) { h.LeftSib = m.g.Fsbno(f.ag, f.bno) }, ctx)
				try("bb_rightsib", func(h *ondisk.LongBlockHdr) { h.RightSib = m.g.Fsbno(m.g.AGCount, 10) }, ctx)
			}
			t.Logf("%d bmbt blocks checked", len(found))
		})
	}
}
