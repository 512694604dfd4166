package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/xfsfree/xfsfree/xfs"
	"golang.org/x/sys/unix"
)

// isCobraUsage recognizes the errors cobra returns for unknown commands.
func isCobraUsage(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "unknown command") || strings.HasPrefix(s, "unknown flag") ||
		strings.HasPrefix(s, "unknown shorthand flag") || strings.Contains(s, "accepts ")
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// progress draws "label: done/total (P%), R/s, elapsed E, ETA T" on stderr
// when it is a terminal and neither --json nor --quiet is set, at most
// ten times a second. It is safe for concurrent use; a nil progress draws
// nothing.
type progress struct {
	mu      sync.Mutex
	on      bool
	label   string
	start   time.Time
	last    time.Time
	printed bool
}

func newProgress(g *globalFlags, label string) *progress {
	return &progress{on: !g.json && !g.quiet && isTerminal(os.Stderr), label: label, start: time.Now()}
}

func (p *progress) Update(done, total int) {
	if p == nil || !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if done < total && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	fmt.Fprintf(os.Stderr, "\r%s\033[K", progressLine(p.label, done, total, now.Sub(p.start)))
	p.printed = true
}

func (p *progress) Done() {
	if p == nil || !p.on || !p.printed {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprint(os.Stderr, "\r\033[K")
}

// progressLine is one progress line: done of total, the rate so far, the
// time elapsed and, once there is a rate, the time left at that rate.
func progressLine(label string, done, total int, elapsed time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d/%d", label, done, total)
	if total > 0 {
		fmt.Fprintf(&b, " (%d%%)", done*100/total)
	}
	secs := elapsed.Seconds()
	if done > 0 && secs > 0 {
		rate := float64(done) / secs
		switch {
		case rate >= 100:
			fmt.Fprintf(&b, ", %.0f/s", rate)
		default:
			fmt.Fprintf(&b, ", %.1f/s", rate)
		}
	}
	fmt.Fprintf(&b, ", elapsed %s", clock(elapsed))
	if done > 0 && done < total && secs > 0 {
		left := time.Duration(float64(total-done) / float64(done) * float64(elapsed))
		fmt.Fprintf(&b, ", ETA %s", clock(left))
	}
	return b.String()
}

// clock is d as m:ss, or h:mm:ss from an hour on.
func clock(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// readOnlyReport opens dev read-only, runs one read-only pass over it
// (with progress on a terminal when label is set), and prints the report
// as JSON (--json) or with text. The report is returned for the caller's
// exit status.
func readOnlyReport[R any](g *globalFlags, dev, label string, pass func(fs *xfs.FS, progress func(done, total int)) (R, error),
	text func(io.Writer, R, time.Duration)) (R, error) {
	var zero R
	fs, err := xfs.Open(dev, xfs.Options{ReadOnly: true, Buffered: g.buffered, Offset: g.part.off, Size: g.part.len})
	if err != nil {
		return zero, err
	}
	defer fs.Close()
	var p *progress
	if label != "" {
		p = newProgress(g, label)
	}
	rep, err := pass(fs, p.Update)
	p.Done()
	if err != nil {
		return zero, err
	}
	if g.json {
		g.setReport(rep)
		return rep, nil
	}
	text(os.Stdout, rep, g.elapsed())
	return rep, nil
}
