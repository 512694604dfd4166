package fieldfuzz

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
)

// The two base images a case starts from.
const (
	// Recovered is an orphan fixture after `xfsfree recover`: a clean log, orphans on the AGI
	// unlinked lists. A user runs `free --orphans` on it.
	Recovered = "recovered"
	// Snapshot is an orphan fixture as it is: a frozen snapshot with a dirty log. A user runs
	// `recover`, then `free --orphans`.
	Snapshot = "snapshot"
)

// Images lists the base images in report order.
var Images = []string{Recovered, Snapshot}

// A Case is one fuzz of one field of one structure on one base image.
type Case struct {
	Image  string
	Target Target
	Field  string
	Verb   string
}

// Name identifies the case (a subtest name): "recovered:agi.ag3:unlinked[5]:ones".
func (c Case) Name() string {
	return c.Image + ":" + c.Target.ID() + ":" + c.Field + ":" + c.Verb
}

// FuzzLine is the xfs_db command line that makes the case's image from the base image.
func (c Case) FuzzLine() string {
	var b strings.Builder
	b.WriteString("xfs_db -x")
	for _, s := range c.Target.Select {
		fmt.Fprintf(&b, " -c '%s'", s)
	}
	fmt.Fprintf(&b, " -c 'fuzz -d %s %s' IMG", c.Field, c.Verb)
	return b.String()
}

// Commands returns the xfsfree commands a user runs on the case's image, in order: the read-only
// ones, then the writers.
func (c Case) Commands() [][]string {
	cmds := [][]string{{"info"}, {"scan"}, {"check"}}
	if c.Image == Snapshot {
		cmds = append(cmds, []string{"recover"})
	}
	return append(cmds, []string{"free", "--orphans"})
}

func readOnly(cmd []string) bool {
	switch cmd[0] {
	case "info", "scan", "check":
		return true
	}
	return false
}

// Symptoms a case can fail with, in report order.
const (
	SymPanic         = "panic"
	SymHang          = "hang"
	SymExit          = "exit status not 0 or 1"
	SymReadOnlyWrote = "read-only command wrote"
	SymDirtyLog      = "dirty log left"
	SymNeedsL        = "repair needs -L"
	SymRepairFailed  = "repair failed"
	SymLogUnknown    = "log state unknown"
)

// Symptoms lists the symptoms in report order.
var Symptoms = []string{SymPanic, SymHang, SymExit, SymReadOnlyWrote, SymDirtyLog, SymNeedsL,
	SymRepairFailed, SymLogUnknown}

// A Failure is one property a case broke.
type Failure struct {
	Symptom string
	Command string   // the command that broke it: "xfsfree free --orphans IMG"
	Detail  []string // exit status, the tools' verdict, the relevant stderr lines
}

// An Outcome is what running a case found.
type Outcome struct {
	Case     Case
	Fuzzed   Fuzzed
	Steps    []Exec
	Wrote    bool      // the xfsfree commands changed the image's bytes
	Log      string    // LogClean, LogDirty or LogUnknown, if anything was written
	Before   *Exec     // plain xfs_repair on a copy of the fuzzed image, if anything was written
	After    *Exec     // plain xfs_repair on a copy of the result, if Before succeeded
	Failures []Failure // nil: passed (or not applicable)
}

// NA reports whether the case was not applicable (the fuzz changed nothing or was refused).
func (o Outcome) NA() bool { return o.Fuzzed.NA != "" }

// RunCase runs one case, in a directory of t's (removed with it): copy the base image, fuzz it,
// run the xfsfree commands on a copy as a user would, and judge. base is the path of the case's
// base image (read only). t fails only if the harness itself cannot go on (a copy fails, a tool
// cannot start); what xfsfree does wrong is in the Outcome.
func RunCase(t testing.TB, tl Tools, base string, c Case) Outcome {
	t.Helper()
	o := Outcome{Case: c}
	dir := t.TempDir()
	fuzzed := filepath.Join(dir, "fuzzed.img")
	copyImage(t, fuzzed, base)
	var err error
	if o.Fuzzed, err = tl.Fuzz(fuzzed, c.Target.Select, c.Field, c.Verb); err != nil {
		t.Log(err) // xfs_db failed or hung on the image: counted as not applicable
		o.Fuzzed = Fuzzed{NA: NADBError + ": " + firstLine(err.Error())}
	}
	if o.NA() {
		return o
	}
	img := filepath.Join(dir, "work.img")
	copyImage(t, img, fuzzed)
	orig := mustFingerprint(t, img)
	prev := orig
	for _, cmd := range c.Commands() {
		e, err := run(tl.Timeout, true, tl.Bin, append(cmd, img)...)
		if err != nil {
			t.Fatal(err)
		}
		o.Steps = append(o.Steps, e)
		line := e.Line(img)
		switch {
		case e.TimedOut:
			o.fail(SymHang, line, fmt.Sprintf("no exit after %v (SIGQUIT sent)", tl.Timeout), e)
		case e.Panicked():
			o.fail(SymPanic, line, fmt.Sprintf("exit %d", e.Exit), e)
		case e.Signal != "":
			o.fail(SymExit, line, "killed by "+e.Signal, e)
		case e.Exit != 0 && e.Exit != 1:
			o.fail(SymExit, line, fmt.Sprintf("exit %d", e.Exit), e)
		}
		h := mustFingerprint(t, img)
		if h == prev {
			continue
		}
		prev = h
		if readOnly(cmd) {
			o.fail(SymReadOnlyWrote, line, fmt.Sprintf("exit %d; the image's bytes changed", e.Exit), e)
			continue
		}
		// A writer changed the image: its log must be clean now.
		state, ev, err := tl.LogState(img)
		if err != nil {
			t.Fatal(err)
		}
		o.Log = state
		switch state {
		case LogDirty:
			o.fail(SymDirtyLog, line, fmt.Sprintf("exit %d; %s", e.Exit, ev), e)
		case LogUnknown:
			o.fail(SymLogUnknown, line, fmt.Sprintf("exit %d; %s", e.Exit, ev), e)
		}
	}
	o.Wrote = prev != orig
	if !o.Wrote {
		return o // the result is the fuzzed image: whatever xfs_repair did before, it does now
	}
	o.judgeRepair(t, tl, dir, fuzzed, img)
	return o
}

// judgeRepair checks that plain xfs_repair still succeeds on the result if it succeeded on the
// fuzzed image.
func (o *Outcome) judgeRepair(t testing.TB, tl Tools, dir, fuzzed, img string) {
	t.Helper()
	scratch := filepath.Join(dir, "repair.img")
	repair := func(src string) *Exec {
		copyImage(t, scratch, src)
		e, err := tl.RunRepair(scratch)
		if err != nil {
			t.Fatal(err)
		}
		removeImage(t, scratch)
		return &e
	}
	o.Before = repair(fuzzed)
	if !RepairOK(*o.Before) {
		return // nothing to keep: xfs_repair could not fix the fuzzed image either
	}
	o.After = repair(img)
	if RepairOK(*o.After) {
		return
	}
	what := fmt.Sprintf("plain xfs_repair: exit 0 on the fuzzed image, exit %d%s after xfsfree",
		o.After.Exit, timedOut(*o.After))
	if repairWantsL(*o.After) {
		o.Failures = append(o.Failures, Failure{Symptom: SymNeedsL, Command: lastWriter(o),
			Detail: []string{what + ": the log needs replaying (or -L)"}})
		return
	}
	o.Failures = append(o.Failures, Failure{Symptom: SymRepairFailed, Command: lastWriter(o),
		Detail: append([]string{what}, repairExcerpt(*o.After, 8)...)})
}

// lastWriter names the last xfsfree command that ran that may write.
func lastWriter(o *Outcome) string {
	for i := len(o.Steps) - 1; i >= 0; i-- {
		if args := o.Steps[i].Args; len(args) > 2 && !readOnly(args[1:]) {
			return strings.Join(args[:len(args)-1], " ") + " IMG"
		}
	}
	return "xfsfree"
}

func timedOut(e Exec) string {
	if e.TimedOut {
		return " (timed out)"
	}
	return ""
}

// repairExcerpt quotes xfs_repair's lines that say what is wrong (not its phase banners).
func repairExcerpt(e Exec, max int) []string {
	var out []string
	for _, l := range strings.Split(e.Stdout+e.Stderr, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "Phase ") || strings.HasPrefix(l, "- ") ||
			strings.Contains(l, "host filesystem geometry") || strings.Contains(l, "sector size mismatch") ||
			strings.HasPrefix(l, "the image and the host") {
			continue
		}
		out = append(out, "xfs_repair: "+l)
		if len(out) == max {
			break
		}
	}
	return out
}

func (o *Outcome) fail(sym, line, what string, e Exec) {
	o.Failures = append(o.Failures, Failure{Symptom: sym, Command: line,
		Detail: append([]string{what}, e.Excerpt(12)...)})
}

func copyImage(t testing.TB, dst, src string) {
	t.Helper()
	if err := testimg.CopySparse(dst, src); err != nil {
		t.Fatalf("fieldfuzz: copy %s: %v", src, err)
	}
}

func removeImage(t testing.TB, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func mustFingerprint(t testing.TB, path string) uint64 {
	t.Helper()
	h, err := fingerprint(path)
	if err != nil {
		t.Fatalf("fieldfuzz: %v", err)
	}
	return h
}
