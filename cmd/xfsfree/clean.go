package main

// The clean command: what a kernel mount and unmount do, offline.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/xfsfree/xfsfree/journal"
	"github.com/xfsfree/xfsfree/rescue"
	"github.com/xfsfree/xfsfree/xfs"
)

// cleanOutput is the --json document of `clean` (without the envelope).
type cleanOutput struct {
	*xfs.CleanReport
	Free  *freeView        `json:"free,omitempty"` // the report's, its inodes streamed
	Stats *freeStats       `json:"stats,omitempty"`
	Saved *rescue.Manifest `json:"saved,omitempty"` // --save-orphans
}

// freeView is a free report with its inodes streamed (stream.go).
type freeView struct {
	*xfs.FreeReport
	Inodes *streamList `json:"inodes"`
}

func newCleanOutput(rep *xfs.CleanReport, st *freeStats, saved *rescue.Manifest) *cleanOutput {
	out := &cleanOutput{CleanReport: rep, Stats: st, Saved: saved}
	if rep.Free != nil {
		out.Free = &freeView{rep.Free, freedInodes(rep.Free.Inodes)}
	}
	return out
}

func newCleanCmd(g *globalFlags) *cobra.Command {
	var o xfs.CleanOptions
	var stats, verbose bool
	var saveDir string
	cmd := &cobra.Command{
		Use:   "clean DEV",
		Short: "Do what a kernel mount and unmount do: replay the log, free orphans and CoW leftovers",
		Long: `clean does to an unmounted filesystem what the kernel's mount and unmount do,
offline, so that the image then mounts at once, without recovery:

  1. if the log is dirty, it is replayed (as 'xfsfree recover' does) and the
     intents it leaves pending are finished, each in a logged transaction;
  2. the orphans on the AGI unlinked lists are freed (as 'xfsfree free
     --orphans' does), reflinked ones included;
  3. after a dirty log only (as the kernel), the CoW staging extents left in
     the refcount btree by an interrupted copy-on-write are freed;
  4. the superblock counters are rebuilt and an unmount record written.

Every change goes through the filesystem's own log: a crash at any point is
recovered by 'xfsfree recover' or by a kernel mount. A clean log that holds
no orphans is left untouched. A log clean refuses (items of features xfsfree
does not handle) or an inconsistent filesystem is refused before anything is
written; a corrupt block met later cancels only the change that met it, and
the run still ends with a clean log.

--save-orphans DIR saves every orphan's bytes into DIR (as 'extract
--all-orphans' does) after the log's replay and before anything is freed; an
orphan that could not be saved is not freed. --dry-run writes nothing: the
log is replayed in memory and the frees are planned on the metadata as it is
on disk.`,
		Example: `  # A frozen snapshot or a crashed disk image: make it mount at once
  xfsfree clean snap.img

  # Look first: what the log holds, what would be freed
  xfsfree clean --dry-run snap.img

  # Keep every orphan's bytes, then clean
  xfsfree clean --save-orphans /srv/rescue snap.img

  # For scripts
  xfsfree clean --json --stats /dev/vg0/snap`,
		Args: exactlyOneDevice,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Buffered, o.Offset, o.Size = g.buffered, g.part.off, g.part.len
			var saved *rescue.Manifest
			if saveDir != "" {
				o.BeforeFree = func(fs *xfs.FS) (map[uint64]string, error) {
					m, err := saveOrphans(g, fs, saveDir, nil)
					if err != nil {
						return nil, fmt.Errorf("saving the orphans before freeing them (nothing freed): %w", err)
					}
					saved = m
					fs.Cache.DropClean() // the attr and symlink blocks the save read: the free frees them
					if !g.json {
						printSaved(os.Stdout, m, "")
					}
					return m.NotSaved(), nil
				}
			}
			p := newProgress(g, "freeing")
			o.Progress = func(phase string, done, total int) { p.Update(done, total) }
			stop, done := catchInterrupts("stopping at the next transaction boundary, then leaving the log clean",
				"the log is dirty, and holds only whole transactions: run 'xfsfree clean' (or mount the filesystem) again")
			o.Stop = stop
			o.ListInodes = listInodes(g.json, verbose, o.DryRun)
			rep, err := xfs.Clean(args[0], o)
			done()
			p.Done()
			if errors.Is(err, journal.ErrInterrupted) {
				return interruptedError{err.Error()}
			}
			if rep == nil {
				return err
			}
			var st *freeStats
			if stats {
				d, c := rep.IO.Device, rep.IO.Cache
				st = &freeStats{DeviceReads: d.Reads, DeviceWrites: d.Writes, BytesRead: d.BytesRead, BytesWritten: d.BytesWritten,
					Syncs: d.Syncs, CacheHits: c.Hits, CacheMisses: c.Misses, CacheReadAhds: c.ReadAheads, PeakCacheBytes: c.PeakBytes}
				if f := rep.Free; f != nil {
					st.LogBytes, st.Transactions, st.Checkpoints, st.BusyReused = f.LogBytes, f.Transactions, f.Journal.Checkpoints, f.BusyReused
				}
			}
			if g.json {
				g.setReport(newCleanOutput(rep, st, saved))
			} else {
				printClean(os.Stdout, rep, verbose, g.elapsed())
				if st != nil {
					printFreeStats(os.Stdout, st)
				}
			}
			if err != nil {
				return err
			}
			if f := rep.Free; f != nil {
				if f.Interrupted {
					return interruptedError{fmt.Sprintf("interrupted: freed %d of %d orphan(s); the log is clean; run again to finish",
						f.InodesFreed, f.Planned)}
				}
				if f.Failed() {
					return fmt.Errorf("%d orphan(s) refused, %d failed (the others were %s)", len(f.Refused), len(f.Errors),
						map[bool]string{true: "planned", false: "freed"}[f.DryRun])
				}
			}
			if c := rep.Cow; c != nil && c.Failed() {
				return fmt.Errorf("%d CoW staging extent(s) could not be freed", len(c.Errors))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.DryRun, "dry-run", false, "replay the log in memory and plan the frees; write nothing")
	f.BoolVar(&stats, "stats", false, "print device reads and writes, syncs, cache use and log bytes")
	f.BoolVarP(&verbose, "verbose", "v", false, "list every inode, chunk and extent")
	f.StringVar(&saveDir, "save-orphans", "", "save every orphan's bytes into `DIR` first; an orphan that could not be saved is not freed")
	return cmd
}

// printClean prints clean's report phase by phase.
func printClean(w io.Writer, r *xfs.CleanReport, verbose bool, el time.Duration) {
	if r.Recover != nil {
		fmt.Fprintln(w, "== log")
		printRecover(w, r.Recover, -1) // the run's elapsed time ends the report
	} else {
		fmt.Fprintf(w, "%s: the log is clean: nothing to replay (CoW leftovers are freed only after a dirty log, as the kernel's mount does)\n", r.Device)
	}
	if r.Free != nil {
		fmt.Fprintln(w, "== orphans")
		printFree(w, r.Free, verbose, -1)
	}
	if c := r.Cow; c != nil {
		fmt.Fprintln(w, "== CoW leftovers")
		verb := "freed"
		if c.DryRun {
			verb = "would free"
		}
		if verbose {
			for _, e := range c.Extents {
				fmt.Fprintf(w, "  AG %d agbno %d: %d block(s)\n", e.AG, e.Agbno, e.Blocks)
			}
		}
		fmt.Fprintf(w, "%s %d CoW staging extent(s) of %d found, %d block(s)", verb, c.Freed, c.Planned, c.Blocks)
		if !c.DryRun {
			fmt.Fprintf(w, "; %d transaction(s)", c.Transactions)
		}
		fmt.Fprintln(w)
		for _, e := range c.Errors {
			fmt.Fprintf(w, "failed: %s\n", e.String())
		}
	}
	fmt.Fprintf(w, "clean: %s\n", fmtElapsed(el))
}
