package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/xfsfree/xfsfree/xfs"
)

func newScanCmd(g *globalFlags) *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "scan DEV",
		Short: "List orphans and fully free inode chunks: what 'free' would release",
		Long: `scan walks every AG: the 64 unlinked buckets of its AGI, following each chain
through di_next_unlinked (a chain that loops or leaves its AG is reported),
and its inode btree, for chunks whose inodes are all free. It prints, for
each AG, what 'free --orphans' and 'free --empty-chunks' would release
(orphans, buckets, blocks, free chunks), then the total and the time it
took. It writes nothing and works on a dirty log too (the on-disk state
may then lag the log).

With -v it lists every bucket chain and free chunk, and says what each
orphan holds, to decide what to save before a free ('xfsfree extract'):
type and mode (octal), owners and project id, size, blocks, extent count
and fork format, times, flags (reflink, realtime, append-only, immutable,
...), a symlink's target, and the number and names of its extended
attributes (every attr block read is verified). --json lists every orphan
and free chunk; with -v each orphan has its "detail" too.

Exit status is 1 if any AG could not be scanned (the error names the AG,
the block and the field) or, with -v, an orphan could not be fully
described (its error says why).`,
		Example: `  # Orphans and free chunks per AG
  xfsfree scan snap.img

  # What each orphan is: type, size, owners, times, flags, xattrs
  xfsfree scan -v snap.img

  # The same for a script: the orphans' sizes and owners
  xfsfree scan -v --json snap.img | jq '.ags[].unlinked_chains[].inodes[].detail | {ino, size, uid}'`,
		Args: exactlyOneDevice,
		RunE: func(cmd *cobra.Command, args []string) error {
			pass := (*xfs.FS).Scan
			undescribed := 0
			if verbose {
				pass = func(fs *xfs.FS, progress func(done, total int)) (*xfs.ScanReport, error) {
					r, err := fs.Scan(progress)
					if err == nil {
						p := newProgress(g, "describing orphans (AGs)")
						undescribed = fs.DescribeOrphans(r, false, p.Update)
						p.Done()
					}
					return r, err
				}
			}
			rep, err := readOnlyReport(g, args[0], "scanning AGs", pass, func(w io.Writer, r *xfs.ScanReport, el time.Duration) {
				printScan(w, r, verbose, el)
			})
			if err != nil {
				return err
			}
			if len(rep.Errors) > 0 {
				return &located{fmt.Sprintf("%d AG(s) could not be scanned (first: %s)", len(rep.Errors), rep.Errors[0]), rep.Errors[0]}
			}
			if undescribed > 0 {
				return fmt.Errorf("%d orphan(s) could not be fully described (their errors are in the output)", undescribed)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list every orphan and free chunk, not only the per-AG totals")
	return cmd
}

// printScan prints, for each AG with something to say, its totals (and
// its error); with verbose, every bucket chain with its orphans described
// one by one, and every free chunk. The last line is the total.
func printScan(w io.Writer, r *xfs.ScanReport, verbose bool, el time.Duration) {
	if !r.LogClean {
		fmt.Fprintf(w, "note: %s\n", r.Note)
	}
	for _, a := range r.AGs {
		n, blocks := 0, uint64(0)
		for _, c := range a.Chains {
			n += len(c.Inodes)
			for _, o := range c.Inodes {
				blocks += o.NBlocks
			}
		}
		var chunkInodes, chunkBlocks uint64
		for _, c := range a.FreeChunks {
			chunkInodes += uint64(c.Inodes)
			chunkBlocks += uint64(c.Blocks)
		}
		if n == 0 && len(a.FreeChunks) == 0 && a.Error == nil {
			continue
		}
		fmt.Fprintf(w, "AG %d: %d orphan(s) in %d bucket(s) holding %d block(s)", a.AG, n, len(a.Chains), blocks)
		if len(a.FreeChunks) > 0 {
			fmt.Fprintf(w, "; %d fully free chunk(s) of %d inode(s) in %d block(s)", len(a.FreeChunks), chunkInodes, chunkBlocks)
		}
		fmt.Fprintln(w)
		if a.Error != nil {
			fmt.Fprintf(w, "  error: %s\n", a.Error.Message)
		}
		if !verbose {
			continue
		}
		for _, c := range a.Chains {
			fmt.Fprintf(w, "  bucket %2d: %d orphan(s)\n", c.Bucket, len(c.Inodes))
			for _, o := range c.Inodes {
				printOrphanDetail(w, o)
			}
		}
		for _, c := range a.FreeChunks {
			fmt.Fprintf(w, "  free chunk at ino %d (agino %d, holemask %#04x): %d inodes, %d blocks\n",
				c.StartIno, c.StartAgino, c.Holemask, c.Inodes, c.Blocks)
		}
	}
	more := ""
	if !verbose && (r.Orphans > 0 || r.FreeChunks > 0) {
		more = " (-v lists them)"
	}
	fmt.Fprintf(w, "total: %d orphan(s) holding %d block(s); %d fully free chunk(s) of %d inode(s) in %d block(s)%s; %s\n",
		r.Orphans, r.OrphanBlks, r.FreeChunks, r.ChunkInodes, r.ChunkBlks, more, fmtElapsed(el))
}

// printOrphanDetail prints what scan -v says of one orphan.
func printOrphanDetail(w io.Writer, o xfs.Orphan) {
	d := o.Detail
	if d == nil {
		fmt.Fprintf(w, "    ino %d: %s %s nlink %d size %d blocks %d\n", o.Ino, o.Mode.Type(), o.Mode, o.Nlink, o.Size, o.NBlocks)
		if o.DetailErr != "" {
			fmt.Fprintf(w, "      error: %s\n", o.DetailErr)
		}
		return
	}
	const ts = "2006-01-02 15:04:05.000000000Z07:00"
	fmt.Fprintf(w, "    ino %d: %s %s uid %d gid %d projid %d size %d blocks %d extents %d (%s)",
		d.Ino, d.Type, d.Mode, d.UID, d.GID, d.ProjID, d.Size, d.Blocks, d.Extents, d.Format)
	if d.Rdev != "" {
		fmt.Fprintf(w, " rdev %s", d.Rdev)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "      mtime %s  ctime %s", d.Mtime.Format(ts), d.Ctime.Format(ts))
	if len(d.Flags) > 0 {
		fmt.Fprintf(w, "  flags %s", strings.Join(d.Flags, ","))
	}
	fmt.Fprintln(w)
	if d.Type == "symlink" && d.Target != "" {
		fmt.Fprintf(w, "      -> %q\n", d.Target)
	}
	if d.XattrCount > 0 {
		names := make([]string, len(d.Xattrs))
		for i, x := range d.Xattrs {
			names[i] = strconv.Quote(x.Name)
		}
		const maxNames = 16
		more := ""
		if len(names) > maxNames {
			more = fmt.Sprintf(" ... %d more (--json lists them)", len(names)-maxNames)
			names = names[:maxNames]
		}
		fmt.Fprintf(w, "      xattrs %d: %s%s\n", d.XattrCount, strings.Join(names, " "), more)
	}
	for _, e := range d.Errors {
		fmt.Fprintf(w, "      error: %s\n", e)
	}
}
