package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/xfs"
)

// The --json documents are validated against docs/xfsfree.schema.json by
// a JSON Schema (draft 2020-12) validator: every runCLI with --json
// validates its stdout (validateDocument), and TestJSONSchema runs every
// command through success, refusal, usage error and a corrupt image.

var schemas struct {
	once     sync.Once
	doc      *jsonschema.Schema
	manifest *jsonschema.Schema
	err      error
}

// loadSchema compiles the schema (the compiler checks it against the
// draft 2020-12 meta-schema first), with formats (date-time) asserted.
func loadSchema(t *testing.T) (doc, manifest *jsonschema.Schema) {
	t.Helper()
	schemas.once.Do(func() {
		root, err := testimg.RepoRoot()
		if err != nil {
			schemas.err = err
			return
		}
		path := filepath.Join(root, "docs", "xfsfree.schema.json")
		f, err := os.Open(path)
		if err != nil {
			schemas.err = err
			return
		}
		defer f.Close()
		s, err := jsonschema.UnmarshalJSON(f)
		if err != nil {
			schemas.err = err
			return
		}
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		c.AssertContent()
		const url = "https://github.com/xfsfree/xfsfree/docs/xfsfree.schema.json"
		if schemas.err = c.AddResource(url, s); schemas.err != nil {
			return
		}
		if schemas.doc, schemas.err = c.Compile(url); schemas.err != nil {
			return
		}
		schemas.manifest, schemas.err = c.Compile(url + "#/$defs/manifest")
	})
	if schemas.err != nil {
		t.Fatalf("docs/xfsfree.schema.json: %v", schemas.err)
	}
	return schemas.doc, schemas.manifest
}

// validateDocument checks the stdout of a run with --json: one JSON
// object that the schema accepts, for the command the run was, with an
// error exactly when the exit status is not 0.
func validateDocument(t *testing.T, args []string, r result) {
	t.Helper()
	if r.code == exitCrashed {
		return // an injected crash stops the process: nothing is printed
	}
	doc, _ := loadSchema(t)
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(r.stdout))
	if err != nil {
		t.Errorf("%v: stdout is not one JSON document: %v\n%s", args, err, r.stdout)
		return
	}
	if err := doc.Validate(v); err != nil {
		t.Errorf("%v: the --json document does not follow docs/xfsfree.schema.json: %v\n%s", args, err, r.stdout)
		return
	}
	m := v.(map[string]any)
	if _, hasErr := m["error"]; hasErr != (r.code != exitOK) {
		t.Errorf("%v: exit %d but \"error\" present %v:\n%s", args, r.code, hasErr, r.stdout)
	}
	if cmd, ok := m["command"].(string); ok && cmd != "xfsfree" && !containsWord(args, strings.Fields(cmd)[0]) {
		t.Errorf("%v: command %q is not the command run", args, cmd)
	}
}

func containsWord(args []string, w string) bool {
	for _, a := range args {
		if a == w {
			return true
		}
	}
	return false
}

// validateManifest checks a manifest.json file against the schema's
// manifest.
func validateManifest(t *testing.T, path string) {
	t.Helper()
	_, ms := loadSchema(t)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if err := ms.Validate(v); err != nil {
		t.Errorf("%s does not follow the schema's manifest: %v", path, err)
	}
}

// members decodes a document into its members.
func members(t *testing.T, out string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, out)
	}
	return m
}

// TestSchemaCompiles: the schema is valid draft 2020-12.
func TestSchemaCompiles(t *testing.T) { loadSchema(t) }

// TestJSONSchema runs every command with --json through success,
// refusal, usage errors and a corrupt image; runCLI validates each
// document against the schema, and the test checks what the schema
// cannot: the exit codes, and values that must be right or absent.
func TestJSONSchema(t *testing.T) {
	dir := t.TempDir()
	zeros := filepath.Join(dir, "zeros.img")
	if err := os.WriteFile(zeros, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	// Usage errors and refusals need no fixture.
	for _, c := range []struct {
		args []string
		code int
		cmd  string
	}{
		{[]string{"--json"}, exitUsage, "xfsfree"},
		{[]string{"--json", "frobnicate", zeros}, exitUsage, "xfsfree"},
		{[]string{"info", "--json"}, exitUsage, "info"},
		{[]string{"scan", "--json", zeros, zeros}, exitUsage, "scan"},
		{[]string{"scan", "--json", "--bogus", zeros}, exitUsage, "scan"},
		{[]string{"check", "--bogus", "--json", zeros}, exitUsage, "check"},
		{[]string{"free", "--json", zeros}, exitUsage, "free"},
		{[]string{"free", "--json", "--ino", "x", zeros}, exitUsage, "free"},
		{[]string{"clean", "--json"}, exitUsage, "clean"},
		{[]string{"clean", "--json", zeros}, exitFailed, "clean"},
		{[]string{"extract", "--json", zeros}, exitUsage, "extract"},
		{[]string{"extract", "--json", "--ino", "5", "-o", "-", zeros}, exitUsage, "extract"},
		{[]string{"info", "--json", zeros}, exitFailed, "info"},
		{[]string{"scan", "--json", filepath.Join(dir, "missing.img")}, exitFailed, "scan"},
		{[]string{"check", "--json", zeros}, exitFailed, "check"},
		{[]string{"recover", "--json", zeros}, exitFailed, "recover"},
		{[]string{"free", "--json", "--orphans", zeros}, exitFailed, "free"},
		{[]string{"extract", "--json", "--ino", "128", zeros}, exitFailed, "extract"},
	} {
		r := runCLI(t, c.args...)
		if r.code != c.code {
			t.Errorf("%v: exit %d, want %d; stderr %q", c.args, r.code, c.code, r.stderr)
			continue
		}
		m := members(t, r.stdout)
		if m["command"] != c.cmd {
			t.Errorf("%v: command %v, want %q", c.args, m["command"], c.cmd)
		}
		e, _ := m["error"].(map[string]any)
		if msg, _ := e["message"].(string); msg == "" || !strings.Contains(r.stderr, msg) {
			t.Errorf("%v: error %v is not the stderr message %q", c.args, e, r.stderr)
		}
	}

	// A clean fixture: every read-only command; recover on a clean log
	// reports where the log is and no counters.
	img := testimg.Path(t, "default")
	for _, args := range [][]string{{"info"}, {"scan"}, {"scan", "-v"}, {"check"}, {"recover", "--dry-run"}, {"recover"},
		{"free", "--empty-chunks", "--dry-run"}} {
		args = append(append(args, "--json"), img)
		if r := runCLI(t, args...); r.code != exitOK {
			t.Errorf("%v: exit %d: %s", args, r.code, r.stderr)
		}
	}
	// The root directory has no bytes to extract: refused.
	if r := runCLI(t, "extract", "--json", "--ino", "128", "-o", filepath.Join(dir, "root"), img); r.code != exitFailed {
		t.Errorf("extract of a directory: exit %d", r.code)
	}
	r := runCLI(t, "recover", "--json", img)
	m := members(t, r.stdout)
	for _, k := range []string{"records", "counters_after", "counters_before", "items", "orphans"} {
		if _, ok := m[k]; ok {
			t.Errorf("recover --json on a clean log has %q:\n%s", k, r.stdout)
		}
	}
	if m["log_clean"] != true {
		t.Errorf("recover --json on a clean log: log_clean %v", m["log_clean"])
	}

	// An orphan snapshot (dirty log): read-only commands, a refused free,
	// recover's dry run (no orphan count) and real run (the count), then
	// free's dry run and real run, and the saves of extract.
	img = testimg.Path(t, "orphans")
	for _, args := range [][]string{{"info"}, {"scan"}, {"scan", "-v"}, {"check"}} {
		args = append(append(args, "--json"), img)
		if r := runCLI(t, args...); r.code != exitOK {
			t.Errorf("%v: exit %d: %s", args, r.code, r.stderr)
		}
	}
	if r := runCLI(t, "free", "--json", "--orphans", img); r.code != exitFailed {
		t.Errorf("free on a dirty log: exit %d", r.code)
	}
	var regular uint64
	var scan xfs.ScanReport
	if err := json.Unmarshal([]byte(runCLI(t, "scan", "--json", img).stdout), &scan); err != nil {
		t.Fatal(err)
	}
	for _, a := range scan.AGs {
		for _, c := range a.Chains {
			for _, o := range c.Inodes {
				if o.Mode.Type() == "regular" && o.Size > 0 && regular == 0 {
					regular = o.Ino
				}
			}
		}
	}
	if r := runCLI(t, "extract", "--json", "--ino", strconv.FormatUint(regular, 10), "-o", filepath.Join(dir, "one"), img); r.code != exitOK {
		t.Errorf("extract --ino %d: exit %d: %s", regular, r.code, r.stderr)
	}
	r = runCLI(t, "recover", "--dry-run", "--json", img)
	if m := members(t, r.stdout); r.code != exitOK || m["log_clean"] != false || m["orphans"] != nil || m["unmount_lsn"] != nil {
		t.Errorf("recover --dry-run: exit %d, log_clean %v, orphans %v, unmount_lsn %v", r.code, m["log_clean"], m["orphans"], m["unmount_lsn"])
	}
	r = runCLI(t, "recover", "--json", img)
	if m := members(t, r.stdout); r.code != exitOK || m["orphans"] == nil || m["orphans"].(float64) == 0 || m["unmount_lsn"] == nil {
		t.Errorf("recover: exit %d, orphans %v, unmount_lsn %v", r.code, m["orphans"], m["unmount_lsn"])
	}
	if r := runCLI(t, "free", "--json", "--ino", "1", img); r.code != exitFailed {
		t.Errorf("free --ino 1 (not an orphan): exit %d", r.code)
	}
	if r := runCLI(t, "extract", "--json", "--all-orphans", filepath.Join(dir, "all"), img); r.code != exitOK {
		t.Errorf("extract --all-orphans: exit %d: %s", r.code, r.stderr)
	}
	validateManifest(t, filepath.Join(dir, "all", "manifest.json"))
	// clean on another copy of the snapshot: its dry run, the run with
	// its statistics and saves, then the second run that has nothing to
	// do.
	snap := testimg.Path(t, "orphans")
	for _, args := range [][]string{{"clean", "--dry-run", "-v"}, {"clean", "--stats", "--save-orphans", filepath.Join(dir, "csaved")}, {"clean"}} {
		args = append(append(args, "--json"), snap)
		if r := runCLI(t, args...); r.code != exitOK {
			t.Errorf("%v: exit %d: %s", args, r.code, r.stderr)
		}
	}
	for _, args := range [][]string{{"free", "--orphans", "--dry-run", "-v"}, {"free", "--orphans", "--stats", "--save-orphans", filepath.Join(dir, "saved")}, {"recover"}} {
		args = append(append(args, "--json"), img)
		if r := runCLI(t, args...); r.code != exitOK {
			t.Errorf("%v: exit %d: %s", args, r.code, r.stderr)
		}
	}
	validateManifest(t, filepath.Join(dir, "saved", "manifest.json"))

	// A corrupt image: check's problems and scan's failed AG, in the one
	// form of an error, with their place.
	testimg.Need(t, "xfs_db")
	img = testimg.Path(t, "default")
	n, _ := testimg.ParseUint(testimg.AGI(t, img, 1)["freecount"])
	testimg.DBWrite(t, img, "agi 1", "write -d freecount "+strconv.FormatUint(n+1, 10))
	r = runCLI(t, "check", "--json", img)
	m = members(t, r.stdout)
	e, _ := m["error"].(map[string]any)
	if r.code != exitFailed || e["ag"] != 1.0 || e["field"] != "agi_freecount" || e["struct"] != "AGI" {
		t.Errorf("check --json of a corrupt AGI: exit %d, error %v", r.code, e)
	}
	if strings.Contains(r.stdout, "AG 1: AG 1") {
		t.Errorf("a doubled AG in a message:\n%s", r.stdout)
	}
}

// TestDocumentForm: the envelope around a report, lists never null, and
// an error's place from the error.
func TestDocumentForm(t *testing.T) {
	type rep struct {
		Device string   `json:"device"`
		List   []string `json:"list"`
		Inner  *struct {
			More []int `json:"more"`
		} `json:"inner"`
		Bytes []byte `json:"bytes,omitempty"`
	}
	r := &rep{Device: "d", Inner: &struct {
		More []int `json:"more"`
	}{}}
	var b bytes.Buffer
	p := xfs.Problem{AG: 2, Daddr: 16, Struct: "AGI", Field: "crc", Message: "AG 2, daddr 16, AGI: crc mismatch"}
	err := writeDocument(&b, "scan", r, &located{"1 AG(s) could not be scanned (first: " + p.String() + ")", p}, 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "schema_version": 1,
  "command": "scan",
  "device": "d",
  "list": [],
  "inner": {
    "more": []
  },
  "elapsed_seconds": 1.500,
  "error": {
    "message": "1 AG(s) could not be scanned (first: AG 2, daddr 16, AGI: crc mismatch)",
    "ag": 2,
    "daddr": 16,
    "struct": "AGI",
    "field": "crc"
  }
}
`
	if b.String() != want {
		t.Errorf("document:\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := writeDocument(&b, "xfsfree", nil, usageError{errors.New("no command given")}, 0); err != nil {
		t.Fatal(err)
	}
	if m := members(t, b.String()); len(m) != 4 || m["error"].(map[string]any)["message"] != "no command given" {
		t.Errorf("a usage error's document: %s", b.String())
	}
}

// TestProgressLine: done/total, percentage, rate, elapsed and ETA.
func TestProgressLine(t *testing.T) {
	for _, c := range []struct {
		done, total int
		el          time.Duration
		want        string
	}{
		{0, 4, 0, "scanning AGs: 0/4 (0%), elapsed 0:00"},
		{1, 4, 2 * time.Second, "scanning AGs: 1/4 (25%), 0.5/s, elapsed 0:02, ETA 0:06"},
		{500, 1000, 5 * time.Second, "scanning AGs: 500/1000 (50%), 100/s, elapsed 0:05, ETA 0:05"},
		{4, 4, 90 * time.Minute, "scanning AGs: 4/4 (100%), 0.0/s, elapsed 1:30:00"},
	} {
		if got := progressLine("scanning AGs", c.done, c.total, c.el); got != c.want {
			t.Errorf("progressLine(%d, %d, %v) = %q, want %q", c.done, c.total, c.el, got, c.want)
		}
	}
}

// TestSchemaRejects: the schema is strict where the conventions say so.
func TestSchemaRejects(t *testing.T) {
	doc, _ := loadSchema(t)
	env := `"schema_version": 1, "elapsed_seconds": 0.1`
	lsn := `{"cycle": 1, "block": 2}`
	for _, c := range []struct{ why, doc string }{
		{"a report without its members", `{` + env + `, "command": "scan"}`},
		{"a null list", `{` + env + `, "command": "check", "device": "d", "log_clean": true, "lazy_counters": true,
			"consistent": true, "ags": [], "problems": null, "warnings": []}`},
		{"an unknown member", `{` + env + `, "command": "info", "error": {"message": "m"}, "bogus": 1}`},
		{"a failure without its error", `{` + env + `, "command": "xfsfree"}`},
		{"an error without a message", `{` + env + `, "command": "scan", "error": {"ag": 1}}`},
		{"an unknown place", `{` + env + `, "command": "scan", "error": {"message": "m", "daddr": -1}}`},
		{"a decimal mode", `{` + env + `, "command": "free", "error": {"message": "m"}, "inodes": [{"ino": 133, "ag": 0,
			"mode": 33188, "type": "regular", "size": 0, "blocks": 0, "chunk_freed": false}]}`},
		{"counters of a clean log", `{` + env + `, "command": "recover", "device": "d", "dry_run": false, "log_clean": true,
			"head": ` + lsn + `, "tail": ` + lsn + `, "counters_after": {"icount": 0, "ifree": 0, "fdblocks": 0}}`},
		{"orphans in a dry run", `{` + env + `, "command": "recover", "error": {"message": "m"}, "dry_run": true, "orphans": 0}`},
		{"an LSN as a string", `{` + env + `, "command": "recover", "error": {"message": "m"}, "tail": "1:352"}`},
	} {
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(c.doc))
		if err != nil {
			t.Fatalf("%s: %v", c.why, err)
		}
		if doc.Validate(v) == nil {
			t.Errorf("the schema accepts %s: %s", c.why, c.doc)
		}
	}
}
