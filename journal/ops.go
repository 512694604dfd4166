package journal

import (
	"fmt"
	"sort"

	"github.com/xfsfree/xfsfree/ondisk"
)

// Op is one op header of a record and the bytes that follow it. This struct
// does not represent an on-disk struct.
type Op struct {
	Header ondisk.LogOpHeader
	Offset int    // offset of the op header in the record data
	Data   []byte // oh_len bytes (a capacity-limited slice of the record data)
}

// SplitOps splits a record's unpacked data into its op headers and payloads
// (xlog_recover_process_data): at most h_num_logops ops, none running past
// h_len, each from a known client (xlog_recover_process_ophdr).
func SplitOps(r *Record) ([]Op, error) {
	var ops []Op
	data := r.Data
	end := len(data)
	n := r.Header.NumLogOps
	for dp := 0; dp < end && n > 0; n-- {
		oh, err := ondisk.DecodeLogOpHeader(data[dp:])
		if err != nil {
			return nil, recCorrupt(r, dp, "log op header", "length", end-dp, ondisk.LogOpHeaderSize, "op header overruns the record")
		}
		if oh.ClientID != ondisk.LogClientTransaction && oh.ClientID != ondisk.LogClientLog {
			return nil, recCorrupt(r, dp, "log op header", "oh_clientid", oh.ClientID, nil, "is neither XFS_TRANSACTION (0x69) nor XFS_LOG (0xaa)")
		}
		start := dp + ondisk.LogOpHeaderSize
		if int64(oh.Len) > int64(end-start) {
			return nil, recCorrupt(r, dp, "log op header", "oh_len", oh.Len, nil, fmt.Sprintf("runs past the record end (%d bytes left)", end-start))
		}
		stop := start + int(oh.Len)
		ops = append(ops, Op{Header: oh, Offset: dp, Data: data[start:stop:stop]})
		dp = stop
	}
	return ops, nil
}

func recCorrupt(r *Record, off int, st, field string, found, want any, msg string) error {
	return &ondisk.CorruptError{AG: ondisk.NoAG, Daddr: -1, Struct: st, Field: field, Found: found, Want: want,
		Msg: fmt.Sprintf("%s (record at log block %d, lsn %v, data offset %d)", msg, r.Block, r.Header.LSN, off)}
}

// Item is one log item of a transaction: its regions as logged (ri_buf),
// the first being the item's format structure. This struct does not
// represent an on-disk struct.
type Item struct {
	Type    uint16   // ITEM_TYPE: the first u16 of the first region (ondisk.LI*)
	Total   int      // ri_total: regions the first region announces
	Regions [][]byte // ri_buf[0..ri_cnt)
}

// Name is the kernel's name of the item type.
func (it *Item) Name() string { return ondisk.LogItemName(it.Type) }

// RecoveredTrans is a transaction read back from the log, reassembled from
// op headers by tid (struct xlog_recover); a transaction being written is
// a Transaction (trans.go). This struct does not represent an on-disk
// struct.
type RecoveredTrans struct {
	Tid    uint32
	LSN    ondisk.LSN // r_lsn: h_lsn of the record holding START (the replay LSN)
	Header ondisk.TransHeader
	Items  []*Item
	// CommitLSN is h_lsn of the record holding the COMMIT op.
	CommitLSN ondisk.LSN

	hdr    [ondisk.TransHeaderSize]byte
	hdrLen int
}

// Assembler reassembles transactions from records fed in log order, as
// recovery's pass does (xlog_recover_ophdr_to_trans,
// xlog_recovery_process_trans): ops of an unknown tid without START are
// skipped; START opens a transaction; regions are added to items
// (CONTINUE/WAS_CONT pieces joined); COMMIT completes it; an unmount op
// drops it. It is not safe for concurrent use.
type Assembler struct {
	g    Geometry
	open map[uint32]*RecoveredTrans
}

// NewAssembler returns an assembler for a log of geometry g (its uuid is
// checked against every record, as xlog_header_check_recover does).
func NewAssembler(g Geometry) *Assembler {
	return &Assembler{g: g, open: map[uint32]*RecoveredTrans{}}
}

// Open lists the transactions started and not committed, by tid.
func (a *Assembler) Open() []*RecoveredTrans {
	out := make([]*RecoveredTrans, 0, len(a.open))
	for _, t := range a.open {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tid < out[j].Tid })
	return out
}

// Add feeds one record; commit is called for each transaction whose COMMIT
// op it holds, in op order. Its error stops processing and is returned.
func (a *Assembler) Add(r *Record, commit func(*RecoveredTrans) error) error {
	if r.Header.Fmt != ondisk.LogFmtLinuxLE {
		return recCorrupt(r, 0, "log record header", "h_fmt", r.Header.Fmt, uint32(ondisk.LogFmtLinuxLE), "dirty log written in an incompatible format")
	}
	if r.Header.FSUUID != a.g.UUID {
		return recCorrupt(r, 0, "log record header", "h_fs_uuid", fmt.Sprintf("%x", r.Header.FSUUID), fmt.Sprintf("%x", a.g.UUID), "does not match sb_uuid")
	}
	ops, err := SplitOps(r)
	if err != nil {
		return err
	}
	for _, op := range ops {
		oh := op.Header
		t := a.open[oh.Tid]
		if t == nil {
			if oh.Flags&ondisk.OpStartTrans != 0 {
				a.open[oh.Tid] = &RecoveredTrans{Tid: oh.Tid, LSN: r.Header.LSN}
			}
			continue
		}
		flags := oh.Flags &^ ondisk.OpEndTrans
		if flags&ondisk.OpWasContTrans != 0 {
			flags &^= ondisk.OpContinueTrans
		}
		switch flags {
		case 0, ondisk.OpContinueTrans:
			err = a.addToTrans(t, op.Data)
		case ondisk.OpWasContTrans:
			err = a.addToContTrans(t, op.Data)
		case ondisk.OpCommitTrans:
			delete(a.open, oh.Tid)
			t.CommitLSN = r.Header.LSN
			if err := commit(t); err != nil {
				return err
			}
		case ondisk.OpUnmountTrans:
			delete(a.open, oh.Tid)
		default:
			delete(a.open, oh.Tid)
			return recCorrupt(r, op.Offset, "log op header", "oh_flags", ondisk.OpFlagsString(oh.Flags), nil,
				fmt.Sprintf("is a bad flag for open transaction %#x", oh.Tid))
		}
		if err != nil {
			delete(a.open, oh.Tid)
			return recCorrupt(r, op.Offset, "log transaction", fmt.Sprintf("tid %#x", oh.Tid), nil, nil, err.Error())
		}
	}
	return nil
}

// addToTrans is xlog_recover_add_to_trans: the start of a new region.
func (a *Assembler) addToTrans(t *RecoveredTrans, dp []byte) error {
	if len(dp) == 0 {
		return nil
	}
	if len(t.Items) == 0 {
		if !ondisk.HasTransHeaderMagic(dp) {
			return fmt.Errorf("bad transaction header magic")
		}
		if len(dp) > ondisk.TransHeaderSize {
			return fmt.Errorf("bad transaction header length %d", len(dp))
		}
		copy(t.hdr[:], dp)
		t.hdrLen = len(dp)
		if len(dp) == ondisk.TransHeaderSize {
			t.Header, _ = ondisk.DecodeTransHeader(t.hdr[:])
			t.Items = append(t.Items, &Item{})
		}
		return nil
	}
	item := t.Items[len(t.Items)-1]
	if item.Total != 0 && item.Total == len(item.Regions) {
		item = &Item{}
		t.Items = append(t.Items, item)
	}
	if item.Total == 0 {
		typ, size, ok := ondisk.LogItemType(dp)
		if !ok {
			return fmt.Errorf("first region of an item is %d bytes, too short for its type and size", len(dp))
		}
		if size == 0 || size > ondisk.LogMaxRegionsInItem {
			return fmt.Errorf("bad number of regions (%d) in %s", size, ondisk.LogItemName(typ))
		}
		item.Type, item.Total = typ, int(size)
		item.Regions = make([][]byte, 0, size)
	}
	if item.Total <= len(item.Regions) {
		return fmt.Errorf("log item region count (%d) overflowed size (%d)", len(item.Regions), item.Total)
	}
	item.Regions = append(item.Regions, dp[:len(dp):len(dp)])
	return nil
}

// addToContTrans is xlog_recover_add_to_cont_trans: the rest of a region
// split across records.
func (a *Assembler) addToContTrans(t *RecoveredTrans, dp []byte) error {
	if len(t.Items) == 0 {
		if len(dp) > ondisk.TransHeaderSize {
			return fmt.Errorf("bad continued transaction header length %d", len(dp))
		}
		copy(t.hdr[ondisk.TransHeaderSize-len(dp):], dp)
		t.hdrLen = ondisk.TransHeaderSize
		t.Header, _ = ondisk.DecodeTransHeader(t.hdr[:])
		t.Items = append(t.Items, &Item{})
		return nil
	}
	item := t.Items[len(t.Items)-1]
	if len(item.Regions) == 0 {
		return fmt.Errorf("continuation of a region with no region to continue")
	}
	last := item.Regions[len(item.Regions)-1]
	joined := make([]byte, 0, len(last)+len(dp))
	joined = append(append(joined, last...), dp...)
	item.Regions[len(item.Regions)-1] = joined
	return nil
}

// Transactions walks the records from tail to head and calls fn with each
// committed transaction, in commit order. A record whose CRC does not match
// stops the walk with an error, as recovery passes do on v5 filesystems.
// It returns the transactions left open at the head.
func (l *Log) Transactions(head, tail int64, fn func(*RecoveredTrans) error) ([]*RecoveredTrans, error) {
	a := NewAssembler(l.G)
	err := l.Records(head, tail, func(r *Record) error {
		if !r.CRCOK {
			return l.corrupt(r.Block, "log record header", "h_crc", r.CRCStored, r.CRCComputed, "log record CRC mismatch")
		}
		return a.Add(r, fn)
	})
	if err != nil {
		return nil, err
	}
	return a.Open(), nil
}
