package xfs

// The check before the first write: a writing run reads and verifies, up
// front, everything it will need that can be checked without changing
// anything — every AG header and btree (as Check does) and the superblock
// counters Finish will rebuild from them — and refuses to write at all if
// anything is wrong. A run that finds nothing wrong can still meet a
// corrupt block later (an inode cluster, a block no btree walk reaches);
// that change is cancelled and the run ends cleanly (Finish), so an image
// plain xfs_repair could fix before xfsfree touched it stays fixable.

import (
	"fmt"
	"strings"
)

// PreflightError refuses a writing run before anything is written: Check
// found problems. This struct does not represent an on-disk struct.
type PreflightError struct {
	Problems []CheckProblem
}

func (e *PreflightError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "refusing to write: the filesystem is inconsistent (%d problem(s)", len(e.Problems))
	for i, p := range e.Problems {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Problems)-i)
			break
		}
		b.WriteString("; ")
		b.WriteString(p.Message)
	}
	b.WriteString("); nothing was written: repair it first (xfs_repair), 'xfsfree check' lists every problem")
	return b.String()
}

// Preflight verifies what a writing run relies on, writing nothing: every
// AG's headers and btrees (Check's problems; its warnings about lazy or
// lagging superblock counters are not problems) and the summary counters
// Finish recomputes from the AG headers. It returns a *PreflightError
// listing the problems, or another error if the checks could not run.
func (fs *FS) Preflight() error {
	r, err := fs.Check(nil)
	if err != nil {
		return err
	}
	probs := r.Problems
	if len(probs) == 0 {
		if _, err := fs.SummaryCounters(); err != nil {
			probs = append(probs, problem(0, -1, err))
		}
	}
	if len(probs) > 0 {
		return &PreflightError{Problems: probs}
	}
	return nil
}
