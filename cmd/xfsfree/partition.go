package main

// Which bytes of DEV hold the filesystem: the whole device, the XFS
// partition of a disk with a GPT or MBR partition table (found, or given
// with --partition N), or a byte range given with --offset/--size. The
// answer goes to xfs.Options (Offset, Size), which keep every read and write
// inside it.

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/xfsfree/xfsfree/partition"
)

// partitionFlags are the global --partition, --offset and --size flags,
// and what they resolve to for the command's DEV.
type partitionFlags struct {
	number       int
	offset, size byteCount
	// resolved by resolve: the byte range of the filesystem (0, 0: the
	// whole device).
	off, len int64
}

// deviceCommands are the commands whose first argument is DEV.
var deviceCommands = map[string]bool{
	"xfsfree info": true, "xfsfree scan": true, "xfsfree check": true, "xfsfree recover": true,
	"xfsfree free": true, "xfsfree extract": true, "xfsfree clean": true, "xfsfree debug set-label": true,
}

// addPartitionFlags adds the flags to every command and resolves them,
// before a device command runs, in the root's PersistentPreRunE.
func addPartitionFlags(root *cobra.Command, g *globalFlags, p *partitionFlags) {
	f := root.PersistentFlags()
	f.IntVar(&p.number, "partition", 0, "use partition `N` of a disk with a GPT or MBR partition table (numbered as Linux does: MBR logical partitions from 5)")
	f.Var(&p.offset, "offset", "the filesystem starts `BYTES` into DEV (suffixes K, M, G, T: powers of 1024); no partition table is read")
	f.Var(&p.size, "size", "the filesystem's byte range is `BYTES` long (default: to the end of DEV)")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if !deviceCommands[cmd.CommandPath()] || len(args) == 0 {
			return nil
		}
		return p.resolve(g, args[0])
	}
}

// resolve sets p.off and p.len for dev.
func (p *partitionFlags) resolve(g *globalFlags, dev string) error {
	if p.number != 0 && (p.offset.set || p.size.set) {
		return usageError{errors.New("--partition and --offset/--size both give the filesystem's place: give one")}
	}
	if p.number < 0 {
		return usageError{fmt.Errorf("--partition %d: partitions are numbered from 1", p.number)}
	}
	if p.offset.set || p.size.set {
		p.off, p.len = int64(p.offset.n), int64(p.size.n)
		return nil
	}
	d, err := partition.OpenDisk(dev)
	if err != nil {
		if p.number != 0 {
			return err
		}
		return nil // the open of the device says what is wrong
	}
	defer d.Close()
	if whole, err := d.WholeXFS(); err != nil {
		if p.number != 0 {
			return fmt.Errorf("%s: %w", dev, err)
		}
		return nil // the open of the device says what is wrong
	} else if whole {
		if p.number != 0 {
			return usageError{fmt.Errorf("%s holds an XFS filesystem on the whole device, with no partition table: drop --partition", dev)}
		}
		return nil
	}
	t, err := d.Table()
	switch {
	case errors.Is(err, partition.ErrNoTable):
		if p.number != 0 {
			return usageError{fmt.Errorf("--partition %d: %s has no GPT or MBR partition table (--offset BYTES gives a filesystem's place by hand)", p.number, dev)}
		}
		return nil // not XFS either: the open says so
	case err != nil:
		return fmt.Errorf("%s: %w (--offset BYTES gives a filesystem's place by hand)", dev, err)
	}
	say := !g.json && !g.quiet
	if say {
		for _, n := range t.Notes {
			fmt.Fprintf(os.Stderr, "xfsfree: note: %s: %s\n", dev, n)
		}
	}
	if p.number != 0 {
		pt, ok := t.Lookup(p.number)
		if !ok {
			return usageError{fmt.Errorf("--partition %d: %s has no partition %d:\n%s", p.number, dev, p.number, listPartitions(t))}
		}
		p.off, p.len = pt.Start, pt.Size
		return nil
	}
	xfs := t.XFS()
	switch len(xfs) {
	case 0:
		return fmt.Errorf("%s has %s but no partition holds an XFS filesystem:\n%s", dev, describeTable(t), listPartitions(t))
	case 1:
		pt := xfs[0]
		if say {
			fmt.Fprintf(os.Stderr, "xfsfree: %s: using partition %d (%s), the only one holding XFS: bytes %d..%d (%s)%s\n",
				dev, pt.Number, describeTable(t), pt.Start, pt.Start+pt.Size-1, humanBytes(pt.Size), typeAndLabel(pt))
		}
		p.off, p.len = pt.Start, pt.Size
		return nil
	default:
		nums := make([]string, len(xfs))
		for i, x := range xfs {
			nums[i] = strconv.Itoa(x.Number)
		}
		return usageError{fmt.Errorf("%s has %d partitions holding XFS (%s): pick one with --partition N:\n%s",
			dev, len(xfs), strings.Join(nums, ", "), listPartitions(t))}
	}
}

func describeTable(t *partition.Table) string {
	return fmt.Sprintf("a%s %s partition table with %d-byte sectors", map[bool]string{true: "n", false: ""}[t.Scheme == partition.MBR],
		strings.ToUpper(t.Scheme), t.SectorSize)
}

func typeAndLabel(p partition.Partition) string {
	s := ", type " + p.Type
	if p.TypeName != "" {
		s = ", type " + p.TypeName
	}
	if p.Label != "" {
		s += fmt.Sprintf(", label %q", p.Label)
	}
	return s
}

// listPartitions is the table as the refusals show it.
func listPartitions(t *partition.Table) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  N\tstart (bytes)\tsize\ttype\tlabel\tXFS")
	for _, p := range t.Partitions {
		ty := p.Type
		if p.TypeName != "" {
			ty = p.TypeName
		}
		x := "-"
		if p.XFS {
			x = "yes"
		}
		fmt.Fprintf(tw, "  %d\t%d\t%s\t%s\t%s\t%s\n", p.Number, p.Start, humanBytes(p.Size), ty, p.Label, x)
	}
	tw.Flush()
	return strings.TrimRight(b.String(), "\n")
}

// humanBytes is n in the largest binary unit that keeps one decimal.
func humanBytes(n int64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, units[i])
}

// byteCount is a flag value: bytes, with an optional K, M, G or T suffix
// (powers of 1024; "KiB" and "k" too).
type byteCount struct {
	n   uint64
	set bool
}

func (b *byteCount) String() string {
	if !b.set {
		return ""
	}
	return strconv.FormatUint(b.n, 10)
}

func (b *byteCount) Type() string { return "bytes" }

func (b *byteCount) Set(s string) error {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "IB"), "B")
	mult := uint64(1)
	if i := strings.IndexAny(t, "KMGT"); i >= 0 && i == len(t)-1 {
		mult = 1 << (10 * (strings.IndexByte("KMGT", t[i]) + 1))
		t = t[:i]
	}
	v, err := strconv.ParseUint(t, 10, 64)
	if err != nil || v > (1<<63-1)/mult {
		return fmt.Errorf("%q is not a byte count (digits, with an optional K, M, G or T suffix)", s)
	}
	b.n, b.set = v*mult, true
	return nil
}
