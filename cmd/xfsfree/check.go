package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/xfsfree/xfsfree/xfs"
)

func newCheckCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "check DEV",
		Short: "Verify the structures xfsfree relies on (read-only)",
		Long: `check reads every AG's AGF, AGI and AGFL (CRC and magic), walks its inobt,
finobt, bnobt, cntbt and rmapbt (block CRCs, shape, key order, sibling
links), and cross-checks: agi_count and agi_freecount against the inobt;
the finobt against the inobt records with free inodes; the bnobt against
the cntbt; agf_freeblks and agf_longest against the free extents;
agf_flcount against the AGFL; and the superblock's icount, ifree and
fdblocks against the AG sums (a difference there is a warning when the log
is dirty or the counters are lazy). It writes nothing and works on a dirty
log too. An AG that cannot be read is reported and the others are checked.

Exit status is 1 if any problem is found (each names the AG, the block,
the structure and the field), 0 if the filesystem is consistent.`,
		Args: exactlyOneDevice,
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := readOnlyReport(g, args[0], "checking AGs", (*xfs.FS).Check, printCheck)
			if err != nil {
				return err
			}
			if !rep.Clean {
				return &located{fmt.Sprintf("%d problem(s) found (first: %s)", len(rep.Problems), rep.Problems[0]), rep.Problems[0]}
			}
			return nil
		},
	}
}

func printCheck(w io.Writer, r *xfs.CheckReport, el time.Duration) {
	if !r.LogClean && r.Note != "" {
		fmt.Fprintf(w, "note: %s\n", r.Note)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "problem: %s\n", p.Message)
	}
	for _, p := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", p.Message)
	}
	var inodes, free, blocks uint64
	for _, a := range r.AGs {
		inodes += a.Inodes
		free += a.FreeInodes
		blocks += a.FreeBlocks
	}
	state := "consistent"
	if !r.Clean {
		state = fmt.Sprintf("%d problem(s)", len(r.Problems))
	}
	fmt.Fprintf(w, "%d AG(s) checked: %d inode(s), %d free; %d free block(s) in the free-space btrees; %d warning(s); %s; %s\n",
		len(r.AGs), inodes, free, blocks, len(r.Warnings), state, fmtElapsed(el))
}
