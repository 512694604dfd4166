package ondisk_test

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// The layout of the on-disk structures, checked as the kernel's
// xfs_ondisk.h does (XFS_CHECK_STRUCT_SIZE, XFS_CHECK_OFFSET): every
// exported offset and size against the kernel's value, every field table
// for consistency, and the tables and offsets against real blocks that
// xfs_db wrote field by field.

// layouts lists every field table of package ondisk.
func layouts() []*ondisk.Layout {
	return []*ondisk.Layout{
		ondisk.AGIFields(0).Layout(), ondisk.AGFFields(0).Layout(), ondisk.AGFLFields(0).Layout(),
		ondisk.SBFields(0).Layout(), ondisk.DinodeFields(0).Layout(),
		ondisk.ShortBlockFields(0).Layout(), ondisk.LongBlockFields(0).Layout(),
	}
}

// TestLayoutTables checks every field table: its fields in on-disk order,
// without gaps or overlaps from offset 0 to the structure's size, unique
// names, scalars of 1, 2, 4 or 8 bytes, whole array elements, only CRCs
// little-endian, and no more fields than its mask type has bits.
func TestLayoutTables(t *testing.T) {
	bitsOf := map[string]int{"AGI": 32, "AGF": 32, "AGFL": 32, "superblock": 64, "dinode": 64,
		"short-form btree block header": 32, "long-form btree block header": 32}
	for _, l := range layouts() {
		off := 0
		names := map[string]bool{}
		for _, f := range l.Fields {
			switch {
			case f.Off != off:
				t.Errorf("%s: %s at %d, want %d (the end of the field before)", l.Struct, f.Name, f.Off, off)
			case names[f.Name]:
				t.Errorf("%s: %s twice", l.Struct, f.Name)
			case f.Elem == 0 && f.Size != 1 && f.Size != 2 && f.Size != 4 && f.Size != 8 && !strings.Contains(f.Name, "pad"):
				t.Errorf("%s: scalar %s of %d bytes", l.Struct, f.Name, f.Size)
			case f.Elem != 0 && f.Size%f.Elem != 0:
				t.Errorf("%s: %s of %d bytes is not a whole number of %d-byte elements", l.Struct, f.Name, f.Size, f.Elem)
			case f.LE != strings.HasSuffix(f.Name, "crc"):
				t.Errorf("%s: %s little-endian %v", l.Struct, f.Name, f.LE)
			}
			names[f.Name] = true
			off = f.End()
		}
		if off != l.Size {
			t.Errorf("%s: fields end at %d, the structure is %d bytes", l.Struct, off, l.Size)
		}
		if n, ok := bitsOf[l.Struct]; !ok || len(l.Fields) > n {
			t.Errorf("%s: %d fields for a %d-bit mask", l.Struct, len(l.Fields), n)
		}
	}
}

// TestLayoutRanges checks the byte ranges LogFields logs: one per run of
// adjacent fields.
func TestLayoutRanges(t *testing.T) {
	type r = ondisk.ByteRange
	for _, c := range []struct {
		what string
		got  []ondisk.ByteRange
		want []ondisk.ByteRange
	}{
		{"agi_count, agi_freecount", ondisk.AGICount.Layout().Ranges(uint64(ondisk.AGICount | ondisk.AGIFreeCount)), []r{{16, 19}, {28, 31}}},
		{"agi_root, agi_level", ondisk.AGICount.Layout().Ranges(uint64(ondisk.AGIRoot | ondisk.AGILevel)), []r{{20, 27}}},
		{"agi_free_root, agi_free_level", ondisk.AGICount.Layout().Ranges(uint64(ondisk.AGIFreeRoot | ondisk.AGIFreeLevel)), []r{{328, 335}}},
		{"agf_roots, agf_levels", ondisk.AGFRoots.Layout().Ranges(uint64(ondisk.AGFRoots | ondisk.AGFLevels)), []r{{16, 39}}},
		{"sb_fname", ondisk.SBFName.Layout().Ranges(uint64(ondisk.SBFName)), []r{{108, 119}}},
		{"bb_numrecs, bb_rightsib", ondisk.ShortBlockNumRecs.Layout().Ranges(uint64(ondisk.ShortBlockNumRecs | ondisk.ShortBlockRightSib)), []r{{6, 7}, {12, 15}}},
		{"bb_rightsib (long)", ondisk.LongBlockRightSib.Layout().Ranges(uint64(ondisk.LongBlockRightSib)), []r{{16, 23}}},
	} {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s: ranges %v, want %v", c.what, c.got, c.want)
		}
	}
	var log rangeLog
	ondisk.LogFields(&log, "agi", ondisk.AGICount|ondisk.AGIFreeCount)
	ondisk.LogField(&log, "agi", ondisk.AGIBucket(5))
	ondisk.LogFieldsAt(&log, "cluster", 1024, ondisk.DiNextUnlinked)
	if want := "agi 16..19 agi 28..31 agi 60..63 cluster 1120..1123 "; log.s != want {
		t.Errorf("logged %q, want %q", log.s, want)
	}
}

type rangeLog struct{ s string }

func (l *rangeLog) LogRange(b string, first, last int) {
	l.s += fmt.Sprintf("%s %d..%d ", b, first, last)
}

// TestLayoutConstants checks every exported offset and size against the
// kernel's value (xfs_format.h, xfs_log_format.h, xfs_da_format.h), as
// xfs_ondisk.h does at compile time.
func TestLayoutConstants(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		// Superblock and AG headers.
		{"sizeof(struct xfs_dsb)", ondisk.SBSize, 288},
		{"offsetof(struct xfs_dsb, sb_crc)", ondisk.SBCrcOff, 224},
		{"offsetof(struct xfs_dsb, sb_lsn)", ondisk.SBLSNOff, 240},
		{"sizeof(struct xfs_agf)", ondisk.AGFSize, 224},
		{"offsetof(struct xfs_agf, agf_crc)", ondisk.AGFCrcOff, 216},
		{"offsetof(struct xfs_agf, agf_lsn)", ondisk.AGFLSNOff, 208},
		{"sizeof(struct xfs_agi)", ondisk.AGISize, 344},
		{"offsetof(struct xfs_agi, agi_crc)", ondisk.AGICrcOff, 312},
		{"offsetof(struct xfs_agi, agi_lsn)", ondisk.AGILSNOff, 320},
		{"offsetof(struct xfs_agi, agi_unlinked)", ondisk.AGIUnlinkedOff, 40},
		{"offsetof(struct xfs_agfl, agfl_bno)", ondisk.AGFLHdrLen, 36},
		{"offsetof(struct xfs_agfl, agfl_bno) (AGFLBnoOff)", ondisk.AGFLBnoOff, 36},
		{"offsetof(struct xfs_agfl, agfl_crc)", ondisk.AGFLCrcOff, 32},
		{"offsetof(struct xfs_agfl, agfl_lsn)", ondisk.AGFLLSNOff, 24},
		// Inodes.
		{"xfs_dinode_size(3)", ondisk.DinodeCoreSize, 176},
		{"XFS_DINODE_CRC_OFF", ondisk.DinodeCrcOff, 100},
		{"offsetof(struct xfs_dinode, di_next_unlinked)", ondisk.DinodeNextUnlinkedOff, 96},
		{"offsetof(struct xfs_dinode, di_lsn)", ondisk.DinodeLSNOff, 112},
		{"sizeof(struct xfs_bmdr_block)", ondisk.BmdrHdrLen, 4},
		// Btree blocks, records, keys and pointers.
		{"XFS_BTREE_SBLOCK_CRC_LEN", ondisk.ShortBlockHdrLen, 56},
		{"XFS_BTREE_LBLOCK_CRC_LEN", ondisk.LongBlockHdrLen, 72},
		{"XFS_BTREE_SBLOCK_CRC_OFF", ondisk.ShortBlockCrcOff, 52},
		{"XFS_BTREE_LBLOCK_CRC_OFF", ondisk.LongBlockCrcOff, 64},
		{"offsetof(struct xfs_btree_block, bb_u.s.bb_lsn)", ondisk.ShortBlockLSNOff, 24},
		{"offsetof(struct xfs_btree_block, bb_u.l.bb_lsn)", ondisk.LongBlockLSNOff, 32},
		{"sizeof(xfs_alloc_ptr_t)", ondisk.ShortPtrLen, 4},
		{"sizeof(xfs_bmbt_ptr_t)", ondisk.LongPtrLen, 8},
		{"sizeof(struct xfs_alloc_rec)", ondisk.AllocRecLen, 8},
		{"sizeof(struct xfs_alloc_key)", ondisk.AllocKeyLen, 8},
		{"sizeof(struct xfs_inobt_rec)", ondisk.InobtRecLen, 16},
		{"sizeof(struct xfs_inobt_key)", ondisk.InobtKeyLen, 4},
		{"sizeof(struct xfs_rmap_rec)", ondisk.RmapRecLen, 24},
		{"sizeof(struct xfs_rmap_key)", ondisk.RmapKeyLen, 20},
		{"sizeof(struct xfs_refcount_rec)", ondisk.RefcRecLen, 12},
		{"sizeof(struct xfs_refcount_key)", ondisk.RefcKeyLen, 4},
		{"sizeof(struct xfs_bmbt_rec)", ondisk.BmbtRecLen, 16},
		{"sizeof(struct xfs_bmbt_key)", ondisk.BmbtKeyLen, 8},
		// Symlinks, attributes and directories.
		{"sizeof(struct xfs_dsymlink_hdr)", ondisk.SymlinkHdrLen, 56},
		{"XFS_SYMLINK_CRC_OFF", ondisk.SymlinkCrcOff, 12},
		{"offsetof(struct xfs_dsymlink_hdr, sl_lsn)", ondisk.SymlinkLSNOff, 48},
		{"offsetof(struct xfs_dsymlink_hdr, sl_uuid)", ondisk.SymlinkUUIDOff, 16},
		{"sizeof(struct xfs_da3_blkinfo)", ondisk.DA3BlkinfoLen, 56},
		{"sizeof(struct xfs_da3_node_hdr)", ondisk.DA3NodeHdrLen, 64},
		{"sizeof(struct xfs_da_node_entry)", ondisk.DANodeEntryLen, 8},
		{"XFS_DA3_NODE_CRC_OFF", ondisk.DA3CrcOff, 12},
		{"offsetof(struct xfs_da3_blkinfo, magic)", ondisk.DA3MagicOff, 8},
		{"offsetof(struct xfs_da3_blkinfo, lsn)", ondisk.DA3LSNOff, 24},
		{"offsetof(struct xfs_da3_blkinfo, uuid)", ondisk.DA3UUIDOff, 32},
		{"sizeof(struct xfs_attr3_leaf_hdr)", ondisk.Attr3LeafHdrLen, 80},
		{"sizeof(struct xfs_attr_leaf_entry)", ondisk.AttrLeafEntryLen, 8},
		{"sizeof(struct xfs_attr3_rmt_hdr)", ondisk.Attr3RmtHdrLen, 56},
		{"XFS_ATTR3_RMT_CRC_OFF", ondisk.Attr3RmtCrcOff, 12},
		{"offsetof(struct xfs_attr3_rmt_hdr, rm_lsn)", ondisk.Attr3RmtLSNOff, 48},
		{"sizeof(struct xfs_attr_sf_hdr)", ondisk.AttrSFHdrLen, 4},
		{"sizeof(struct xfs_dir3_blk_hdr)", ondisk.Dir3BlkHdrLen, 48},
		{"offsetof(struct xfs_dir3_blk_hdr, crc)", ondisk.Dir3BlkHdrCrcOff, 4},
		{"offsetof(struct xfs_dir3_blk_hdr, lsn)", ondisk.Dir3BlkHdrLSNOff, 16},
		{"offsetof(struct xfs_dir3_blk_hdr, uuid)", ondisk.Dir3BlkHdrUUIDOff, 24},
		// The log.
		{"XLOG_HEADER_SIZE", ondisk.LogHeaderSize, 512},
		{"XLOG_REC_SIZE", ondisk.LogRecSize, 328},
		{"XLOG_REC_SIZE_OTHER", ondisk.LogRecSizeOther, 324},
		{"XLOG_REC_EXT_SIZE", ondisk.LogRecExtSize, 260},
		{"offsetof(struct xlog_rec_header, h_crc)", ondisk.LogRecCrcOff, 32},
		{"sizeof(struct xlog_op_header)", ondisk.LogOpHeaderSize, 12},
		{"sizeof(struct xfs_trans_header)", ondisk.TransHeaderSize, 16},
		{"offsetof(struct xfs_buf_log_format, blf_data_map)", ondisk.BufLogFormatHdrSize, 20},
		{"sizeof(struct xfs_inode_log_format)", ondisk.InodeLogFormatSize, 56},
		{"sizeof(struct xfs_inode_log_format_32)", ondisk.InodeLogFormat32Size, 52},
		{"sizeof(struct xfs_log_dinode)", ondisk.LogDinodeSize, 176},
		{"offsetof(struct xfs_log_dinode, di_next_unlinked)", ondisk.LogDinodeV2Size, 96},
		{"sizeof(struct xfs_icreate_log)", ondisk.IcreateLogSize, 28},
		{"sizeof(struct xfs_unmount_log_format)", ondisk.UnmountLogFormatSize, 8},
		{"offsetof(struct xfs_efi_log_format, efi_extents)", ondisk.IntentHeaderSize, 16},
		{"sizeof(struct xfs_rud_log_format)", ondisk.DoneLogFormatSize, 16},
		{"sizeof(struct xfs_extent_64)", ondisk.Extent64Size, 16},
		{"sizeof(struct xfs_extent_32)", ondisk.Extent32Size, 12},
		{"sizeof(struct xfs_map_extent)", ondisk.MapExtentSize, 32},
		{"sizeof(struct xfs_phys_extent)", ondisk.PhysExtentSize, 16},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

// dbField is one field as xfs_db names it, and as the table has it.
type dbField struct {
	db string
	f  ondisk.Field
}

// dbBlock is a block xfs_db writes field by field: the commands that make
// it the current object, where it is, and its fields.
type dbBlock struct {
	name   string
	setup  []string
	daddr  int64
	off    int // byte offset of the structure in the block read
	size   int // bytes to read
	fields []dbField
}

// TestLayoutVsXfsDB writes every field of each structure with xfs_db
// (`write -d`, a distinct value per field; CRCs last, with `write -c`),
// then reads the block and finds each value at the offset the table (or
// the exported constant) gives: AGI, AGF, AGFL, superblock, dinode core,
// short- and long-form btree headers, and the v5 headers recovery reads
// (symlink, directory data, dabtree leaf, attr remote blocks).
func TestLayoutVsXfsDB(t *testing.T) {
	testimg.Need(t, "xfs_db", "zstd")
	img := testimg.Path(t, "default")
	m := hdrOpen(t, "default")
	g := m.g
	agf2, err := ondisk.DecodeAGF(m.sector(t, g.AGFDaddr(2))) // AG 2's headers are not written below

	if err != nil {
		t.Fatal(err)
	}
	le4 := func(name string, off int) ondisk.Field { return ondisk.Field{Name: name, Off: off, Size: 4, LE: true} }
	be8 := func(name string, off int) ondisk.Field { return ondisk.Field{Name: name, Off: off, Size: 8} }
	uuid := func(name string, off int) ondisk.Field { return ondisk.Field{Name: name, Off: off, Size: 16, Elem: 1} }
	agi := func(db string, f ondisk.AGIFields) dbField { return dbField{db, f.Field()} }
	agfF := func(db string, f ondisk.AGFFields) dbField { return dbField{db, f.Field()} }
	sb := func(db string, f ondisk.SBFields) dbField { return dbField{db, f.Field()} }
	di := func(db string, f ondisk.DinodeFields) dbField { return dbField{db, f.Field()} }
	sbb := func(db string, f ondisk.ShortBlockFields) dbField { return dbField{db, f.Field()} }
	lbb := func(db string, f ondisk.LongBlockFields) dbField { return dbField{db, f.Field()} }
	// A free block of AG 1 for the structures xfs_db is told the type of.
	scratch := g.AgbToDaddr(1, 1000)
	bs := int(g.BlockSize)
	ino := uint32(131)
	blocks := []dbBlock{
		{name: "AGI", setup: []string{"agi 1"}, daddr: g.AGIDaddr(1), size: int(g.SectSize), fields: []dbField{
			agi("magicnum", ondisk.AGIMagicNum), agi("versionnum", ondisk.AGIVersionNum), agi("seqno", ondisk.AGISeqNo),
			agi("length", ondisk.AGILength), agi("count", ondisk.AGICount), agi("root", ondisk.AGIRoot),
			agi("level", ondisk.AGILevel), agi("freecount", ondisk.AGIFreeCount), agi("newino", ondisk.AGINewIno),
			agi("dirino", ondisk.AGIDirIno), {"unlinked[0]", ondisk.AGIBucket(0)}, {"unlinked[37]", ondisk.AGIBucket(37)},
			{"unlinked[63]", ondisk.AGIBucket(63)}, agi("uuid", ondisk.AGIUUID), agi("lsn", ondisk.AGILsn),
			agi("free_root", ondisk.AGIFreeRoot), agi("free_level", ondisk.AGIFreeLevel), agi("ino_blocks", ondisk.AGIIBlocks),
			agi("fino_blocks", ondisk.AGIFBlocks), agi("crc", ondisk.AGICrc),
			{"lsn", be8("AGILSNOff", ondisk.AGILSNOff)}, {"crc", le4("AGICrcOff", ondisk.AGICrcOff)},
			{"unlinked[0]", ondisk.Field{Name: "AGIUnlinkedOff", Off: ondisk.AGIUnlinkedOff, Size: 4}},
		}},
		{name: "AGF", setup: []string{"agf 1"}, daddr: g.AGFDaddr(1), size: int(g.SectSize), fields: []dbField{
			agfF("magicnum", ondisk.AGFMagicNum), agfF("versionnum", ondisk.AGFVersionNum), agfF("seqno", ondisk.AGFSeqNo),
			agfF("length", ondisk.AGFLength), {"bnoroot", ondisk.AGFRoot(ondisk.AGFBno)}, {"cntroot", ondisk.AGFRoot(ondisk.AGFCnt)},
			{"rmaproot", ondisk.AGFRoot(ondisk.AGFRmap)}, {"bnolevel", ondisk.AGFLevel(ondisk.AGFBno)},
			{"cntlevel", ondisk.AGFLevel(ondisk.AGFCnt)}, {"rmaplevel", ondisk.AGFLevel(ondisk.AGFRmap)},
			agfF("flfirst", ondisk.AGFFLFirst), agfF("fllast", ondisk.AGFFLLast), agfF("flcount", ondisk.AGFFLCount),
			agfF("freeblks", ondisk.AGFFreeBlks), agfF("longest", ondisk.AGFLongest), agfF("btreeblks", ondisk.AGFBtreeBlks),
			agfF("uuid", ondisk.AGFUUID), agfF("rmapblocks", ondisk.AGFRmapBlocks), agfF("refcntblocks", ondisk.AGFRefcountBlocks),
			agfF("refcntroot", ondisk.AGFRefcountRoot), agfF("refcntlevel", ondisk.AGFRefcountLevel), agfF("lsn", ondisk.AGFLsn),
			agfF("crc", ondisk.AGFCrc), {"lsn", be8("AGFLSNOff", ondisk.AGFLSNOff)}, {"crc", le4("AGFCrcOff", ondisk.AGFCrcOff)},
		}},
		{name: "AGFL", setup: []string{"agfl 1"}, daddr: g.AGFLDaddr(1), size: int(g.SectSize), fields: []dbField{
			{"magicnum", ondisk.AGFLMagicNum.Field()}, {"seqno", ondisk.AGFLSeqNo.Field()}, {"uuid", ondisk.AGFLUUID.Field()},
			{"lsn", ondisk.AGFLLsn.Field()}, {"bno[0]", ondisk.AGFLSlot(0)}, {"bno[17]", ondisk.AGFLSlot(17)},
			{"crc", ondisk.AGFLCrc.Field()}, {"lsn", be8("AGFLLSNOff", ondisk.AGFLLSNOff)}, {"crc", le4("AGFLCrcOff", ondisk.AGFLCrcOff)},
		}},
		{name: "superblock", setup: []string{"sb 0"}, daddr: ondisk.SBDaddr, size: int(g.SectSize), fields: []dbField{
			sb("blocksize", ondisk.SBBlockSize), sb("dblocks", ondisk.SBDBlocks), sb("rblocks", ondisk.SBRBlocks),
			sb("rextents", ondisk.SBRExtents), sb("uuid", ondisk.SBUUID), sb("logstart", ondisk.SBLogStart),
			sb("rootino", ondisk.SBRootIno), sb("rbmino", ondisk.SBRbmIno), sb("rsumino", ondisk.SBRsumIno),
			sb("rextsize", ondisk.SBRExtSize), sb("agblocks", ondisk.SBAGBlocks), sb("agcount", ondisk.SBAGCount),
			sb("rbmblocks", ondisk.SBRbmBlocks), sb("logblocks", ondisk.SBLogBlocks), sb("sectsize", ondisk.SBSectSize),
			sb("inodesize", ondisk.SBInodeSize), sb("inopblock", ondisk.SBInoPBlock), sb("fname", ondisk.SBFName),
			sb("blocklog", ondisk.SBBlockLog), sb("sectlog", ondisk.SBSectLog), sb("inodelog", ondisk.SBInodeLog),
			sb("inopblog", ondisk.SBInoPBLog), sb("agblklog", ondisk.SBAGBlkLog), sb("rextslog", ondisk.SBRExtSLog),
			sb("inprogress", ondisk.SBInProgress), sb("imax_pct", ondisk.SBIMaxPct), sb("icount", ondisk.SBICount),
			sb("ifree", ondisk.SBIFree), sb("fdblocks", ondisk.SBFDBlocks), sb("frextents", ondisk.SBFRExtents),
			sb("uquotino", ondisk.SBUQuotIno), sb("gquotino", ondisk.SBGQuotIno), sb("qflags", ondisk.SBQFlags),
			sb("flags", ondisk.SBFlags), sb("shared_vn", ondisk.SBSharedVN), sb("inoalignmt", ondisk.SBInoAlignMt),
			sb("unit", ondisk.SBUnit), sb("width", ondisk.SBWidth), sb("dirblklog", ondisk.SBDirBlkLog),
			sb("logsectlog", ondisk.SBLogSectLog), sb("logsectsize", ondisk.SBLogSectSize), sb("logsunit", ondisk.SBLogSUnit),
			sb("features2", ondisk.SBFeatures2), sb("bad_features2", ondisk.SBBadFeatures2),
			sb("features_compat", ondisk.SBFeatCompat), sb("features_ro_compat", ondisk.SBFeatROCompat),
			sb("features_incompat", ondisk.SBFeatIncompat), sb("features_log_incompat", ondisk.SBFeatLogIncompat),
			sb("spino_align", ondisk.SBSpinoAlign), sb("pquotino", ondisk.SBPQuotIno), sb("lsn", ondisk.SBLsn),
			sb("meta_uuid", ondisk.SBMetaUUID), sb("versionnum", ondisk.SBVersionNum), sb("magicnum", ondisk.SBMagicNum),
			sb("crc", ondisk.SBCrc), {"lsn", be8("SBLSNOff", ondisk.SBLSNOff)}, {"crc", le4("SBCrcOff", ondisk.SBCrcOff)},
		}},
		{name: "dinode", setup: []string{fmt.Sprintf("inode %d", g.Ino(0, ino))}, daddr: g.AgbToDaddr(0, g.AginoToAgbno(ino)),
			off: int(g.AginoToOffset(ino)) * int(g.InodeSize), size: bs, fields: []dbField{
				di("core.mode", ondisk.DiMode), di("core.onlink", ondisk.DiMetatype), di("core.uid", ondisk.DiUID),
				di("core.gid", ondisk.DiGID), di("core.nlinkv2", ondisk.DiNlink), di("core.projid_lo", ondisk.DiProjidLo),
				di("core.projid_hi", ondisk.DiProjidHi), di("core.size", ondisk.DiSize), di("core.nblocks", ondisk.DiNblocks),
				di("core.extsize", ondisk.DiExtsize), di("core.nextents", ondisk.DiNextents), di("core.naextents", ondisk.DiAnextents),
				di("core.forkoff", ondisk.DiForkoff), di("core.dmevmask", ondisk.DiDmevmask), di("core.dmstate", ondisk.DiDmstate),
				di("core.gen", ondisk.DiGen), di("next_unlinked", ondisk.DiNextUnlinked), di("v3.change_count", ondisk.DiChangeCount),
				di("v3.lsn", ondisk.DiLsn), di("v3.cowextsize", ondisk.DiCowextsize), di("v3.inumber", ondisk.DiIno),
				di("v3.uuid", ondisk.DiUUID), di("core.magic", ondisk.DiMagic), di("v3.crc", ondisk.DiCrc),
				{"next_unlinked", ondisk.Field{Name: "DinodeNextUnlinkedOff", Off: ondisk.DinodeNextUnlinkedOff, Size: 4}},
				{"v3.lsn", be8("DinodeLSNOff", ondisk.DinodeLSNOff)}, {"v3.crc", le4("DinodeCrcOff", ondisk.DinodeCrcOff)},
			}},
		{name: "short-form btree block", setup: []string{"agf 2", "addr bnoroot"}, daddr: g.AgbToDaddr(2, agf2.Roots[ondisk.AGFBno]),
			size: bs, fields: []dbField{
				sbb("level", ondisk.ShortBlockLevel), sbb("numrecs", ondisk.ShortBlockNumRecs), sbb("leftsib", ondisk.ShortBlockLeftSib),
				sbb("rightsib", ondisk.ShortBlockRightSib), sbb("bno", ondisk.ShortBlockBlkno), sbb("lsn", ondisk.ShortBlockLsn),
				sbb("uuid", ondisk.ShortBlockUUID), sbb("owner", ondisk.ShortBlockOwner), sbb("magic", ondisk.ShortBlockMagic),
				sbb("crc", ondisk.ShortBlockCrc), {"lsn", be8("ShortBlockLSNOff", ondisk.ShortBlockLSNOff)},
				{"crc", le4("ShortBlockCrcOff", ondisk.ShortBlockCrcOff)},
			}},
		{name: "long-form btree block", setup: []string{fmt.Sprintf("daddr %d", scratch), "type bmapbtd"}, daddr: scratch, size: bs, fields: []dbField{
			lbb("level", ondisk.LongBlockLevel), lbb("numrecs", ondisk.LongBlockNumRecs), lbb("leftsib", ondisk.LongBlockLeftSib),
			lbb("rightsib", ondisk.LongBlockRightSib), lbb("bno", ondisk.LongBlockBlkno), lbb("lsn", ondisk.LongBlockLsn),
			lbb("uuid", ondisk.LongBlockUUID), lbb("owner", ondisk.LongBlockOwner), lbb("magic", ondisk.LongBlockMagic),
			lbb("crc", ondisk.LongBlockCrc), {"lsn", be8("LongBlockLSNOff", ondisk.LongBlockLSNOff)},
			{"crc", le4("LongBlockCrcOff", ondisk.LongBlockCrcOff)},
		}},
	}
	// The headers recovery reads by magic: the magic is planted first (at
	// the offset the kernel defines it), so that xfs_db knows the type.
	type planted struct {
		dbBlock
		magic    []byte
		magicOff int
	}
	plants := []planted{
		{dbBlock{name: "symlink block", daddr: scratch + 8, size: ondisk.BBSize, fields: []dbField{
			{"uuid", uuid("SymlinkUUIDOff", ondisk.SymlinkUUIDOff)}, {"lsn", be8("SymlinkLSNOff", ondisk.SymlinkLSNOff)},
			{"crc", le4("SymlinkCrcOff", ondisk.SymlinkCrcOff)}}}, []byte("XSLM"), 0},
		{dbBlock{name: "dir3 data block", daddr: scratch + 16, size: bs, fields: []dbField{
			{"dhdr.hdr.uuid", uuid("Dir3BlkHdrUUIDOff", ondisk.Dir3BlkHdrUUIDOff)},
			{"dhdr.hdr.lsn", be8("Dir3BlkHdrLSNOff", ondisk.Dir3BlkHdrLSNOff)},
			{"dhdr.hdr.crc", le4("Dir3BlkHdrCrcOff", ondisk.Dir3BlkHdrCrcOff)}}}, []byte("XDD3"), 0},
		{dbBlock{name: "dir3 leaf1 block", daddr: scratch + 24, size: bs, fields: []dbField{
			{"lhdr.info.uuid", uuid("DA3UUIDOff", ondisk.DA3UUIDOff)}, {"lhdr.info.lsn", be8("DA3LSNOff", ondisk.DA3LSNOff)},
			{"lhdr.info.crc", le4("DA3CrcOff", ondisk.DA3CrcOff)}}}, []byte{0x3d, 0xf1}, ondisk.DA3MagicOff},
		{dbBlock{name: "attr3 remote block", daddr: scratch + 32, size: bs, fields: []dbField{
			{"hdr.lsn", be8("Attr3RmtLSNOff", ondisk.Attr3RmtLSNOff)},
			{"hdr.crc", le4("Attr3RmtCrcOff", ondisk.Attr3RmtCrcOff)}}}, []byte("XARM"), 0},
	}
	for _, p := range plants {
		f, err := os.OpenFile(img, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(p.magic, p.daddr*ondisk.BBSize+int64(p.magicOff)); err != nil {
			t.Fatal(err)
		}
		f.Close()
		b := p.dbBlock
		typ := map[string]string{"symlink block": "symlink", "dir3 data block": "dir3", "dir3 leaf1 block": "dir3",
			"attr3 remote block": "attr3"}[b.name]
		b.setup = []string{fmt.Sprintf("daddr %d", b.daddr), "type " + typ}
		if b.size == bs {
			b.setup = []string{fmt.Sprintf("fsblock %d", g.Fsbno(g.DaddrToAgno(b.daddr), g.DaddrToAgbno(b.daddr))), "type " + typ}
		}
		blocks = append(blocks, b)
	}
	for _, b := range blocks {
		t.Run(b.name, func(t *testing.T) {
			img := img
			if b.name == "superblock" {
				img = testimg.Path(t, "default") // its own copy: no xfs_db opens it after
			}
			checkDBBlock(t, img, b)
		})
	}
}

// checkDBBlock writes every field of b with xfs_db, each with its own
// value, and finds the values at the fields' offsets.
func checkDBBlock(t *testing.T, img string, b dbBlock) {
	cmds := append([]string(nil), b.setup...)
	want := map[string][]byte{} // xfs_db field -> bytes written
	for i, f := range b.fields {
		if _, ok := want[f.db]; ok {
			continue // a second name for a field written already (an exported constant)
		}
		v, val := fieldValue(f.f, i)
		flag := "-d"
		if f.f.LE {
			flag = "-c" // a CRC: written as is, not recomputed
		}
		cmds = append(cmds, fmt.Sprintf("write %s %s %s", flag, f.db, val))
		want[f.db] = v
	}
	out := testimg.DBWriteUnchecked(t, img, cmds...)
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "not found") || strings.HasPrefix(line, "bad ") || strings.HasPrefix(line, "invalid ") ||
			strings.HasPrefix(line, "no current") || strings.HasPrefix(line, "unknown") || strings.HasPrefix(line, "unable to") ||
			strings.Contains(line, "not an array") || strings.Contains(line, "parsing error") {
			t.Fatalf("xfs_db: %s\n%s", line, out)
		}
	}
	fh, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	blk := make([]byte, b.size)
	if _, err := fh.ReadAt(blk, b.daddr*ondisk.BBSize); err != nil {
		t.Fatal(err)
	}
	s := blk[b.off:]
	for _, f := range b.fields {
		if got := f.f.Bytes(s); !bytes.Equal(got, want[f.db]) {
			t.Errorf("%s: %s (xfs_db %s) at offset %d: % x, xfs_db wrote % x", b.name, f.f.Name, f.db, f.f.Off, got, want[f.db])
		}
	}
}

// fieldValue is the i-th field's value: its bytes as stored, and as
// xfs_db's write takes it. Every byte but the last is 0x5a, the last is
// i+1 (a uuid: bytes i+1, i+2, ...; a name: letters). xfs_db shows and
// takes a CRC as the big-endian number its bytes make (the kernel stores
// it little-endian): its bytes are those of the number, big-endian.
func fieldValue(f ondisk.Field, i int) ([]byte, string) {
	switch {
	case f.Size == 16 && f.Elem == 1: // uuid
		var u [16]byte
		for k := range u {
			u[k] = byte(i + 1 + k)
		}
		return u[:], fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	case f.Elem == 1: // a name (sb_fname)
		v := make([]byte, f.Size)
		for k := range v {
			v[k] = 'a' + byte((i+k)%26)
		}
		return v, `"` + string(v) + `"`
	}
	var n uint64
	for k := 0; k < f.Size-1; k++ {
		n = n<<8 | 0x5a
	}
	n = n<<8 | uint64(i+1)
	v := make([]byte, f.Size)
	f2 := f
	f2.Off, f2.LE = 0, false
	f2.PutUint(v, n)
	return v, fmt.Sprintf("%#x", n)
}
