package ondisk_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// TestAGFLVsXfsDB compares the AGFL header and every slot of every AG with
// `xfs_db -c 'agfl N' -c p`, the live list with the slots xfs_db prints
// from the AGF's flfirst to fllast, and checks the round trip and the
// verifier.
func TestAGFLVsXfsDB(t *testing.T) {
	for _, name := range hdrFixtures {
		t.Run(name, func(t *testing.T) {
			m := hdrOpen(t, name)
			for ag := uint32(0); ag < m.g.AGCount; ag++ {
				what := fmt.Sprintf("%s AGFL %d", name, ag)
				d := m.g.AGFLDaddr(ag)
				b := m.sector(t, d)
				a, err := ondisk.DecodeAGFL(b)
				if err != nil {
					t.Fatal(err)
				}
				if len(a.Bno) != int(m.g.AGFLSize) {
					t.Fatalf("%s: %d slots, want %d", what, len(a.Bno), m.g.AGFLSize)
				}
				out := testimg.DB(t, m.path, fmt.Sprintf("agfl %d", ag), "p")
				hdrCompare(t, what, out, map[string]hdrField{
					"magicnum": hdrU(uint64(a.MagicNum), 32), "seqno": hdrU(uint64(a.SeqNo), 32),
					"uuid": hdrS(hdrUUID(a.UUID)), "lsn": hdrU(a.LSN, 64), "crc": hdrCRC(a.CRC),
				})
				slots := hdrArray(t, out, "bno")
				if len(slots) != len(a.Bno) {
					t.Fatalf("%s: xfs_db prints %d slots, we decode %d", what, len(slots), len(a.Bno))
				}
				for i, v := range a.Bno {
					if uint64(v) != slots[i]&0xffffffff {
						t.Errorf("%s: bno[%d]: xfs_db %d, ours %d", what, i, slots[i], v)
					}
				}
				agf, err := ondisk.DecodeAGF(m.sector(t, m.g.AGFDaddr(ag)))
				if err != nil {
					t.Fatal(err)
				}
				live, err := a.Live(m.g, agf)
				if err != nil {
					t.Fatalf("%s: Live: %v", what, err)
				}
				if len(live) != int(agf.FLCount) {
					t.Errorf("%s: %d live entries, agf_flcount %d", what, len(live), agf.FLCount)
				}
				for i, e := range live {
					s := (agf.FLFirst + uint32(i)) % m.g.AGFLSize
					if e.Slot != s || uint64(e.Agbno) != slots[int(s)] {
						t.Errorf("%s: live entry %d = %+v, xfs_db slot %d = %d", what, i, e, s, slots[int(s)])
					}
				}
				c := make([]byte, len(b))
				a.Encode(c)
				if !bytes.Equal(c, b) {
					t.Errorf("%s: Encode(Decode(b)) != b", what)
				}
				ctx := ondisk.VerifyCtx{G: m.g, AG: ag, Daddr: d}
				if err := ondisk.KindAGFL.Verify(b, ctx); err != nil {
					t.Errorf("%s: verifier rejects a real AGFL: %v", what, err)
				}
				s := bytes.Clone(b)
				ondisk.KindAGFL.Stamp(s, 0)
				if !bytes.Equal(s, b) {
					t.Errorf("%s: Stamp changed a correct sector", what)
				}
				agflRejects(t, what, b, ctx)
				agflLiveWrap(t, what, m.g, a, agf)
			}
		})
	}
}

func agflRejects(t *testing.T, what string, b []byte, ctx ondisk.VerifyCtx) {
	t.Helper()
	try := func(field string, mod func(a *ondisk.AGFL), c ondisk.VerifyCtx) {
		t.Helper()
		x := bytes.Clone(b)
		a, _ := ondisk.DecodeAGFL(x)
		mod(a)
		a.Encode(x)
		ondisk.KindAGFL.Stamp(x, 0)
		hdrCorrupt(t, what+" "+field, ondisk.VerifyAGFL(x, c), "AGFL", field)
	}
	x := bytes.Clone(b)
	x[len(x)-1] ^= 1
	hdrCorrupt(t, what+" flipped byte", ondisk.VerifyAGFL(x, ctx), "AGFL", "agfl_crc")
	try("agfl_magicnum", func(a *ondisk.AGFL) { a.MagicNum++ }, ctx)
	try("agfl_uuid", func(a *ondisk.AGFL) { a.UUID[0] ^= 0xff }, ctx)
	try("agfl_seqno", func(a *ondisk.AGFL) { a.SeqNo++ }, ctx)
	try("agfl_bno[7]", func(a *ondisk.AGFL) { a.Bno[7] = ctx.G.AGBlocks }, ctx)
}

// agflLiveWrap checks Live on a list that wraps around the end of the ring
// and its refusal of inconsistent AGF indexes.
func agflLiveWrap(t *testing.T, what string, g *ondisk.Geometry, a *ondisk.AGFL, agf *ondisk.AGF) {
	t.Helper()
	n := g.AGFLSize
	x := *a
	x.Bno = append([]uint32(nil), a.Bno...)
	x.Bno[n-2], x.Bno[n-1], x.Bno[0], x.Bno[1] = 20, 21, 22, 23
	f := *agf
	f.FLFirst, f.FLLast, f.FLCount = n-2, 1, 4
	live, err := x.Live(g, &f)
	if err != nil {
		t.Fatalf("%s: wrapped Live: %v", what, err)
	}
	want := []ondisk.AGFLEntry{{Slot: n - 2, Agbno: 20}, {Slot: n - 1, Agbno: 21}, {Slot: 0, Agbno: 22}, {Slot: 1, Agbno: 23}}
	if fmt.Sprint(live) != fmt.Sprint(want) {
		t.Errorf("%s: wrapped Live = %v, want %v", what, live, want)
	}
	bad := func(field string, mod func(f *ondisk.AGF)) {
		t.Helper()
		f := *agf
		f.FLFirst, f.FLLast, f.FLCount = n-2, 1, 4
		mod(&f)
		_, err := x.Live(g, &f)
		st := "AGF"
		if field[:4] == "agfl" {
			st = "AGFL"
		}
		hdrCorrupt(t, what+" Live "+field, err, st, field)
	}
	bad("agf_flfirst", func(f *ondisk.AGF) { f.FLFirst = n })
	bad("agf_fllast", func(f *ondisk.AGF) { f.FLLast = n + 5 })
	bad("agf_flcount", func(f *ondisk.AGF) { f.FLCount = 3 })
	bad("agf_flcount", func(f *ondisk.AGF) { f.FLCount = n + 1 })
	x.Bno[0] = ondisk.NullAgbno
	bad("agfl_bno[0]", func(f *ondisk.AGF) {})
}
