package fieldfuzz

import (
	"fmt"
	"strings"
)

// A Fuzzed is what `xfs_db -x -c SELECT... -c 'fuzz -d FIELD VERB'` did to one field.
type Fuzzed struct {
	Old, New string // the field as xfs_db printed it before and after
	NA       string // why the case is not applicable ("" if the field changed)
}

// NA reasons, as the report counts them.
const (
	NARefused   = "xfs_db refuses the verb for the field"
	NAUnchanged = "the verb leaves the value as it was"
	NADBError   = "xfs_db could not fuzz the field"
)

// Fuzz applies verb to field of the structure sel selects, in place in img, keeping its CRC
// valid (fuzz -d). The field is printed before and after in the same xfs_db run.
func (tl Tools) Fuzz(img string, sel []string, field, verb string) (Fuzzed, error) {
	args := []string{"-x", "-f"}
	for _, c := range sel {
		args = append(args, "-c", c)
	}
	args = append(args, "-c", "p "+field, "-c", "fuzz -d "+field+" "+verb, img)
	e, err := run(tl.ToolTimeout, false, tl.DB, args...)
	if err != nil {
		return Fuzzed{}, err
	}
	if e.TimedOut || e.Exit != 0 {
		return Fuzzed{NA: NADBError}, fmt.Errorf("fieldfuzz: xfs_db %s: exit %d (timed out: %v)\n%s%s",
			strings.Join(args, " "), e.Exit, e.TimedOut, e.Stdout, e.Stderr)
	}
	return parseFuzz(e.Stdout, field), nil
}

// parseFuzz reads xfs_db's output for `p FIELD` then `fuzz -d FIELD VERB`.
func parseFuzz(out, field string) Fuzzed {
	var vals []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "unable to fuzz field") {
			return Fuzzed{NA: NARefused}
		}
		if v, ok := strings.CutPrefix(line, field+" ="); ok {
			vals = append(vals, strings.TrimSpace(v))
		}
	}
	if len(vals) != 2 {
		return Fuzzed{NA: NADBError + ": " + firstLine(out)}
	}
	f := Fuzzed{Old: vals[0], New: vals[1]}
	if f.Old == f.New {
		f.NA = NAUnchanged
	}
	return f
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "Allowing fuzz") {
			return l
		}
	}
	return "(no output)"
}

// Log states, as LogState judges them.
const (
	LogClean   = "clean"
	LogDirty   = "dirty"
	LogUnknown = "unknown"
)

// LogState judges img's log with the real tools: the state xfs_logprint -t prints
// ("<CLEAN>", "<DIRTY>") and xfs_repair -n's warning about "valuable metadata changes in a
// log". Dirty if either says so, clean if xfs_logprint says clean and xfs_repair -n does not
// complain. evidence quotes the lines that decided.
func (tl Tools) LogState(img string) (state, evidence string, err error) {
	lp, err := run(tl.ToolTimeout, false, tl.Logprint, "-t", img)
	if err != nil {
		return "", "", err
	}
	rn, err := run(tl.ToolTimeout, false, tl.Repair, "-n", "-f", img)
	if err != nil {
		return "", "", err
	}
	var lpState string
	for _, l := range strings.Split(lp.Stdout+lp.Stderr, "\n") {
		if strings.Contains(l, "state: <") {
			lpState = strings.Join(strings.Fields(l), " ") // "log tail: 908 head: 1042 state: <DIRTY>"
			break
		}
	}
	repairDirty := strings.Contains(rn.Stdout+rn.Stderr, "metadata changes in a log")
	ev := []string{"xfs_logprint -t: " + orNone(lpState)}
	if repairDirty {
		ev = append(ev, "xfs_repair -n: \"valuable metadata changes in a log\"")
	}
	evidence = strings.Join(ev, "; ")
	switch {
	case strings.Contains(lpState, "<DIRTY>") || repairDirty:
		return LogDirty, evidence, nil
	case strings.Contains(lpState, "<CLEAN>"):
		return LogClean, evidence, nil
	}
	return LogUnknown, evidence + fmt.Sprintf(" (xfs_logprint exit %d)", lp.Exit), nil
}

func orNone(s string) string {
	if s == "" {
		return "(no state line)"
	}
	return s
}

// RunRepair runs plain `xfs_repair -f img` (no -n, no -L): it modifies img, so give it a copy.
func (tl Tools) RunRepair(img string) (Exec, error) {
	return run(tl.ToolTimeout, false, tl.Repair, "-f", img)
}

// RepairOK reports whether a plain xfs_repair run succeeded.
func RepairOK(e Exec) bool { return !e.TimedOut && e.Signal == "" && e.Exit == 0 }

// repairWantsL reports whether xfs_repair stopped at a dirty log (it would need -L).
func repairWantsL(e Exec) bool {
	return e.Exit == 2 || strings.Contains(e.Stdout+e.Stderr, "metadata changes in a log")
}
