package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
)

func cliLabel(t *testing.T, img string) string {
	t.Helper()
	v := strings.Trim(testimg.ParseFields(testimg.DB(t, img, "sb 0", "p fname"))["fname"], `"`)
	return strings.ReplaceAll(v, `\000`, "")
}

func cliCopy(t *testing.T, img string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy.img")
	if out, err := exec.Command("cp", "--sparse=always", img, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	return dst
}

// kernelMountRecovers mounts and unmounts img and reports whether the
// kernel ran log recovery.
func kernelMountRecovers(t *testing.T, img string) bool {
	t.Helper()
	_, recovered := testimg.KernelMountCycle(t, img)
	return recovered
}

func TestDebugSetLabel(t *testing.T) {
	testimg.Need(t, "zstd", "loop", "xfs_repair", "xfs_db")
	img := testimg.Path(t, "default")
	r := runCLI(t, "debug", "set-label", img, "a", "b", "c")
	if r.code != 0 {
		t.Fatalf("set-label: exit %d\n%s", r.code, r.stderr)
	}
	if l := cliLabel(t, img); l != "c" {
		t.Fatalf("label %q", l)
	}
	r = runCLI(t, "info", img)
	if r.code != 0 || !strings.Contains(r.stdout, "; clean, head") {
		t.Fatalf("info after set-label: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	testimg.Repair(t, img)
	if kernelMountRecovers(t, img) {
		t.Fatal("kernel recovered after a completed set-label")
	}
	// Usage: a label is needed; labels are at most 12 bytes.
	expectFailure(t, runCLI(t, "debug", "set-label", img), exitUsage)
	expectFailure(t, runCLI(t, "debug", "set-label", img, "thirteen-char"), exitFailed, "longer than 12")
}

func TestCrashFlags(t *testing.T) {
	testimg.Need(t, "zstd", "loop", "xfs_repair", "xfs_db")
	base := testimg.Path(t, "default")
	orig := cliLabel(t, base)
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		// Writes: 1 clears the blocks ahead of the head, 2..4 are the
		// records of a, b, c.
		{[]string{"--crash-after-writes", "0"}, orig},
		{[]string{"--crash-after-writes", "2"}, "a"},
		{[]string{"--crash-after-writes", "3"}, "b"},
		{[]string{"--tear-write", "3"}, "a"}, // b's two-block record torn
		{[]string{"--tear-write", "6", "--crash-after-writes", "-1"}, "c"},
	} {
		t.Run(strings.Join(tc.flags, " "), func(t *testing.T) {
			img := cliCopy(t, base)
			r := runCLI(t, append(tc.flags, "debug", "set-label", img, "a", "b", "c")...)
			if r.code != exitCrashed || !strings.Contains(r.stderr, "injected crash") {
				t.Fatalf("exit %d, want %d\n%s", r.code, exitCrashed, r.stderr)
			}
			ours := cliCopy(t, img)
			kernelMountRecovers(t, img)
			if l := cliLabel(t, img); l != tc.want {
				t.Fatalf("label after kernel recovery %q, want %q", l, tc.want)
			}
			testimg.Repair(t, img)
			r = runCLI(t, "recover", ours)
			if r.code != 0 {
				t.Fatalf("recover: exit %d\n%s", r.code, r.stderr)
			}
			if l := cliLabel(t, ours); l != tc.want {
				t.Fatalf("label after xfsfree recover %q, want %q", l, tc.want)
			}
			testimg.Repair(t, ours)
		})
	}
}

func TestCrashFlagsHidden(t *testing.T) {
	r := runCLI(t, "--help")
	for _, s := range []string{"crash-after-writes", "tear-write", "test-item-delay", "debug"} {
		if strings.Contains(r.stdout, s) {
			t.Errorf("--help shows %q:\n%s", s, r.stdout)
		}
	}
}

// The released binary has no test hooks at all: the flags are unknown and
// the debug command does not exist.
func TestReleaseHasNoTestHooks(t *testing.T) {
	img := testimg.Path(t, "default")
	for _, args := range [][]string{
		{"--crash-after-writes", "1", "info", img},
		{"--tear-write", "1", "info", img},
		{"--test-item-delay", "1s", "info", img},
		{"debug", "set-label", img, "x"},
	} {
		cmd := exec.Command(releaseBin, args...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitUsage {
			t.Errorf("release xfsfree %v: %v (want exit %d)\n%s", args, err, exitUsage, out)
		}
	}
}
