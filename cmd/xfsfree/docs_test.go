package main

import (
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/xfsfree/xfsfree/internal/testimg"
)

// TestDocsUpToDate: the man pages under man/ and the completions under
// completions/ are what `xfsfree gen-docs` makes from the commands now
// (the same files, byte for byte, none missing and none left over).
func TestDocsUpToDate(t *testing.T) {
	root, err := testimg.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	var g globalFlags
	if err := genDocs(newRootCmd(&g), tmp); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"man", "completions"} {
		want := readDir(t, filepath.Join(tmp, sub))
		got := readDir(t, filepath.Join(root, sub))
		if len(want) == 0 {
			t.Fatalf("gen-docs wrote nothing under %s", sub)
		}
		for name, w := range want {
			g, ok := got[name]
			switch {
			case !ok:
				t.Errorf("%s/%s is missing", sub, name)
			case g != w:
				t.Errorf("%s/%s is out of date with the commands", sub, name)
			}
		}
		for name := range got {
			if _, ok := want[name]; !ok {
				t.Errorf("%s/%s is not made by gen-docs (a removed command?)", sub, name)
			}
		}
	}
	if t.Failed() {
		t.Log("regenerate with: go run ./cmd/xfsfree gen-docs .")
	}
}

func readDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(b)
	}
	return m
}

// TestEveryCommandHasExamples: every command a user can see (cobra's help
// command aside) has an EXAMPLES section in its help and its man page, and
// every example runs a command of the tree.
func TestEveryCommandHasExamples(t *testing.T) {
	var g globalFlags
	root := newRootCmd(&g)
	var walk func(c *cobra.Command)
	seen := 0
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		seen++
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q has no examples", c.CommandPath())
		}
		for _, l := range strings.Split(c.Example, "\n") {
			l = strings.TrimSpace(l)
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			if !strings.Contains(l, "xfsfree") {
				t.Errorf("%q: example line %q does not run xfsfree", c.CommandPath(), l)
			}
		}
		r := runCLI(t, append(strings.Fields(strings.TrimPrefix(c.CommandPath(), "xfsfree")), "--help")...)
		if r.code != 0 || !strings.Contains(r.stdout, "Examples:\n") {
			t.Errorf("%s --help: exit %d, no Examples section:\n%s", c.CommandPath(), r.code, r.stdout)
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	if seen < 6 {
		t.Errorf("only %d commands seen", seen)
	}
	paths := walkPaths(root)
	for path := range examples {
		if i := sort.SearchStrings(paths, path); i == len(paths) || paths[i] != path {
			t.Errorf("examples for %q, which is not a command (commands: %v)", path, paths)
		}
	}
}

// TestVersion: --version and -V print one line naming the module version
// and the Go toolchain, and exit 0; a subcommand does not take it.
func TestVersion(t *testing.T) {
	for _, f := range []string{"--version", "-V"} {
		r := runCLI(t, f)
		lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
		if r.code != 0 || len(lines) != 1 || !strings.HasPrefix(lines[0], "xfsfree ") ||
			!strings.Contains(lines[0], runtime.Version()) || r.stderr != "" {
			t.Errorf("xfsfree %s: exit %d, stdout %q, stderr %q", f, r.code, r.stdout, r.stderr)
		}
	}
	expectFailure(t, runCLI(t, "scan", "-V", "x.img"), exitUsage, "unknown shorthand flag")
}

// TestVersionString: what --version says of a build with and without VCS
// information.
func TestVersionString(t *testing.T) {
	v := buildVersion{Module: "v1.2.3", Revision: "0123456789abcdef0123", Time: "2026-01-02T03:04:05Z", Modified: true, Go: "go1.26.0", Platform: "linux/amd64"}
	if got, want := v.String(), "v1.2.3 (revision 0123456789ab, 2026-01-02T03:04:05Z, dirty: uncommitted changes), go1.26.0 linux/amd64"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	v = buildVersion{Module: "(devel)", Go: "go1.26.0", Platform: "linux/amd64"}
	if got, want := v.String(), "(devel) (no VCS revision recorded), go1.26.0 linux/amd64"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// walkPaths lists the command paths of the tree (for messages).
func walkPaths(root *cobra.Command) []string {
	var ps []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		ps = append(ps, c.CommandPath())
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	sort.Strings(ps)
	return ps
}
