package journal

// Inode item replay (fs/xfs/xfs_inode_item_recover.c,
// xlog_recover_inode_commit_pass2): the logged core (struct
// xfs_log_dinode, host byte order) is converted to the disk format
// (xfs_log_dinode_to_disk), di_lsn set to the transaction's LSN, the
// logged fork regions copied (an in-core bmbt root converted to the
// on-disk bmdr form, xfs_bmbt_to_bmdr), the inode's CRC recomputed and the
// result verified (xfs_dinode_verify).

import (
	"fmt"

	"github.com/xfsfree/xfsfree/ondisk"
)

func decodeInodeItem(t *RecoveredTrans, it *Item) (*ondisk.InodeLogFormat, error) {
	f, err := ondisk.DecodeInodeLogFormat(it.Regions[0])
	if err != nil {
		return nil, fmt.Errorf("%w (transaction %#x, lsn %v)", err, t.Tid, t.LSN)
	}
	if f.Len <= 0 || f.Blkno < 0 {
		return nil, transCorrupt(t, it, "ilf_blkno/ilf_len", fmt.Sprintf("%d/%d", f.Blkno, f.Len), nil, fmt.Sprintf("bad cluster buffer for inode %d", f.Ino))
	}
	return f, nil
}

// replayInode is xlog_recover_inode_commit_pass2.
func (r *recovery) replayInode(t *RecoveredTrans, it *Item) error {
	in, err := decodeInodeItem(t, it)
	if err != nil {
		return err
	}
	r.inodes[in.Ino] = true
	if r.isCancelled(in.Blkno, int(in.Len)) {
		r.rep.InodesCancelled++
		return nil
	}
	bad := func(field string, found, want any, msg string) error {
		return transCorrupt(t, it, field, found, want, fmt.Sprintf("inode %d: %s", in.Ino, msg))
	}
	if in.Fields&ondisk.ILogCore == 0 || len(it.Regions) < 2 {
		return bad("ilf_fields", fmt.Sprintf("%#x", in.Fields), nil, "no logged inode core")
	}
	isz := int(r.sb.InodeSize)
	b, err := r.ov.read(in.Blkno, int(in.Len))
	if err != nil {
		return err
	}
	ctx := ondisk.VerifyCtx{G: r.g, AG: r.g.DaddrToAgno(in.Blkno), Daddr: in.Blkno}
	if err := ondisk.VerifyInodeBuf(b, ctx); err != nil {
		return fmt.Errorf("journal: replaying inode %d (transaction lsn %v): %w", in.Ino, t.LSN, err)
	}
	if in.Boffset < 0 || int(in.Boffset)+isz > len(b) {
		return bad("ilf_boffset", in.Boffset, nil, fmt.Sprintf("outside its %d-byte cluster buffer", len(b)))
	}
	dip := b[in.Boffset : int(in.Boffset)+isz]
	if m := uint16(ondisk.DiMagic.Get(dip)); m != ondisk.DinodeMagic {
		return bad("di_magic", m, uint16(ondisk.DinodeMagic), "bad inode magic number in the cluster buffer")
	}
	ld, err := ondisk.DecodeLogDinode(it.Regions[1])
	if err != nil {
		return err
	}
	if ld.Magic != ondisk.DinodeMagic {
		return bad("log dinode di_magic", ld.Magic, uint16(ondisk.DinodeMagic), "bad inode log record")
	}
	// The on-disk inode is newer than this change: skip (strictly newer:
	// several checkpoints can share a start LSN).
	if ondisk.DiVersion.Get(dip) >= 3 {
		lsn := int64(ondisk.DiLsn.Get(dip))
		if lsn != 0 && lsn != -1 && ondisk.CompareLSN(ondisk.LSN(lsn), t.LSN) > 0 {
			r.rep.InodesSkippedLSN++
			return nil
		}
	}
	if err := checkLogDinode(r, ld, len(it.Regions[1])); err != nil {
		return bad(err.field, err.found, err.want, err.msg)
	}
	ld.ToDisk(dip, uint64(t.LSN))

	fields := in.Fields
	if fields&ondisk.ILogDev != 0 {
		ondisk.PutDinodeRdev(dip, in.Rdev())
	}
	litino := isz - ondisk.DinodeCoreSize
	dsize, asize := litino, 0
	if fo := int(ondisk.DiForkoff.Get(dip)) << 3; fo != 0 {
		dsize, asize = fo, litino-fo
	}
	if in.Size > 2 {
		if len(it.Regions) < 3 {
			return bad("ilf_size", in.Size, len(it.Regions), "fewer regions than announced")
		}
		src := it.Regions[2]
		dfork := dip[ondisk.DinodeCoreSize:]
		switch fields & ondisk.ILogDFork {
		case ondisk.ILogDData, ondisk.ILogDExt:
			if len(src) > len(dfork) {
				return bad("data fork region", len(src), len(dfork), "larger than the literal area")
			}
			copy(dfork, src)
		case ondisk.ILogDBroot:
			if f := uint8(ondisk.DiFormat.Get(dip)); f != ondisk.DinodeFmtBtree {
				return bad("di_format", f, uint8(ondisk.DinodeFmtBtree), "btree root logged for a fork not in btree format")
			}
			if err := ondisk.BmbtToBmdr(src, dfork[:dsize]); err != nil {
				return bad("data fork root", len(src), nil, err.Error())
			}
		}
		if fields&ondisk.ILogAFork != 0 {
			ai := 2
			if fields&ondisk.ILogDFork != 0 {
				ai = 3
			}
			if ai >= len(it.Regions) {
				return bad("ilf_size", in.Size, len(it.Regions), "attr fork region missing")
			}
			src := it.Regions[ai]
			afork := dip[ondisk.DinodeCoreSize+dsize:]
			switch fields & ondisk.ILogAFork {
			case ondisk.ILogAData, ondisk.ILogAExt:
				if len(src) > len(afork) {
					return bad("attr fork region", len(src), len(afork), "larger than the attr fork")
				}
				copy(afork, src)
			case ondisk.ILogABroot:
				if err := ondisk.BmbtToBmdr(src, afork[:asize]); err != nil {
					return bad("attr fork root", len(src), nil, err.Error())
				}
			default:
				return bad("ilf_fields", fmt.Sprintf("%#x", fields), nil, "invalid attr fork flags")
			}
		}
	}
	ondisk.DinodeCalcCRC(dip)
	if err := ondisk.VerifyDinode(dip, in.Ino, ctx); err != nil {
		return fmt.Errorf("journal: bad inode %d after replaying transaction lsn %v: %w", in.Ino, t.LSN, err)
	}
	r.rep.InodesReplayed++
	r.ov.write(in.Blkno, b)
	return nil
}

type ldErr struct {
	field       string
	found, want any
	msg         string
}

// checkLogDinode holds the checks xlog_recover_inode_commit_pass2 makes on
// the logged core before replaying it.
func checkLogDinode(r *recovery, ld *ondisk.LogDinode, n int) *ldErr {
	const sIFMT, sIFREG, sIFDIR = 0o170000, 0o100000, 0o040000
	switch ld.Mode & sIFMT {
	case sIFREG:
		if ld.Format != ondisk.DinodeFmtExtents && ld.Format != ondisk.DinodeFmtBtree && ld.Format != ondisk.DinodeFmtMetaBtree {
			return &ldErr{"di_format", ld.Format, nil, "bad data fork format for a regular file"}
		}
	case sIFDIR:
		if ld.Format != ondisk.DinodeFmtExtents && ld.Format != ondisk.DinodeFmtBtree && ld.Format != ondisk.DinodeFmtLocal {
			return &ldErr{"di_format", ld.Format, nil, "bad data fork format for a directory"}
		}
	}
	large := ld.Version >= 3 && ld.Flags2&ondisk.Diflag2Nrext64 != 0
	var next, anext uint64
	if large {
		if !r.sb.HasNrext64() || ld.Anextents != 0 {
			return &ldErr{"di_nrext64_pad", ld.Anextents, 0, "bad large extent count format"}
		}
		next, anext = ld.BigNextents, uint64(ld.Nextents)
	} else {
		if ld.Version == 3 && ld.BigNextents != 0 {
			return &ldErr{"di_v3_pad", ld.BigNextents, 0, "non-zero padding"}
		}
		next, anext = uint64(ld.Nextents), uint64(ld.Anextents)
	}
	if next+anext > ld.NBlocks {
		return &ldErr{"di_nextents", fmt.Sprintf("%d+%d", next, anext), nil, fmt.Sprintf("more extents than blocks (%d)", ld.NBlocks)}
	}
	if int(ld.Forkoff) > int(r.sb.InodeSize) {
		return &ldErr{"di_forkoff", ld.Forkoff, nil, "beyond the inode"}
	}
	if n > ondisk.LogDinodeSize {
		return &ldErr{"log dinode size", n, ondisk.LogDinodeSize, "bad log dinode size"}
	}
	return nil
}
