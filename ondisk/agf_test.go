package ondisk_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

func agfFields(a *ondisk.AGF) map[string]hdrField {
	u := func(v uint32) hdrField { return hdrU(uint64(v), 32) }
	return map[string]hdrField{
		"magicnum": u(a.MagicNum), "versionnum": u(a.VersionNum), "seqno": u(a.SeqNo), "length": u(a.Length),
		"bnoroot": u(a.Roots[ondisk.AGFBno]), "cntroot": u(a.Roots[ondisk.AGFCnt]), "rmaproot": u(a.Roots[ondisk.AGFRmap]),
		"refcntroot": u(a.RefcountRoot), "bnolevel": u(a.Levels[ondisk.AGFBno]), "cntlevel": u(a.Levels[ondisk.AGFCnt]),
		"rmaplevel": u(a.Levels[ondisk.AGFRmap]), "refcntlevel": u(a.RefcountLevel), "rmapblocks": u(a.RmapBlocks),
		"refcntblocks": u(a.RefcountBlocks), "flfirst": u(a.FLFirst), "fllast": u(a.FLLast), "flcount": u(a.FLCount),
		"freeblks": u(a.FreeBlks), "longest": u(a.Longest), "btreeblks": u(a.BtreeBlks), "uuid": hdrS(hdrUUID(a.UUID)),
		"lsn": hdrU(a.LSN, 64), "crc": hdrCRC(a.CRC),
	}
}

// TestAGFVsXfsDB compares every AGF field of every AG with `xfs_db -c
// 'agf N' -c p` (which does not print agf_spare64 and agf_spare2: they are
// checked zero), and checks the round trip, the verifier on the real sector
// and its rejection of corrupted copies.
func TestAGFVsXfsDB(t *testing.T) {
	for _, name := range hdrFixtures {
		t.Run(name, func(t *testing.T) {
			m := hdrOpen(t, name)
			for ag := uint32(0); ag < m.g.AGCount; ag++ {
				what := fmt.Sprintf("%s AGF %d", name, ag)
				d := m.g.AGFDaddr(ag)
				b := m.sector(t, d)
				a, err := ondisk.DecodeAGF(b)
				if err != nil {
					t.Fatal(err)
				}
				hdrCompare(t, what, testimg.DB(t, m.path, fmt.Sprintf("agf %d", ag), "p"), agfFields(a))
				if a.Spare64 != [14]uint64{} || a.Spare2 != 0 {
					t.Errorf("%s: spare fields not zero", what)
				}
				// Round trip: into a zeroed sector (every byte of the struct
				// is written; the rest of a real AGF sector is zero) and
				// into a copy.
				c := make([]byte, len(b))
				a.Encode(c)
				if !bytes.Equal(c, b) {
					t.Errorf("%s: Encode(Decode(b)) != b", what)
				}
				ctx := ondisk.VerifyCtx{G: m.g, AG: ag, Daddr: d}
				if err := ondisk.KindAGF.Verify(b, ctx); err != nil {
					t.Errorf("%s: verifier rejects a real AGF: %v", what, err)
				}
				s := bytes.Clone(b)
				ondisk.KindAGF.Stamp(s, 0)
				if !bytes.Equal(s, b) {
					t.Errorf("%s: Stamp changed a correct sector", what)
				}
				if k := ondisk.KindByMagic(a.MagicNum); k != ondisk.KindAGF {
					t.Errorf("%s: KindByMagic gives %v", what, k)
				}
				agfRejects(t, what, b, ctx)
			}
		})
	}
}

// agfRejects corrupts one field at a time, re-stamping the CRC where the
// CRC is not what is tested, and checks the verifier names that field.
func agfRejects(t *testing.T, what string, b []byte, ctx ondisk.VerifyCtx) {
	t.Helper()
	try := func(field string, mod func(a *ondisk.AGF), c ondisk.VerifyCtx) {
		t.Helper()
		x := bytes.Clone(b)
		a, _ := ondisk.DecodeAGF(x)
		mod(a)
		a.Encode(x)
		ondisk.KindAGF.Stamp(x, 0)
		hdrCorrupt(t, what+" "+field, ondisk.VerifyAGF(x, c), "AGF", field)
	}
	x := bytes.Clone(b)
	x[60] ^= 0x10
	hdrCorrupt(t, what+" flipped byte", ondisk.VerifyAGF(x, ctx), "AGF", "agf_crc")
	try("agf_magicnum", func(a *ondisk.AGF) { a.MagicNum = ondisk.AGIMagic }, ctx)
	try("agf_versionnum", func(a *ondisk.AGF) { a.VersionNum = 2 }, ctx)
	try("agf_uuid", func(a *ondisk.AGF) { a.UUID[3] ^= 1 }, ctx)
	try("agf_seqno", func(a *ondisk.AGF) { a.SeqNo++ }, ctx)
	other := ctx
	other.AG = ctx.AG + 1
	try("agf_seqno", func(a *ondisk.AGF) {}, other)
	if ctx.AG != ctx.G.AGCount-1 {
		try("agf_length", func(a *ondisk.AGF) { a.Length-- }, ctx)
	}
	try("agf_length", func(a *ondisk.AGF) { a.Length = ctx.G.AGBlocks + 1 }, ctx)
	try("agf_flfirst", func(a *ondisk.AGF) { a.FLFirst = ctx.G.AGFLSize }, ctx)
	try("agf_fllast", func(a *ondisk.AGF) { a.FLLast = ctx.G.AGFLSize }, ctx)
	try("agf_flcount", func(a *ondisk.AGF) { a.FLCount = ctx.G.AGFLSize + 1 }, ctx)
	try("agf_freeblks", func(a *ondisk.AGF) { a.FreeBlks = a.Length + 1 }, ctx)
	try("agf_longest", func(a *ondisk.AGF) { a.Longest = a.FreeBlks + 1 }, ctx)
	try("agf_bno_level", func(a *ondisk.AGF) { a.Levels[ondisk.AGFBno] = 0 }, ctx)
	try("agf_cnt_level", func(a *ondisk.AGF) { a.Levels[ondisk.AGFCnt] = 100 }, ctx)
	if ctx.G.HasRmapbt {
		try("agf_rmap_level", func(a *ondisk.AGF) { a.Levels[ondisk.AGFRmap] = 0 }, ctx)
		try("agf_rmap_blocks", func(a *ondisk.AGF) { a.RmapBlocks = a.Length + 1 }, ctx)
	}
	if ctx.G.HasReflink {
		try("agf_refcount_level", func(a *ondisk.AGF) { a.RefcountLevel = 100 }, ctx)
	}
}
