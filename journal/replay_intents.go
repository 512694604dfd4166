package journal

// Intent and done items in pass 2 (xlog_recover_{efi,efd,rui,rud,cui,cud,
// bui,bud}_commit_pass2): each intent is decoded with the kernel's length
// rules and added to the list of pending intents in log order with the LSN
// of its transaction (xlog_recover_intent_item); each done item cancels
// every pending intent of its intent type with its id
// (xlog_recover_release_intent), and one that matches nothing is ignored
// (its intent lies behind the tail). After the replay the intents still
// pending get the value checks the kernel's intent recovery makes before
// any work (ondisk.IntentLog.Validate); the kernel makes them only on
// pending intents, so a cancelled intent that fails them is a warning.
//
// Finishing pending intents is the kernel's xlog_recover_process_intents;
// xfsfree does not do it yet, so a log with pending intents is refused,
// naming them, and the report lists them.

import (
	"errors"
	"fmt"
	"strings"

	"github.com/xfsfree/xfsfree/ondisk"
)

// PendingIntent is an intent item with no done item after it in the
// recovered part of the log: work the kernel's mount finishes after the
// replay (xlog_recover_process_intents), in log order. This struct does not
// represent an on-disk struct.
type PendingIntent struct {
	Intent *ondisk.IntentLog `json:"intent"`
	// LSN is that of the transaction that logged it (the record holding
	// its START): where the kernel puts the intent in the AIL, and so the
	// oldest LSN the log tail may move to while it is pending.
	LSN ondisk.LSN `json:"lsn"`
	Tid uint32     `json:"tid"`
	// Desc describes it for people: type, id and records.
	Desc string `json:"desc"`
}

// ErrPendingIntents is wrapped by the error Recover returns for a log
// whose intents are not all finished by done items. It wraps
// ErrUnsupportedItems.
var ErrPendingIntents = fmt.Errorf("%w: pending intents", ErrUnsupportedItems)

// PendingIntentsError refuses a log with pending intents, naming them.
type PendingIntentsError struct {
	Intents []PendingIntent
}

func (e *PendingIntentsError) Error() string {
	const show = 8
	var parts []string
	for i, p := range e.Intents {
		if i == show {
			parts = append(parts, fmt.Sprintf("and %d more", len(e.Intents)-show))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (lsn %v)", p.Desc, p.LSN))
	}
	return fmt.Sprintf("the log holds %d pending intent(s) whose deferred work xfsfree does not finish yet: %s; "+
		"nothing was written: mount the filesystem with the kernel to recover its log (mount, then umount), then run xfsfree again",
		len(e.Intents), strings.Join(parts, "; "))
}

func (e *PendingIntentsError) Unwrap() error { return ErrPendingIntents }

// intents is the pass-2 state of intent recovery (log->r_dfops).
type intents struct {
	pending   []PendingIntent
	cancelled []PendingIntent
}

// isIntentItem reports the item types pass 2 pairs.
func isIntentItem(t uint16) bool { return ondisk.IsIntentType(t) || ondisk.IsDoneType(t) }

// decodeIntentItem decodes the format region of an intent or done item.
func decodeIntentItem(t *RecoveredTrans, it *Item) (*ondisk.IntentLog, error) {
	f, err := ondisk.DecodeIntentLog(it.Regions[0])
	if err != nil {
		return nil, fmt.Errorf("%w (transaction %#x, lsn %v)", err, t.Tid, t.LSN)
	}
	return f, nil
}

// recoverIntentItem is the pass-2 handling of one intent or done item.
func (r *recovery) recoverIntentItem(t *RecoveredTrans, it *Item) error {
	f, err := decodeIntentItem(t, it)
	if err != nil {
		return err
	}
	if ondisk.IsIntentType(f.Type) {
		r.in.pending = append(r.in.pending, PendingIntent{Intent: f, LSN: t.LSN, Tid: t.Tid, Desc: f.String()})
		r.rep.IntentsLogged++
		r.rep.IntentIDs = append(r.rep.IntentIDs, f.ID)
		return nil
	}
	want := ondisk.IntentOfDone(f.Type)
	keep := r.in.pending[:0]
	n := 0
	for _, p := range r.in.pending {
		if p.Intent.Type == want && p.Intent.ID == f.ID {
			r.in.cancelled = append(r.in.cancelled, p)
			n++
			continue
		}
		keep = append(keep, p)
	}
	r.in.pending = keep
	r.rep.IntentsCancelled += n
	if n == 0 {
		r.rep.DoneUnmatched++
	}
	return nil
}

// checkIntents runs after the replay with the geometry of the replayed
// superblock: the value checks of the pending intents (a bad one refuses
// recovery, naming it), warnings for cancelled intents that would fail
// them, and the refusal of a log with pending intents.
func (r *recovery) checkIntents(g *ondisk.Geometry) error {
	for _, p := range r.in.cancelled {
		if err := p.Intent.Validate(g); err != nil {
			r.warn("a cancelled intent fails the checks recovery makes of pending ones (transaction %#x, lsn %v): %v", p.Tid, p.LSN, err)
		}
	}
	for _, p := range r.in.pending {
		if err := p.Intent.Validate(g); err != nil {
			var ce *ondisk.CorruptError
			if errors.As(err, &ce) {
				ce.Msg += fmt.Sprintf(" (pending intent of transaction %#x, lsn %v)", p.Tid, p.LSN)
			}
			return fmt.Errorf("journal: recovery: bad pending intent: %w", err)
		}
	}
	r.rep.PendingIntents = append([]PendingIntent(nil), r.in.pending...)
	if len(r.in.pending) > 0 {
		return &PendingIntentsError{Intents: r.rep.PendingIntents}
	}
	return nil
}

// checkLogIncompat is xlog_recover's refusal of a dirty log on a
// filesystem with log-incompatible features it does not know
// (XFS_SB_FEAT_INCOMPAT_LOG_UNKNOWN).
func checkLogIncompat(sb *ondisk.Superblock) error {
	if u := sb.FeatLogIncompat &^ ondisk.FeatLogIncompatAll; u != 0 {
		return fmt.Errorf("journal: the superblock has unknown log-incompatible features %#x (sb_features_log_incompat %#x) "+
			"and the log is dirty: recovering it is %w", u, sb.FeatLogIncompat, ondisk.ErrUnsupported)
	}
	return nil
}
