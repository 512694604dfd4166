package fieldfuzz

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
)

// A Spec says which structures are fuzzed in which orphan fixture.
type Spec struct {
	Fixture string
	Structs []string
}

// DefaultSpecs is the issue-7 campaign: every structure in the `orphans` fixture, the rmapbt in
// `orphans-rmap` (the only orphan fixture with one).
var DefaultSpecs = []Spec{
	{"orphans", []string{"sb", "agi", "agf", "agfl", "inobt", "finobt", "bnobt", "cntbt", "inode"}},
	{"orphans-rmap", []string{"rmapbt"}},
}

// Bases holds the base images: fixture → image (Recovered, Snapshot) → path. They are read only;
// every case copies its own.
type Bases map[string]map[string]string

// Of returns the base image of c.
func (b Bases) Of(c Case) string { return b[c.Target.Fixture][c.Image] }

// PrepareBases makes both base images of each fixture in t's temporary directory: the snapshot
// is the fixture as it is (its log must be dirty), the recovered image is a copy after
// `xfsfree recover` by the binary under test (which must exit 0 and leave a log the real tools
// call clean, and an image plain xfs_repair fixes).
func PrepareBases(t testing.TB, tl Tools, specs []Spec) Bases {
	t.Helper()
	b := Bases{}
	for _, s := range specs {
		snap := testimg.Path(t, s.Fixture)
		if state, ev, err := tl.LogState(snap); err != nil || state != LogDirty {
			t.Fatalf("fieldfuzz: fixture %s: log %s, want dirty (%s) %v", s.Fixture, state, ev, err)
		}
		rec := testimg.Path(t, s.Fixture)
		e, err := run(tl.Timeout, true, tl.Bin, "recover", rec)
		if err != nil {
			t.Fatal(err)
		}
		if e.Exit != 0 || e.TimedOut {
			t.Fatalf("fieldfuzz: xfsfree recover on fixture %s: exit %d\n%s", s.Fixture, e.Exit, e.Stderr)
		}
		if state, ev, err := tl.LogState(rec); err != nil || state != LogClean {
			t.Fatalf("fieldfuzz: fixture %s after xfsfree recover: log %s (%s) %v", s.Fixture, state, ev, err)
		}
		// xfs_repair -n reports the orphans (exit 1); plain xfs_repair must fix them, or the
		// repair property would hold of no case.
		scratch := filepath.Join(t.TempDir(), "repair.img")
		copyImage(t, scratch, rec)
		if e, err := tl.RunRepair(scratch); err != nil || !RepairOK(e) {
			t.Fatalf("fieldfuzz: fixture %s after xfsfree recover: plain xfs_repair exit %d %v\n%s%s",
				s.Fixture, e.Exit, err, e.Stdout, e.Stderr)
		}
		removeImage(t, scratch)
		b[s.Fixture] = map[string]string{Snapshot: snap, Recovered: rec}
	}
	return b
}

// A Plan is every case of a campaign, in order (image, structure, target, field, verb), and the
// printed fields it leaves out.
type Plan struct {
	Cases   []Case
	Skipped []SkippedField
}

// A SkippedField is a printed field of a target that is not fuzzed.
type SkippedField struct {
	Target Target
	Image  string
	Skip
}

// MakePlan enumerates the cases: the targets of each spec (found in the snapshot image; the
// recovered one has the same structures), and for each base image every field xfs_db prints for
// each target there (FieldNames), with every verb.
func MakePlan(t testing.TB, bases Bases, specs []Spec) Plan {
	t.Helper()
	var p Plan
	targets := map[string][]Target{}
	for _, s := range specs {
		targets[s.Fixture] = Targets(t, bases[s.Fixture][Snapshot], s.Fixture, s.Structs)
	}
	for _, image := range Images {
		for _, st := range Structs {
			for _, s := range specs {
				for _, g := range targets[s.Fixture] {
					if g.Struct != st {
						continue
					}
					out := testimg.DB(t, bases[s.Fixture][image], append(slices.Clone(g.Select), "print")...)
					names, skipped := FieldNames(out, g.keep())
					for _, sk := range skipped {
						p.Skipped = append(p.Skipped, SkippedField{g, image, sk})
					}
					for _, f := range names {
						for _, v := range Verbs {
							p.Cases = append(p.Cases, Case{Image: image, Target: g, Field: f, Verb: v})
						}
					}
				}
			}
		}
	}
	return p
}

// Sample draws n cases from cases at random with seed (all of them if n <= 0 or n is not less),
// stratified: the cases are grouped by structure and base image, and the draw takes from each
// group in turn, so that a small sample covers every structure on both images rather than
// mostly the largest groups (rmapbt keys, inode cores). The result keeps the order of cases.
func Sample(cases []Case, n int, seed uint64) []Case {
	if n <= 0 || n >= len(cases) {
		return cases
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	type key struct{ st, image string }
	var order []key
	groups := map[key][]int{}
	for i, c := range cases {
		k := key{c.Target.Struct, c.Image}
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	for _, k := range order {
		g := groups[k]
		r.Shuffle(len(g), func(i, j int) { g[i], g[j] = g[j], g[i] })
	}
	var idx []int
	for len(idx) < n {
		for _, k := range order {
			if g := groups[k]; len(g) > 0 && len(idx) < n {
				idx = append(idx, g[0])
				groups[k] = g[1:]
			}
		}
	}
	slices.Sort(idx)
	out := make([]Case, n)
	for i, k := range idx {
		out[i] = cases[k]
	}
	return out
}

// Targets returns the plan's targets, each once, in plan order, with the number of fields
// fuzzed in each image ("recovered 30, snapshot 30").
func (p Plan) Targets() (targets []Target, fields map[string]map[string]int) {
	fields = map[string]map[string]int{}
	for _, c := range p.Cases {
		id := c.Target.Fixture + ":" + c.Target.ID()
		if fields[id] == nil {
			fields[id] = map[string]int{}
			targets = append(targets, c.Target)
		}
		if c.Verb == Verbs[0] {
			fields[id][c.Image]++
		}
	}
	return targets, fields
}
