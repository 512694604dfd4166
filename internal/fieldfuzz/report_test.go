package fieldfuzz

import (
	"bytes"
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	agi := Target{Struct: "agi", Where: "AG 3", Select: []string{"agi 3"}, Fixture: "orphans"}
	dirty := Failure{Symptom: SymDirtyLog, Command: "xfsfree free --orphans IMG",
		Detail: []string{"exit 1; xfs_logprint -t: state: <DIRTY>", "xfsfree: AG 3, AGI: agi_level is outside 1..2"}}
	needsL := Failure{Symptom: SymNeedsL, Command: "xfsfree free --orphans IMG",
		Detail: []string{"plain xfs_repair: exit 0 on the fuzzed image, exit 2 after xfsfree"}}
	var tally Tally
	for _, o := range []Outcome{
		{Case: Case{Recovered, agi, "level", "add"}, Fuzzed: Fuzzed{Old: "1", New: "2018"}, Wrote: true,
			Failures: []Failure{needsL, dirty}},
		{Case: Case{Recovered, agi, "level", "zeroes"}, Fuzzed: Fuzzed{Old: "1", New: "0"}, Wrote: true,
			Failures: []Failure{dirty, needsL}},
		{Case: Case{Snapshot, agi, "level", "add"}, Fuzzed: Fuzzed{Old: "1", New: "2018"}},
		{Case: Case{Snapshot, agi, "uuid", "add"}, Fuzzed: Fuzzed{NA: NARefused}},
	} {
		tally.Add(o)
	}
	c := tally.Total()
	if c.Cases != 4 || c.Failed != 2 || c.Passed != 1 || c.NA != 1 || c.Wrote != 2 ||
		c.BySymptom[SymDirtyLog] != 2 || c.ByNA[NARefused] != 1 {
		t.Errorf("Total = %+v", c)
	}
	var b bytes.Buffer
	tally.Report(&b, Plan{}, true)
	out := b.String()
	for _, want := range []string{
		"agi  recovered      2       0       2    0      2",
		"dirty log left           2",
		"recovered agi AG 3 level: zeroes add; xfsfree free --orphans IMG: xfsfree: AG 3, AGI: agi_level is outside 1..2",
		"- recovered image, agi AG 3, field level, verb zeroes: 1 -> 0",
		"fuzz: xfs_db -x -c 'agi 3' -c 'fuzz -d level zeroes' IMG",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
