package xfs

// The JSON form of the reports where field tags are not enough: a mode as
// an octal string with its type's name beside it, a problem with only the
// places that are known, the log of an external log without a head, and
// recover's report (LSNs as {cycle, block}, item names people read, and
// only what is meaningful: nothing of a replay on a clean log, no orphan
// count in a dry run). docs/xfsfree.schema.json documents the result.

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/xfsfree/xfsfree/journal"
	"github.com/xfsfree/xfsfree/ondisk"
)

// MarshalJSON writes the mode as an octal string: "0100644".
func (m Mode) MarshalJSON() ([]byte, error) { return json.Marshal(m.String()) }

// UnmarshalJSON reads an octal string (or a number, as older output gave).
func (m *Mode) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n uint16
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("mode: want an octal string, got %s", b)
		}
		*m = Mode(n)
		return nil
	}
	n, err := strconv.ParseUint(s, 8, 16)
	if err != nil {
		return fmt.Errorf("mode %q: not an octal mode", s)
	}
	*m = Mode(n)
	return nil
}

// problemJSON is a Problem's JSON form: the place's members only where
// known.
type problemJSON struct {
	Message string  `json:"message"`
	AG      *uint32 `json:"ag,omitempty"`
	Daddr   *int64  `json:"daddr,omitempty"`
	Struct  string  `json:"struct,omitempty"`
	Field   string  `json:"field,omitempty"`
	Ino     uint64  `json:"ino,omitempty"`
}

// MarshalJSON writes {"message", "ag", "daddr", "struct", "field", "ino"},
// leaving out the members that are not known.
func (p Problem) MarshalJSON() ([]byte, error) {
	j := problemJSON{Message: p.Message, Struct: p.Struct, Field: p.Field, Ino: p.Ino}
	if p.AG != ondisk.NoAG {
		j.AG = &p.AG
	}
	if p.Daddr >= 0 {
		j.Daddr = &p.Daddr
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (p *Problem) UnmarshalJSON(b []byte) error {
	var j problemJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*p = Problem{AG: ondisk.NoAG, Daddr: -1, Struct: j.Struct, Field: j.Field, Ino: j.Ino, Message: j.Message}
	if j.AG != nil {
		p.AG = *j.AG
	}
	if j.Daddr != nil {
		p.Daddr = *j.Daddr
	}
	return nil
}

// MarshalJSON adds the mode's type name ("type") to the orphan.
func (o Orphan) MarshalJSON() ([]byte, error) {
	type plain Orphan
	return json.Marshal(struct {
		plain
		Type string `json:"type"`
	}{plain(o), o.Mode.Type()})
}

// MarshalJSON adds the mode's type name ("type") to the inode.
func (in FreedInode) MarshalJSON() ([]byte, error) { return in.AppendJSON(nil), nil }

// MarshalJSON writes the list by hand: a run can free millions of inodes,
// and encoding/json took seconds over them (a marshaler per element).
func (l FreedInodes) MarshalJSON() ([]byte, error) {
	if l == nil {
		return []byte("null"), nil
	}
	b := make([]byte, 0, 2+len(l)*112)
	b = append(b, '[')
	for i := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = l[i].AppendJSON(b)
	}
	return append(b, ']'), nil
}

// AppendJSON appends the inode's JSON object (compact), members in field
// order and "type" last, as encoding/json would write them.
func (in *FreedInode) AppendJSON(b []byte) []byte {
	b = append(b, `{"ino":`...)
	b = strconv.AppendUint(b, in.Ino, 10)
	b = append(b, `,"ag":`...)
	b = strconv.AppendUint(b, uint64(in.AG), 10)
	b = append(b, `,"mode":"0`...)
	b = strconv.AppendUint(b, uint64(in.Mode), 8)
	b = append(b, `","size":`...)
	b = strconv.AppendUint(b, in.Size, 10)
	b = append(b, `,"blocks":`...)
	b = strconv.AppendUint(b, in.Blocks, 10)
	b = append(b, `,"chunk_freed":`...)
	b = strconv.AppendBool(b, in.ChunkFreed)
	b = append(b, `,"type":"`...)
	b = append(b, in.Mode.Type()...)
	return append(b, `"}`...)
}

// MarshalJSON leaves out the head, tail and state of an external log,
// which is not read.
func (l LogReport) MarshalJSON() ([]byte, error) {
	type plain LogReport
	if l.External {
		return json.Marshal(struct {
			External bool   `json:"external"`
			Note     string `json:"note,omitempty"`
		}{true, l.Note})
	}
	return json.Marshal(plain(l))
}

// itemNames are the names reports give the log item types, for people:
// the kernel's XFS_LI_* names lower-cased into words.
var itemNames = map[string]string{
	"XFS_LI_BUF": "buffer", "XFS_LI_INODE": "inode", "XFS_LI_ICREATE": "inode_create",
	"XFS_LI_DQUOT": "dquot", "XFS_LI_QUOTAOFF": "quotaoff", "XFS_LI_IUNLINK": "iunlink",
	"XFS_LI_EFI": "extent_free_intent", "XFS_LI_EFD": "extent_free_done",
	"XFS_LI_RUI": "rmap_intent", "XFS_LI_RUD": "rmap_done",
	"XFS_LI_CUI": "refcount_intent", "XFS_LI_CUD": "refcount_done",
	"XFS_LI_BUI": "bmap_intent", "XFS_LI_BUD": "bmap_done",
	"XFS_LI_ATTRI": "attr_intent", "XFS_LI_ATTRD": "attr_done",
	"XFS_LI_XMI": "exchange_intent", "XFS_LI_XMD": "exchange_done",
	"XFS_LI_EFI_RT": "rt_extent_free_intent", "XFS_LI_EFD_RT": "rt_extent_free_done",
	"XFS_LI_RUI_RT": "rt_rmap_intent", "XFS_LI_RUD_RT": "rt_rmap_done",
	"XFS_LI_CUI_RT": "rt_refcount_intent", "XFS_LI_CUD_RT": "rt_refcount_done",
}

// ItemName is the name reports give a log item type (journal's counts
// are by the kernel's name, XFS_LI_BUF): "buffer", "inode",
// "extent_free_intent", ... An unknown name is lower-cased, its spaces
// made underscores.
func ItemName(kernelName string) string {
	if n, ok := itemNames[kernelName]; ok {
		return n
	}
	return strings.ReplaceAll(strings.ToLower(kernelName), " ", "_")
}

// ItemCounts is r.Items by ItemName.
func (r *RecoverReport) ItemCounts() map[string]int {
	m := make(map[string]int, len(r.Items))
	for k, v := range r.Items {
		m[ItemName(k)] += v
	}
	return m
}

// pendingIntentJSON is a pending intent as recover's JSON lists it.
type pendingIntentJSON struct {
	Type        string `json:"type"`
	ID          uint64 `json:"id"`
	Records     uint32 `json:"records"`
	LSN         LSN    `json:"lsn"`
	Tid         uint32 `json:"tid"`
	Description string `json:"description"`
}

// MarshalJSON writes recover's report. On a clean log it has only where
// the log is (nothing was replayed, so no counts); a dry run has no
// orphan count (the orphans are counted on the recovered device) and no
// unmount record. The journal report's members follow the log's place;
// those whose form differs (LSNs, item names, lists) are written here.
func (r *RecoverReport) MarshalJSON() ([]byte, error) {
	jr := r.RecoverReport
	if jr == nil {
		jr = &journal.RecoverReport{}
	}
	head := MakeLSN(jr.HeadCycle, jr.Head)
	tail, err := ParseLSN(jr.TailLSN)
	if err != nil {
		tail = MakeLSN(jr.HeadCycle, jr.Tail)
	}
	var last *LSN
	if l, err := ParseLSN(jr.LastLSN); err == nil && l != (LSN{}) {
		last = &l
	}
	if jr.Clean {
		return json.Marshal(struct {
			Device   string `json:"device"`
			DryRun   bool   `json:"dry_run"`
			LogClean bool   `json:"log_clean"`
			Head     LSN    `json:"head"`
			Tail     LSN    `json:"tail"`
			LastLSN  *LSN   `json:"last_lsn,omitempty"`
			Note     string `json:"note,omitempty"`
		}{r.Device, jr.DryRun, true, head, tail, last, r.Note})
	}
	type plainJournal journal.RecoverReport
	v := struct {
		Device   string `json:"device"`
		DryRun   bool   `json:"dry_run"`
		LogClean bool   `json:"log_clean"`
		Head     LSN    `json:"head"`
		Tail     LSN    `json:"tail"`
		LastLSN  *LSN   `json:"last_lsn,omitempty"`
		*plainJournal
		Items          map[string]int      `json:"items"`
		LoggedInodes   []uint64            `json:"logged_inodes"`
		PendingIntents []pendingIntentJSON `json:"pending_intents"`
		Warnings       []string            `json:"warnings"`
		UnmountLSN     *LSN                `json:"unmount_lsn,omitempty"`
		Orphans        *int                `json:"orphans,omitempty"`
		Note           string              `json:"note,omitempty"`
	}{
		Device: r.Device, DryRun: jr.DryRun, Head: head, Tail: tail, LastLSN: last,
		plainJournal: (*plainJournal)(jr),
		Items:        r.ItemCounts(), LoggedInodes: jr.LoggedInodes, PendingIntents: []pendingIntentJSON{},
		Warnings: jr.Warnings, Note: r.Note,
	}
	if v.LoggedInodes == nil {
		v.LoggedInodes = []uint64{}
	}
	if v.Warnings == nil {
		v.Warnings = []string{}
	}
	for _, p := range jr.PendingIntents {
		pj := pendingIntentJSON{LSN: LSNOf(p.LSN), Tid: p.Tid, Description: p.Desc}
		if p.Intent != nil {
			pj.Type, pj.ID = ItemName(p.Intent.Name()), p.Intent.ID
			pj.Records = uint32(len(p.Intent.Free) + len(p.Intent.Maps) + len(p.Intent.Phys))
		}
		v.PendingIntents = append(v.PendingIntents, pj)
	}
	if l, err := ParseLSN(jr.UnmountLSN); err == nil && jr.UnmountLSN != "" {
		v.UnmountLSN = &l
	}
	if !jr.DryRun {
		n := r.Orphans
		v.Orphans = &n
	}
	return json.Marshal(v)
}
