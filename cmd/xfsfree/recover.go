package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/xfsfree/xfsfree/journal"
	"github.com/xfsfree/xfsfree/xfs"
)

func newRecoverCmd(g *globalFlags) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "recover DEV",
		Short: "Replay a dirty log as the kernel does, and leave it clean",
		Long: `recover replays the log of a filesystem that was not cleanly unmounted (a
crash, a snapshot of a live filesystem) from its tail to its head, as the
kernel's log recovery does: buffer, inode and inode-create items, honouring
buffer cancellations and, on v5 filesystems, skipping blocks already newer
than the change. It then rebuilds the superblock summary counters from the
AG headers and writes an unmount record, so the log is clean.

Intent items (extent-free, rmap, refcount and bmap intents) that their done
items cancel need nothing more. Those left pending — deferred work the
kernel finishes at mount — are finished after the replay, in log order, each
in a logged transaction carrying its done item and all the work it stands
for, so that a crash meanwhile is recovered by xfsfree or the kernel. A log
holding a bad intent, or items of features xfsfree does not handle (attr and
exchange intents, realtime intents, dquots), is refused by name and nothing
is written: mount the filesystem with the kernel to recover it.
Orphaned inodes are left on the unlinked lists for 'xfsfree free'.
On a clean log recover says so and writes nothing.`,
		Args: exactlyOneDevice,
		RunE: func(cmd *cobra.Command, args []string) error {
			stop, done := catchInterrupts("stopping before anything is written (once writing has begun, recovery finishes)",
				"the log stays dirty and is replayed again by the next recover or mount")
			rep, err := xfs.Recover(args[0], xfs.RecoverOptions{DryRun: dryRun, Buffered: g.buffered, Stop: stop, Offset: g.part.off, Size: g.part.len})
			done()
			if errors.Is(err, journal.ErrInterrupted) {
				return interruptedError{err.Error()}
			}
			if rep != nil {
				if g.json {
					g.setReport(rep)
				} else {
					printRecover(os.Stdout, rep, g.elapsed())
				}
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "replay in memory and report; write nothing")
	return cmd
}

// printRecover prints a recovery report; el < 0 leaves out the elapsed
// time (a phase of clean).
func printRecover(w io.Writer, r *xfs.RecoverReport, el time.Duration) {
	head := xfs.MakeLSN(r.HeadCycle, r.Head)
	if r.Clean {
		fmt.Fprintf(w, "%s: the log is clean (head %s): nothing to recover, nothing written", r.Device, head)
		if el >= 0 {
			fmt.Fprintf(w, "; %s", fmtElapsed(el))
		}
		fmt.Fprintln(w)
		return
	}
	verb := "recovered"
	if r.DryRun {
		verb = "dry run (nothing written)"
	}
	fmt.Fprintf(w, "%s: %s\n", r.Device, verb)
	fmt.Fprintf(w, "log         tail %s to head %s, last record %s", r.TailLSN, head, r.LastLSN)
	if r.Torn {
		fmt.Fprint(w, "; a torn write at the head was cut off")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "replayed    %d records, %d transactions", r.Records, r.Transactions)
	if r.Incomplete > 0 {
		fmt.Fprintf(w, " (%d incomplete at the head, discarded)", r.Incomplete)
	}
	fmt.Fprintln(w)
	counts := r.ItemCounts()
	names := make([]string, 0, len(counts))
	for n := range counts {
		names = append(names, n)
	}
	sort.Strings(names)
	var items []string
	for _, n := range names {
		items = append(items, fmt.Sprintf("%s %d", n, counts[n]))
	}
	fmt.Fprintf(w, "items       %s\n", strings.Join(items, ", "))
	fmt.Fprintf(w, "buffers     %d replayed, %d inode buffers (next_unlinked), %d skipped (on-disk LSN not older), %d cancelled, %d cancel records\n",
		r.BufReplayed, r.InodeBufReplayed, r.BufSkippedLSN, r.BufCancelled, r.CancelItems)
	fmt.Fprintf(w, "inodes      %d replayed, %d skipped (on-disk LSN newer), %d cancelled; %d distinct inodes logged\n",
		r.InodesReplayed, r.InodesSkippedLSN, r.InodesCancelled, len(r.LoggedInodes))
	fmt.Fprintf(w, "icreates    %d replayed, %d cancelled\n", r.IcreateReplayed, r.IcreateCancelled)
	w2 := "written"
	if r.DryRun {
		w2 = "to write"
	}
	fmt.Fprintf(w, "blocks      %d bytes %s in %d writes\n", r.WrittenBytes, w2, r.Written)
	fmt.Fprintf(w, "counters    icount %d ifree %d fdblocks %d (superblock had %d %d %d)\n",
		r.Counters.ICount, r.Counters.IFree, r.Counters.FDBlocks,
		r.OldCounters.ICount, r.OldCounters.IFree, r.OldCounters.FDBlocks)
	if ir := r.Intents; ir != nil {
		printIntents(w, ir, r.DryRun)
	}
	if r.UnmountLSN != "" {
		fmt.Fprintf(w, "log         unmount record at %s: the log is clean\n", r.UnmountLSN)
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "warning     %s\n", warn)
	}
	if r.Orphans > 0 {
		fmt.Fprintf(w, "orphans     %d inodes on the unlinked lists, left for 'xfsfree free --orphans' (the kernel frees them at mount; recover does not)\n", r.Orphans)
	}
	if el >= 0 {
		fmt.Fprintln(w, fmtElapsed(el))
	}
}

// printIntents prints what finishing the pending intents did (or, in a
// dry run, would do).
func printIntents(w io.Writer, ir *xfs.IntentsReport, dryRun bool) {
	types := make([]string, 0, len(ir.ByType))
	for k := range ir.ByType {
		types = append(types, k)
	}
	sort.Strings(types)
	var parts []string
	for _, k := range types {
		parts = append(parts, fmt.Sprintf("%s %d", k, ir.ByType[k]))
	}
	if dryRun {
		fmt.Fprintf(w, "intents     %d pending (%s), to finish\n", ir.Pending, strings.Join(parts, ", "))
		return
	}
	fmt.Fprintf(w, "intents     %d pending (%s), %d finished in %d transaction(s)", ir.Pending, strings.Join(parts, ", "), ir.Finished, ir.Transactions)
	if ir.Continued > 0 {
		fmt.Fprintf(w, ", %d continued in new intents", ir.Continued)
	}
	fmt.Fprintln(w)
}
