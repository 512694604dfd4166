package ondisk_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// hdrFname renders sb_fname as xfs_db prints a char array.
func hdrFname(b []byte) string {
	var s strings.Builder
	s.WriteByte('"')
	for _, c := range b {
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			s.WriteByte(c)
		} else {
			fmt.Fprintf(&s, "\\%03o", c)
		}
	}
	s.WriteByte('"')
	return s.String()
}

func sbFields(s *ondisk.Superblock) map[string]hdrField {
	return map[string]hdrField{
		"magicnum": hdrU(uint64(s.MagicNum), 32), "blocksize": hdrU(uint64(s.BlockSize), 32),
		"dblocks": hdrU(s.DBlocks, 64), "rblocks": hdrU(s.RBlocks, 64), "rextents": hdrU(s.RExtents, 64),
		"uuid": hdrS(hdrUUID(s.UUID)), "logstart": hdrU(s.LogStart, 64), "rootino": hdrU(s.RootIno, 64),
		"rbmino": hdrU(s.RbmIno, 64), "rsumino": hdrU(s.RsumIno, 64), "rextsize": hdrU(uint64(s.RExtSize), 32),
		"agblocks": hdrU(uint64(s.AGBlocks), 32), "agcount": hdrU(uint64(s.AGCount), 32),
		"rbmblocks": hdrU(uint64(s.RbmBlocks), 32), "logblocks": hdrU(uint64(s.LogBlocks), 32),
		"versionnum": hdrU(uint64(s.VersionNum), 16), "sectsize": hdrU(uint64(s.SectSize), 16),
		"inodesize": hdrU(uint64(s.InodeSize), 16), "inopblock": hdrU(uint64(s.InoPBlock), 16),
		"fname": hdrS(hdrFname(s.FName[:])), "blocklog": hdrU(uint64(s.BlockLog), 8),
		"sectlog": hdrU(uint64(s.SectLog), 8), "inodelog": hdrU(uint64(s.InodeLog), 8),
		"inopblog": hdrU(uint64(s.InoPBLog), 8), "agblklog": hdrU(uint64(s.AGBlkLog), 8),
		"rextslog": hdrU(uint64(s.RExtSLog), 8), "inprogress": hdrU(uint64(s.InProgress), 8),
		"imax_pct": hdrU(uint64(s.IMaxPct), 8), "icount": hdrU(s.ICount, 64), "ifree": hdrU(s.IFree, 64),
		"fdblocks": hdrU(s.FDBlocks, 64), "frextents": hdrU(s.FRExtents, 64),
		"uquotino": hdrU(s.UQuotIno, 64), "gquotino": hdrU(s.GQuotIno, 64), "qflags": hdrU(uint64(s.QFlags), 16),
		"flags": hdrU(uint64(s.Flags), 8), "shared_vn": hdrU(uint64(s.SharedVN), 8),
		"inoalignmt": hdrU(uint64(s.InoAlignMt), 32), "unit": hdrU(uint64(s.Unit), 32), "width": hdrU(uint64(s.Width), 32),
		"dirblklog": hdrU(uint64(s.DirBlkLog), 8), "logsectlog": hdrU(uint64(s.LogSectLog), 8),
		"logsectsize": hdrU(uint64(s.LogSectSize), 16), "logsunit": hdrU(uint64(s.LogSUnit), 32),
		"features2": hdrU(uint64(s.Features2), 32), "bad_features2": hdrU(uint64(s.BadFeatures2), 32),
		"features_compat": hdrU(uint64(s.FeatCompat), 32), "features_ro_compat": hdrU(uint64(s.FeatROCompat), 32),
		"features_incompat": hdrU(uint64(s.FeatIncompat), 32), "features_log_incompat": hdrU(uint64(s.FeatLogIncompat), 32),
		"crc": hdrCRC(s.CRC), "spino_align": hdrU(uint64(s.SpinoAlign), 32),
		"pquotino": hdrU(s.PQuotIno, 64), "lsn": hdrU(s.LSN, 64), "meta_uuid": hdrS(hdrUUID(s.MetaUUID)),
	}
}

// TestSuperblockVsXfsDB compares every superblock field xfs_db 6.1 prints
// (it does not print sb_metadirino, sb_rgcount, sb_rgextents, sb_rgblklog
// or sb_pad, which are zero on these images) for the primary and every
// secondary superblock, and checks Verify, Encode and KindSB on each.
func TestSuperblockVsXfsDB(t *testing.T) {
	for _, name := range hdrFixtures {
		t.Run(name, func(t *testing.T) {
			m := hdrOpen(t, name)
			var cmds []string
			for ag := uint32(0); ag < m.g.AGCount; ag++ {
				cmds = append(cmds, fmt.Sprintf("sb %d", ag), "p")
			}
			outs := strings.SplitAfter(testimg.DB(t, m.path, cmds...), "meta_uuid = ")
			if len(outs) != int(m.g.AGCount)+1 {
				t.Fatalf("xfs_db printed %d superblocks for %d AGs", len(outs)-1, m.g.AGCount)
			}
			for ag := uint32(0); ag < m.g.AGCount; ag++ {
				out := outs[ag]
				if ag > 0 {
					// the meta_uuid value of the previous one heads this part
					out = out[strings.IndexByte(out, '\n')+1:]
				}
				out += strings.SplitN(outs[ag+1], "\n", 2)[0]
				d := m.g.AgbToDaddr(ag, 0)
				b := m.sector(t, d)
				s, err := ondisk.DecodeSuperblock(b)
				if err != nil {
					t.Fatal(err)
				}
				what := fmt.Sprintf("%s sb %d", name, ag)
				hdrCompare(t, what, out, sbFields(s))
				if err := ondisk.KindSB.Verify(b, ondisk.VerifyCtx{G: m.g, AG: ag, Daddr: d}); err != nil {
					t.Errorf("%s: KindSB rejects it: %v", what, err)
				}
				c := make([]byte, len(b))
				copy(c[ondisk.SBSize:], b[ondisk.SBSize:])
				s.Encode(c)
				if !bytes.Equal(c, b) {
					t.Errorf("%s: Encode(Decode(b)) != b", what)
				}
				c2 := bytes.Clone(b)
				ondisk.KindSB.Stamp(c2, 0)
				if !bytes.Equal(c2, b) {
					t.Errorf("%s: Stamp changed a correct sector", what)
				}
				bad := bytes.Clone(b)
				bad[100] ^= 1
				hdrCorrupt(t, what+" flipped byte", ondisk.KindSB.Verify(bad, ondisk.VerifyCtx{G: m.g, AG: ag, Daddr: d}), "superblock", "sb_crc")
				if ce, ok := ondisk.KindSB.Verify(bad, ondisk.VerifyCtx{G: m.g, AG: ag, Daddr: d}).(*ondisk.CorruptError); ok && (ce.AG != ag || ce.Daddr != d) {
					t.Errorf("%s: error located at AG %d daddr %d", what, ce.AG, ce.Daddr)
				}
			}
		})
	}
}
