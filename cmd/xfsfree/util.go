package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

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
