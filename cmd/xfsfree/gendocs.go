package main

// The hidden gen-docs command: the man pages (section 8) and the shell
// completions, generated from the cobra commands by cobra's own
// generators. Their output is committed under man/ and completions/;
// TestDocsUpToDate fails when it is out of date with the commands.
//
//	go run ./cmd/xfsfree gen-docs .

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// manDate is the date the man pages carry (a fixed one, so that the pages
// depend on the commands only). Move it when the commands change much.
var manDate = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// completionFiles are the completion scripts gen-docs writes under
// completions/, with the file name each shell looks for.
var completionFiles = []struct {
	name string
	gen  func(root *cobra.Command, path string) error
}{
	{"xfsfree.bash", func(r *cobra.Command, p string) error { return r.GenBashCompletionFileV2(p, true) }},
	{"_xfsfree", func(r *cobra.Command, p string) error { return r.GenZshCompletionFile(p) }},
	{"xfsfree.fish", func(r *cobra.Command, p string) error { return r.GenFishCompletionFile(p, true) }},
}

func newGenDocsCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "gen-docs DIR",
		Short:  "Write the man pages to DIR/man and the shell completions to DIR/completions",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return genDocs(cmd.Root(), args[0])
		},
	}
}

// genDocs writes DIR/man/*.8 (the old pages removed first, so a page of a
// removed command goes too) and DIR/completions/*.
func genDocs(root *cobra.Command, dir string) error {
	man := filepath.Join(dir, "man")
	comp := filepath.Join(dir, "completions")
	for _, d := range []string{man, comp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	old, err := filepath.Glob(filepath.Join(man, "*.8"))
	if err != nil {
		return err
	}
	for _, p := range old {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	var noTag func(c *cobra.Command)
	noTag = func(c *cobra.Command) {
		c.DisableAutoGenTag = true
		c.Long = manPreformatted(c.Long)
		for _, s := range c.Commands() {
			noTag(s)
		}
	}
	noTag(root)
	date := manDate
	hdr := &doc.GenManHeader{Section: "8", Date: &date, Source: "xfsfree", Manual: "System Administration"}
	if err := doc.GenManTree(root, hdr, man); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	for _, c := range completionFiles {
		if err := c.gen(root, filepath.Join(comp, c.name)); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
	}
	return nil
}

// manPreformatted indents the lines of a help text that are indented (the
// command list of the root's help) to four spaces, which the man page
// generator's Markdown keeps as they are instead of filling them.
func manPreformatted(long string) string {
	lines := strings.Split(long, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "  ") && !strings.HasPrefix(l, "    ") {
			lines[i] = "  " + l
		}
	}
	return strings.Join(lines, "\n")
}
