package main

import (
	"encoding/json"
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

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// progress draws "label: done/total" on stderr when it is a terminal and
// neither --json nor --quiet is set. It is safe for concurrent use.
type progress struct {
	mu      sync.Mutex
	on      bool
	label   string
	last    time.Time
	printed bool
}

func newProgress(g *globalFlags, label string) *progress {
	return &progress{on: !g.json && !g.quiet && isTerminal(os.Stderr), label: label}
}

func (p *progress) Update(done, total int) {
	if p == nil || !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if done < total && time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(os.Stderr, "\r%s: %d/%d", p.label, done, total)
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

// readOnlyReport opens dev read-only, runs one read-only pass over it
// (with progress on a terminal when label is set), and prints the report
// as JSON (--json) or with text. The report is returned for the caller's
// exit status.
func readOnlyReport[R any](g *globalFlags, dev, label string, pass func(fs *xfs.FS, progress func(done, total int)) (R, error),
	text func(io.Writer, R)) (R, error) {
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
		return rep, printJSON(os.Stdout, rep)
	}
	text(os.Stdout, rep)
	return rep, nil
}
