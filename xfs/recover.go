package xfs

import (
	"errors"
	"fmt"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/journal"
)

// RecoverOptions configure Recover.
type RecoverOptions struct {
	// DryRun replays in memory and reports; nothing is written.
	DryRun bool
	// Buffered uses buffered I/O instead of O_DIRECT.
	Buffered bool
	// Stop, if closed before recovery writes, ends it with
	// journal.ErrInterrupted, nothing written.
	Stop <-chan struct{}
	// Offset and Size restrict the device to a partition (see Options).
	Offset, Size int64

	// For the crash tests: a device write hook for every handle the run
	// opens, every transaction finishing an intent its own checkpoint
	// (journal SyncCommits), and a function called after each intent.
	writeHook   func(*cache.Device) cache.WriteHook
	syncCommits bool
	afterIntent func(fs *FS)
}

// RecoverReport is what `xfsfree recover` prints.
type RecoverReport struct {
	Device string `json:"device"`
	*journal.RecoverReport
	// Intents is what finishing the intents the replay left pending did
	// (nil: none were pending).
	Intents *IntentsReport `json:"intents,omitempty"`
	// Orphans is the number of inodes on the AGI unlinked lists after
	// recovery: left for 'xfsfree free --orphans' (the kernel frees them at
	// mount; recover does not).
	Orphans int    `json:"orphans"`
	Note    string `json:"note,omitempty"`
}

// OrphansNote says what recover leaves to free.
const OrphansNote = "orphaned inodes on the AGI unlinked lists are left in place: run 'xfsfree free --orphans' " +
	"to free them (a kernel mount would free them too)"

// Recover opens the device or image at path for writing (refusing one that
// is mounted) and replays its log as the kernel's log recovery does,
// finishes the intents it leaves pending in logged transactions, then
// writes the superblock counters and an unmount record. A clean log is
// reported and nothing is written. A log holding items xfsfree does not
// replay, or intents it cannot finish, is refused with nothing written
// (the report says what it holds).
func Recover(path string, o RecoverOptions) (*RecoverReport, error) {
	opts := Options{ReadOnly: o.DryRun, Buffered: o.Buffered, Offset: o.Offset, Size: o.Size, WriteHook: o.writeHook}
	jr, err := recoverAndFinish(path, opts, o, nil)
	if jr == nil {
		return nil, err
	}
	rep := &RecoverReport{Device: path, RecoverReport: jr.RecoverReport, Intents: jr.intents}
	if err != nil {
		return rep, fmt.Errorf("%s: %w", path, err)
	}
	if jr.CountersNotRebuilt != "" {
		// The log is replayed and clean; the filesystem is corrupt.
		what := "the log was replayed and is clean"
		if o.DryRun {
			what = "dry run: the log would be replayed and left clean"
		}
		return rep, fmt.Errorf("%s: %s, but an AG header is corrupt (summary counters not rebuilt): run xfs_repair: %s", path, what, jr.CountersNotRebuilt)
	}
	if jr.Clean || o.DryRun {
		return rep, nil
	}
	// Count what is left on the unlinked lists, reading the device afresh
	// (the handle's cache holds headers from before recovery).
	n, err := countOrphans(path, Options{ReadOnly: true, Buffered: o.Buffered, Offset: o.Offset, Size: o.Size})
	if err != nil {
		return rep, err
	}
	rep.Orphans = n
	if n > 0 {
		rep.Note = OrphansNote
	}
	return rep, nil
}

// recovery is a log's recovery: the journal's report and, when it left
// intents pending, what finishing them did.
type recovery struct {
	*journal.RecoverReport
	intents *IntentsReport
}

// recoverAndFinish replays path's log (if dirty) and finishes the intents
// it leaves pending. With then set, the session that finished them stays
// open for then (clean's next phases), which must end it (Finish);
// otherwise it is finished here. A clean log writes nothing.
func recoverAndFinish(path string, opts Options, o RecoverOptions, then func(fs *FS) error) (*recovery, error) {
	fs, err := Open(path, opts)
	if err != nil {
		return nil, err
	}
	jr, st, err := recoverLog(fs, o)
	fs.Close()
	if jr == nil {
		return nil, err
	}
	r := &recovery{RecoverReport: jr}
	if err == nil && jr.DryRun && len(jr.PendingIntents) > 0 {
		// What a real run would finish.
		r.intents = newIntentsReport(jr.PendingIntents)
	}
	if err != nil || !jr.LeftDirty {
		return r, err
	}
	// Intents pending: finished in a session that continues the log, the
	// tail held at the oldest of them until their done items are durable.
	fs, err = openContinuing(path, opts, st, jr.PendingIntents[0].LSN)
	if err != nil {
		return r, err
	}
	defer fs.Close()
	fs.log.SyncCommits = o.syncCommits
	fs.afterIntent = o.afterIntent
	r.intents, err = fs.finishIntents(jr.PendingIntents, jr.IntentIDs)
	if err != nil {
		// The intents finished are made durable; the log stays dirty,
		// its tail at the oldest intent, so that the kernel's recovery
		// (or xfsfree again) replays it and finishes the rest. No
		// unmount record: that would drop them.
		if ferr := fs.log.Force(); ferr != nil {
			err = errors.Join(err, ferr)
		}
		fs.log = nil
		return r, err
	}
	err = fs.log.Force()
	fs.log.ReleaseTail()
	if err == nil && then != nil {
		return r, then(fs)
	}
	return r, errors.Join(err, fs.Finish())
}

// recoverLog finds the log's head and tail and replays it; intents left
// pending that xfsfree can finish are left to the caller (LeftDirty).
func recoverLog(fs *FS, o RecoverOptions) (*journal.RecoverReport, *journal.State, error) {
	lg, err := journal.NewGeometry(fs.G)
	if err != nil {
		return nil, nil, err
	}
	if lg.External {
		return nil, nil, fmt.Errorf("the log is external: recovering it is not supported (mount the filesystem with its log device)")
	}
	st, err := journal.New(fs.Dev, lg).FindTail()
	if err != nil {
		return nil, nil, fmt.Errorf("finding the log head and tail: %w", err)
	}
	jr, err := journal.Recover(fs.Dev, fs.G, lg, st, journal.RecoverOptions{DryRun: o.DryRun, Stop: o.Stop, CanFinish: canFinishIntents})
	return jr, st, err
}

// countOrphans counts the inodes on every AGI unlinked list of the image.
func countOrphans(path string, o Options) (int, error) {
	fs, err := Open(path, o)
	if err != nil {
		return 0, err
	}
	defer fs.Close()
	rep, err := fs.Scan(nil)
	if err != nil {
		return 0, err
	}
	return rep.Orphans, nil
}
