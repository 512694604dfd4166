package ondisk_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

func agiFields(a *ondisk.AGI) map[string]hdrField {
	u := func(v uint32) hdrField { return hdrU(uint64(v), 32) }
	return map[string]hdrField{
		"magicnum": u(a.MagicNum), "versionnum": u(a.VersionNum), "seqno": u(a.SeqNo), "length": u(a.Length),
		"count": u(a.Count), "root": u(a.Root), "level": u(a.Level), "freecount": u(a.FreeCount),
		"newino": u(a.NewIno), "dirino": u(a.DirIno), "uuid": hdrS(hdrUUID(a.UUID)), "crc": hdrCRC(a.CRC),
		"lsn": hdrU(a.LSN, 64), "free_root": u(a.FreeRoot), "free_level": u(a.FreeLevel),
		"ino_blocks": u(a.IBlocks), "fino_blocks": u(a.FBlocks),
	}
}

// TestAGIVsXfsDB compares every AGI field of every AG, the 64 unlinked
// buckets included, with `xfs_db -c 'agi N' -c p` (agi_pad32 is not
// printed: it is checked zero), and checks the round trip, the verifier and
// its rejection of corrupted copies. The orphans fixtures have non-empty
// buckets.
func TestAGIVsXfsDB(t *testing.T) {
	sawOrphans := false
	for _, name := range hdrFixtures {
		t.Run(name, func(t *testing.T) {
			m := hdrOpen(t, name)
			for ag := uint32(0); ag < m.g.AGCount; ag++ {
				what := fmt.Sprintf("%s AGI %d", name, ag)
				d := m.g.AGIDaddr(ag)
				b := m.sector(t, d)
				a, err := ondisk.DecodeAGI(b)
				if err != nil {
					t.Fatal(err)
				}
				out := testimg.DB(t, m.path, fmt.Sprintf("agi %d", ag), "p")
				hdrCompare(t, what, out, agiFields(a))
				ul, err := testimg.ParseUnlinked(out)
				if err != nil {
					t.Fatal(err)
				}
				if ul != a.Unlinked {
					t.Errorf("%s: agi_unlinked: xfs_db %v, ours %v", what, ul, a.Unlinked)
				}
				for _, v := range a.Unlinked {
					if v != ondisk.NullAgino {
						sawOrphans = true
					}
				}
				if a.Pad32 != 0 {
					t.Errorf("%s: agi_pad32 = %#x", what, a.Pad32)
				}
				c := make([]byte, len(b))
				a.Encode(c)
				if !bytes.Equal(c, b) {
					t.Errorf("%s: Encode(Decode(b)) != b", what)
				}
				ctx := ondisk.VerifyCtx{G: m.g, AG: ag, Daddr: d}
				if err := ondisk.KindAGI.Verify(b, ctx); err != nil {
					t.Errorf("%s: verifier rejects a real AGI: %v", what, err)
				}
				s := bytes.Clone(b)
				ondisk.KindAGI.Stamp(s, 0)
				if !bytes.Equal(s, b) {
					t.Errorf("%s: Stamp changed a correct sector", what)
				}
				if k := ondisk.KindByMagic(a.MagicNum); k != ondisk.KindAGI {
					t.Errorf("%s: KindByMagic gives %v", what, k)
				}
				agiRejects(t, what, b, ctx)
			}
		})
	}
	if !sawOrphans && !t.Skipped() {
		t.Errorf("no fixture had a non-empty unlinked bucket")
	}
}

func agiRejects(t *testing.T, what string, b []byte, ctx ondisk.VerifyCtx) {
	t.Helper()
	try := func(field string, mod func(a *ondisk.AGI), c ondisk.VerifyCtx) {
		t.Helper()
		x := bytes.Clone(b)
		a, _ := ondisk.DecodeAGI(x)
		mod(a)
		a.Encode(x)
		ondisk.KindAGI.Stamp(x, 0)
		hdrCorrupt(t, what+" "+field, ondisk.VerifyAGI(x, c), "AGI", field)
	}
	x := bytes.Clone(b)
	x[200] ^= 0x80
	hdrCorrupt(t, what+" flipped byte", ondisk.VerifyAGI(x, ctx), "AGI", "agi_crc")
	try("agi_magicnum", func(a *ondisk.AGI) { a.MagicNum = ondisk.AGFMagic }, ctx)
	try("agi_versionnum", func(a *ondisk.AGI) { a.VersionNum = 0 }, ctx)
	try("agi_uuid", func(a *ondisk.AGI) { a.UUID[15] ^= 1 }, ctx)
	try("agi_seqno", func(a *ondisk.AGI) { a.SeqNo += 7 }, ctx)
	try("agi_length", func(a *ondisk.AGI) { a.Length = 10 }, ctx)
	try("agi_freecount", func(a *ondisk.AGI) { a.FreeCount = a.Count + 1 }, ctx)
	try("agi_level", func(a *ondisk.AGI) { a.Level = 0 }, ctx)
	try("agi_level", func(a *ondisk.AGI) { a.Level = 50 }, ctx)
	try("agi_root", func(a *ondisk.AGI) { a.Root = a.Length }, ctx)
	if ctx.G.HasFinobt {
		try("agi_free_level", func(a *ondisk.AGI) { a.FreeLevel = 0 }, ctx)
		try("agi_free_root", func(a *ondisk.AGI) { a.FreeRoot = 0 }, ctx)
	}
	try("agi_unlinked[5]", func(a *ondisk.AGI) { a.Unlinked[5] = 1 }, ctx)
	try("agi_unlinked[63]", func(a *ondisk.AGI) { a.Unlinked[63] = a.Length << ctx.G.InoPBLog }, ctx)
	try("agi_unlinked[0]", func(a *ondisk.AGI) { a.Unlinked[0] = 0xfffffffe }, ctx)
}
