package main

// The EXAMPLES of every command's help (and so of its man page), kept in
// one place so that they read as one manual.

import (
	"strings"

	"github.com/spf13/cobra"
)

// examples maps a command path (as cobra's CommandPath) to its examples.
var examples = map[string]string{
	"xfsfree": `  # What is on a snapshot of a live system, then free its orphans as a mount would
  xfsfree info /dev/vg0/root-snap
  xfsfree scan /dev/vg0/root-snap
  xfsfree recover /dev/vg0/root-snap
  xfsfree free --orphans /dev/vg0/root-snap

  # A VM disk image with a partition table: the XFS partition is found
  xfsfree scan rocky9.raw
  xfsfree free --orphans --partition 2 disk.img

  # The version and VCS revision of this binary
  xfsfree --version`,

	"xfsfree info": `  xfsfree info /dev/vg0/root-snap
  xfsfree info --json snapshot.img | jq .log
  # the XFS partition of a whole-disk image, or the one given
  xfsfree info disk.img
  xfsfree info --partition 3 disk.img
  # a filesystem at a byte offset (anything without a partition table)
  xfsfree info --offset 1048576 disk.img`,

	"xfsfree scan": `  xfsfree scan snapshot.img
  # every orphan and free chunk, not only the per-AG totals
  xfsfree scan -v snapshot.img
  xfsfree scan --json /dev/sdb1 | jq '.orphans'`,

	"xfsfree check": `  xfsfree check snapshot.img && echo consistent
  xfsfree check --json --partition 2 disk.img`,

	"xfsfree recover": `  # what replaying the log would do, writing nothing
  xfsfree recover --dry-run snapshot.img
  xfsfree recover snapshot.img
  # then free the orphans the log recovery left
  xfsfree free --orphans snapshot.img`,

	"xfsfree free": `  # the plan first, then the real run
  xfsfree free --orphans --dry-run snapshot.img
  xfsfree free --orphans snapshot.img
  # chunks whose inodes are all free already (left by the old ikeep option)
  xfsfree free --empty-chunks snapshot.img
  # only these orphans, with I/O and cache counters
  xfsfree free --ino 1027,1029 --stats snapshot.img
  # a dirty log is refused: recover it first
  xfsfree recover disk.img && xfsfree free --orphans disk.img`,

	"xfsfree completion": `  xfsfree completion bash > /etc/bash_completion.d/xfsfree
  xfsfree completion zsh > "${fpath[1]}/_xfsfree"
  xfsfree completion fish > ~/.config/fish/completions/xfsfree.fish`,

	"xfsfree completion bash": `  source <(xfsfree completion bash)
  xfsfree completion bash > /etc/bash_completion.d/xfsfree`,

	"xfsfree completion zsh": `  xfsfree completion zsh > "${fpath[1]}/_xfsfree"`,

	"xfsfree completion fish": `  xfsfree completion fish | source
  xfsfree completion fish > ~/.config/fish/completions/xfsfree.fish`,

	"xfsfree completion powershell": `  xfsfree completion powershell | Out-String | Invoke-Expression`,
}

// addExamples sets the Example of every command that has one, and adds
// cobra's completion command to the tree first (cobra would add it only
// when the command runs; the man pages and completions need it now).
func addExamples(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if ex, ok := examples[c.CommandPath()]; ok {
			c.Example = strings.TrimRight(ex, "\n")
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
