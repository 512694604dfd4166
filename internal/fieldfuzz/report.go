package fieldfuzz

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
)

// A Tally collects the outcomes of a campaign's cases; safe for concurrent Add.
type Tally struct {
	mu       sync.Mutex
	outcomes []Outcome
}

// Add records one outcome.
func (t *Tally) Add(o Outcome) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.outcomes = append(t.outcomes, o)
}

// Counts are the totals of a tally, or of one row of it.
type Counts struct {
	Cases, Passed, Failed, NA, Wrote int
	BySymptom                        map[string]int // failed cases by primary symptom
	ByNA                             map[string]int // not applicable cases by reason
}

func (c *Counts) add(o Outcome) {
	if c.BySymptom == nil {
		c.BySymptom, c.ByNA = map[string]int{}, map[string]int{}
	}
	c.Cases++
	switch {
	case o.NA():
		c.NA++
		c.ByNA[naClass(o.Fuzzed.NA)]++
	case len(o.Failures) > 0:
		c.Failed++
		c.BySymptom[o.Primary()]++
	default:
		c.Passed++
	}
	if o.Wrote {
		c.Wrote++
	}
}

func naClass(why string) string {
	if strings.HasPrefix(why, NADBError) {
		return NADBError
	}
	return why
}

// Primary returns the first of the outcome's symptoms in Symptoms order: the group the report
// lists it under.
func (o Outcome) Primary() string {
	for _, s := range Symptoms {
		for _, f := range o.Failures {
			if f.Symptom == s {
				return s
			}
		}
	}
	return ""
}

// Total returns the totals of every outcome.
func (t *Tally) Total() Counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	var c Counts
	for _, o := range t.outcomes {
		c.add(o)
	}
	return c
}

// Report writes the counts per structure and base image, the fields left out, the targets, and
// the failures in short by field; with every, also each failed case in full (values, the fuzz
// command line, the failing command and its messages).
func (t *Tally) Report(w io.Writer, plan Plan, every bool) {
	t.mu.Lock()
	outcomes := slices.Clone(t.outcomes)
	t.mu.Unlock()
	slices.SortFunc(outcomes, func(a, b Outcome) int { return compareCases(a.Case, b.Case) })

	type key struct{ st, image string }
	rows := map[key]*Counts{}
	var total Counts
	for _, o := range outcomes {
		k := key{o.Case.Target.Struct, o.Case.Image}
		if rows[k] == nil {
			rows[k] = &Counts{}
		}
		rows[k].add(o)
		total.add(o)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "structure\timage\tcases\tpassed\tfailed\tn/a\twrote\t")
	for _, st := range Structs {
		for _, im := range Images {
			if c := rows[key{st, im}]; c != nil {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t\n", st, im, c.Cases, c.Passed, c.Failed, c.NA, c.Wrote)
			}
		}
	}
	fmt.Fprintf(tw, "total\t\t%d\t%d\t%d\t%d\t%d\t\n", total.Cases, total.Passed, total.Failed, total.NA, total.Wrote)
	tw.Flush()
	fmt.Fprintln(w, "\nfailed cases by primary symptom:")
	for _, s := range Symptoms {
		fmt.Fprintf(w, "  %-24s %d\n", s, total.BySymptom[s])
	}
	fmt.Fprintln(w, "not applicable:")
	for _, r := range []string{NARefused, NAUnchanged, NADBError} {
		fmt.Fprintf(w, "  %-40s %d\n", r, total.ByNA[r])
	}
	writeSkipped(w, plan)
	writeTargets(w, plan)

	writeByField(w, outcomes)
	if !every {
		return
	}
	fmt.Fprintln(w, "\nEVERY FAILED CASE")
	for _, s := range Symptoms {
		var group []Outcome
		for _, o := range outcomes {
			if o.Primary() == s {
				group = append(group, o)
			}
		}
		if len(group) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n== %s: %d case(s)\n", s, len(group))
		for _, o := range group {
			writeOutcome(w, o)
		}
	}
}

// writeTargets lists the plan's targets and how many fields of each are fuzzed.
func writeTargets(w io.Writer, plan Plan) {
	targets, fields := plan.Targets()
	fmt.Fprintln(w, "targets (fields fuzzed, each with every verb):")
	for _, g := range targets {
		id := g.Fixture + ":" + g.ID()
		about := ""
		if g.About != "" {
			about = " (" + g.About + ")"
		}
		fmt.Fprintf(w, "  %-7s %-14s %s: recovered %d, snapshot %d fields; select: %s; fixture %s\n", g.Struct, g.Where,
			about, fields[id][Recovered], fields[id][Snapshot], strings.Join(g.Select, " | "), g.Fixture)
	}
}

// writeByField lists the failed cases in short, by primary symptom: one line for each field of
// a target on a base image, with the verbs that failed, the command and its first message.
func writeByField(w io.Writer, outcomes []Outcome) {
	type key struct{ sym, image, st, where, field, cmd string }
	var keys []key
	verbs := map[key][]string{}
	first := map[key]string{}
	for _, o := range outcomes {
		if len(o.Failures) == 0 {
			continue
		}
		sym := o.Primary()
		var f Failure
		for _, f = range o.Failures {
			if f.Symptom == sym {
				break
			}
		}
		c := o.Case
		k := key{sym, c.Image, c.Target.Struct, c.Target.Where, c.Field, f.Command}
		if verbs[k] == nil {
			keys = append(keys, k)
			first[k] = firstMessage(f)
		}
		verbs[k] = append(verbs[k], c.Verb)
	}
	if len(keys) == 0 {
		return
	}
	fmt.Fprintln(w, "\nFAILURES BY FIELD (primary symptom; image, structure, field: verbs; command: first message)")
	for _, sym := range Symptoms {
		n := 0
		for _, k := range keys {
			if k.sym == sym {
				n++
			}
		}
		if n == 0 {
			continue
		}
		fmt.Fprintf(w, "== %s: %d field(s)\n", sym, n)
		for _, k := range keys {
			if k.sym == sym {
				fmt.Fprintf(w, "  %s %s %s %s: %s; %s: %s\n", k.image, k.st, k.where, k.field,
					strings.Join(verbs[k], " "), k.cmd, first[k])
			}
		}
	}
}

// firstMessage is the line of a failure's detail that says most: xfsfree's own message or the
// panic, else the verdict.
func firstMessage(f Failure) string {
	switch {
	case len(f.Detail) > 1:
		return f.Detail[1]
	case len(f.Detail) == 1:
		return f.Detail[0]
	}
	return ""
}

// writeSkipped lists the fields left out, once per reason and field name.
func writeSkipped(w io.Writer, plan Plan) {
	byWhy := map[string][]string{}
	var whys []string
	for _, s := range plan.Skipped {
		if byWhy[s.Why] == nil {
			whys = append(whys, s.Why)
		}
		n := s.Target.Struct + " " + s.Field
		if !slices.Contains(byWhy[s.Why], n) {
			byWhy[s.Why] = append(byWhy[s.Why], n)
		}
	}
	if len(whys) == 0 {
		return
	}
	fmt.Fprintln(w, "fields not fuzzed:")
	for _, why := range whys {
		fmt.Fprintf(w, "  %s: %s\n", why, strings.Join(byWhy[why], ", "))
	}
}

// writeOutcome writes one failed case.
func writeOutcome(w io.Writer, o Outcome) {
	c := o.Case
	about := ""
	if c.Target.About != "" {
		about = " (" + c.Target.About + ")"
	}
	fmt.Fprintf(w, "- %s image, %s %s%s, field %s, verb %s: %s -> %s\n", c.Image, c.Target.Struct,
		c.Target.Where, about, c.Field, c.Verb, o.Fuzzed.Old, o.Fuzzed.New)
	fmt.Fprintf(w, "    base: fixture %s%s; fuzz: %s\n", c.Target.Fixture, recoveredNote(c), c.FuzzLine())
	for _, f := range o.Failures {
		fmt.Fprintf(w, "    %s: %s\n", f.Symptom, f.Command)
		for _, d := range f.Detail {
			fmt.Fprintf(w, "      %s\n", d)
		}
	}
}

func recoveredNote(c Case) string {
	if c.Image == Recovered {
		return " after `xfsfree recover`"
	}
	return " as it is (dirty log)"
}

// Message is one outcome's failures for a test's error output.
func (o Outcome) Message() string {
	var b strings.Builder
	writeOutcome(&b, o)
	return b.String()
}

// compareCases orders cases as the report lists them: structure, image, target, field, verb.
func compareCases(a, b Case) int {
	if d := slices.Index(Structs, a.Target.Struct) - slices.Index(Structs, b.Target.Struct); d != 0 {
		return d
	}
	if d := slices.Index(Images, a.Image) - slices.Index(Images, b.Image); d != 0 {
		return d
	}
	if d := strings.Compare(a.Target.Where, b.Target.Where); d != 0 {
		return d
	}
	if d := strings.Compare(a.Field, b.Field); d != 0 {
		return d
	}
	return slices.Index(Verbs, a.Verb) - slices.Index(Verbs, b.Verb)
}
