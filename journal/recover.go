package journal

// Log recovery, as the kernel's xlog_recover/xlog_do_log_recovery does it:
// pass 1 walks the log from tail to head and builds the buffer cancel
// table; pass 2 walks it again and replays every committed transaction in
// log order, its items reordered as xlog_recover_reorder_trans does. The
// item kinds replayed are buffers (replay_buf.go), inodes
// (replay_inode.go) and inode creates (replay_icreate.go); intents and
// their done items are matched (replay_intents.go), and intents left
// pending — deferred work the kernel finishes at mount — make recovery
// refuse the log, naming them, before anything is written. A log holding
// any other item (dquots, quotaoff, fork owner changes) is refused by pass
// 1, before anything is written.
//
// Replay goes into an in-memory overlay of the device (the kernel's buffer
// cache and delayed-write list); nothing reaches the device until the whole
// log has replayed without error. Then the overlay is written and synced,
// the superblock summary counters are recomputed from the AG headers and
// written, and the log is closed with an unmount record after clearing the
// blocks ahead of the head (xlog_clear_stale_blocks), so that the log is
// clean and the kernel mounts without recovery.

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/xfsfree/xfsfree/ondisk"
)

// RecoverOptions configure Recover. This struct does not represent an
// on-disk struct.
type RecoverOptions struct {
	// DryRun replays into memory only: the report says what would be
	// written; the device is not touched.
	DryRun bool
	// Stop, if set and closed before the replayed metadata is written,
	// ends recovery with ErrInterrupted, nothing written. Once writing
	// has begun recovery finishes (it is short, and a dirty log stays
	// replayable until its unmount record).
	Stop <-chan struct{}
	// CanFinish, if set, is asked, once the replay is done and before
	// anything is written, whether the caller can finish the intents
	// left pending. If it returns nil, Recover writes the replayed
	// metadata but neither refuses nor closes the log: the report lists
	// the intents (PendingIntents) and LeftDirty is set; the caller
	// finishes them in a session that continues the log (ContinueWriter,
	// Session.HoldTail at their oldest LSN) and closes it. Otherwise
	// (or without CanFinish) such a log is refused with nothing written:
	// its error, or a *PendingIntentsError.
	CanFinish func(pending []PendingIntent) error
}

// ErrInterrupted is returned by Recover when Stop was closed before it
// wrote anything.
var ErrInterrupted = errors.New("interrupted before anything was written: the log is still dirty")

// RecoverReport says what Recover found and did. This struct does not
// represent an on-disk struct.
type RecoverReport struct {
	// Clean: the log needed no recovery; nothing was written.
	Clean  bool `json:"log_clean"`
	DryRun bool `json:"dry_run"`
	// The log state recovery started from.
	// (xfs.RecoverReport's JSON gives them as LSNs: head, tail, last_lsn.)
	Head      int64  `json:"-"`
	Tail      int64  `json:"-"`
	HeadCycle uint32 `json:"-"`
	TailLSN   string `json:"-"`
	LastLSN   string `json:"-"`
	Torn      bool   `json:"torn_write_cut"`

	Records      int `json:"records"`
	Transactions int `json:"transactions"`
	// Incomplete counts transactions without a COMMIT before the head:
	// discarded, as the kernel discards them.
	Incomplete int `json:"incomplete_transactions"`
	// Items counts the log items of committed transactions by kernel name
	// (XFS_LI_BUF, XFS_LI_INODE, XFS_LI_ICREATE).
	Items map[string]int `json:"-"`

	BufReplayed      int `json:"buffers_replayed"`
	InodeBufReplayed int `json:"inode_buffers_replayed"` // XFS_BLF_INODE_BUF items (di_next_unlinked only)
	BufSkippedLSN    int `json:"buffers_skipped_lsn"`    // on-disk block not older than the transaction
	BufCancelled     int `json:"buffers_cancelled"`      // skipped: a later cancel covers them
	CancelItems      int `json:"cancel_items"`
	InodesReplayed   int `json:"inodes_replayed"`
	InodesSkippedLSN int `json:"inodes_skipped_lsn"`
	InodesCancelled  int `json:"inodes_cancelled"`
	IcreateReplayed  int `json:"icreates_replayed"`
	IcreateCancelled int `json:"icreates_cancelled"`

	// IntentsLogged counts the intent items (EFI, RUI, CUI, BUI) in
	// committed transactions; IntentsCancelled those a done item after
	// them finished; DoneUnmatched the done items whose intent is not in
	// the recovered part of the log (behind the tail).
	IntentsLogged    int `json:"intents_logged"`
	IntentsCancelled int `json:"intents_cancelled"`
	DoneUnmatched    int `json:"done_items_unmatched"`
	// LeftDirty: the replay was written but the log left dirty, its
	// pending intents to be finished by the caller (CanFinish).
	LeftDirty bool `json:"left_dirty,omitempty"`

	// PendingIntents lists, in log order, the intents no done item
	// finished: the work the kernel's mount would finish after the replay.
	// Recover refuses a log that has any (PendingIntentsError).
	PendingIntents []PendingIntent `json:"-"`
	// IntentIDs are the ids of every intent item in the recovered part
	// of the log, pending or finished: a caller that logs new intents
	// while finishing the pending ones gives them other ids.
	IntentIDs []uint64 `json:"-"`

	// LoggedInodes lists the inode numbers named by inode items, ascending.
	LoggedInodes []uint64 `json:"-"`

	// Written is the number of device writes of replayed metadata (runs
	// of adjacent blocks), WrittenBytes their size.
	Written      int   `json:"replay_writes"`
	WrittenBytes int64 `json:"replay_bytes_written"`

	// The superblock summary counters before and after (recomputed from
	// the AG headers, as xfs_initialize_perag_data does).
	Counters    Counters `json:"counters_after"`
	OldCounters Counters `json:"counters_before"`

	// CountersNotRebuilt says why the summary counters were left as the
	// log left them (an AG header that does not verify): the filesystem
	// needs xfs_repair.
	CountersNotRebuilt string `json:"counters_not_rebuilt,omitempty"`

	// UnmountLSN is where the unmount record went.
	UnmountLSN string `json:"-"`

	// Warnings are what the kernel would warn about and go on (a buffer
	// type that does not match the block's magic, ...).
	Warnings []string `json:"-"`
}

// Counters are the superblock summary counters. This struct does not
// represent an on-disk struct.
type Counters struct {
	ICount   uint64 `json:"icount"`
	IFree    uint64 `json:"ifree"`
	FDBlocks uint64 `json:"fdblocks"`
}

// ErrUnsupportedItems is wrapped by the error Recover returns for a log it
// refuses to replay.
var ErrUnsupportedItems = errors.New("the log holds items xfsfree does not replay")

// UnsupportedItemsError lists the log items that made Recover refuse, by
// kernel name, with their counts.
type UnsupportedItemsError struct {
	Items map[string]int
}

func (e *UnsupportedItemsError) Error() string {
	names := make([]string, 0, len(e.Items))
	for n := range e.Items {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s (%d)", n, e.Items[n])
	}
	return fmt.Sprintf("the log holds %s, which xfsfree does not replay (they need the deferred work the kernel finishes at mount); "+
		"nothing was written: mount the filesystem with the kernel to recover its log (mount, then umount), then run xfsfree again",
		strings.Join(parts, ", "))
}

func (e *UnsupportedItemsError) Unwrap() error { return ErrUnsupportedItems }

// Recover replays the dirty log described by lg and st (from FindTail) on
// dev, whose filesystem geometry is g, as the kernel's log recovery does,
// then writes the superblock summary counters and an unmount record. On a
// clean log it writes nothing. A log holding items it does not replay is
// refused with an *UnsupportedItemsError before anything is written; a log
// with pending intents with a *PendingIntentsError, returned with the
// report, whose PendingIntents lists them; a bad intent (length or values)
// with a *ondisk.CorruptError naming it. Any error during replay leaves the
// device untouched.
func Recover(dev WriteDev, g *ondisk.Geometry, lg Geometry, st *State, opts RecoverOptions) (*RecoverReport, error) {
	rep := &RecoverReport{DryRun: opts.DryRun, Items: map[string]int{}, Head: st.Head, Tail: st.Tail,
		HeadCycle: st.HeadCycle, TailLSN: st.TailLSN.String(), LastLSN: st.LastLSN.String(), Torn: st.Torn}
	if st.Clean {
		rep.Clean = true
		return rep, nil
	}
	if lg.External {
		return nil, fmt.Errorf("journal: recovering an external log is %w", ondisk.ErrUnsupported)
	}
	if !g.SB.IsV5() {
		return nil, fmt.Errorf("journal: recovering a v4 filesystem is %w", ondisk.ErrUnsupported)
	}
	if err := checkLogIncompat(g.SB); err != nil {
		return nil, err
	}
	r := &recovery{
		dev: dev, g: g, sb: *g.SB, l: New(dev, lg), rep: rep,
		ov:      newOverlay(dev),
		cancels: map[cancelKey]int{},
		inodes:  map[uint64]bool{},
		stamps:  map[stampKey]stamper{},
	}
	if err := r.pass1(st); err != nil {
		return nil, err
	}
	if err := r.pass2(st); err != nil {
		return nil, err
	}
	for ino := range r.inodes {
		rep.LoggedInodes = append(rep.LoggedInodes, ino)
	}
	sort.Slice(rep.LoggedInodes, func(i, j int) bool { return rep.LoggedInodes[i] < rep.LoggedInodes[j] })

	// The superblock as replay left it (a replayed primary superblock
	// buffer reloads the in-core one: xlog_recover_do_primary_sb_buffer),
	// with the summary counters rebuilt from the AG headers.
	if err := r.counters(); err != nil {
		return nil, err
	}
	rg, err := ondisk.NewGeometry(&r.sb)
	if err != nil {
		return nil, err
	}
	pending := false
	if err := r.checkIntents(rg); err != nil {
		var pe *PendingIntentsError
		if !errors.As(err, &pe) {
			return nil, err
		}
		if opts.CanFinish == nil {
			return rep, err
		}
		if cerr := opts.CanFinish(pe.Intents); cerr != nil {
			return rep, cerr
		}
		pending = true
	}
	if opts.DryRun {
		rep.Written, rep.WrittenBytes = r.ov.stats()
		return rep, nil
	}
	if opts.Stop != nil {
		select {
		case <-opts.Stop:
			return nil, ErrInterrupted
		default:
		}
	}
	// Replayed metadata first, durable before the log is closed: a crash
	// anywhere before the unmount record leaves the log dirty, and replay
	// again is harmless (LSN ordering skips what is already on disk).
	n, nb, err := r.ov.flush(dev)
	rep.Written, rep.WrittenBytes = n, nb
	if err != nil {
		return rep, err
	}
	if err := dev.Sync(); err != nil {
		return rep, err
	}
	if pending {
		// The intents are the caller's to finish, in a session that
		// continues this log: it stays dirty until then.
		rep.LeftDirty = true
		return rep, nil
	}
	// Close the log at the head recovery stopped at, as the kernel's next
	// unmount would: clear the blocks ahead of the head first (the kernel
	// does it in xlog_find_tail before replaying; a torn record left past
	// the head must not be taken for the head once the unmount record is
	// there), then the unmount record, synced.
	prev := st.LastRecord
	if prev < 0 {
		prev = 0
	}
	w, err := NewWriterAt(dev, lg, st.Head, st.HeadCycle, prev)
	if err != nil {
		return rep, err
	}
	if err := w.ClearStale(st.TailLSN); err != nil {
		return rep, err
	}
	rep.UnmountLSN = w.HeadLSN().String()
	if err := w.WriteUnmount(); err != nil {
		return rep, err
	}
	return rep, nil
}

// cancelKey is the exact (blkno, len) a cancel record matches
// (xlog_find_buffer_cancelled).
type cancelKey struct {
	blkno int64
	len   int
}

type recovery struct {
	dev     WriteDev
	g       *ondisk.Geometry
	sb      ondisk.Superblock // the in-core superblock (reloaded by a primary sb replay)
	l       *Log
	rep     *RecoverReport
	ov      *overlay
	cancels map[cancelKey]int // pass 1's cancel table with reference counts
	inodes  map[uint64]bool
	in      intents // pass 2's pending and cancelled intents
	// The buffers replayed at stampLSN, waiting for their stamp
	// (stampsAt).
	stamps   map[stampKey]stamper
	stampLSN ondisk.LSN
}

func (r *recovery) warn(format string, args ...any) {
	r.rep.Warnings = append(r.rep.Warnings, fmt.Sprintf(format, args...))
}

// replayable reports whether recovery replays (or, for intents and done
// items, pairs) items of type t.
func replayable(t uint16) bool {
	return t == ondisk.LIBuf || t == ondisk.LIInode || t == ondisk.LIIcreate || isIntentItem(t)
}

// pass1 is XLOG_RECOVER_PASS1: count the records and transactions, build
// the cancel table (xlog_recover_buf_commit_pass1), and collect the items
// recovery does not replay, so that the refusal comes before any write.
func (r *recovery) pass1(st *State) error {
	refused := map[string]int{}
	err := r.l.Records(st.Head, st.Tail, func(*Record) error { r.rep.Records++; return nil })
	if err != nil {
		return fmt.Errorf("journal: recovery pass 1: %w", err)
	}
	open, err := r.l.Transactions(st.Head, st.Tail, func(t *RecoveredTrans) error {
		r.rep.Transactions++
		for _, it := range t.Items {
			if len(it.Regions) == 0 {
				continue
			}
			if len(it.Regions) != it.Total {
				return transCorrupt(t, it, "region count", len(it.Regions), it.Total, "item is incomplete at its transaction's commit")
			}
			r.rep.Items[it.Name()]++
			if !replayable(it.Type) {
				refused[it.Name()]++
				continue
			}
			switch it.Type {
			case ondisk.LIBuf:
				f, err := decodeBufItem(t, it)
				if err != nil {
					return err
				}
				if f.Flags&(ondisk.BlfUDquotBuf|ondisk.BlfPDquotBuf|ondisk.BlfGDquotBuf) != 0 && f.Flags&ondisk.BlfCancel == 0 {
					refused["dquot buffer (XFS_LI_BUF with a dquot flag)"]++
				}
				if f.Flags&ondisk.BlfCancel != 0 {
					r.cancels[cancelKey{f.Blkno, int(f.Len)}]++
				}
			case ondisk.LIInode:
				f, err := decodeInodeItem(t, it)
				if err != nil {
					return err
				}
				if f.Fields&(ondisk.ILogDOwner|ondisk.ILogAOwner) != 0 {
					refused["XFS_LI_INODE with a fork owner change (swapext)"]++
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("journal: recovery pass 1: %w", err)
	}
	r.rep.Incomplete = len(open)
	if len(refused) > 0 {
		return &UnsupportedItemsError{Items: refused}
	}
	return nil
}

// pass2 is XLOG_RECOVER_PASS2: replay each committed transaction.
func (r *recovery) pass2(st *State) error {
	_, err := r.l.Transactions(st.Head, st.Tail, func(t *RecoveredTrans) error {
		for _, it := range reorder(t) {
			var err error
			switch it.Type {
			case ondisk.LIBuf:
				err = r.replayBuf(t, it)
			case ondisk.LIInode:
				err = r.replayInode(t, it)
			case ondisk.LIIcreate:
				err = r.replayIcreate(t, it)
			default:
				if isIntentItem(it.Type) {
					err = r.recoverIntentItem(t, it)
				}
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("journal: recovery pass 2: %w", err)
	}
	if err := r.flushStamps(); err != nil {
		return fmt.Errorf("journal: recovery pass 2: %w", err)
	}
	return nil
}

// reorder is xlog_recover_reorder_trans: buffers (and inode creates, which
// initialise buffers) first, then the other items, then INODE_BUF buffers,
// then cancels. Within the first two lists log order is kept; the kernel
// prepends to the last two, so they run in reverse log order.
func reorder(t *RecoveredTrans) []*Item {
	var bufs, items, inodeBufs, cancels []*Item
	for _, it := range t.Items {
		if len(it.Regions) == 0 {
			continue
		}
		switch it.Type {
		case ondisk.LIBuf:
			f, err := ondisk.DecodeBufLogFormat(it.Regions[0])
			switch {
			case err != nil:
				bufs = append(bufs, it) // replayBuf reports the error
			case f.Flags&ondisk.BlfCancel != 0:
				cancels = append([]*Item{it}, cancels...)
			case f.Flags&ondisk.BlfInodeBuf != 0:
				inodeBufs = append([]*Item{it}, inodeBufs...)
			default:
				bufs = append(bufs, it)
			}
		case ondisk.LIIcreate:
			bufs = append(bufs, it)
		default:
			items = append(items, it)
		}
	}
	out := append(bufs, items...)
	out = append(out, inodeBufs...)
	return append(out, cancels...)
}

// isCancelled is xlog_is_buffer_cancelled.
func (r *recovery) isCancelled(blkno int64, n int) bool {
	return r.cancels[cancelKey{blkno, n}] > 0
}

// putCancelled is xlog_put_buffer_cancelled: a cancel item in pass 2
// drops one reference; once the last cancel of a buffer has been seen,
// later items of it replay again.
func (r *recovery) putCancelled(blkno int64, n int) {
	k := cancelKey{blkno, n}
	if r.cancels[k] > 0 {
		r.cancels[k]--
	}
}

func transCorrupt(t *RecoveredTrans, it *Item, field string, found, want any, msg string) error {
	return &ondisk.CorruptError{AG: ondisk.NoAG, Daddr: -1, Struct: it.Name(), Field: field, Found: found, Want: want,
		Msg: fmt.Sprintf("%s (transaction %#x, lsn %v)", msg, t.Tid, t.LSN)}
}

// counters rebuilds the superblock summary counters from the AG headers
// (xfs_initialize_perag_data: icount = Σ agi_count, ifree = Σ
// agi_freecount, fdblocks = Σ agf_freeblks + agf_flcount +
// agf_btreeblks) and writes them into the primary superblock in the
// overlay, recomputing its CRC.
func (r *recovery) counters() error {
	sect := r.g.SectBBs()
	b, err := r.ov.read(ondisk.SBDaddr, sect)
	if err != nil {
		return err
	}
	sb, err := ondisk.DecodeSuperblock(b)
	if err != nil {
		return err
	}
	if err := sb.Verify(b); err != nil {
		return fmt.Errorf("journal: superblock after replay: %w", err)
	}
	g := r.g
	if sb.AGCount != g.AGCount || sb.DBlocks != g.SB.DBlocks {
		// A growfs replayed: address the AG headers with the new geometry.
		if g, err = ondisk.NewGeometry(sb); err != nil {
			return err
		}
	}
	c, err := r.sumAGHeaders(g, sb.AGCount)
	r.rep.OldCounters = Counters{sb.ICount, sb.IFree, sb.FDBlocks}
	if err != nil {
		// A corrupt AG header: the log is still replayed and closed, so
		// that plain xfs_repair (which refuses a dirty log) can fix the
		// filesystem; the superblock keeps the counters the log left.
		r.rep.CountersNotRebuilt = err.Error()
		r.warn("the superblock's summary counters were not rebuilt (xfs_repair will): %v", err)
		c = r.rep.OldCounters
	}
	r.rep.Counters = c
	sb.ICount, sb.IFree, sb.FDBlocks = c.ICount, c.IFree, c.FDBlocks
	sb.Encode(b)
	ondisk.UpdateCksum(b[:sb.SectSize], ondisk.SBCrcOff)
	r.ov.write(ondisk.SBDaddr, b)
	r.sb = *sb
	return nil
}

// sumAGHeaders sums the AG headers' counters as xfs_initialize_perag_data
// does, reading them through the overlay.
func (r *recovery) sumAGHeaders(g *ondisk.Geometry, agcount uint32) (Counters, error) {
	var c Counters
	sect := g.SectBBs()
	for agno := uint32(0); agno < agcount; agno++ {
		ctx := ondisk.VerifyCtx{G: g, AG: agno, Daddr: g.AGIDaddr(agno)}
		ib, err := r.ov.read(ctx.Daddr, sect)
		if err != nil {
			return c, err
		}
		if err := ondisk.VerifyAGI(ib, ctx); err != nil {
			return c, err
		}
		agi, _ := ondisk.DecodeAGI(ib)
		ctx.Daddr = g.AGFDaddr(agno)
		fb, err := r.ov.read(ctx.Daddr, sect)
		if err != nil {
			return c, err
		}
		if err := ondisk.VerifyAGF(fb, ctx); err != nil {
			return c, err
		}
		agf, _ := ondisk.DecodeAGF(fb)
		c.ICount += uint64(agi.Count)
		c.IFree += uint64(agi.FreeCount)
		c.FDBlocks += uint64(agf.FreeBlks) + uint64(agf.FLCount) + uint64(agf.BtreeBlks)
	}
	return c, nil
}

// overlay holds the blocks replay changed, by daddr, over the device: the
// kernel's buffer cache and delayed-write list during recovery. Reads see
// the replayed contents; flush writes them, adjacent blocks coalesced.
type overlay struct {
	dev LogDev
	bbs map[int64][]byte // one BB each
}

func newOverlay(dev LogDev) *overlay { return &overlay{dev: dev, bbs: map[int64][]byte{}} }

// read returns a private copy of n BBs at daddr.
func (o *overlay) read(daddr int64, n int) ([]byte, error) {
	b, err := o.dev.ReadAt(daddr, n)
	if err != nil {
		return nil, err
	}
	if len(b) < n*ondisk.BBSize {
		return nil, fmt.Errorf("journal: short read of %d BBs at daddr %d", n, daddr)
	}
	b = append([]byte(nil), b[:n*ondisk.BBSize]...)
	for i := 0; i < n; i++ {
		if p, ok := o.bbs[daddr+int64(i)]; ok {
			copy(b[i*ondisk.BBSize:], p)
		}
	}
	return b, nil
}

// write records b (whole BBs) at daddr.
func (o *overlay) write(daddr int64, b []byte) {
	for i := 0; i*ondisk.BBSize < len(b); i++ {
		o.bbs[daddr+int64(i)] = append([]byte(nil), b[i*ondisk.BBSize:(i+1)*ondisk.BBSize]...)
	}
}

// runs lists the dirty blocks as maximal runs (capped at 1 MiB).
func (o *overlay) runs() [][2]int64 {
	keys := make([]int64, 0, len(o.bbs))
	for k := range o.bbs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	var out [][2]int64
	const maxRun = 2048
	for _, k := range keys {
		if n := len(out); n > 0 && out[n-1][0]+out[n-1][1] == k && out[n-1][1] < maxRun {
			out[n-1][1]++
			continue
		}
		out = append(out, [2]int64{k, 1})
	}
	return out
}

func (o *overlay) stats() (int, int64) {
	return len(o.runs()), int64(len(o.bbs)) * ondisk.BBSize
}

// flush writes every dirty block to dev (not synced).
func (o *overlay) flush(dev WriteDev) (int, int64, error) {
	var n int
	var bytes int64
	for _, run := range o.runs() {
		buf := make([]byte, run[1]*ondisk.BBSize)
		for i := int64(0); i < run[1]; i++ {
			copy(buf[i*ondisk.BBSize:], o.bbs[run[0]+i])
		}
		if err := dev.WriteAt(run[0], buf); err != nil {
			return n, bytes, fmt.Errorf("journal: writing recovered blocks at daddr %d: %w", run[0], err)
		}
		n++
		bytes += int64(len(buf))
	}
	return n, bytes, nil
}
