package xfs

import (
	"fmt"

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
}

// RecoverReport is what `xfsfree recover` prints.
type RecoverReport struct {
	Device string `json:"device"`
	*journal.RecoverReport
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
// is mounted) and replays its log as the kernel's log recovery does, then
// writes the superblock counters and an unmount record. A clean log is
// reported and nothing is written. A log holding items xfsfree does not
// replay, or intents without their done items (journal.PendingIntentsError),
// is refused, nothing written.
func Recover(path string, o RecoverOptions) (*RecoverReport, error) {
	fs, err := Open(path, Options{ReadOnly: o.DryRun, Buffered: o.Buffered, Offset: o.Offset, Size: o.Size})
	if err != nil {
		return nil, err
	}
	jr, err := recoverLog(fs, o)
	fs.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rep := &RecoverReport{Device: path, RecoverReport: jr}
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

// recoverLog finds the log's head and tail and replays it.
func recoverLog(fs *FS, o RecoverOptions) (*journal.RecoverReport, error) {
	lg, err := journal.NewGeometry(fs.G)
	if err != nil {
		return nil, err
	}
	if lg.External {
		return nil, fmt.Errorf("the log is external: recovering it is not supported (mount the filesystem with its log device)")
	}
	st, err := journal.New(fs.Dev, lg).FindTail()
	if err != nil {
		return nil, fmt.Errorf("finding the log head and tail: %w", err)
	}
	return journal.Recover(fs.Dev, fs.G, lg, st, journal.RecoverOptions{DryRun: o.DryRun, Stop: o.Stop})
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
