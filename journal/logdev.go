package journal

import (
	"fmt"
	"io"

	"github.com/xfsfree/xfsfree/ondisk"
)

// LogDev is what the journal reads the log from: the data device for an
// internal log (cache.Device satisfies it), or an external log device.
// daddr is a 512-byte block number on that device.
type LogDev interface {
	ReadAt(daddr int64, nBB int) ([]byte, error)
}

// ReaderAtDev adapts an io.ReaderAt (an *os.File of an image) to LogDev.
type ReaderAtDev struct{ R io.ReaderAt }

// ReadAt reads nBB BBs at daddr.
func (d ReaderAtDev) ReadAt(daddr int64, nBB int) ([]byte, error) {
	b := make([]byte, nBB*ondisk.BBSize)
	n, err := d.R.ReadAt(b, daddr*ondisk.BBSize)
	if n == len(b) {
		return b, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("journal: read %d BBs at daddr %d: %w", nBB, daddr, err)
}

// Geometry is the shape of the log, derived from the superblock the way
// xlog_alloc_log and xfs_finish_flags derive it. This struct does not
// represent an on-disk struct.
type Geometry struct {
	StartDaddr int64    // daddr of log block 0 on the log device (l_logBBstart)
	BBs        int64    // log size in BBs (l_logBBsize)
	External   bool     // sb_logstart is 0: the log is on its own device, starting at daddr 0
	SectBBs    int      // log sector size in BBs (l_sectBBsize): I/O is rounded to it
	SUnit      uint32   // sb_logsunit in bytes (0 or 1: none)
	RoundOff   int      // record round-off in bytes: sunit on v2 logs with a sunit, else 512
	V2         bool     // log version 2 (always on v5)
	HSize      int      // iclog size the kernel uses by default: max(32 KiB, sunit) (m_logbsize)
	HBlks      int      // header blocks of a record of HSize
	UUID       [16]byte // sb_uuid: what h_fs_uuid must hold
}

// Minimum log size accepted, in BBs (XFS_MIN_LOG_BLOCKS at 512-byte blocks);
// smaller values can only come from a corrupt superblock.
const minLogBBs = 512

// NewGeometry derives the log geometry from the filesystem geometry.
func NewGeometry(g *ondisk.Geometry) (Geometry, error) {
	sb := g.SB
	lg := Geometry{
		StartDaddr: g.LogStartDaddr,
		BBs:        g.LogBBs,
		External:   sb.LogStart == 0,
		SUnit:      sb.LogSUnit,
		V2:         sb.HasLogV2(),
		UUID:       sb.UUID,
		SectBBs:    1,
	}
	if sb.HasSectorBit() && sb.LogSectLog > ondisk.BBShift {
		if sb.LogSectLog > 15 {
			return Geometry{}, ondisk.Where{AG: 0, Daddr: 0}.Corrupt("superblock", "sb_logsectlog", sb.LogSectLog, nil, "is larger than 32 KiB")
		}
		lg.SectBBs = 1 << (sb.LogSectLog - ondisk.BBShift)
	}
	lg.RoundOff = ondisk.BBSize
	if lg.V2 && sb.LogSUnit > 1 {
		if sb.LogSUnit%ondisk.BBSize != 0 || sb.LogSUnit > ondisk.LogMaxRecordBSize {
			return Geometry{}, ondisk.Where{AG: 0, Daddr: 0}.Corrupt("superblock", "sb_logsunit", sb.LogSUnit, nil, "is not a multiple of 512 up to 256 KiB")
		}
		lg.RoundOff = int(sb.LogSUnit)
	}
	lg.HSize = ondisk.LogBigRecordBSize
	if lg.V2 && int(sb.LogSUnit) > lg.HSize {
		lg.HSize = int(sb.LogSUnit)
	}
	lg.HBlks = ondisk.LogHBlks(uint32(lg.HSize), ondisk.LogVersion2, lg.V2)
	if lg.BBs < minLogBBs || lg.BBs > 1<<31-1 || lg.BBs%int64(lg.SectBBs) != 0 {
		return Geometry{}, ondisk.Where{AG: 0, Daddr: 0}.Corrupt("superblock", "sb_logblocks", sb.LogBlocks, nil,
			fmt.Sprintf("gives a log of %d BBs", lg.BBs))
	}
	return lg, nil
}

// recShift is XLOG_REC_SHIFT in BBs: the largest record.
func (lg *Geometry) recShift() int64 {
	if lg.V2 {
		return ondisk.LogMaxRecordBSize / ondisk.BBSize
	}
	return ondisk.LogBigRecordBSize / ondisk.BBSize
}

// totalRecShift is XLOG_TOTAL_REC_SHIFT in BBs: all in-core logs' worth.
func (lg *Geometry) totalRecShift() int64 { return ondisk.LogMaxIclogs * lg.recShift() }

// Log reads one log. Methods are not safe for concurrent use.
type Log struct {
	dev LogDev
	G   Geometry

	win      []byte // read window cache
	winStart int64  // log block of win[0]
}

// winBBs is the size of the read window used for single-block reads: the
// head and tail searches read backwards one block at a time.
const winBBs = 128

// New returns a reader of the log described by g on dev.
func New(dev LogDev, g Geometry) *Log { return &Log{dev: dev, G: g, winStart: -1} }

// read returns n blocks starting at log block blk, which must not cross the
// log end. Reads are rounded to log sectors, as xlog_bread does.
func (l *Log) read(blk int64, n int) ([]byte, error) {
	if n <= 0 {
		return nil, nil
	}
	if blk < 0 || blk+int64(n) > l.G.BBs {
		return nil, fmt.Errorf("journal: read of log blocks %d..%d outside the log (%d BBs)", blk, blk+int64(n)-1, l.G.BBs)
	}
	if l.win != nil && blk >= l.winStart && blk+int64(n) <= l.winStart+int64(len(l.win)/ondisk.BBSize) {
		off := (blk - l.winStart) * ondisk.BBSize
		return l.win[off : off+int64(n)*ondisk.BBSize], nil
	}
	sect := int64(l.G.SectBBs)
	if n < winBBs/2 {
		// Small reads fill an aligned window around blk.
		start := blk &^ (winBBs - 1)
		end := min(start+winBBs, l.G.BBs)
		if blk+int64(n) <= end {
			b, err := l.rawRead(start, int(end-start))
			if err != nil {
				return nil, err
			}
			l.win, l.winStart = b, start
			off := (blk - start) * ondisk.BBSize
			return b[off : off+int64(n)*ondisk.BBSize], nil
		}
	}
	start := blk / sect * sect
	end := (blk + int64(n) + sect - 1) / sect * sect
	b, err := l.rawRead(start, int(end-start))
	if err != nil {
		return nil, err
	}
	off := (blk - start) * ondisk.BBSize
	return b[off : off+int64(n)*ondisk.BBSize], nil
}

func (l *Log) rawRead(blk int64, n int) ([]byte, error) {
	b, err := l.dev.ReadAt(l.G.StartDaddr+blk, n)
	if err != nil {
		return nil, fmt.Errorf("journal: reading log blocks %d..%d (daddr %d): %w", blk, blk+int64(n)-1, l.G.StartDaddr+blk, err)
	}
	if len(b) < n*ondisk.BBSize {
		return nil, fmt.Errorf("journal: short read of log blocks %d..%d", blk, blk+int64(n)-1)
	}
	return b, nil
}

// readWrapped returns n blocks starting at log block blk (taken modulo the
// log size), continuing at block 0 when they cross the end. The result is a
// fresh copy.
func (l *Log) readWrapped(blk int64, n int) ([]byte, error) {
	blk = l.wrap(blk)
	out := make([]byte, 0, n*ondisk.BBSize)
	for n > 0 {
		c := int(min(int64(n), l.G.BBs-blk))
		b, err := l.read(blk, c)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
		n -= c
		blk = 0
	}
	return out, nil
}

// wrap is xlog_wrap_logbno.
func (l *Log) wrap(blk int64) int64 {
	blk %= l.G.BBs
	if blk < 0 {
		blk += l.G.BBs
	}
	return blk
}

// cycleOf is xlog_get_cycle of log block blk.
func (l *Log) cycleOf(blk int64) (uint32, error) {
	b, err := l.read(blk, 1)
	if err != nil {
		return 0, err
	}
	return ondisk.LogCycle(b), nil
}

// isHeader reports whether log block blk starts with the record magic.
func (l *Log) isHeader(blk int64) (bool, []byte, error) {
	b, err := l.read(blk, 1)
	if err != nil {
		return false, nil, err
	}
	return ondisk.IsLogRecHeader(b), b, nil
}

// corrupt builds a CorruptError located at log block blk.
func (l *Log) corrupt(blk int64, st, field string, found, want any, msg string) *ondisk.CorruptError {
	return ondisk.Where{AG: ondisk.NoAG, Daddr: l.G.StartDaddr + blk}.Corrupt(st, field, found, want, fmt.Sprintf("(log block %d)%s", blk, prefixSpace(msg)))
}

func prefixSpace(s string) string {
	if s == "" {
		return ""
	}
	return " " + s
}
