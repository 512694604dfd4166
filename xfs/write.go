package xfs

// The writable open path: a clean internal log, a journal session,
// transactions, and Finish (superblock counters, checkpoint, unmount
// record).

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/xfsfree/xfsfree/agi"
	"github.com/xfsfree/xfsfree/alloc"
	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/journal"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Errors of the write path.
var (
	// ErrDirtyLog refuses to write to a filesystem whose log needs
	// recovery.
	ErrDirtyLog = errors.New("the log is dirty (the filesystem was not cleanly unmounted, or is a snapshot of a live one): " +
		"run 'xfsfree recover' or mount and unmount the filesystem to replay it first")
	// ErrExternalLog refuses to write to a filesystem with an external log.
	ErrExternalLog = errors.New("the filesystem has an external log (sb_logstart 0): xfsfree writes only filesystems with an internal log")
	// ErrNotWritable is returned by the write methods of a filesystem not
	// opened with OpenWrite (or already finished).
	ErrNotWritable = errors.New("filesystem not opened for writing (or already finished)")
)

// OpenWrite opens the device or image at path read-write, as Open does,
// finds the log's head and tail, and refuses a dirty log (ErrDirtyLog,
// pointing at 'xfsfree recover') and an external log (ErrExternalLog).
// Changes go through transactions (Begin); Finish makes the filesystem
// clean. Crash injection: Options.WriteHook (CrashHook), or a hook set on
// fs.Dev right after OpenWrite returns (nothing is written before the
// first commit).
func OpenWrite(path string, o Options) (*FS, error) {
	o.ReadOnly = false
	fs, err := Open(path, o)
	if err != nil {
		return nil, err
	}
	if err := fs.startLog(); err != nil {
		fs.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return fs, nil
}

// openContinuing opens path for writing on a log whose replay is written
// but which is still dirty (journal.RecoverReport.LeftDirty): the session
// continues the log at its head, st being what FindTail found before the
// replay, with the tail held at hold (the oldest intent not yet finished).
func openContinuing(path string, o Options, st *journal.State, hold ondisk.LSN) (*FS, error) {
	o.ReadOnly = false
	fs, err := Open(path, o)
	if err != nil {
		return nil, err
	}
	lg, err := journal.NewGeometry(fs.G)
	if err == nil && lg.External {
		err = ErrExternalLog
	}
	var w *journal.Writer
	if err == nil {
		w, err = journal.ContinueWriter(fs.Dev, lg, st)
	}
	if err != nil {
		fs.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	fs.log = journal.NewSession(w, fs.Cache, fs.G)
	fs.log.HoldTail(hold)
	return fs, nil
}

func (fs *FS) startLog() error {
	lg, err := journal.NewGeometry(fs.G)
	if err != nil {
		return err
	}
	if lg.External {
		return ErrExternalLog
	}
	st, err := journal.New(fs.Dev, lg).FindTail()
	if err != nil {
		return fmt.Errorf("finding the log head and tail: %w", err)
	}
	if !st.Clean {
		return fmt.Errorf("%w (log %v)", ErrDirtyLog, st)
	}
	w, err := journal.NewWriter(fs.Dev, lg, st)
	if err != nil {
		return err
	}
	fs.log = journal.NewSession(w, fs.Cache, fs.G)
	return nil
}

// Log returns the journal session of a filesystem opened with OpenWrite
// (nil otherwise).
func (fs *FS) Log() *journal.Session { return fs.log }

// Begin starts a transaction. The filesystem must have been opened with
// OpenWrite.
func (fs *FS) Begin() *journal.Transaction {
	if fs.log == nil {
		panic("xfs: Begin on a filesystem not opened with OpenWrite")
	}
	return fs.log.Begin()
}

// Checkpoint writes the committed buffers in place and moves the log tail.
func (fs *FS) Checkpoint() error {
	if fs.log == nil {
		return ErrNotWritable
	}
	return fs.log.Checkpoint()
}

// SBCounters are the superblock summary counters.
type SBCounters struct {
	ICount, IFree, FDBlocks uint64
}

// SummaryCounters recomputes the superblock summary counters from the AG
// headers, as the kernel's xfs_initialize_perag_data does: icount = Σ
// agi_count, ifree = Σ agi_freecount, fdblocks = Σ (agf_freeblks +
// agf_flcount + agf_btreeblks).
func (fs *FS) SummaryCounters() (SBCounters, error) {
	var c SBCounters
	g := fs.G
	for agno := uint32(0); agno < g.AGCount; agno++ {
		ai, err := agi.Read(fs.Cache, g, agno)
		if err != nil {
			return c, err
		}
		af, err := alloc.ReadAGF(fs.Cache, g, agno)
		if err != nil {
			return c, err
		}
		c.ICount += uint64(ai.Count)
		c.IFree += uint64(ai.FreeCount)
		c.FDBlocks += uint64(af.FreeBlks) + uint64(af.FLCount) + uint64(af.BtreeBlks)
	}
	w := ondisk.Where{AG: ondisk.NoAG, Daddr: -1}
	if c.FDBlocks > fs.SB.DBlocks {
		return c, w.Corrupt("AG headers", "sum of agf_freeblks+agf_flcount+agf_btreeblks", c.FDBlocks, nil, fmt.Sprintf("exceeds sb_dblocks %d", fs.SB.DBlocks))
	}
	if c.IFree > c.ICount {
		return c, w.Corrupt("AG headers", "sum of agi_freecount", c.IFree, nil, fmt.Sprintf("exceeds the sum of agi_count %d", c.ICount))
	}
	return c, nil
}

// readSB joins the primary superblock to tx.
func (fs *FS) readSB(tx *journal.Transaction) (*cache.Buf, error) {
	return tx.ReadBuf(ondisk.SBDaddr, fs.G.SectBBs(), ondisk.KindSB, ondisk.VerifyCtx{G: fs.G, AG: 0, Daddr: ondisk.SBDaddr})
}

// Finish ends a writing session: it logs the superblock with summary
// counters recomputed from the AG headers (the whole superblock sector, in
// one transaction), checkpoints, and writes the unmount record, so that the
// log is clean and the kernel mounts the filesystem without recovery. No
// transaction may be open. The filesystem can only be closed afterwards.
//
// The log is closed whatever else fails: if the counters cannot be
// recomputed (an AG header that cannot be read), the superblock keeps its
// counters and Finish returns a *CountersError after closing the log
// cleanly (xfs_repair fixes counters; nothing else is left to do). Only an
// I/O error that stopped the session leaves the log dirty — and then
// replayable, by xfsfree recover or the kernel.
func (fs *FS) Finish() error {
	if fs.log == nil {
		return ErrNotWritable
	}
	// SBCounters from AG headers as they are now in the cache: committed
	// changes included.
	c, cerr := fs.SummaryCounters()
	if cerr == nil {
		if err := fs.logCounters(c); err != nil {
			cerr = err
		}
	}
	if err := fs.log.Close(); err != nil {
		if cerr != nil {
			return errors.Join(cerr, err) // the first failure, then what it stopped
		}
		return err
	}
	fs.log = nil
	if cerr != nil {
		return &CountersError{Err: cerr}
	}
	return nil
}

// CountersError says that Finish closed the log cleanly but could not
// rebuild the superblock's summary counters. This struct does not
// represent an on-disk struct.
type CountersError struct{ Err error }

func (e *CountersError) Error() string {
	return fmt.Sprintf("the log is clean, but the superblock's summary counters were not rebuilt (xfs_repair will fix them): %v", e.Err)
}

func (e *CountersError) Unwrap() error { return e.Err }

// logCounters sets the superblock summary counters in one transaction.
func (fs *FS) logCounters(c SBCounters) error {
	tx := fs.Begin()
	b, err := fs.readSB(tx)
	if err != nil {
		tx.Cancel()
		return err
	}
	ondisk.SBICount.Set(b.Data, c.ICount)
	ondisk.SBIFree.Set(b.Data, c.IFree)
	ondisk.SBFDBlocks.Set(b.Data, c.FDBlocks)
	tx.LogRange(b, 0, len(b.Data)-1) // the whole sector, as xfs_log_sb logs the whole superblock
	if _, err := tx.Commit(); err != nil {
		tx.Cancel()
		return err
	}
	fs.SB.ICount, fs.SB.IFree, fs.SB.FDBlocks = c.ICount, c.IFree, c.FDBlocks
	return nil
}

// SetLabel sets the filesystem label (sb_fname) in one transaction, and
// makes it durable (a checkpoint of its own) before it returns: a change
// neither the kernel nor xfs_repair depends on, for tests of the journal.
// It returns the checkpoint's sequence number. Labels longer than 12
// bytes are refused.
func (fs *FS) SetLabel(label string) (uint64, error) {
	if fs.log == nil {
		return 0, ErrNotWritable
	}
	fname := ondisk.SBFName.Field()
	if len(label) > fname.Size {
		return 0, fmt.Errorf("label %q is longer than %d bytes", label, fname.Size)
	}
	tx := fs.Begin()
	b, err := fs.readSB(tx)
	if err != nil {
		tx.Cancel()
		return 0, err
	}
	f := fname.Bytes(b.Data)
	clear(f)
	copy(f, label)
	ondisk.LogFields(tx, b, ondisk.SBFName)
	seq, err := tx.Commit()
	if err != nil {
		tx.Cancel()
		return 0, err
	}
	if err := fs.log.ForceSeq(seq); err != nil {
		return 0, err
	}
	clear(fs.SB.FName[:])
	copy(fs.SB.FName[:], label)
	return seq, nil
}

// ErrCrashed is what a crash hook's dropped writes look like to a Go test
// that has no exit function: the device refuses every write after the crash
// point.
var ErrCrashed = errors.New("injected crash: device writes stopped")

// CrashHook returns a device write hook that simulates a power cut, for
// crash-injection tests. Writes are counted from 1. With after >= 0, writes
// 1..after reach the device and the power fails at the next one: it and
// every later write are dropped. With tear > 0, the power fails during
// write number tear: only its first half of sectors (rounded down) reaches
// the device, written directly to dev's path, and every later write is
// dropped. When the power fails, crash is called (the CLI exits there); if
// it returns, the failing write and every later one return ErrCrashed.
func CrashHook(dev *cache.Device, after, tear int, crash func()) cache.WriteHook {
	var mu sync.Mutex
	n := 0
	crashed := false
	return func(daddr int64, b []byte) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		if crashed {
			return false, ErrCrashed
		}
		n++
		switch {
		case tear > 0 && n == tear:
			crashed = true
			if keep := len(b) / cache.BBSize / 2 * cache.BBSize; keep > 0 {
				if err := writeDirect(dev.Path(), daddr, b[:keep]); err != nil {
					return false, fmt.Errorf("tearing the write at daddr %d: %w", daddr, err)
				}
			}
		case after >= 0 && n > after:
			crashed = true
		default:
			return true, nil
		}
		if crash != nil {
			crash()
		}
		return false, ErrCrashed
	}
}

// writeDirect writes b at daddr of the file or device at path through a
// file descriptor of its own, and syncs it.
func writeDirect(path string, daddr int64, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(b, daddr*cache.BBSize); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
