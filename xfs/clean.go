package xfs

// Clean: what a kernel mount and unmount do to a filesystem that was not
// cleanly unmounted, offline (xfs_mountfs → xfs_log_mount: the log
// replayed; xlog_recover_finish: the pending intents finished, the orphans
// freed (xlog_recover_process_iunlinks), the CoW staging leftovers freed
// (xfs_reflink_recover_cow) — the last only after a dirty log, as the
// kernel; then the unmount: the summary counters and an unmount record).
// The phases after the replay share one writing session, ended once by
// Finish; the image then mounts without recovery.

import (
	"errors"
	"fmt"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// CleanOptions configure Clean.
type CleanOptions struct {
	// DryRun writes nothing: the log is replayed in memory (its report
	// says what recovery would do), and the free and CoW phases plan on
	// the metadata as it is on disk, which the log's replay would change.
	DryRun bool
	// Buffered uses buffered I/O instead of O_DIRECT.
	Buffered bool
	// Offset and Size restrict the device to a partition (see Options).
	Offset, Size int64
	// Workers is the number of AGs freed at once (0: 8).
	Workers int
	// Stop, if closed, ends the run at the next transaction boundary
	// (before recovery writes: with nothing written), cleanly.
	Stop <-chan struct{}
	// Progress, if set, is called with the phase ("free", "cow") and its
	// progress.
	Progress func(phase string, done, total int)
	// Keep lists orphans not to free, with the reason (those whose bytes
	// could not be saved first).
	Keep map[uint64]string
	// CheckpointBytes is the log checkpoint size of the free phase (0:
	// the journal's default).
	CheckpointBytes int64
	// ListInodes bounds the freed inodes the free report lists (0: every
	// one; negative: none; see FreeOptions).
	ListInodes int
	// BeforeFree, if set, is called with the filesystem as the log's
	// recovery left it, before the free phase (to save the orphans'
	// bytes): it returns the orphans not to free, with the reason. An
	// error ends the run (cleanly: what recovery committed is kept).
	BeforeFree func(fs *FS) (keep map[uint64]string, err error)
}

// CleanIO is the I/O of every handle a clean run opened. This struct does
// not represent an on-disk struct.
type CleanIO struct {
	Device cache.DeviceStats
	Cache  cache.CacheStats
}

// CleanReport is what Clean did (or would do), phase by phase; a phase
// that did not run is nil. This struct does not represent an on-disk
// struct.
type CleanReport struct {
	Device string `json:"device"`
	// Recover is the log's recovery (intents included); nil if the log
	// was clean.
	Recover *RecoverReport `json:"recover,omitempty"`
	// Free is the freeing of the orphans.
	Free *FreeReport `json:"free,omitempty"`
	// Cow is the freeing of the CoW staging leftovers, done only after a
	// dirty log (as the kernel's mount does).
	Cow *CowReport `json:"cow,omitempty"`
	// IO sums the device and cache counters of the run's handles.
	IO CleanIO `json:"-"`
}

// Clean does to the filesystem at path what a kernel mount and unmount
// do (see the file comment). A clean log is left alone (no replay, no CoW
// recovery, as the kernel); the orphans are freed either way. Refusals
// before the first write leave the device untouched; whatever fails later,
// the run ends at a transaction boundary with the log clean (or, after an
// I/O error, dirty and replayable).
func Clean(path string, o CleanOptions) (*CleanReport, error) {
	rep := &CleanReport{Device: path}
	opts := Options{ReadOnly: o.DryRun, Buffered: o.Buffered, Offset: o.Offset, Size: o.Size, Workers: o.Workers,
		onClose: func(d cache.DeviceStats, c cache.CacheStats) { rep.IO.add(d, c) }}
	progress := func(phase string) func(done, total int) {
		if o.Progress == nil {
			return nil
		}
		return func(done, total int) { o.Progress(phase, done, total) }
	}
	dirty := false
	var endSession func(fs *FS, dryRun bool, err error) error
	var phases func(fs *FS) error
	phases = func(fs *FS) error {
		// The orphans, then (after a dirty log) the CoW leftovers, in
		// one session; Finish once (endSession: the quota flags cleared
		// if anything was freed; nothing written if nothing committed).
		keep := o.Keep
		if o.BeforeFree != nil {
			k, err := o.BeforeFree(fs)
			if err != nil {
				return endSession(fs, o.DryRun, err)
			}
			keep = mergeKeep(keep, k)
		}
		free, err := fs.Free(FreeOptions{Orphans: true, DryRun: o.DryRun, Keep: keep, Stop: o.Stop,
			Progress: progress("free"), CheckpointBytes: o.CheckpointBytes, ListInodes: o.ListInodes, noFinish: true})
		rep.Free = free
		if err != nil && !errors.Is(err, ErrNothingToFree) {
			return endSession(fs, o.DryRun, err)
		}
		if dirty && !stopped(o.Stop) {
			cow, err := fs.FreeCowLeftovers(CowOptions{DryRun: o.DryRun, Stop: o.Stop, Progress: progress("cow"), noFinish: true})
			rep.Cow = cow
			if err != nil {
				return endSession(fs, o.DryRun, err)
			}
		}
		if o.DryRun {
			return nil
		}
		return endSession(fs, false, nil)
	}
	endSession = func(fs *FS, dryRun bool, err error) error {
		if dryRun || fs.log == nil {
			return err
		}
		if fs.log.Stats().Commits == 0 && fs.log.Err() == nil {
			fs.log = nil // nothing committed: nothing written
			return err
		}
		var qerr error
		if fs.SB.QFlags&ondisk.QFlagAllChkd != 0 && rep.Free != nil && rep.Free.InodesFreed > 0 && fs.log.Err() == nil {
			if qerr = fs.clearQuotaChecked(); qerr == nil {
				rep.Free.QuotaNote = quotaClearedNote
			}
		}
		session := fs.log
		ferr := fs.Finish()
		if rep.Free != nil {
			// The session's, shared with the CoW phase (and the intents').
			rep.Free.Journal = session.Stats()
			rep.Free.LogBytes = rep.Free.Journal.LogBytes
		}
		after := Counters{ICount: fs.SB.ICount, IFree: fs.SB.IFree, FDBlocks: fs.SB.FDBlocks}
		if rep.Free != nil {
			rep.Free.After = after
		}
		if rep.Cow != nil {
			rep.Cow.After = after
		}
		return errors.Join(err, qerr, ferr)
	}

	// The log: replayed if dirty, its pending intents finished; that
	// session, if any, goes on into the next phases.
	fs, err := Open(path, opts)
	if err != nil {
		return nil, err
	}
	st, err := fs.LogState()
	fs.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: finding the log head and tail: %w", path, err)
	}
	if st != nil && !st.Clean {
		dirty = true
		ran := false
		r, err := recoverAndFinish(path, opts, RecoverOptions{DryRun: o.DryRun, Stop: o.Stop}, func(fs *FS) error {
			ran = true
			return phases(fs)
		})
		if r != nil {
			rep.Recover = &RecoverReport{Device: path, RecoverReport: r.RecoverReport, Intents: r.intents}
		}
		if err != nil || ran {
			return rep, err
		}
		if r.CountersNotRebuilt != "" {
			return rep, fmt.Errorf("%s: the log was replayed, but an AG header is corrupt (summary counters not rebuilt): run xfs_repair: %s", path, r.CountersNotRebuilt)
		}
	}
	// A clean log (or one recovery closed): a new session.
	if o.DryRun {
		fs, err = Open(path, opts)
	} else {
		fs, err = OpenWrite(path, opts)
	}
	if err != nil {
		return rep, err
	}
	defer fs.Close()
	return rep, phases(fs)
}

// mergeKeep is the union of two lists of orphans not to free.
func mergeKeep(a, b map[uint64]string) map[uint64]string {
	if len(b) == 0 {
		return a
	}
	out := make(map[uint64]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// add sums one handle's counters.
func (io *CleanIO) add(d cache.DeviceStats, c cache.CacheStats) {
	io.Device.Reads += d.Reads
	io.Device.Writes += d.Writes
	io.Device.BytesRead += d.BytesRead
	io.Device.BytesWritten += d.BytesWritten
	io.Device.Syncs += d.Syncs
	io.Cache.Hits += c.Hits
	io.Cache.Misses += c.Misses
	io.Cache.ReadAheads += c.ReadAheads
	io.Cache.PeakBytes = max(io.Cache.PeakBytes, c.PeakBytes)
}
