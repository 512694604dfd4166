//go:build testhooks

package main

// Test hooks, built only with -tags testhooks (the CLI tests build the
// binary so; the released one has none of this): hidden crash-injection
// flags for the crash-matrix tests, a per-item delay for the interrupt
// tests, and the hidden debug commands that make test transactions.

import (
	"fmt"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"time"

	"github.com/spf13/cobra"
	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/xfs"
)

// crashFlags are the hidden global crash-injection flags.
type crashFlags struct {
	after int // --crash-after-writes: writes after the Nth are dropped (-1: off)
	tear  int // --tear-write: the Nth write only half reaches the device (0: off)
}

// testFlags are the hidden global test flags.
var testFlags struct {
	crash     crashFlags
	itemDelay time.Duration // --test-item-delay: sleep after each freed item
}

// addTestHooks adds the hidden test flags and the debug command to root.
func addTestHooks(root *cobra.Command, g *globalFlags) {
	f := root.PersistentFlags()
	c := &testFlags.crash
	f.IntVar(&c.after, "crash-after-writes", -1, "testing: let N device writes through, then stop as a power cut would (exit 99)")
	f.IntVar(&c.tear, "tear-write", 0, "testing: write only the first half of the Nth device write, then stop (exit 99)")
	f.DurationVar(&testFlags.itemDelay, "test-item-delay", 0, "testing: sleep this long after each item freed")
	f.MarkHidden("crash-after-writes")
	f.MarkHidden("tear-write")
	f.MarkHidden("test-item-delay")
	root.AddCommand(newDebugCmd(g, c))
}

// testWriteHook is the device write hook the crash flags ask for (nil:
// none).
func testWriteHook() func(*cache.Device) cache.WriteHook { return testFlags.crash.hook() }

// testItemDelay is how long to sleep after each item freed.
func testItemDelay() time.Duration { return testFlags.itemDelay }

// hook returns the write hook for xfs.Options, or nil when no crash is
// asked for. At the crash the process exits with status 99.
func (c *crashFlags) hook() func(*cache.Device) cache.WriteHook {
	if c.after < 0 && c.tear <= 0 {
		return nil
	}
	return func(dev *cache.Device) cache.WriteHook {
		return xfs.CrashHook(dev, c.after, c.tear, func() {
			fmt.Fprintln(os.Stderr, "xfsfree: injected crash: device writes stopped")
			os.Exit(exitCrashed)
		})
	}
}

func newDebugCmd(g *globalFlags, c *crashFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:    "debug",
		Short:  "Test transactions (hidden)",
		Hidden: true,
	}
	var checkpointEach bool
	setLabel := &cobra.Command{
		Use:   "set-label DEV LABEL...",
		Short: "Set the filesystem label once per LABEL, one transaction each, then finish",
		Long: `set-label commits one transaction per LABEL, each changing the superblock
label (sb_fname), with a checkpoint only at the end (or after each with
--checkpoint-each), then writes the summary counters and an unmount record.
It exists to test the journal: the label is a field neither the kernel nor
xfs_repair depends on.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usageError{fmt.Errorf("expected a device and at least one label, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			fs, err := xfs.OpenWrite(args[0], xfs.Options{Buffered: g.buffered, Offset: g.part.off, Size: g.part.len, WriteHook: c.hook()})
			if err != nil {
				return err
			}
			defer fs.Close()
			for _, l := range args[1:] {
				seq, err := fs.SetLabel(l)
				if err != nil {
					return err
				}
				if !g.quiet {
					fmt.Fprintf(os.Stderr, "label %q durable in checkpoint %d\n", l, seq)
				}
				if checkpointEach {
					if err := fs.Checkpoint(); err != nil {
						return err
					}
				}
			}
			return fs.Finish()
		},
	}
	setLabel.Flags().BoolVar(&checkpointEach, "checkpoint-each", false, "checkpoint after every transaction")
	cmd.AddCommand(setLabel)
	return cmd
}

// startProfile writes a CPU profile to $XFSFREE_CPUPROFILE, if set, until
// the returned function is called (for scripts/bench-free.sh), and a heap
// profile to $XFSFREE_MEMPROFILE after $XFSFREE_MEMPROFILE_AFTER (a
// duration), and an execution trace to $XFSFREE_TRACE.
func startProfile() func() {
	stopTrace := func() {}
	if tp := os.Getenv("XFSFREE_TRACE"); tp != "" {
		if f, err := os.Create(tp); err == nil && trace.Start(f) == nil {
			stopTrace = func() { trace.Stop(); f.Close() }
		}
	}
	if mp := os.Getenv("XFSFREE_MEMPROFILE"); mp != "" {
		after, _ := time.ParseDuration(os.Getenv("XFSFREE_MEMPROFILE_AFTER"))
		time.AfterFunc(after, func() {
			if f, err := os.Create(mp); err == nil {
				pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		})
	}
	path := os.Getenv("XFSFREE_CPUPROFILE")
	if path == "" {
		return stopTrace
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "xfsfree: cpu profile:", err)
		return stopTrace
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "xfsfree: cpu profile:", err)
		f.Close()
		return stopTrace
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		stopTrace()
	}
}
