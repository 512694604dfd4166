package xfs

// Finishing the intents a dirty log leaves pending (xlog_recover_process_
// intents), after its replay: each in a logged transaction of its own that
// carries its done item, with the original id, and the work it stands for
// (and any follow-on work, finished in the same transaction rather than
// logged as new intents), in log order, the tail held at the oldest intent
// not yet done so that a crash meanwhile is recovered by xfsfree or the
// kernel. Only where one transaction would not fit in the log is the work
// split: a refcount intent that covers more records than fit is continued
// in a new intent (new ids, distinct from every id in the recovered part
// of the log), logged with the done item of the one it continues — as the
// kernel's xfs_refcount_continue_op does. The work itself is in
// intents_work.go.

import (
	"errors"
	"fmt"

	"github.com/xfsfree/xfsfree/journal"
	"github.com/xfsfree/xfsfree/ondisk"
)

// IntentsReport is what finishing the pending intents did. This struct
// does not represent an on-disk struct.
type IntentsReport struct {
	// Pending is the number of intents the replay left pending, ByType
	// the same by type ("extent_free_intent", "rmap_intent",
	// "refcount_intent", "bmap_intent").
	Pending int            `json:"pending"`
	ByType  map[string]int `json:"by_type"`
	// Finished is how many of them were finished, FinishedByType the same
	// by type.
	Finished       int            `json:"finished"`
	FinishedByType map[string]int `json:"finished_by_type"`
	// Continued counts the new intents logged for work split over
	// several transactions (a refcount intent too big for one).
	Continued int `json:"continued"`
	// Transactions is the number of transactions committed.
	Transactions int `json:"transactions"`
}

// newIntentsReport counts the pending intents; nothing finished yet.
func newIntentsReport(pending []journal.PendingIntent) *IntentsReport {
	r := &IntentsReport{Pending: len(pending), ByType: map[string]int{}, FinishedByType: map[string]int{}}
	for _, p := range pending {
		r.ByType[ItemName(p.Intent.Name())]++
	}
	return r
}

// UnfinishableIntentError refuses a log with a pending intent xfsfree
// cannot finish, naming it; nothing was written. This struct does not
// represent an on-disk struct.
type UnfinishableIntentError struct {
	Intent journal.PendingIntent
	Reason string
}

func (e *UnfinishableIntentError) Error() string {
	return fmt.Sprintf("pending intent %s (lsn %v): %s; nothing was written: mount the filesystem with the kernel to recover its log",
		e.Intent.Desc, e.Intent.LSN, e.Reason)
}

func (e *UnfinishableIntentError) Unwrap() error { return journal.ErrPendingIntents }

// canFinishIntents says whether finishIntents can finish every pending
// intent (nil), or why not: the log is then refused with nothing
// written. The journal has checked each record's values as the kernel's
// intent recovery does (a bad one refuses the log before this is asked);
// what is left is what xfsfree does not do: realtime extents.
func canFinishIntents(pending []journal.PendingIntent) error {
	for _, p := range pending {
		f := p.Intent
		switch f.Type {
		case ondisk.LIEFI, ondisk.LIRUI, ondisk.LICUI:
		case ondisk.LIBUI:
			if f.Maps[0].Flags&ondisk.BmapExtentRealtime != 0 {
				return &UnfinishableIntentError{Intent: p, Reason: "it maps realtime blocks, which xfsfree does not handle"}
			}
		default:
			return &UnfinishableIntentError{Intent: p, Reason: "it is not an EFI, RUI, CUI or BUI"}
		}
	}
	return nil
}

// FinishIntentsError says that finishing the pending intents stopped at
// one: those before it are finished and durable, the rest still pending in
// the log, which is left dirty for the kernel's recovery (or another
// xfsfree recover). This struct does not represent an on-disk struct.
type FinishIntentsError struct {
	Intent journal.PendingIntent
	// Finished is how many intents before it were finished, Pending how
	// many were pending in all.
	Finished, Pending int
	Err               error
}

func (e *FinishIntentsError) Error() string {
	return fmt.Sprintf("finishing pending intent %s (lsn %v): %v; %d of the %d pending intents were finished before it, "+
		"the log is left dirty with it and the rest pending: mount the filesystem with the kernel to recover it",
		e.Intent.Desc, e.Intent.LSN, e.Err, e.Finished, e.Pending)
}

func (e *FinishIntentsError) Unwrap() error { return e.Err }

// finishIntents finishes the pending intents in fs's session (opened by
// openContinuing), in log order. usedIDs are the ids of every intent in
// the recovered part of the log: new intents get others.
func (fs *FS) finishIntents(pending []journal.PendingIntent, usedIDs []uint64) (*IntentsReport, error) {
	rep := newIntentsReport(pending)
	ids := &intentIDs{used: map[uint64]bool{}}
	for _, id := range usedIDs {
		ids.used[id] = true
	}
	for _, p := range pending {
		ids.used[p.Intent.ID] = true
	}
	for _, p := range pending {
		if err := fs.finishIntent(p.Intent, ids, rep); err != nil {
			return rep, &FinishIntentsError{Intent: p, Finished: rep.Finished, Pending: rep.Pending, Err: err}
		}
		rep.Finished++
		rep.FinishedByType[ItemName(p.Intent.Name())]++
		if fs.afterIntent != nil {
			fs.afterIntent(fs)
		}
	}
	return rep, nil
}

// intentIDs hands out ids for new intents: small numbers (the kernel's
// are addresses of kernel memory), none used in the recovered log.
type intentIDs struct {
	used map[uint64]bool
	next uint64
}

func (s *intentIDs) get() uint64 {
	for {
		s.next++
		if !s.used[s.next] {
			s.used[s.next] = true
			return s.next
		}
	}
}

// finishIntent finishes one intent: one transaction with its done item
// and all its work, or, for a refcount intent too big for the log, a
// transaction with its done item, the part of its work that fits and a
// new intent for the rest, and so on.
func (fs *FS) finishIntent(intent *ondisk.IntentLog, ids *intentIDs, rep *IntentsReport) error {
	cur := intent
	budget := 0 // the refcount work's log reservation, 0: no limit
	for {
		tx := fs.Begin()
		rest, err := fs.intentWork(tx, cur, budget)
		if err != nil {
			tx.Cancel()
			return err
		}
		tx.LogItem(ondisk.DoneFor(cur).Bytes())
		if rest != nil {
			rest.ID = ids.get()
			tx.LogItem(rest.Bytes())
		}
		_, err = tx.Commit()
		if errors.Is(err, journal.ErrTransTooBig) {
			tx.Cancel()
			if budget == 0 {
				// Make room: what is committed goes in place, the log
				// tail moves up to the oldest pending intent.
				if cerr := fs.log.Checkpoint(); cerr != nil {
					return cerr
				}
			}
			if cur.Type != ondisk.LICUI {
				if budget == 0 {
					budget = -1
					continue // once more, with the log checkpointed
				}
				return fmt.Errorf("its work does not fit in the log: %w", err)
			}
			// Split the refcount work: a smaller reservation each time.
			if budget <= 0 {
				budget = int(fs.log.MaxTransBytes() / 2)
			} else if budget /= 2; budget < int(fs.G.BlockSize)*16 {
				return fmt.Errorf("its work does not fit in the log even split: %w", err)
			}
			continue
		}
		if err != nil {
			tx.Cancel()
			return err
		}
		rep.Transactions++
		if rest == nil {
			return nil
		}
		rep.Continued++
		cur = rest
	}
}
