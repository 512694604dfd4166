package main

import (
	"fmt"
	"io"

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
and its inode btree, for chunks whose inodes are all free. It prints what
'free --orphans' and 'free --empty-chunks' would release. It writes nothing
and works on a dirty log too (the on-disk state may then lag the log).

Exit status is 1 if any AG could not be scanned (the error names the AG,
the block and the field).`,
		Args: exactlyOneDevice,
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := readOnlyReport(g, args[0], "scanning AGs", (*xfs.FS).Scan, func(w io.Writer, r *xfs.ScanReport) {
				printScan(w, r, verbose)
			})
			if err != nil {
				return err
			}
			if len(rep.Errors) > 0 {
				return fmt.Errorf("%d AG(s) could not be scanned (first: AG %d: %s)", len(rep.Errors), rep.Errors[0].AG, rep.Errors[0].Err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list every orphan and free chunk, not only the per-AG totals")
	return cmd
}

func printScan(w io.Writer, r *xfs.ScanReport, verbose bool) {
	if !r.LogClean {
		fmt.Fprintf(w, "note: %s\n", r.Note)
	}
	for _, a := range r.AGs {
		n := 0
		for _, c := range a.Chains {
			n += len(c.Inodes)
		}
		if n == 0 && len(a.FreeChunks) == 0 && a.Err == "" {
			continue
		}
		fmt.Fprintf(w, "AG %d: %d orphan(s) in %d bucket(s), %d fully free chunk(s)\n", a.AG, n, len(a.Chains), len(a.FreeChunks))
		if a.Err != "" {
			fmt.Fprintf(w, "  error: %s\n", a.Err)
		}
		for _, c := range a.Chains {
			fmt.Fprintf(w, "  bucket %2d:", c.Bucket)
			for _, o := range c.Inodes {
				fmt.Fprintf(w, " %d", o.Ino)
			}
			fmt.Fprintln(w)
			if verbose {
				for _, o := range c.Inodes {
					fmt.Fprintf(w, "    ino %d mode %#o nlink %d size %d nblocks %d\n", o.Ino, o.Mode, o.Nlink, o.Size, o.NBlocks)
				}
			}
		}
		for i, c := range a.FreeChunks {
			if !verbose && i == 8 {
				fmt.Fprintf(w, "  ... %d more free chunk(s) (-v lists them)\n", len(a.FreeChunks)-i)
				break
			}
			fmt.Fprintf(w, "  free chunk at ino %d (agino %d, holemask %#04x): %d inodes, %d blocks\n",
				c.StartIno, c.StartAgino, c.Holemask, c.Inodes, c.Blocks)
		}
	}
	fmt.Fprintf(w, "total: %d orphan(s) holding %d block(s); %d fully free chunk(s) of %d inode(s) in %d block(s)\n",
		r.Orphans, r.OrphanBlks, r.FreeChunks, r.ChunkInodes, r.ChunkBlks)
}
