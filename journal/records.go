package journal

import (
	"fmt"

	"github.com/xfsfree/xfsfree/ondisk"
)

// Record is one log record as read between tail and head. This struct does
// not represent an on-disk struct.
type Record struct {
	Block  int64                // log block of the (first) header block
	Header *ondisk.LogRecHeader //
	HBlks  int                  // header blocks (from the tail record's h_size, as recovery does)
	// Hdrs holds the header blocks as on disk (packed: CRC and xh_cycle
	// as written).
	Hdrs []byte
	// Data holds the h_len data bytes, unpacked (cycle words restored)
	// unless the walk was a CRC-only pass.
	Data []byte
	// Wrapped: the record continues at block 0 past the physical log end.
	Wrapped bool
	// CRCStored is h_crc, CRCComputed the CRC of the packed bytes; CRCOK
	// is set when they match (either header size the kernel accepts). A
	// stored CRC of 0 (xfsprogs writes it) never matches; the kernel
	// tolerates it only when looking for torn writes.
	CRCStored, CRCComputed uint32
	CRCOK                  bool
}

// RecordError is a record that cannot be walked: a missing or malformed
// header where one must be. Block is where the record was expected (the
// kernel's first_bad).
type RecordError struct {
	Block int64
	Err   error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("journal: log record at block %d: %v", e.Block, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// Records walks the records from tail to head (tail != head; wrapping at
// the log end when tail > head), as xlog_do_recovery_pass does: h_size and
// the number of header blocks come from the tail record, every header is
// checked (xlog_valid_rec_header), each record's CRC is computed over its
// packed bytes and its data unpacked. CRC mismatches are reported in the
// Record, not as errors: the caller decides (a bad CRC in the last records
// before the head is a torn write; FindTail has already cut those off).
// fn's error stops the walk and is returned.
func (l *Log) Records(head, tail int64, fn func(*Record) error) error {
	return l.walk(head, tail, fn, true)
}

func (l *Log) walk(head, tail int64, fn func(*Record) error, unpack bool) error {
	if head < 0 || head >= l.G.BBs || tail < 0 || tail >= l.G.BBs {
		return fmt.Errorf("journal: head %d or tail %d outside the log (%d BBs)", head, tail, l.G.BBs)
	}
	if head == tail {
		return nil
	}
	th, err := l.header(tail)
	if err != nil {
		return &RecordError{Block: tail, Err: err}
	}
	// The tail record gives the iclog size. xfsprogs once wrote records
	// longer than h_size on logs with a stripe unit; the kernel then uses
	// its own iclog size (xlog_do_recovery_pass).
	hsize := int(th.Size)
	if int(th.Len) > hsize && int(th.Len) <= l.G.HSize && th.NumLogOps == 1 {
		hsize = l.G.HSize
	}
	if err := th.Verify(l.G.V2, hsize); err != nil {
		return &RecordError{Block: tail, Err: ondisk.SetLocation(err, ondisk.NoAG, l.G.StartDaddr+tail)}
	}
	if hsize > ondisk.LogMaxRecordBSize {
		return &RecordError{Block: tail, Err: l.corrupt(tail, "log record header", "h_size", th.Size, nil, "exceeds 256 KiB")}
	}
	hblks := 1
	if l.G.V2 && hsize > ondisk.LogHeaderCycleSize && th.Version&ondisk.LogVersion2 != 0 {
		hblks = (hsize + ondisk.LogHeaderCycleSize - 1) / ondisk.LogHeaderCycleSize
	}

	dist := l.wrap(head - tail)
	for pos := int64(0); pos < dist; {
		blk := l.wrap(tail + pos)
		hdrs, err := l.readWrapped(blk, hblks)
		if err != nil {
			return err
		}
		h, err := ondisk.DecodeLogRecHeader(hdrs)
		if err == nil {
			err = h.Verify(l.G.V2, hsize)
		}
		if err != nil {
			return &RecordError{Block: blk, Err: ondisk.SetLocation(err, ondisk.NoAG, l.G.StartDaddr+blk)}
		}
		bblks := h.DataBBs()
		raw, err := l.readWrapped(blk+int64(hblks), bblks)
		if err != nil {
			return err
		}
		data := raw[:h.Len]
		r := &Record{Block: blk, Header: h, HBlks: hblks, Hdrs: hdrs, Data: data,
			Wrapped: blk+int64(hblks+bblks) > l.G.BBs}
		r.CRCStored, r.CRCComputed, r.CRCOK, err = ondisk.CheckLogRecCRC(hdrs, data)
		if err != nil {
			return &RecordError{Block: blk, Err: ondisk.SetLocation(err, ondisk.NoAG, l.G.StartDaddr+blk)}
		}
		if unpack {
			if err := ondisk.LogUnpackData(hdrs, data); err != nil {
				return &RecordError{Block: blk, Err: ondisk.SetLocation(err, ondisk.NoAG, l.G.StartDaddr+blk)}
			}
		}
		if err := fn(r); err != nil {
			return err
		}
		pos += int64(hblks + bblks)
	}
	return nil
}
