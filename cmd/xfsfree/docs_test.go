
// TestInstallScript: scripts/install.sh with DESTDIR and a PREFIX installs
// the binary (which runs and says its version), every man page of man/ and
// the three completions, each of which its shell accepts where the shell is
// installed; nothing is written into the checkout.
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
	man := readDir(t, filepath.Join(root, "man"))
	for name := range man {
		if _, err := os.Stat(filepath.Join(pre, "share", "man", "man8", name)); err != nil {
			t.Error(err)
		}
	}
	comps := map[string][]string{
		"share/bash-completion/completions/xfsfree":   {"bash", "-c", "source \"$0\" && complete -p xfsfree"},
		"share/zsh/site-functions/_xfsfree":           {"zsh", "-n"},
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
	if out, err := exec.Command("git", "-C", root, "status", "--porcelain", "--ignored", "--untracked-files=all").Output(); err == nil &&
		strings.Contains(string(out), "xfsfree\n") && !strings.Contains(string(out), "/") {
		t.Errorf("install.sh left files in the checkout:\n%s", out)
	}
}
