package journal

// Buffer item replay (fs/xfs/xfs_buf_item_recover.c):
// xlog_recover_buf_commit_pass2 with xlog_recover_get_buf_lsn (v5 LSN
// ordering), xlog_recover_do_reg_buffer (logged regions copied over the
// block), xlog_recover_do_inode_buffer (INODE_BUF: only di_next_unlinked)
// and xlog_recover_validate_buf_type (which write verifier stamps the
// block's LSN and CRC when it is written back).

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/xfsfree/xfsfree/ondisk"
)

// bufLSN is xlog_recover_get_buf_lsn: the LSN of the block b as on disk,
// found by its magic (ondisk.BufLSNFields), or -1 when the block must be
// replayed regardless (unknown contents, inode and dquot buffers, remote
// attribute blocks, a uuid of another filesystem).
func (r *recovery) bufLSN(b []byte, blft uint16) int64 {
	if len(b) < 64 {
		return -1
	}
	if blft == ondisk.BlftRTBitmap || blft == ondisk.BlftRTSummary {
		return -1 // no magic before rtgroups
	}
	lsn, uuid, ok := ondisk.BufLSNFields(b, r.sb.HasMetaUUID())
	if !ok || lsn.End() > len(b) || uuid.End() > len(b) {
		return -1
	}
	meta := r.sb.BlockUUID()
	if !bytes.Equal(uuid.Bytes(b), meta[:]) {
		return -1 // stale block of another filesystem: replay over it
	}
	return int64(lsn.Uint(b))
}

// stamper is the write verifier recovery attaches to a replayed buffer
// (xlog_recover_validate_buf_type): it stamps the LSN (li_lsn = the
// transaction's LSN) and recomputes the CRC.
type stamper func(b []byte, lsn uint64)

// crcStamp stamps an LSN at lsnOff (when lsnOff >= 0) and the CRC at crcOff
// over the whole buffer.
func crcStamp(lsnOff, crcOff int) stamper {
	return func(b []byte, lsn uint64) {
		if lsnOff >= 0 {
			binary.BigEndian.PutUint64(b[lsnOff:], lsn)
		}
		ondisk.UpdateCksum(b, crcOff)
	}
}

// verifierFor picks the write verifier for a replayed buffer from its
// logged type, checking the type against the block's magic as
// xlog_recover_validate_buf_type does. It returns nil and a warning when
// they disagree (the kernel then warns and attaches no verifier, so the
// block is written as replayed), and nil without a warning for types whose
// verifier stamps nothing (inode clusters, realtime bitmap and summary).
func (r *recovery) verifierFor(blft uint16, b []byte) (stamper, string) {
	m32, m16 := be32(b), be16(b)
	mda := uint16(0)
	if len(b) >= ondisk.DA3MagicOff+2 {
		mda = be16(b[ondisk.DA3MagicOff:])
	}
	bad := func(what string) (stamper, string) { return nil, "Bad " + what + " magic" }
	kind := func(want uint16) (stamper, string) {
		k := ondisk.KindByMagic(m32)
		if k == nil || k.Blft != want || k == ondisk.KindInodeCluster {
			return bad(blftName(want))
		}
		return func(b []byte, lsn uint64) { k.Stamp(b, lsn) }, ""
	}
	switch blft {
	case ondisk.BlftBtree, ondisk.BlftAGF, ondisk.BlftAGFL, ondisk.BlftAGI, ondisk.BlftSB:
		return kind(blft)
	case ondisk.BlftDino:
		if m16 != ondisk.DinodeMagic {
			return bad("INODE block")
		}
		return nil, "" // xfs_inode_buf_ops: inodes carry their own CRCs
	case ondisk.BlftSymlink:
		if m32 != ondisk.SymlinkMagic {
			return bad("symlink block")
		}
		return crcStamp(ondisk.SymlinkLSNOff, ondisk.SymlinkCrcOff), ""
	case ondisk.BlftDirBlock:
		if m32 != ondisk.Dir3BlockMagic {
			return bad("dir block")
		}
		return crcStamp(ondisk.Dir3BlkHdrLSNOff, ondisk.Dir3BlkHdrCrcOff), ""
	case ondisk.BlftDirData:
		if m32 != ondisk.Dir3DataMagic {
			return bad("dir data")
		}
		return crcStamp(ondisk.Dir3BlkHdrLSNOff, ondisk.Dir3BlkHdrCrcOff), ""
	case ondisk.BlftDirFree:
		if m32 != ondisk.Dir3FreeMagic {
			return bad("dir3 free")
		}
		return crcStamp(ondisk.Dir3BlkHdrLSNOff, ondisk.Dir3BlkHdrCrcOff), ""
	case ondisk.BlftDirLeaf1, ondisk.BlftDirLeafN, ondisk.BlftDANode, ondisk.BlftAttrLeaf:
		want := map[uint16]uint16{ondisk.BlftDirLeaf1: ondisk.Dir3Leaf1Magic, ondisk.BlftDirLeafN: ondisk.Dir3LeafNMagic,
			ondisk.BlftDANode: ondisk.DA3NodeMagic, ondisk.BlftAttrLeaf: ondisk.Attr3LeafMagic}[blft]
		if mda != want {
			return bad(blftName(blft))
		}
		return crcStamp(ondisk.DA3LSNOff, ondisk.DA3CrcOff), ""
	case ondisk.BlftAttrRmt:
		if m32 != ondisk.Attr3RmtMagic {
			return bad("attr remote")
		}
		// xfs_attr3_rmt_write_verify: a CRC per filesystem block, the
		// LSN left as written (NULLCOMMITLSN).
		bs := int(r.sb.BlockSize)
		return func(b []byte, _ uint64) {
			for off := 0; off+bs <= len(b); off += bs {
				ondisk.UpdateCksum(b[off:off+bs], ondisk.Attr3RmtCrcOff)
			}
		}, ""
	case ondisk.BlftRTBitmap, ondisk.BlftRTSummary:
		return nil, ""
	}
	return nil, fmt.Sprintf("Unknown buffer type %d", blft)
}

func blftName(t uint16) string {
	names := map[uint16]string{ondisk.BlftBtree: "btree block", ondisk.BlftAGF: "AGF block", ondisk.BlftAGFL: "AGFL block",
		ondisk.BlftAGI: "AGI block", ondisk.BlftSB: "SB block", ondisk.BlftDirLeaf1: "dir leaf1", ondisk.BlftDirLeafN: "dir leafn",
		ondisk.BlftDANode: "da node", ondisk.BlftAttrLeaf: "attr leaf"}
	if n, ok := names[t]; ok {
		return n
	}
	return fmt.Sprintf("type %d", t)
}

func be32(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func be16(b []byte) uint16 {
	if len(b) < 2 {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

// decodeBufItem decodes and checks a buffer item's format region
// (xfs_buf_log_check_iovec and the checks replay relies on).
func decodeBufItem(t *RecoveredTrans, it *Item) (*ondisk.BufLogFormat, error) {
	f, err := ondisk.DecodeBufLogFormat(it.Regions[0])
	if err != nil {
		return nil, fmt.Errorf("%w (transaction %#x, lsn %v)", err, t.Tid, t.LSN)
	}
	if f.Len == 0 {
		return nil, transCorrupt(t, it, "blf_len", f.Len, nil, fmt.Sprintf("zero-length buffer at daddr %d", f.Blkno))
	}
	if f.Blkno < 0 {
		return nil, transCorrupt(t, it, "blf_blkno", f.Blkno, nil, "negative daddr")
	}
	return f, nil
}

// replayBuf is xlog_recover_buf_commit_pass2.
func (r *recovery) replayBuf(t *RecoveredTrans, it *Item) error {
	f, err := decodeBufItem(t, it)
	if err != nil {
		return err
	}
	n := int(f.Len)
	if f.Flags&ondisk.BlfCancel != 0 {
		r.putCancelled(f.Blkno, n)
		r.rep.CancelItems++
		return nil
	}
	if r.isCancelled(f.Blkno, n) {
		r.rep.BufCancelled++
		return nil
	}
	if end := f.Blkno + int64(n); end > int64(r.sb.DBlocks)<<(r.sb.BlockLog-ondisk.BBShift) {
		return transCorrupt(t, it, "blf_blkno", f.Blkno, nil, fmt.Sprintf("buffer of %d BBs runs past the end of the filesystem", n))
	}
	b, err := r.ov.read(f.Blkno, n)
	if err != nil {
		return err
	}
	if err := r.stampsAt(t.LSN); err != nil {
		return err
	}
	if lsn := r.bufLSN(b, f.Blft()); lsn != 0 && lsn != -1 && ondisk.CompareLSN(ondisk.LSN(lsn), t.LSN) >= 0 {
		r.rep.BufSkippedLSN++
		return nil
	}
	if f.Flags&ondisk.BlfInodeBuf != 0 {
		if err := r.doInodeBuffer(t, it, f, b); err != nil {
			return err
		}
		r.rep.InodeBufReplayed++
	} else {
		if err := doRegBuffer(t, it, f, b); err != nil {
			return err
		}
		stamp, warn := r.verifierFor(f.Blft(), b)
		if warn != "" {
			r.warn("%s: buffer at daddr %d (%d BBs), logged type %d, transaction lsn %v: replayed without a write verifier",
				warn, f.Blkno, n, f.Blft(), t.LSN)
		}
		if stamp != nil {
			r.stamps[stampKey{f.Blkno, n}] = stamp
		}
		r.rep.BufReplayed++
		if f.Blkno == ondisk.SBDaddr && f.Blft()&ondisk.BlftSB != 0 {
			// xlog_recover_do_primary_sb_buffer: reload the in-core sb.
			sb, err := ondisk.DecodeSuperblock(b)
			if err != nil {
				return err
			}
			if sb.AGCount < r.sb.AGCount {
				return transCorrupt(t, it, "sb_agcount", sb.AGCount, r.sb.AGCount, "shrinking the AG count in log recovery is not supported")
			}
			r.sb = *sb
		}
	}
	r.ov.write(f.Blkno, b)
	return nil
}

// stampKey names a replayed buffer waiting for its stamp.
type stampKey struct {
	daddr int64
	bbs   int
}

// stampsAt is called with the LSN of each transaction whose buffers are
// replayed: when it differs from the one before, the buffers replayed at
// that one are stamped with it (LSN and CRC), as the kernel submits
// recovered buffers — its write verifier stamping them — only at a change
// of the current LSN (xlog_recover_process_data's buffer_list, since
// "xfs: rework log recovery to submit buffers on LSN boundaries"). Stamped
// at once, a buffer that two transactions of one log record change would
// carry that record's LSN when the second is replayed, and the second
// would be skipped as already on disk.
func (r *recovery) stampsAt(lsn ondisk.LSN) error {
	if lsn == r.stampLSN {
		return nil
	}
	if err := r.flushStamps(); err != nil {
		return err
	}
	r.stampLSN = lsn
	return nil
}

// flushStamps stamps the buffers replayed at r.stampLSN.
func (r *recovery) flushStamps() error {
	for k, stamp := range r.stamps {
		b, err := r.ov.read(k.daddr, k.bbs)
		if err != nil {
			return err
		}
		stamp(b, uint64(r.stampLSN))
		r.ov.write(k.daddr, b)
	}
	clear(r.stamps)
	return nil
}

// doRegBuffer is xlog_recover_do_reg_buffer: copy each logged region over
// the block at its run of dirty chunks. A region shorter than its run
// (a run split at a page boundary when it was logged) covers only its own
// length; the next region continues the run.
func doRegBuffer(t *RecoveredTrans, it *Item, f *ondisk.BufLogFormat, b []byte) error {
	i := 1
	bit, end := 0, int(min(f.MapSize, uint32(len(f.DataMap))))*32
	for {
		bit = nextBit(f, bit, end)
		if bit < 0 {
			break
		}
		nbits := 0
		for bit+nbits < end && f.IsDirty(bit+nbits) {
			nbits++
		}
		if i >= len(it.Regions) {
			return transCorrupt(t, it, "regions", len(it.Regions), nil, fmt.Sprintf("fewer regions than dirty runs in the buffer at daddr %d", f.Blkno))
		}
		reg := it.Regions[i]
		if len(reg) < nbits*ondisk.BlfChunk {
			nbits = len(reg) / ondisk.BlfChunk
		}
		off, n := bit*ondisk.BlfChunk, nbits*ondisk.BlfChunk
		if nbits == 0 || off+n > len(b) {
			return transCorrupt(t, it, "region", fmt.Sprintf("%d bytes at %d", len(reg), off), nil,
				fmt.Sprintf("does not fit the buffer at daddr %d (%d bytes)", f.Blkno, len(b)))
		}
		copy(b[off:off+n], reg)
		i++
		bit += nbits
	}
	if i != it.Total {
		return transCorrupt(t, it, "regions", i, it.Total, fmt.Sprintf("dirty runs of the buffer at daddr %d do not match blf_size", f.Blkno))
	}
	return nil
}

// nextBit is xfs_next_bit: the first set bit at or after bit, or -1.
func nextBit(f *ondisk.BufLogFormat, bit, end int) int {
	for ; bit < end; bit++ {
		if f.IsDirty(bit) {
			return bit
		}
	}
	return -1
}

// doInodeBuffer is xlog_recover_do_inode_buffer: from an INODE_BUF item
// only the di_next_unlinked fields inside logged regions are replayed,
// each inode's CRC recomputed after.
func (r *recovery) doInodeBuffer(t *RecoveredTrans, it *Item, f *ondisk.BufLogFormat, b []byte) error {
	isz := int(r.sb.InodeSize)
	end := int(min(f.MapSize, uint32(len(f.DataMap)))) * 32
	idx, bit, nbits := 0, 0, 0
	regOff, regLen := 0, 0
	for i := 0; (i+1)*isz <= len(b); i++ {
		next := i*isz + ondisk.DinodeNextUnlinkedOff
		for next >= regOff+regLen {
			bit += nbits
			bit = nextBit(f, bit, end)
			if bit < 0 {
				return nil
			}
			nbits = 0
			for bit+nbits < end && f.IsDirty(bit+nbits) {
				nbits++
			}
			regOff, regLen = bit*ondisk.BlfChunk, nbits*ondisk.BlfChunk
			idx++
		}
		if next < regOff {
			continue
		}
		if idx >= len(it.Regions) || next-regOff+4 > len(it.Regions[idx]) || regOff+regLen > len(b) {
			return transCorrupt(t, it, "regions", len(it.Regions), nil, fmt.Sprintf("inode buffer item at daddr %d: a logged region is missing or short", f.Blkno))
		}
		v := it.Regions[idx][next-regOff : next-regOff+4]
		if binary.LittleEndian.Uint32(v) == 0 {
			return transCorrupt(t, it, "di_next_unlinked", 0, nil,
				fmt.Sprintf("inode buffer at daddr %d, inode %d: trying to replay a bad (0) di_next_unlinked", f.Blkno, i))
		}
		copy(b[next:next+4], v)
		ondisk.DinodeCalcCRC(b[i*isz : (i+1)*isz])
	}
	return nil
}
