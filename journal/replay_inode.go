package journal

// Inode item replay (fs/xfs/xfs_inode_item_recover.c,
// xlog_recover_inode_commit_pass2): the logged core (struct
// xfs_log_dinode, host byte order) is converted to the disk format
// (xfs_log_dinode_to_disk), di_lsn set to the transaction's LSN, the
// logged fork regions copied (an in-core bmbt root converted to the
// on-disk bmdr form, xfs_bmbt_to_bmdr), the inode's CRC recomputed and the
// result verified (xfs_dinode_verify).

import (
	"encoding/binary"
	"fmt"

	"github.com/xfsfree/xfsfree/ondisk"
)

func decodeInodeItem(t *Trans, it *Item) (*ondisk.InodeLogFormat, error) {
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
func (r *recovery) replayInode(t *Trans, it *Item) error {
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
	if be16(dip) != ondisk.DinodeMagic {
		return bad("di_magic", be16(dip), uint16(ondisk.DinodeMagic), "bad inode magic number in the cluster buffer")
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
	if dip[4] >= 3 {
		lsn := int64(binary.BigEndian.Uint64(dip[112:]))
		if lsn != 0 && lsn != -1 && ondisk.CompareLSN(ondisk.LSN(lsn), t.LSN) > 0 {
			r.rep.InodesSkippedLSN++
			return nil
		}
	}
	if err := checkLogDinode(r, ld, len(it.Regions[1])); err != nil {
		return bad(err.field, err.found, err.want, err.msg)
	}
	logDinodeToDisk(ld, dip, uint64(t.LSN))

	fields := in.Fields
	if fields&ondisk.ILogDev != 0 {
		binary.BigEndian.PutUint32(dip[ondisk.DinodeCoreSize:], in.Rdev())
	}
	litino := isz - ondisk.DinodeCoreSize
	dsize, asize := litino, 0
	if fo := int(dip[82]) << 3; fo != 0 {
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
			if dip[5] != ondisk.DinodeFmtBtree {
				return bad("di_format", dip[5], uint8(ondisk.DinodeFmtBtree), "btree root logged for a fork not in btree format")
			}
			if err := bmbtToBmdr(src, dfork[:dsize]); err != nil {
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
				if err := bmbtToBmdr(src, afork[:asize]); err != nil {
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

// logDinodeToDisk is xfs_log_dinode_to_disk for v3 inodes: the logged core
// over the on-disk one, leaving di_next_unlinked (logged through the
// cluster buffer) and the CRC (recomputed after) alone.
func logDinodeToDisk(ld *ondisk.LogDinode, to []byte, lsn uint64) {
	be := binary.BigEndian
	bigtime := ld.Version >= 3 && ld.Flags2&ondisk.Diflag2Bigtime != 0
	ts := func(v uint64) uint64 {
		if bigtime {
			return v
		}
		// Legacy: host-order {int32 t_sec; int32 t_nsec} to big-endian.
		return uint64(uint32(v))<<32 | v>>32
	}
	be.PutUint16(to[0:], ld.Magic)
	be.PutUint16(to[2:], ld.Mode)
	to[4] = byte(ld.Version)
	to[5] = byte(ld.Format)
	be.PutUint16(to[6:], ld.Metatype)
	be.PutUint32(to[8:], ld.UID)
	be.PutUint32(to[12:], ld.GID)
	be.PutUint32(to[16:], ld.Nlink)
	be.PutUint16(to[20:], ld.ProjIDLo)
	be.PutUint16(to[22:], ld.ProjIDHi)
	be.PutUint64(to[32:], ts(ld.Atime))
	be.PutUint64(to[40:], ts(ld.Mtime))
	be.PutUint64(to[48:], ts(ld.Ctime))
	be.PutUint64(to[56:], uint64(ld.ISize))
	be.PutUint64(to[64:], ld.NBlocks)
	be.PutUint32(to[72:], ld.ExtSize)
	to[82] = ld.Forkoff
	to[83] = byte(ld.Aformat)
	be.PutUint32(to[84:], ld.DMEvMask)
	be.PutUint16(to[88:], ld.DMState)
	be.PutUint16(to[90:], ld.Flags)
	be.PutUint32(to[92:], ld.Gen)
	if ld.Version == 3 {
		be.PutUint64(to[104:], ld.ChangeCount)
		be.PutUint64(to[144:], ts(ld.Crtime))
		be.PutUint64(to[120:], ld.Flags2)
		be.PutUint32(to[128:], ld.CowExtSize)
		be.PutUint64(to[152:], ld.Ino)
		be.PutUint64(to[112:], lsn)
		clear(to[132:144])
		copy(to[160:176], ld.UUID[:])
		be.PutUint64(to[24:], 0) // di_v3_pad
	} else {
		be.PutUint16(to[30:], ld.FlushIter())
		clear(to[24:30])
	}
	// xfs_log_dinode_to_disk_iext_counters.
	if ld.Version >= 3 && ld.Flags2&ondisk.Diflag2Nrext64 != 0 {
		be.PutUint64(to[24:], ld.BigNextents)
		be.PutUint32(to[76:], ld.Nextents)  // di_big_anextents
		be.PutUint16(to[80:], ld.Anextents) // di_nrext64_pad
	} else {
		be.PutUint32(to[76:], ld.Nextents)
		be.PutUint16(to[80:], ld.Anextents)
	}
}

// bmbtToBmdr is xfs_bmbt_to_bmdr: the logged fork root is an in-core long
// btree block (72-byte v5 header, keys after it, pointers after room for
// maxrecs keys of a block of the logged length); the on-disk root is a
// bmdr block (4-byte header, keys, pointers after room for the fork's
// maxrecs keys).
func bmbtToBmdr(src, dst []byte) error {
	hdr := ondisk.LongBlockHdrLen
	if len(src) < hdr || len(dst) < ondisk.BmdrHdrLen {
		return fmt.Errorf("logged root of %d bytes or fork of %d bytes too small", len(src), len(dst))
	}
	if be32(src) != ondisk.BmbtMagic {
		return fmt.Errorf("logged root magic %#x is not %#x", be32(src), uint32(ondisk.BmbtMagic))
	}
	level, numrecs := be16(src[4:]), be16(src[6:])
	if level == 0 {
		return fmt.Errorf("logged root has level 0")
	}
	rmax := (len(src) - hdr) / (ondisk.BmbtKeyLen + ondisk.LongPtrLen)
	dmax := ondisk.BmdrMaxRecs(len(dst))
	n := int(numrecs)
	if n > rmax || n > dmax {
		return fmt.Errorf("root holds %d records: the logged block fits %d, the fork %d", n, rmax, dmax)
	}
	binary.BigEndian.PutUint16(dst[0:], level)
	binary.BigEndian.PutUint16(dst[2:], numrecs)
	fk, fp := hdr, hdr+rmax*ondisk.BmbtKeyLen
	tk, tp := ondisk.BmdrHdrLen, ondisk.BmdrHdrLen+dmax*ondisk.BmbtKeyLen
	copy(dst[tk:tk+n*ondisk.BmbtKeyLen], src[fk:fk+n*ondisk.BmbtKeyLen])
	copy(dst[tp:tp+n*ondisk.LongPtrLen], src[fp:fp+n*ondisk.LongPtrLen])
	return nil
}
