package fieldfuzz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xfsfree/xfsfree/internal/testimg"
)

// Tools are the programs a campaign runs and how long one run may take.
type Tools struct {
	Bin      string        // the xfsfree binary under test
	DB       string        // xfs_db
	Repair   string        // xfs_repair
	Logprint string        // xfs_logprint
	Timeout  time.Duration // per xfsfree command: longer is a hang
	// ToolTimeout bounds one xfs_db, xfs_repair or xfs_logprint run (they can loop on a
	// fuzzed image too).
	ToolTimeout time.Duration
}

// NeedTools skips the test unless root and the xfsprogs tools the campaign runs are there, and
// returns them with bin as the binary under test.
func NeedTools(t testing.TB, bin string, timeout time.Duration) Tools {
	t.Helper()
	testimg.Need(t, "root", "xfs_db", "xfs_repair", "xfs_logprint", "zstd")
	return Tools{Bin: bin, DB: testimg.Tool("xfs_db"), Repair: testimg.Tool("xfs_repair"),
		Logprint: testimg.Tool("xfs_logprint"), Timeout: timeout, ToolTimeout: 4 * timeout}
}

// Build builds cmd/xfsfree from the module this test runs in and returns the binary's path,
// in a directory removed when the test ends.
func Build(t testing.TB) string {
	t.Helper()
	root, err := testimg.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	bin := filepath.Join(t.TempDir(), "xfsfree")
	cmd := exec.Command(gobin, "build", "-o", bin, "./cmd/xfsfree")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fieldfuzz: go build ./cmd/xfsfree: %v\n%s", err, out)
	}
	return bin
}

// An Exec is one finished run of a program.
type Exec struct {
	Args     []string // the program's base name and its arguments
	Stdout   string
	Stderr   string
	Exit     int  // exit status; -1 if killed by a signal
	TimedOut bool // killed after its time ran out
	Signal   string
	Took     time.Duration
}

// Line is the command as a shell line, with the image path shortened to IMG.
func (e Exec) Line(img string) string {
	var b strings.Builder
	for i, a := range e.Args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a == img {
			a = "IMG"
		}
		if strings.ContainsAny(a, " '[]*") {
			a = "'" + a + "'"
		}
		b.WriteString(a)
	}
	return b.String()
}

// maxOutput bounds what is kept of a program's stdout and stderr (a goroutine dump can be long).
const maxOutput = 256 << 10

type capBuffer struct {
	bytes.Buffer
}

func (c *capBuffer) Write(p []byte) (int, error) {
	if room := maxOutput - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// run runs prog with args within timeout. A Go program that overruns is sent SIGQUIT (it prints
// every goroutine's stack and exits), anything else SIGKILL; either is killed 10 s later if
// still there.
func run(timeout time.Duration, goProgram bool, prog string, args ...string) (Exec, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	var stdout, stderr capBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Stdin = nil
	if goProgram {
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	}
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err := cmd.Run()
	e := Exec{Args: append([]string{filepath.Base(prog)}, args...), Stdout: stdout.String(),
		Stderr: stderr.String(), Took: time.Since(start), TimedOut: ctx.Err() != nil}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		e.Exit = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			e.Signal = ws.Signal().String()
		}
	case errors.Is(err, exec.ErrWaitDelay):
		e.Exit = cmd.ProcessState.ExitCode()
	default:
		return e, fmt.Errorf("fieldfuzz: run %s: %w", prog, err)
	}
	return e, nil
}

// panicLine matches what the Go runtime prints for a panic or a fatal error.
var panicLine = regexp.MustCompile(`(?m)^(panic: |fatal error: |goroutine \d+ \[)`)

// Panicked reports whether the run's stderr holds a Go panic or fatal error. A timed-out run's
// SIGQUIT dump is not a panic.
func (e Exec) Panicked() bool {
	return !e.TimedOut && panicLine.MatchString(e.Stderr)
}

// Excerpt returns the lines of stderr worth quoting: xfsfree's own messages and the first lines
// of a panic or goroutine dump, at most max lines.
func (e Exec) Excerpt(max int) []string {
	var out []string
	lines := strings.Split(strings.TrimRight(e.Stderr, "\n"), "\n")
	for i := 0; i < len(lines) && len(out) < max; i++ {
		l := lines[i]
		switch {
		case strings.HasPrefix(l, "xfsfree:"):
			out = append(out, l)
		case panicLine.MatchString(l) || strings.HasPrefix(l, "SIGQUIT"):
			// The message and the top of the stack, up to the first blank line.
			for ; i < len(lines) && lines[i] != "" && len(out) < max; i++ {
				out = append(out, lines[i])
			}
		}
	}
	if len(out) == 0 && e.Stderr != "" {
		for _, l := range lines {
			if len(out) == max {
				break
			}
			if strings.TrimSpace(l) != "" {
				out = append(out, l)
			}
		}
	}
	return out
}
