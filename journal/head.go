package journal

import (
	"errors"
	"fmt"

	"github.com/xfsfree/xfsfree/ondisk"
)

// State is what the head and tail search found, as xlog_find_tail leaves
// the in-core log. This struct does not represent an on-disk struct.
type State struct {
	Head int64 // log block where the next record goes (l_curr_block)
	Tail int64 // log block recovery starts at; == Head when nothing needs recovery
	// HeadCycle is the cycle the next record at Head is written with
	// (l_curr_cycle): the last record's cycle, plus one if the search for
	// it wrapped round the log end.
	HeadCycle uint32
	// LastRecord is the block of the last record header before Head
	// (l_prev_block), -1 for an all-zero log; LastLSN its h_lsn.
	LastRecord int64
	LastLSN    ondisk.LSN
	// TailLSN is the tail LSN the log continues with (l_tail_lsn): the last
	// record's h_tail_lsn, or (HeadCycle, Head) after an unmount record.
	TailLSN ondisk.LSN
	// Clean means no recovery is needed: Head == Tail. Unmounted says
	// that is because an unmount record ends the log (XFS_MOUNT_WAS_CLEAN);
	// Empty that the log is all zeros.
	Clean     bool
	Unmounted bool
	Empty     bool
	// HSize is h_size of the last record (0 for an empty log).
	HSize int
	// Torn is set when records at the head failed their CRC and the head
	// was moved back over them (a torn write): FoundHead is where the cycle
	// search put the head, Head the first bad record.
	Torn      bool
	FoundHead int64
	// TailMoved is set when records at the tail failed their CRC within
	// reach of the head and the tail was moved forward (xlog_verify_tail):
	// FoundTail is where h_tail_lsn pointed.
	TailMoved bool
	FoundTail int64
}

func (s *State) String() string {
	if s.Empty {
		return "empty log (all zeros): head 0, tail 0"
	}
	st := "dirty"
	switch {
	case s.Clean && s.Unmounted:
		st = "clean (unmount record)"
	case s.Clean:
		st = "clean"
	}
	out := fmt.Sprintf("%s: head %d (cycle %d), tail %d (lsn %v); last record at block %d (lsn %v, h_size %d)",
		st, s.Head, s.HeadCycle, s.Tail, s.TailLSN, s.LastRecord, s.LastLSN, s.HSize)
	if s.Torn {
		out += fmt.Sprintf("; torn write: head cut back from %d", s.FoundHead)
	}
	if s.TailMoved {
		out += fmt.Sprintf("; tail overwritten: moved from %d", s.FoundTail)
	}
	return out
}

// findCycleStart is xlog_find_cycle_start: a binary search between first
// and last for the first block with the given cycle. It returns the new
// last block.
func (l *Log) findCycleStart(first, last int64, cycle uint32) (int64, error) {
	end := last
	mid := (first + end) >> 1
	for mid != first && mid != end {
		c, err := l.cycleOf(mid)
		if err != nil {
			return 0, err
		}
		if c == cycle {
			end = mid
		} else {
			first = mid
		}
		mid = (first + end) >> 1
	}
	return end, nil
}

// findVerifyCycle is xlog_find_verify_cycle: the first block in
// [start, start+n) whose cycle is stop, or -1.
func (l *Log) findVerifyCycle(start, n int64, stop uint32) (int64, error) {
	const chunk = 1024
	for i := max(start, 0); i < start+n; i += chunk {
		c := min(chunk, start+n-i)
		b, err := l.read(i, int(c))
		if err != nil {
			return 0, err
		}
		for j := int64(0); j < c; j++ {
			if ondisk.LogCycle(b[j*ondisk.BBSize:]) == stop {
				return i + j, nil
			}
		}
	}
	return -1, nil
}

// errNoHeader is xlog_find_verify_log_record's "return 1": the search hit
// block 0 without finding a record header.
var errNoHeader = errors.New("journal: no record header before block 0")

// findVerifyLogRecord is xlog_find_verify_log_record: search back from
// last-1 (not below start) for a record header; if last is not exactly
// the end of that record (extra counts blocks already verified past the
// log end), the head belongs at the header: return its block.
func (l *Log) findVerifyLogRecord(start, last int64, extra int64) (int64, error) {
	var hdr []byte
	i := last - 1
	for ; i >= 0; i-- {
		if i < start {
			return 0, l.corrupt(last, "log", "head", nil, nil, "inconsistent: no record header found before the head")
		}
		ok, b, err := l.isHeader(i)
		if err != nil {
			return 0, err
		}
		if ok {
			hdr = b
			break
		}
	}
	if i == -1 {
		return last, errNoHeader
	}
	h, err := ondisk.DecodeLogRecHeader(hdr)
	if err != nil {
		return 0, ondisk.SetLocation(err, ondisk.NoAG, l.G.StartDaddr+i)
	}
	if err := l.checkUUID(h, i); err != nil {
		return 0, err
	}
	if last-i+extra != int64(h.DataBBs()+h.HBlks(l.G.V2)) {
		return i, nil
	}
	return last, nil
}

// checkUUID is xlog_header_check_mount: a nil uuid is accepted (IRIX).
func (l *Log) checkUUID(h *ondisk.LogRecHeader, blk int64) error {
	if h.FSUUID != ([16]byte{}) && h.FSUUID != l.G.UUID {
		return l.corrupt(blk, "log record header", "h_fs_uuid", fmt.Sprintf("%x", h.FSUUID), fmt.Sprintf("%x", l.G.UUID), "does not match sb_uuid")
	}
	return nil
}

// findZeroed is xlog_find_zeroed. It returns (head, true) when the log is
// wholly or partly zeroed, head being the first zero-cycle block.
func (l *Log) findZeroed() (int64, bool, error) {
	first, err := l.cycleOf(0)
	if err != nil {
		return 0, false, err
	}
	if first == 0 {
		return 0, true, nil
	}
	n := l.G.BBs
	lastCycle, err := l.cycleOf(n - 1)
	if err != nil {
		return 0, false, err
	}
	if lastCycle != 0 {
		return 0, false, nil
	}
	last, err := l.findCycleStart(0, n-1, 0)
	if err != nil {
		return 0, false, err
	}
	scan := l.G.totalRecShift()
	if last < scan {
		scan = last
	}
	start := last - scan
	nb, err := l.findVerifyCycle(start, scan, 0)
	if err != nil {
		return 0, false, err
	}
	if nb != -1 {
		last = nb
	}
	last, err = l.findVerifyLogRecord(start, last, 0)
	if errors.Is(err, errNoHeader) {
		return 0, false, l.corrupt(last, "log", "head", nil, nil, "no record header before the first zeroed block")
	}
	if err != nil {
		return 0, false, err
	}
	return last, true, nil
}

// FindHead is xlog_find_head: the block after the last complete record,
// found from the cycle numbers stamped in every block. It does not check
// CRCs; FindTail does, and may move the head back over a torn write.
func (l *Log) FindHead() (int64, error) {
	zhead, zeroed, err := l.findZeroed()
	if err != nil {
		return 0, fmt.Errorf("journal: empty log check failed: %w", err)
	}
	if zeroed {
		return zhead, nil
	}
	n := l.G.BBs
	firstHalf, err := l.cycleOf(0)
	if err != nil {
		return 0, err
	}
	lastHalf, err := l.cycleOf(n - 1)
	if err != nil {
		return 0, err
	}
	var head int64
	var stop uint32
	if firstHalf == lastHalf {
		// The whole log has one cycle, unless a hole of the previous
		// cycle is left at its end: search for last-1.
		head = n
		stop = lastHalf - 1
	} else {
		stop = lastHalf
		head, err = l.findCycleStart(0, n-1, lastHalf)
		if err != nil {
			return 0, err
		}
	}

	// Validate: no block of the stop cycle in the window before the head.
	scan := min(n, l.G.totalRecShift())
	if head >= scan {
		nb, err := l.findVerifyCycle(head-scan, scan, stop)
		if err != nil {
			return 0, err
		}
		if nb != -1 {
			head = nb
		}
	} else {
		// Two parts: the end of the log (looking for stop-1), then its
		// start (looking for stop).
		start := n - (scan - head)
		nb, err := l.findVerifyCycle(start, scan-head, stop-1)
		if err != nil {
			return 0, err
		}
		if nb != -1 {
			head = nb
			goto validate
		}
		nb, err = l.findVerifyCycle(0, head, stop)
		if err != nil {
			return 0, err
		}
		if nb != -1 {
			head = nb
		}
	}

validate:
	// Back up over a partially written record.
	scan = l.G.recShift()
	if head >= scan {
		h, err := l.findVerifyLogRecord(head-scan, head, 0)
		if errors.Is(err, errNoHeader) {
			return 0, l.corrupt(head, "log", "head", nil, nil, "no record header before the head")
		}
		if err != nil {
			return 0, err
		}
		head = h
	} else {
		h, err := l.findVerifyLogRecord(0, head, 0)
		switch {
		case errors.Is(err, errNoHeader):
			// The last record wraps the log end: look at the end.
			start := max(n-(scan-head), 0)
			nb, err := l.findVerifyLogRecord(start, n, head)
			if errors.Is(err, errNoHeader) {
				return 0, l.corrupt(head, "log", "head", nil, nil, "no record header before the head")
			}
			if err != nil {
				return 0, err
			}
			if nb != n {
				head = nb
			}
		case err != nil:
			return 0, err
		default:
			head = h
		}
	}
	if head == n {
		return 0, nil
	}
	return head, nil
}

// rseekHeader is xlog_rseek_logrec_hdr: walk back from head (exclusive)
// towards tail, wrapping at block 0 when tail >= head, until count headers
// are seen. It returns how many were found and the block of the last one;
// wrapped reports that it was found past the wrap.
func (l *Log) rseekHeader(head, tail int64, count int) (found int, blk int64, wrapped bool, err error) {
	end := int64(0)
	if head > tail {
		end = tail
	}
	for i := head - 1; i >= end; i-- {
		ok, _, err := l.isHeader(i)
		if err != nil {
			return 0, 0, false, err
		}
		if ok {
			blk = i
			if found++; found == count {
				return found, blk, false, nil
			}
		}
	}
	if tail >= head {
		for i := l.G.BBs - 1; i >= tail; i-- {
			ok, _, err := l.isHeader(i)
			if err != nil {
				return 0, 0, false, err
			}
			if ok {
				blk, wrapped = i, true
				if found++; found == count {
					break
				}
			}
		}
	}
	return found, blk, wrapped, nil
}

// seekHeader is xlog_seek_logrec_hdr: walk forward from tail towards head,
// wrapping at the log end when tail > head.
func (l *Log) seekHeader(head, tail int64, count int) (found int, blk int64, err error) {
	end := l.G.BBs - 1
	if head > tail {
		end = head
	}
	for i := tail; i <= end && i < l.G.BBs; i++ {
		ok, _, err := l.isHeader(i)
		if err != nil {
			return 0, 0, err
		}
		if ok {
			blk = i
			if found++; found == count {
				return found, blk, nil
			}
		}
	}
	if tail > head {
		for i := int64(0); i < head; i++ {
			ok, _, err := l.isHeader(i)
			if err != nil {
				return 0, 0, err
			}
			if ok {
				blk = i
				if found++; found == count {
					break
				}
			}
		}
	}
	return found, blk, nil
}

// header reads and decodes the record header at blk.
func (l *Log) header(blk int64) (*ondisk.LogRecHeader, error) {
	b, err := l.read(blk, 1)
	if err != nil {
		return nil, err
	}
	h, err := ondisk.DecodeLogRecHeader(b)
	return h, ondisk.SetLocation(err, ondisk.NoAG, l.G.StartDaddr+blk)
}

// setState is xlog_set_state.
func (l *Log) setState(s *State, head int64, h *ondisk.LogRecHeader, rblk int64, bump bool) {
	s.LastRecord = rblk
	s.Head = head
	s.HeadCycle = h.Cycle
	if bump {
		s.HeadCycle++
	}
	s.TailLSN = h.TailLSN
	s.LastLSN = h.LSN
	s.HSize = int(h.Size)
}

// checkUnmountRec is xlog_check_unmount_rec: the log is clean if the last
// record ends exactly at the head, has one op, and that op is an unmount.
func (l *Log) checkUnmountRec(s *State, h *ondisk.LogRecHeader, rblk int64) error {
	hblks := int64(h.HBlks(l.G.V2))
	after := l.wrap(rblk + hblks + int64(h.DataBBs()))
	if s.Head != after || h.NumLogOps != 1 {
		return nil
	}
	b, err := l.read(l.wrap(rblk+hblks), 1)
	if err != nil {
		return err
	}
	// The op header's first word is cycle-stamped; its flags are not.
	if oh, err := ondisk.DecodeLogOpHeader(b); err == nil && oh.Flags&ondisk.OpUnmountTrans != 0 {
		s.TailLSN = ondisk.MakeLSN(s.HeadCycle, uint32(after))
		s.Tail = after
		s.Unmounted = true
	}
	return nil
}

// FindTail is xlog_find_tail: find the head, the last record before it and
// the tail that record names, test for an unmount record and, on a dirty
// log, CRC-check the records at the head (cutting back a torn write) and
// from the tail (moving past an overwritten tail), as xlog_verify_head and
// xlog_verify_tail do. It writes nothing (the kernel also clears stale
// blocks past the head here).
func (l *Log) FindTail() (*State, error) {
	head, err := l.FindHead()
	if err != nil {
		return nil, err
	}
	s := &State{Head: head, FoundHead: head, LastRecord: -1}
	if head == 0 {
		c, err := l.cycleOf(0)
		if err != nil {
			return nil, err
		}
		if c == 0 {
			s.Empty, s.Clean = true, true
			return s, nil
		}
	}
	found, rblk, wrapped, err := l.rseekHeader(head, head, 1)
	if err != nil {
		return nil, err
	}
	if found == 0 {
		return nil, l.corrupt(head, "log", "head", nil, nil, "no record header anywhere before the head (couldn't find sync record)")
	}
	h, err := l.header(rblk)
	if err != nil {
		return nil, err
	}
	s.Tail = int64(h.TailLSN.Block())
	l.setState(s, head, h, rblk, wrapped)
	if err := l.checkUnmountRec(s, h, rblk); err != nil {
		return nil, err
	}
	s.FoundTail = s.Tail
	if !s.Unmounted {
		if err := l.verifyHead(s); err != nil {
			return nil, err
		}
		if s.Torn {
			h, err := l.header(s.LastRecord)
			if err != nil {
				return nil, err
			}
			if err := l.checkUnmountRec(s, h, s.LastRecord); err != nil {
				return nil, err
			}
		}
	}
	s.Clean = s.Head == s.Tail
	return s, nil
}

// verifyHead is the torn-write part of xlog_verify_head: CRC-check the last
// XLOG_MAX_ICLOGS records before the head; the head moves back to the first
// bad one, and the tail to what the record before it names.
func (l *Log) verifyHead(s *State) error {
	if s.Tail >= l.G.BBs {
		return l.corrupt(s.LastRecord, "log record header", "h_tail_lsn", s.TailLSN.String(), nil, "points outside the log")
	}
	found, first, _, err := l.rseekHeader(s.Head, s.Tail, ondisk.LogMaxIclogs)
	if err != nil {
		return err
	}
	if found == 0 {
		return l.corrupt(s.Head, "log", "tail", s.Tail, nil, "no record header between tail and head")
	}
	bad, err := l.crcPass(s.Head, first)
	if err != nil {
		return err
	}
	if bad >= 0 {
		found, rblk, wrapped, err := l.rseekHeader(bad, s.Tail, 1)
		if err != nil {
			return err
		}
		if found == 0 {
			return l.corrupt(bad, "log", "head", nil, nil, "no good record before the torn write")
		}
		h, err := l.header(rblk)
		if err != nil {
			return err
		}
		s.Torn = true
		s.Tail = int64(h.TailLSN.Block())
		s.FoundTail = s.Tail
		l.setState(s, bad, h, rblk, wrapped)
		if s.Tail >= l.G.BBs {
			return l.corrupt(rblk, "log record header", "h_tail_lsn", h.TailLSN.String(), nil, "points outside the log")
		}
		if s.Head == s.Tail {
			return nil
		}
	}
	return l.verifyTail(s)
}

// verifyTail is xlog_verify_tail: make the tail point at a record header,
// then CRC-check from tail to head; a bad record within XLOG_MAX_ICLOGS
// records' reach of the head may have been overwritten after the tail moved,
// so step the tail past it and retry.
func (l *Log) verifyTail(s *State) error {
	found, blk, err := l.seekHeader(s.Head, s.Tail, 1)
	if err != nil {
		return err
	}
	if found == 0 {
		return l.corrupt(s.Tail, "log", "tail", s.Tail, nil, "no record header between tail and head")
	}
	s.Tail = blk
	hsize := int64(s.HSize)
	for {
		bad, err := l.crcPass(s.Head, s.Tail)
		if err != nil {
			return err
		}
		if bad < 0 {
			break
		}
		var dist int64
		if s.Head < bad {
			dist = bad - s.Head
		} else {
			dist = bad + (l.G.BBs - s.Head)
		}
		if dist > int64(ondisk.BTOBB(int(ondisk.LogMaxIclogs*hsize))) {
			return l.corrupt(bad, "log record", "h_crc", nil, nil, "CRC or format error between tail and head, beyond reach of a torn write")
		}
		found, blk, err := l.seekHeader(s.Head, bad, 2)
		if err != nil {
			return err
		}
		if found < 2 {
			return l.corrupt(bad, "log record", "h_crc", nil, nil, "bad record at the tail and no record after it")
		}
		s.Tail = blk
		s.TailMoved = true
	}
	return nil
}

// crcPass is the XLOG_RECOVER_CRCPASS of xlog_do_recovery_pass: walk the
// records from tail to head and return the block of the first record that
// is malformed or whose non-zero CRC does not match, or -1. Read errors are
// returned as errors.
func (l *Log) crcPass(head, tail int64) (int64, error) {
	if head == tail {
		return -1, nil
	}
	bad := int64(-1)
	err := l.walk(head, tail, func(r *Record) error {
		if r.CRCStored != 0 && !r.CRCOK {
			bad = r.Block
			return errStop
		}
		return nil
	}, false)
	var rerr *RecordError
	if errors.As(err, &rerr) {
		return rerr.Block, nil
	}
	if err != nil && !errors.Is(err, errStop) {
		return 0, err
	}
	return bad, nil
}

var errStop = errors.New("stop")
