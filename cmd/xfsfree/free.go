package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/xfsfree/xfsfree/rescue"
	"github.com/xfsfree/xfsfree/xfs"
)

// freeStats are the I/O counters --stats prints.
type freeStats struct {
	DeviceReads   int64 `json:"device_reads"`
	DeviceWrites  int64 `json:"device_writes"`
	BytesRead     int64 `json:"bytes_read"`
	BytesWritten  int64 `json:"bytes_written"`
	Syncs         int64 `json:"syncs"`
	CacheHits     int64 `json:"cache_hits"`
	CacheMisses   int64 `json:"cache_misses"`
	LogBytes      int64 `json:"log_bytes_written"`
	Transactions  int   `json:"transactions"`
	CacheReadAhds int64 `json:"cache_readaheads"`
	// Checkpoints is the number of log checkpoints the transactions were
	// gathered into (each written with one sync).
	Checkpoints uint64 `json:"checkpoints"`
	// PeakCacheBytes is the most memory the buffer cache held at once.
	PeakCacheBytes int64 `json:"peak_cache_bytes"`
	BusyReused     int   `json:"busy_reused"`
}

// freeOutput is the report of `free` in the --json document.
type freeOutput struct {
	*xfs.FreeReport
	Inodes *streamList      `json:"inodes"` // the report's, streamed (stream.go)
	Stats  *freeStats       `json:"stats,omitempty"`
	Saved  *rescue.Manifest `json:"saved,omitempty"` // --save-orphans
}

func newFreeCmd(g *globalFlags) *cobra.Command {
	var o xfs.FreeOptions
	var inos []string
	var stats, verbose bool
	var saveDir string
	cmd := &cobra.Command{
		Use:   "free DEV (--orphans | --empty-chunks | --ino N...)",
		Short: "Free orphaned inodes and fully free inode chunks, through the log",
		Long: `free frees, as the kernel's mount would, the inodes on the AGI unlinked lists
(--orphans: every one, in the kernel's order: AG, bucket, chain), or only
the orphans given by number (--ino, repeatable or comma-separated; an inode
with links, a free one or a number outside the filesystem is refused by
number), and releases inode chunks that are entirely free already
(--empty-chunks; the kernel never releases those). Each orphan's forks are
truncated and their blocks freed (a reflinked file's shared blocks lose one
reference instead: those another file still maps stay allocated), its inode
btree records updated and the inode reset; a chunk left entirely free is
released (its inode cluster buffers cancelled, its blocks freed) unless
--keep-chunks.

Every change is a logged transaction in the filesystem's own log; at the end
the superblock counters are rebuilt from the AG headers and the log is left
clean, so the kernel mounts the filesystem without recovery; a run that
frees nothing (everything refused, or nothing to free) writes nothing. With quota
accounting on, the quota 'checked' flags are cleared so that the next mount
re-counts usage.

free refuses a mounted device and a dirty log (run 'xfsfree recover' first).
Orphans it must not free (realtime files, metadata inodes, a corrupt inode
or block) are refused by number; a free that meets a corrupt block is
cancelled (nothing of it written) and named; the others go on, and
the exit status is 1. --dry-run opens the device read-only and prints the
plan.

--save-orphans DIR first saves every orphan to be freed into DIR, as
'extract --all-orphans' does (DIR/<ino> and DIR/manifest.json, synced),
before anything is written to DEV; an orphan that could not be saved is
refused, by number, with the reason, and not freed (with --dry-run the
orphans are saved too: only DEV is left untouched).`,
		Example: `  # A snapshot with deleted-but-open files: replay its log, look, free
  xfsfree recover snap.img
  xfsfree free --orphans --dry-run snap.img
  xfsfree free --orphans snap.img

  # Save every orphan's bytes first; what cannot be saved is not freed
  xfsfree free --orphans --save-orphans /srv/rescue snap.img

  # Free two orphans only, then release chunks left entirely free
  xfsfree free --ino 133,134 snap.img
  xfsfree free --empty-chunks snap.img`,
		Args: exactlyOneDevice,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, s := range inos {
				n, err := strconv.ParseUint(s, 0, 64)
				if err != nil {
					return usageError{fmt.Errorf("--ino %q: not an inode number", s)}
				}
				o.Inos = append(o.Inos, n)
			}
			if !o.Orphans && !o.EmptyChunks && len(o.Inos) == 0 {
				return usageError{xfs.ErrNothingToFree}
			}
			if o.Orphans && len(o.Inos) > 0 {
				return usageError{errors.New("--orphans frees every orphan: give it or --ino, not both")}
			}
			if saveDir != "" && !o.Orphans && len(o.Inos) == 0 {
				return usageError{errors.New("--save-orphans saves the orphans --orphans or --ino frees: give one of them")}
			}
			opts := xfs.Options{Buffered: g.buffered, Offset: g.part.off, Size: g.part.len}
			var fs *xfs.FS
			var err error
			if o.DryRun {
				opts.ReadOnly = true
				fs, err = xfs.Open(args[0], opts)
			} else {
				fs, err = xfs.OpenWrite(args[0], opts)
			}
			if err != nil {
				return err
			}
			defer fs.Close()
			if !o.DryRun {
				if h := testWriteHook(); h != nil {
					fs.Dev.SetWriteHook(h(fs.Dev))
				}
			}
			var saved *rescue.Manifest
			if saveDir != "" {
				if saved, err = saveBeforeFree(g, fs, saveDir, &o); err != nil {
					return err
				}
			}
			p := newProgress(g, "freeing")
			o.Progress = p.Update
			if d := testItemDelay(); d > 0 {
				var mu sync.Mutex
				last := 0
				o.Progress = func(done, total int) {
					p.Update(done, total)
					mu.Lock()
					n := done - last
					last = done
					mu.Unlock()
					time.Sleep(time.Duration(n) * d) // d per item done
				}
			}
			stop, done := catchInterrupts("stopping at the next transaction boundary, then leaving the log clean",
				"the log is dirty, and holds only whole transactions: "+
					"run 'xfsfree recover' (or mount the filesystem) to replay it, then free again")
			o.Stop = stop
			o.ListInodes = listInodes(g.json, verbose, o.DryRun)
			rep, err := fs.Free(o)
			done()
			p.Done()
			if err != nil {
				if rep != nil && g.json {
					g.setReport(&freeOutput{rep, freedInodes(rep.Inodes), nil, saved})
				}
				return err
			}
			var st *freeStats
			if stats {
				d, c := fs.Dev.Stats(), fs.Cache.Stats()
				st = &freeStats{DeviceReads: d.Reads, DeviceWrites: d.Writes, BytesRead: d.BytesRead, BytesWritten: d.BytesWritten,
					Syncs: d.Syncs, CacheHits: c.Hits, CacheMisses: c.Misses, CacheReadAhds: c.ReadAheads,
					LogBytes: rep.LogBytes, Transactions: rep.Transactions, Checkpoints: rep.Journal.Checkpoints,
					PeakCacheBytes: c.PeakBytes, BusyReused: rep.BusyReused}
			}
			if g.json {
				g.setReport(&freeOutput{rep, freedInodes(rep.Inodes), st, saved})
			} else {
				printFree(os.Stdout, rep, verbose, g.elapsed())
				if st != nil {
					printFreeStats(os.Stdout, st)
				}
			}
			if rep.Interrupted {
				return interruptedError{fmt.Sprintf("interrupted: freed %d of %d planned orphan(s) and chunk(s); the log is clean; run again to finish",
					rep.InodesFreed+rep.ChunksFreed-countEmptied(rep), rep.Planned)}
			}
			if rep.Failed() {
				msg := fmt.Sprintf("%d refused, %d failed (the others were %s)", len(rep.Refused), len(rep.Errors), map[bool]string{true: "planned", false: "freed"}[o.DryRun])
				if len(rep.Errors) > 0 {
					return &located{msg + " (first failure: " + rep.Errors[0].String() + ")", rep.Errors[0]}
				}
				x := rep.Refused[0]
				return &located{fmt.Sprintf("%s (first refusal: inode %d: %s)", msg, x.Ino, x.Reason),
					xfs.Problem{AG: xfs.NoAG, Daddr: -1, Ino: x.Ino}}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.Orphans, "orphans", false, "free every inode on the AGI unlinked lists")
	f.BoolVar(&o.EmptyChunks, "empty-chunks", false, "release inode chunks whose inodes are all free already")
	f.StringSliceVar(&inos, "ino", nil, "free this orphan (repeatable, or comma-separated)")
	f.BoolVar(&o.KeepChunks, "keep-chunks", false, "keep chunks the frees leave entirely free (as the old ikeep mount option)")
	f.BoolVar(&o.DryRun, "dry-run", false, "print the plan; open read-only and write nothing")
	f.BoolVar(&stats, "stats", false, "print device reads and writes, cache hits and misses, and log bytes written")
	f.BoolVarP(&verbose, "verbose", "v", false, "list every inode and chunk")
	f.StringVar(&saveDir, "save-orphans", "", "save each orphan's bytes and a manifest into this directory first; do not free what could not be saved")
	return cmd
}

// maxLines is how many inodes and chunks a dry run's text report lists
// without -v.
const maxLines = 50

// listInodes is FreeOptions.ListInodes for a run: a real run's text
// report without -v lists no inode, so none is kept.
func listInodes(json, verbose, dryRun bool) int {
	if json || verbose || dryRun {
		return 0
	}
	return -1
}

// countEmptied counts the chunks freed because an inode free emptied them
// (the plan counts those under their inode, not as chunks of their own).
func countEmptied(r *xfs.FreeReport) int {
	n := 0
	for _, c := range r.Chunks {
		if !c.WasEmpty {
			n++
		}
	}
	return n
}

// printFree prints a free report; el < 0 leaves out the elapsed time (a
// phase of clean, which prints the whole run's).
func printFree(w io.Writer, r *xfs.FreeReport, verbose bool, el time.Duration) {
	if r.Note != "" {
		fmt.Fprintf(w, "note: %s\n", r.Note)
	}
	verb, chunkVerb := "freed", "released"
	if r.DryRun {
		fmt.Fprintf(w, "%s: dry run, nothing written. The plan:\n", r.Device)
		verb, chunkVerb = "would free", "would release"
	}
	for i, in := range r.Inodes {
		if !verbose && !r.DryRun {
			break
		}
		if !verbose && i == maxLines {
			fmt.Fprintf(w, "  ... %d more inode(s) (-v or --json lists them)\n", r.InodesFreed-i)
			break
		}
		extra := ""
		if in.ChunkFreed {
			extra = ", empties its chunk"
		}
		fmt.Fprintf(w, "  inode %d (AG %d): %s %s size %d, %d block(s)%s\n", in.Ino, in.AG, in.Mode.Type(), in.Mode, in.Size, in.Blocks, extra)
	}
	for i, c := range r.Chunks {
		if !verbose && !r.DryRun {
			break
		}
		if !verbose && i == maxLines {
			fmt.Fprintf(w, "  ... %d more chunk(s) (-v or --json lists them)\n", len(r.Chunks)-i)
			break
		}
		why := "emptied by the frees"
		if c.WasEmpty {
			why = "entirely free already"
		}
		fmt.Fprintf(w, "  chunk at inode %d (AG %d agino %d): %d inodes, %d block(s), %s\n", c.StartIno, c.AG, c.StartAgino, c.Inodes, c.Blocks, why)
	}
	fmt.Fprintf(w, "%s %d orphan(s) holding %d block(s); %s %d chunk(s) of %d inode(s) in %d block(s)",
		verb, r.InodesFreed, r.ForkBlocks, chunkVerb, r.ChunksFreed, r.ChunkInodes, r.ChunkBlocks)
	if !r.DryRun {
		fmt.Fprintf(w, "; %d transaction(s)", r.Transactions)
	}
	if el >= 0 {
		fmt.Fprintf(w, "; %s", fmtElapsed(el))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "counters: icount %d -> %d, ifree %d -> %d, fdblocks %d -> %d", r.Before.ICount, r.After.ICount,
		r.Before.IFree, r.After.IFree, r.Before.FDBlocks, r.After.FDBlocks)
	if r.DryRun {
		fmt.Fprint(w, " (estimated: btree blocks not counted)")
	} else {
		fmt.Fprint(w, " (from the AG headers); the log is clean")
	}
	fmt.Fprintln(w)
	if r.QuotaNote != "" {
		fmt.Fprintf(w, "quota: %s\n", r.QuotaNote)
	}
	for _, x := range r.Refused {
		fmt.Fprintf(w, "refused: inode %d: %s\n", x.Ino, x.Reason)
	}
	for _, e := range r.Errors {
		if e.Ino != 0 {
			fmt.Fprintf(w, "failed: inode %d (its transaction cancelled, nothing written): %s\n", e.Ino, e)
		} else {
			fmt.Fprintf(w, "failed (nothing written for the AG): %s\n", e)
		}
	}
}

func printFreeStats(w io.Writer, s *freeStats) {
	fmt.Fprintf(w, "stats: device %d reads (%d bytes), %d writes (%d bytes), %d syncs; cache %d hits, %d misses, %d read ahead, peak %d bytes; "+
		"log %d bytes, %d transaction(s) in %d checkpoint(s)\n",
		s.DeviceReads, s.BytesRead, s.DeviceWrites, s.BytesWritten, s.Syncs, s.CacheHits, s.CacheMisses, s.CacheReadAhds, s.PeakCacheBytes,
		s.LogBytes, s.Transactions, s.Checkpoints)
}
