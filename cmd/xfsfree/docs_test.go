package main

import (
	"os"
	"os/exec"
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

// TestInstallScript: scripts/install.sh with DESTDIR and a PREFIX installs
// the binary (which runs and says its version), every man page of man/ and
// the three completions, each of which its shell accepts where the shell is
// installed.
func TestInstallScript(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds xfsfree again")
	}
	root, err := testimg.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "install.sh"), "/opt/xfsfree")
	cmd.Env = append(os.Environ(), "DESTDIR="+dest)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("install.sh: %v\n%s", err, out)
	}
	pre := filepath.Join(dest, "opt", "xfsfree")
	v, err := exec.Command(filepath.Join(pre, "sbin", "xfsfree"), "--version").Output()
	if err != nil || !strings.HasPrefix(string(v), "xfsfree ") {
		t.Errorf("installed xfsfree --version: %v %q", err, v)
	}
	for name := range readDir(t, filepath.Join(root, "man")) {
		if _, err := os.Stat(filepath.Join(pre, "share", "man", "man8", name)); err != nil {
			t.Error(err)
		}
	}
	comps := map[string][]string{
		"share/bash-completion/completions/xfsfree":    {"bash", "-c", "source \"$0\" && complete -p xfsfree"},
		"share/zsh/site-functions/_xfsfree":            {"zsh", "-n"},
		"share/fish/vendor_completions.d/xfsfree.fish": {"fish", "-n"},
	}
	for p, sh := range comps {
		f := filepath.Join(pre, p)
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
			continue
		}
		if _, err := exec.LookPath(sh[0]); err != nil {
			t.Logf("%s not installed: %s not checked", sh[0], p)
			continue
		}
		if out, err := exec.Command(sh[0], append(sh[1:], f)...).CombinedOutput(); err != nil {
			t.Errorf("%s %s: %v\n%s", sh[0], p, err, out)
		}
	}
}
