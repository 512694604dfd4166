package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/xfs"
)

// bin is the xfsfree binary TestMain builds with the test hooks
// (-tags testhooks); releaseBin is built as released, without them.
var bin, releaseBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "xfsfree-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "xfsfree")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	releaseBin = filepath.Join(dir, "xfsfree-release")
	for _, b := range []struct{ out, tags string }{{bin, "testhooks"}, {releaseBin, ""}} {
		if out, err := exec.Command(gobin, "build", "-tags", b.tags, "-o", b.out, ".").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run xfsfree %v: %v", args, err)
	}
	r := result{o.String(), e.String(), code}
	if wantsJSON(args) {
		validateDocument(t, args, r)
	}
	return r
}

// report is a --json document without its envelope (schema_version,
// command, elapsed_seconds): the command's report, to compare with the
// library's.
func report(t *testing.T, out string) any {
	t.Helper()
	m, ok := parseJSON(t, out).(map[string]any)
	if !ok {
		t.Fatalf("not a JSON object:\n%s", out)
	}
	delete(m, "schema_version")
	delete(m, "command")
	delete(m, "elapsed_seconds")
	return m
}

// expectOneLineError checks a failure: the exit code and one line on
// stderr (plus, for a usage error, the pointer to --help).
func expectFailure(t *testing.T, r result, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d; stderr %q", r.code, code, r.stderr)
	}
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	n := 1
	if code == exitUsage {
		n = 2
	}
	if len(lines) != n || !strings.HasPrefix(lines[0], "xfsfree: ") {
		t.Errorf("stderr is not %d line(s) starting \"xfsfree: \": %q", n, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(lines[0], w) {
			t.Errorf("stderr %q does not contain %q", lines[0], w)
		}
	}
}

// asJSON re-encodes v through JSON into a generic value, for comparing a
// library report with the CLI's output.
func asJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var g any
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func parseJSON(t *testing.T, s string) any {
	t.Helper()
	var g any
	if err := json.Unmarshal([]byte(s), &g); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, s)
	}
	return g
}

// TestInfoScanFixtures runs info and scan, as text and --json, on every
// read-only fixture: exit 0, the JSON equals the library's report, and the
// image is unchanged.
func TestInfoScanFixtures(t *testing.T) {
	for _, name := range testimg.ReadOnlyFixtures() {
		t.Run(name, func(t *testing.T) {
			img := testimg.Path(t, name)
			before := testimg.Hash(t, img)
			fs, err := xfs.Open(img, xfs.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			info, err := fs.Info()
			if err != nil {
				t.Fatal(err)
			}
			scan, err := fs.Scan(nil)
			fs.Close()
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				cmd  string
				want any
			}{{"info", info}, {"scan", scan}} {
				r := runCLI(t, c.cmd, img)
				if r.code != 0 || r.stderr != "" || r.stdout == "" {
					t.Errorf("%s: exit %d, stderr %q, %d bytes of output", c.cmd, r.code, r.stderr, len(r.stdout))
				}
				r = runCLI(t, c.cmd, "--json", img)
				if r.code != 0 || r.stderr != "" {
					t.Errorf("%s --json: exit %d, stderr %q", c.cmd, r.code, r.stderr)
				}
				if got, want := report(t, r.stdout), asJSON(t, c.want); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s --json differs from the library's report:\n%s\nwant %v", c.cmd, r.stdout, want)
				}
			}
			if r := runCLI(t, "scan", "-v", "--buffered", img); r.code != 0 {
				t.Errorf("scan -v --buffered: exit %d: %s", r.code, r.stderr)
			}
			// What the text says, for the fixtures that have something to say.
			r := runCLI(t, "info", img)
			if (info.Log.Clean && !strings.Contains(r.stdout, "clean, head")) || (!info.Log.Clean && !strings.Contains(r.stdout, "DIRTY")) {
				t.Errorf("info does not show the log state:\n%s", r.stdout)
			}
			r = runCLI(t, "scan", img)
			if want := fmt.Sprintf("total: %d orphan(s)", scan.Orphans); !strings.Contains(r.stdout, want) {
				t.Errorf("scan output lacks %q:\n%s", want, r.stdout)
			}
			if testimg.Hash(t, img) != before {
				t.Errorf("info/scan wrote to the image")
			}
		})
	}
}

// TestScanOutput: scan prints each AG's totals and the total, not the
// orphans; -v lists them, chain by chain, each described; both end with
// the elapsed time.
func TestScanOutput(t *testing.T) {
	img := testimg.Path(t, "orphans")
	r := runCLI(t, "scan", img)
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if r.code != 0 || len(lines) != 6 || !strings.HasPrefix(lines[0], "note: the log is dirty") ||
		lines[4] != "AG 3: 201 orphan(s) in 64 bucket(s) holding 0 block(s)" {
		t.Errorf("scan: exit %d, want a note, 4 AG lines and a total:\n%s", r.code, r.stdout)
	}
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "total: 313 orphan(s) holding 2026 block(s);") || !strings.Contains(last, "(-v lists them); elapsed ") {
		t.Errorf("scan's total line: %q", last)
	}
	for _, l := range lines {
		if len(l) > 250 || strings.Contains(l, "bucket ") && !strings.Contains(l, "bucket(s)") {
			t.Errorf("scan lists orphans without -v: %q", l)
		}
	}
	r = runCLI(t, "scan", "-v", img)
	if r.code != 0 || !strings.Contains(r.stdout, "  bucket 15: 1 orphan(s)\n    ino 143: regular 0100644 uid ") ||
		!strings.Contains(r.stdout, "total: 313 orphan(s)") || strings.Contains(r.stdout, "-v lists them") {
		t.Errorf("scan -v: exit %d:\n%s", r.code, r.stdout)
	}
}

func TestUsage(t *testing.T) {
	img := filepath.Join(t.TempDir(), "x.img")
	for _, args := range [][]string{
		{},
		{"info"},
		{"scan"},
		{"info", img, img},
		{"--bogus"},
		{"info", "--bogus", img},
		{"scan", "-x", img},
		{"frobnicate"},
		{"frobnicate", img},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := runCLI(t, args...)
			expectFailure(t, r, exitUsage)
			if r.stdout != "" {
				t.Errorf("stdout %q", r.stdout)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"info", "--help"}, {"scan", "--help"}, {"help", "scan"}} {
		r := runCLI(t, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, "--json") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
	if r := runCLI(t, "scan", "--help"); !strings.Contains(r.stdout, "scan DEV") || !strings.Contains(r.stdout, "--verbose") {
		t.Errorf("scan --help:\n%s", r.stdout)
	}
	if r := runCLI(t, "info", "--help"); !strings.Contains(r.stdout, "info DEV") {
		t.Errorf("info --help:\n%s", r.stdout)
	}
}

func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	zeros := filepath.Join(dir, "zeros.img")
	if err := os.WriteFile(zeros, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path string
		want []string
	}{
		{zeros, []string{"not an XFS filesystem"}},
		{filepath.Join(dir, "missing.img"), []string{"missing.img"}},
	}
	for _, name := range testimg.V4Fixtures() {
		cases = append(cases, struct {
			path string
			want []string
		}{testimg.Path(t, name), []string{"v5"}})
	}
	for _, c := range cases {
		for _, cmd := range []string{"info", "scan"} {
			for _, js := range []bool{false, true} {
				args := []string{cmd, c.path}
				if js {
					args = []string{cmd, "--json", c.path}
				}
				r := runCLI(t, args...)
				expectFailure(t, r, exitFailed, c.want...)
				if !js && r.stdout != "" {
					t.Errorf("%v: stdout %q", args, r.stdout)
				}
			}
		}
	}
}

func TestRefuseMounted(t *testing.T) {
	testimg.Need(t, "loop", "mount", "umount")
	img := testimg.Path(t, "default")
	mnt := testimg.Mount(t, img)
	mnt, _ = filepath.EvalSymlinks(mnt)
	for _, cmd := range []string{"info", "scan"} {
		expectFailure(t, runCLI(t, cmd, img), exitFailed, "mounted", mnt)
	}
}

// TestScanCorruptAG flips a byte of AG 1's AGI: scan still reports the
// other AGs, says which AG failed and exits 1; nothing is written.
func TestScanCorruptAG(t *testing.T) {
	testimg.Need(t, "xfs_db")
	img := testimg.Path(t, "orphans")
	sb := testimg.Superblock(t, img)
	agblocks, _ := testimg.ParseUint(sb["agblocks"])
	bs, _ := testimg.ParseUint(sb["blocksize"])
	ss, _ := testimg.ParseUint(sb["sectsize"])
	off := int64(agblocks*bs + 2*ss + 32)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{0}
	f.ReadAt(b, off)
	b[0] ^= 0xff
	f.WriteAt(b, off)
	f.Close()
	before := testimg.Hash(t, img)

	r := runCLI(t, "scan", img)
	expectFailure(t, r, exitFailed, "AG 1", fmt.Sprintf("daddr %d", (off-32)/512), "crc")
	if !strings.Contains(r.stdout, "AG 3:") || !strings.Contains(r.stdout, "error: AG 1") {
		t.Errorf("scan output does not show AG 3's orphans and AG 1's error:\n%s", r.stdout)
	}
	r = runCLI(t, "scan", "--json", img)
	expectFailure(t, r, exitFailed, "AG 1")
	var rep xfs.ScanReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("scan --json output: %v\n%s", err, r.stdout)
	}
	if len(rep.Errors) != 1 || rep.Errors[0].AG != 1 || rep.AGs[1].Error == nil || rep.Orphans == 0 {
		t.Errorf("scan --json: errors %+v, %d orphans", rep.Errors, rep.Orphans)
	}
	expectFailure(t, runCLI(t, "info", img), exitFailed, "AG 1", "crc")
	if testimg.Hash(t, img) != before {
		t.Errorf("scan of a corrupt image wrote to it")
	}
}
