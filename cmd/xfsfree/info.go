package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/xfsfree/xfsfree/xfs"
)

func newInfoCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "info DEV",
		Short: "Show geometry, features, log state and per-AG inode counts",
		Long: `info reads the superblock, every AG's AGF and AGI, and the log, and prints
the filesystem's geometry, its features, the log's head and tail and whether
it is clean, and each AG's inode and free-space counts. It writes nothing and
works on a dirty log too (the on-disk metadata may then lag the log).`,
		Args: exactlyOneDevice,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := readOnlyReport(g, args[0], "", func(fs *xfs.FS, _ func(int, int)) (*xfs.InfoReport, error) {
				return fs.Info()
			}, printInfo)
			return err
		},
	}
}

func printInfo(w io.Writer, r *xfs.InfoReport, el time.Duration) {
	geo := r.Geometry
	fmt.Fprintf(w, "device      %s", r.Device)
	if r.Buffered {
		fmt.Fprint(w, " (buffered I/O, not O_DIRECT)")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "uuid        %s", geo.UUID)
	if geo.Label != "" {
		fmt.Fprintf(w, "  label %q", geo.Label)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "features    %s\n", strings.Join(r.Features, " "))
	fmt.Fprintf(w, "blocks      %d x %d bytes, sector %d, %d AGs of %d blocks\n",
		geo.DataBlocks, geo.BlockSize, geo.SectorSize, geo.AGCount, geo.AGBlocks)
	fmt.Fprintf(w, "inodes      %d bytes; chunk %d inodes in %d blocks; cluster %d blocks (%d inodes); alignment %d, sparse alignment %d\n",
		geo.InodeSize, geo.InodesPerChunk, geo.ChunkBlocks, geo.ClusterBlocks, geo.InodesPerCluster,
		geo.InodeAlignment, geo.SparseAlignment)
	fmt.Fprintf(w, "root inode  %d\n", geo.RootIno)
	lg := r.Log
	if lg.External {
		fmt.Fprintln(w, "log         external (not read)")
	} else {
		state := "clean"
		if !lg.Clean {
			state = "DIRTY"
		}
		fmt.Fprintf(w, "log         %d blocks at fsb %d, sector %d, sunit %d; %s, head %s, tail %s\n",
			geo.LogBlocks, geo.LogStart, geo.LogSectorSize, geo.LogStripeUnit, state, lg.Head, lg.Tail)
	}
	if lg.Note != "" {
		fmt.Fprintf(w, "note        %s\n", lg.Note)
	}
	fmt.Fprintf(w, "counters    superblock icount %d ifree %d fdblocks %d; AG sums icount %d ifree %d fdblocks %d\n",
		r.Counters.ICount, r.Counters.IFree, r.Counters.FDBlocks, r.AGSums.ICount, r.AGSums.IFree, r.AGSums.FDBlocks)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "AG\ticount\tifree\tfreeblks\tflcount\tbtreeblks\tlongest\tinobt lvl\tfinobt lvl\tunlinked buckets\t")
	for _, a := range r.AGs {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", a.AG, a.ICount, a.IFree, a.FreeBlocks,
			a.FLCount, a.BtreeBlocks, a.Longest, a.InobtLevel, a.FinobtLevel, a.Unlinked)
	}
	tw.Flush()
	fmt.Fprintln(w, fmtElapsed(el))
}
