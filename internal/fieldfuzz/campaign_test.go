package fieldfuzz

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// The campaign's settings, from the environment:
//
//	FIELDFUZZ_CASES    how many cases to draw at random: a number, or "all" for every case
//	                   (default 100; 24 under -short)
//	FIELDFUZZ_SEED     the seed of the draw (default 1)
//	FIELDFUZZ_RUN      a regexp on case names (image:target:field:verb) that selects the cases
//	                   drawn from; with it and no FIELDFUZZ_CASES, every matching case runs
//	FIELDFUZZ_BIN      the xfsfree binary to test (default: built from this module)
//	FIELDFUZZ_TIMEOUT  how long one xfsfree command may run before it counts as a hang
//	                   (default 60s; xfsprogs runs get four times as long)
//	FIELDFUZZ_REPORT   a file to write the report to (counts, failures, fields left out)
//	FIELDFUZZ_PROGRESS print a line to stderr every 100 cases
//
// Cases run in parallel up to -parallel (GOMAXPROCS by default).
type config struct {
	cases    int // 0: all
	seed     uint64
	run      *regexp.Regexp
	bin      string
	timeout  time.Duration
	report   string
	progress bool
}

func configure(t *testing.T) config {
	c := config{cases: 100, seed: 1, timeout: 60 * time.Second, bin: os.Getenv("FIELDFUZZ_BIN"),
		report: os.Getenv("FIELDFUZZ_REPORT"), progress: os.Getenv("FIELDFUZZ_PROGRESS") != ""}
	if testing.Short() {
		c.cases = 24
	}
	if v := os.Getenv("FIELDFUZZ_RUN"); v != "" {
		re, err := regexp.Compile(v)
		if err != nil {
			t.Fatalf("FIELDFUZZ_RUN: %v", err)
		}
		c.run, c.cases = re, 0
	}
	switch v := os.Getenv("FIELDFUZZ_CASES"); v {
	case "":
	case "all":
		c.cases = 0
	default:
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("FIELDFUZZ_CASES=%q: want a positive number or \"all\"", v)
		}
		c.cases = n
	}
	if v := os.Getenv("FIELDFUZZ_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 0, 64)
		if err != nil {
			t.Fatalf("FIELDFUZZ_SEED=%q: %v", v, err)
		}
		c.seed = n
	}
	if v := os.Getenv("FIELDFUZZ_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("FIELDFUZZ_TIMEOUT=%q: want a duration", v)
		}
		c.timeout = d
	}
	return c
}

// TestCampaign fuzzes every field of the superblock, the last AG's AGI, AGF and AGFL, the
// btree roots (and leaves where a tree has them) and one orphan inode core of each kind, with
// every xfs_db fuzz verb, on a recovered orphan image and on a dirty-log snapshot, runs xfsfree
// on each as a user would, and fails for every case that breaks a property (see the package
// doc). It runs a seeded sample; scripts/fuzz-fields.sh runs the whole set.
func TestCampaign(t *testing.T) {
	cfg := configure(t)
	tl := NeedTools(t, cfg.bin, cfg.timeout)
	if tl.Bin == "" {
		tl.Bin = Build(t)
	}
	bases := PrepareBases(t, tl, DefaultSpecs)
	plan := MakePlan(t, bases, DefaultSpecs)
	pool := plan.Cases
	if cfg.run != nil {
		pool = nil
		for _, c := range plan.Cases {
			if cfg.run.MatchString(c.Name()) {
				pool = append(pool, c)
			}
		}
	}
	cases := Sample(pool, cfg.cases, cfg.seed)
	t.Logf("fieldfuzz: %d of %d cases (%d in the plan; seed %d), binary %s", len(cases), len(pool),
		len(plan.Cases), cfg.seed, tl.Bin)

	var tally Tally
	var done atomic.Int64
	start := time.Now()
	t.Run("cases", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.Name(), func(t *testing.T) {
				t.Parallel()
				o := RunCase(t, tl, bases.Of(c), c)
				tally.Add(o)
				if len(o.Failures) > 0 {
					t.Errorf("%s:\n%s", o.Primary(), o.Message())
				}
				if n := done.Add(1); cfg.progress && n%100 == 0 {
					fmt.Fprintf(os.Stderr, "fieldfuzz: %d/%d cases, %v\n", n, len(cases), time.Since(start).Round(time.Second))
				}
			})
		}
	})
	head := fmt.Sprintf("fieldfuzz: %d cases (of %d in the plan; seed %d) in %v\n\n", len(cases),
		len(plan.Cases), cfg.seed, time.Since(start).Round(time.Second))
	var b bytes.Buffer
	b.WriteString(head)
	tally.Report(&b, plan, false) // each failed case has its own message above
	t.Log("\n" + b.String())
	if cfg.report != "" {
		b.Reset()
		b.WriteString(head)
		tally.Report(&b, plan, true)
		if err := os.WriteFile(cfg.report, b.Bytes(), 0o644); err != nil {
			t.Error(err)
		}
	}
}
